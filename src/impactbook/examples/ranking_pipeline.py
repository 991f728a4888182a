"""A real three-stage ranking pipeline for the `pipeline_validation` example: a feature builder, a
scikit-learn click model (baseline: logistic regression; candidate: gradient-boosted trees), and a ranking
stage that orders each query's items and prices the expected revenue. Data come from a deterministic
generator, so every run of the example sees the same rows.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

FEATURES = ["log_price", "rating", "distance_km", "popularity", "price_to_query_median"]
SEED = 20261123


def generate(queries: int = 300, items: int = 20, seed: int = SEED, drift: float = 0.0) -> pd.DataFrame:
    """Search sessions: `queries` queries x `items` candidate items, with a click drawn from a known logistic
    model (so there is a true relevance to rank by); `drift` moves prices and popularity (a later month)."""
    rng = np.random.default_rng(seed)
    n = queries * items
    frame = pd.DataFrame({
        "query_id": np.repeat(np.arange(queries), items),
        "item_id": rng.integers(0, 5000, n),
        "price": np.round(rng.lognormal(3.0 + drift * 0.3, 0.6, n), 2),
        "rating": np.round(np.clip(rng.normal(4.0, 0.6, n), 1, 5), 1),
        "distance_km": np.round(rng.exponential(5.0, n), 2),
        "popularity": np.clip(rng.gamma(2.0, 1.0 + drift, n), 0, None),
        "category": rng.choice(["food", "books", "tools", "toys"], n, p=[0.4, 0.3, 0.2, 0.1]),
    })
    utility = (-1.2 * np.log(frame.price) + 1.5 * (frame.rating - 4) - 0.15 * frame.distance_km
               + 0.9 * np.log1p(frame.popularity) + 1.5)
    frame["clicked"] = (rng.random(n) < 1 / (1 + np.exp(-utility))).astype(int)
    return frame


def build_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Stage 1: model features from raw columns (log price, price relative to the query's median)."""
    price = frame["price"].astype(float)
    median = price.groupby(frame["query_id"]).transform("median")
    return frame.assign(log_price=np.log(price), price_to_query_median=price / median)


@lru_cache(maxsize=None)
def _model(kind: str):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = build_features(generate(queries=1500, seed=SEED + 1))
    if kind == "baseline":
        model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=1000))
        columns = ["log_price", "rating", "distance_km"]
    else:
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=0)
        columns = FEATURES
    return model.fit(train[columns], train["clicked"]), columns


def _score(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    model, columns = _model(kind)
    return frame.assign(score=model.predict_proba(frame[columns])[:, 1])


def score_baseline(frame: pd.DataFrame) -> pd.DataFrame:
    """Stage 2, baseline: logistic regression on price, rating and distance."""
    return _score(frame, "baseline")


def score_candidate(frame: pd.DataFrame) -> pd.DataFrame:
    """Stage 2, candidate: gradient-boosted trees that also use popularity and relative price."""
    return _score(frame, "candidate")


def rank(frame: pd.DataFrame) -> pd.DataFrame:
    """Stage 3: order each query's items by score; expected revenue of a slot is price x score x the
    position's examination probability 1 / log2(rank + 1) (the DCG discount)."""
    ranked = frame.assign(rank=frame.groupby("query_id")["score"].rank(ascending=False, method="first").astype(int))
    return ranked.assign(expected_revenue=ranked.price * ranked.score / np.log2(ranked["rank"] + 1))


def rank_by_price(frame: pd.DataFrame) -> pd.DataFrame:
    """An older ranking stage (cheapest first), for the version-swap perturbation."""
    return rank(frame.assign(score=-frame["price"].astype(float)))


def ndcg_at_10(output: pd.DataFrame) -> pd.Series:
    """NDCG@10 per query with the observed clicks as relevance (Järvelin & Kekäläinen 2002); a query with no
    click scores 0."""
    gains = output.clicked / np.log2(output["rank"] + 1)
    dcg = gains.where(output["rank"] <= 10, 0.0).groupby(output.query_id).sum()
    ideal_rank = output.groupby("query_id")["clicked"].rank(ascending=False, method="first")
    ideal = (output.clicked / np.log2(ideal_rank + 1)).where(ideal_rank <= 10, 0.0).groupby(output.query_id).sum()
    return (dcg / ideal.where(ideal > 0)).fillna(0.0).rename("ndcg_at_10")


def revenue_per_query(output: pd.DataFrame) -> pd.Series:
    """Expected revenue of the top 10 slots per query."""
    return output.expected_revenue.where(output["rank"] <= 10, 0.0).groupby(output.query_id).sum().rename("revenue")
