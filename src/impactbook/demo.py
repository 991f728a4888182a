"""`impactbook demo`: deterministic synthetic experiment data, pinned, and the example plan run end to end.

The example plan is frozen (real time, in the ledger) before its synthetic outcome window
begins, so the demo shows a clean preregistered flow without faking any timestamp.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .catalog import Catalog, Contract
from .freezing import FrozenPlan, freeze_plan
from .hashing import sha256_file
from .project import Project
from .runner import Progress, RunOutcome, run_plan

DATASET = "demo_experiment"
DATA_PATH = Path("data/demo_experiment.csv")
PLAN_PATH = Path("plans/example.yaml")
USERS = 200_000
SEED = 20261122

DEMO_CONTRACT = Contract.model_validate({
    "unique": ["user_id"],
    "columns": {
        "user_id": {"type": "int", "min": 1},
        "variant": {"type": "str", "allowed": ["control", "treatment"]},
        "platform": {"type": "str", "allowed": ["ios", "android", "web"]},
        "date": {"type": "date"},
        "pre_revenue": {"type": "float", "min": 0},
        "revenue": {"type": "float", "min": 0},
        "converted": {"type": "int", "allowed": [0, 1]},
        "sessions": {"type": "int", "min": 1},
    },
})


def generate_demo_data(path: Path, start: dt.date, days: int, users: int = USERS, seed: int = SEED,
                       conversion_lift: float = 0.006, revenue_factor: float = 1.0,
                       treatment_share: float = 0.5) -> Path:
    """A/B exposure table: the candidate raises conversion by `conversion_lift` (absolute) and so
    revenue per user; `revenue_factor` scales treated revenue (below 1 to simulate harm);
    `treatment_share` other than 0.5 simulates a broken split (sample ratio mismatch);
    pre-period revenue predicts revenue (for CUPED later); platforms differ."""
    rng = np.random.default_rng(seed)
    treated = rng.random(users) < treatment_share
    platform = rng.choice(np.array(["ios", "android", "web"]), size=users, p=[0.35, 0.4, 0.25])
    base = np.select([platform == "ios", platform == "android"], [0.11, 0.095], 0.10)
    engagement = rng.gamma(2.0, 1.0, users)
    pre_revenue = np.round(rng.gamma(1.5, 8.0, users) * engagement / 2, 2)
    p_convert = np.clip(base * (0.6 + 0.2 * engagement) + treated * conversion_lift, 0, 1)
    converted = (rng.random(users) < p_convert).astype(np.int64)
    order_value = rng.lognormal(mean=3.6, sigma=0.5, size=users)
    revenue = converted * order_value + 0.8 * pre_revenue * rng.gamma(8.0, 0.125, users)  # habitual spend
    revenue = np.round(np.where(treated, revenue * revenue_factor, revenue), 2)
    dates = pd.Timestamp(start) + pd.to_timedelta(rng.integers(0, days, users), unit="D")
    sessions = 1 + rng.poisson(1.5 + engagement)
    frame = pd.DataFrame({
        "user_id": np.arange(1, users + 1), "variant": np.where(treated, "treatment", "control"),
        "platform": platform, "date": dates.strftime("%Y-%m-%d"), "pre_revenue": pre_revenue,
        "revenue": revenue, "converted": converted, "sessions": sessions})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, float_format="%.2f", lineterminator="\n")
    return path


ROLLOUT_DATASET = "demo_rollout"
ROLLOUT_DATA_PATH = Path("data/demo_rollout.csv")
ROLLOUT_PLAN_PATH = Path("plans/rollout.yaml")
ROLLOUT_SCHEDULE = (("5%", 0.05, 4), ("25%", 0.25, 5), ("50%", 0.5, 5))  # name, exposure, days
ROLLOUT_BREACH_DAY = 6

ROLLOUT_CONTRACT = Contract.model_validate({
    "unique": ["user_id"],
    "columns": {
        "user_id": {"type": "int", "min": 1},
        "variant": {"type": "str", "allowed": ["control", "treatment"]},
        "stage": {"type": "str", "allowed": [name for name, _, _ in ROLLOUT_SCHEDULE]},
        "date": {"type": "date"},
        "converted": {"type": "int", "allowed": [0, 1]},
        "revenue": {"type": "float", "min": 0},
    },
})


def generate_rollout_data(path: Path, start: dt.date, users_per_day: int = 20_000, seed: int = SEED + 1,
                          breach_day: int | None = ROLLOUT_BREACH_DAY, conversion_lift: float = 0.01,
                          harm: float = 0.5) -> Path:
    """A staged rollout, one row per user per day: the candidate's share grows stage by stage; from
    `breach_day` on (counted from `start`, None for never) its revenue per user falls by `harm`."""
    rng = np.random.default_rng(seed)
    frames, next_id, day = [], 1, 0
    for name, exposure, days in ROLLOUT_SCHEDULE:
        for _ in range(days):
            treated = rng.random(users_per_day) < exposure
            converted = (rng.random(users_per_day) < 0.10 + treated * conversion_lift).astype(np.int64)
            revenue = converted * rng.lognormal(3.6, 0.5, users_per_day) + rng.gamma(2.0, 2.0, users_per_day)
            if breach_day is not None and day >= breach_day:
                revenue = np.where(treated, revenue * (1 - harm), revenue)
            frames.append(pd.DataFrame({
                "user_id": np.arange(next_id, next_id + users_per_day), "variant": np.where(treated, "treatment", "control"),
                "stage": name, "date": (start + dt.timedelta(days=day)).isoformat(), "converted": converted,
                "revenue": np.round(revenue, 2)}))
            next_id += users_per_day
            day += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(path, index=False, float_format="%.2f", lineterminator="\n")
    return path


FEEDBACK_DATASET = "demo_feedback"
FEEDBACK_DATA_PATH = Path("data/demo_feedback.csv")
REASONS = ("relevant results", "fast", "irrelevant results", "slow", "price")
FEEDBACK_CONTRACT = Contract.model_validate({
    "unique": ["response_id"],
    "columns": {
        "response_id": {"type": "int", "min": 1},
        "variant": {"type": "str", "allowed": ["control", "treatment"]},
        "date": {"type": "date"},
        "rating": {"type": "int", "min": 1, "max": 5},
        "reason": {"type": "str", "allowed": list(REASONS)},
    },
})


def generate_feedback_data(path: Path, start: dt.date, responses_per_day: int = 800, seed: int = SEED + 2) -> Path:
    """Structured feedback during the rollout: a 1-5 rating and a reason code per response; the
    candidate's ratings are a little better and cite irrelevant results less often."""
    rng = np.random.default_rng(seed)
    frames, next_id, day = [], 1, 0
    for _, exposure, days in ROLLOUT_SCHEDULE:
        for _ in range(days):
            treated = rng.random(responses_per_day) < max(exposure, 0.2)
            ratings = np.clip(np.round(rng.normal(3.6 + 0.2 * treated, 1.0)), 1, 5).astype(np.int64)
            weights = np.where(treated[:, None], [0.35, 0.2, 0.15, 0.15, 0.15], [0.3, 0.2, 0.25, 0.1, 0.15])
            reasons = np.array([rng.choice(len(REASONS), p=w) for w in weights])
            frames.append(pd.DataFrame({
                "response_id": np.arange(next_id, next_id + responses_per_day),
                "variant": np.where(treated, "treatment", "control"),
                "date": (start + dt.timedelta(days=day)).isoformat(), "rating": ratings,
                "reason": np.array(REASONS)[reasons]}))
            next_id += responses_per_day
            day += 1
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_csv(path, index=False, lineterminator="\n")
    return path


PIPELINE_PLAN_PATH = Path("plans/ranking-pipeline.yaml")
PIPELINE_DATASETS = (("ranking_sessions", Path("data/ranking_sessions.csv"), 0.0, 0),
                     ("ranking_sessions_reference", Path("data/ranking_sessions_reference.csv"), 0.3, 2))
PIPELINE_CONTRACT = Contract.model_validate({
    "columns": {
        "query_id": {"type": "int", "min": 0}, "item_id": {"type": "int", "min": 0},
        "price": {"type": "float", "min": 0}, "rating": {"type": "float", "min": 1, "max": 5},
        "distance_km": {"type": "float", "min": 0}, "popularity": {"type": "float", "min": 0},
        "category": {"type": "str"}, "clicked": {"type": "int", "allowed": [0, 1]},
    },
})


def generate_ranking_sessions(path: Path, drift: float = 0.0, seed_offset: int = 0) -> Path:
    """The shipped ranking pipeline's evaluation queries (drift > 0: the month before, prices and
    popularity shifted), from its deterministic generator."""
    from .examples.ranking_pipeline import generate

    path.parent.mkdir(parents=True, exist_ok=True)
    generate(seed=SEED + 1 + seed_offset, drift=drift).to_csv(path, index=False, lineterminator="\n")
    return path


MARKETS_DATASET = "demo_markets"
MARKETS_DATA_PATH = Path("data/demo_markets.csv")
MARKETS_PLAN_PATH = Path("plans/markets.yaml")
STATES_PLAN_PATH = Path("plans/states.yaml")
MARKETS_TRUE_EFFECT = 0.008  # the candidate adds 0.8 pp of conversion in every market from its adoption day
MARKETS_CONTRACT = Contract.model_validate({
    "unique": [],
    "columns": {
        "market": {"type": "str"}, "date": {"type": "date"}, "adopted_on": {"type": "date", "nullable": True},
        "sessions": {"type": "int", "min": 1}, "conversion": {"type": "float", "min": 0, "max": 1},
        "revenue_per_session": {"type": "float", "min": 0},
    },
})


def generate_markets_data(path: Path, start: dt.date, days: int, pre_days: int = 84, markets: int = 40,
                          never: int = 8, cohort_gap: int = 3, seed: int = SEED + 3,
                          effect: float = MARKETS_TRUE_EFFECT, adopter_trend: float = 0.0) -> Path:
    """A model change adopted market by market: `markets` markets observed daily from `pre_days` before
    `start` to `start + days - 1`; all but `never` adopt on start, start + gap, start + 2 gap, ... (four
    cohorts). Conversion has a market level, a weekly cycle (weekends higher), a holiday ramp shared by
    all markets, binomial noise from each day's sessions, and `effect` (absolute) once a market adopts;
    revenue per session follows conversion. The true effect is known, so the demo can show it recovered.
    `adopter_trend` (per day) breaks parallel trends: adopting markets drift away from the others."""
    rng = np.random.default_rng(seed)
    names = [f"m{number:02d}" for number in range(1, markets + 1)]
    adopters = markets - never
    adoption = {name: (start + dt.timedelta(days=cohort_gap * (i % 4)) if i < adopters else None)
                for i, name in enumerate(rng.permutation(names))}
    level = dict(zip(names, rng.normal(0.05, 0.008, markets)))
    size = dict(zip(names, rng.integers(800, 4000, markets)))
    rows = []
    for offset in range(-pre_days, days):
        day = start + dt.timedelta(days=offset)
        weekly = 0.004 if day.weekday() >= 5 else (-0.002 if day.weekday() == 0 else 0.0)
        holiday = 0.006 * np.exp(-((offset - days) / 20.0) ** 2)  # rises into mid-December
        for name in names:
            treated = adoption[name] is not None and day >= adoption[name]
            drift = adopter_trend * (offset + pre_days) if adoption[name] is not None else 0.0
            rate = float(np.clip(level[name] + weekly + holiday + drift + (effect if treated else 0.0), 0.001, 0.999))
            sessions = int(rng.poisson(size[name]))
            converted = rng.binomial(sessions, rate)
            rows.append((name, day.isoformat(), adoption[name].isoformat() if adoption[name] else "", sessions,
                         round(converted / sessions, 6), round(converted * rng.gamma(9.0, 6.0) / sessions, 4)))
    frame = pd.DataFrame(rows, columns=["market", "date", "adopted_on", "sessions", "conversion",
                                        "revenue_per_session"])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


ITS_DATASET = "demo_its"
ITS_DATA_PATH = Path("data/demo_its.csv")
ITS_PLAN_PATH = Path("plans/its.yaml")
ITS_TRUE_EFFECT = 0.004  # the candidate adds 0.4 pp of conversion in every region from the intervention day
ITS_CONTRACT = Contract.model_validate({
    "unique": [],
    "columns": {
        "date": {"type": "date"}, "region": {"type": "str"}, "sessions": {"type": "int", "min": 1},
        "conversion": {"type": "float", "min": 0, "max": 1}, "revenue_per_session": {"type": "float", "min": 0},
        "marketing_spend": {"type": "float", "min": 0},
    },
})


STATES_DATASET = "demo_states"
STATES_DATA_PATH = Path("data/demo_states.csv")
STATES_TREATED = "st01"
STATES_TRUE_EFFECT = 0.006  # the candidate adds 0.6 pp of conversion in the treated state from the intervention
STATES_CONTRACT = Contract.model_validate({
    "unique": [],
    "columns": {
        "state": {"type": "str"}, "date": {"type": "date"}, "sessions": {"type": "int", "min": 1},
        "conversion": {"type": "float", "min": 0, "max": 1}, "revenue_per_session": {"type": "float", "min": 0},
    },
})


def generate_its_data(path: Path, start: dt.date, days: int, pre_days: int = 728, regions: int = 3,
                      seed: int = SEED + 4, effect: float = ITS_TRUE_EFFECT, campaign_lift: float = 0.003) -> Path:
    """A model change shipped everywhere on `start`: daily rows per region from `pre_days` before `start` to
    `start + days - 1`. Conversion has a region level, a weekly cycle (weekends higher), a yearly cycle
    (a December peak), AR(1) day-to-day persistence (phi 0.6), binomial noise from each day's sessions, a
    response to marketing spend (`campaign_lift` per extra usual spend, linear; campaigns run at random
    times, and one starts a week into the post-period, so an analysis that ignores spend over-credits
    the change), and `effect` (absolute) from `start`. Revenue per session follows conversion. The true
    effect is known, so the demo can show it recovered."""
    rng = np.random.default_rng(seed)
    names = [f"r{number}" for number in range(1, regions + 1)]
    level = dict(zip(names, rng.normal(0.05, 0.004, regions)))
    size = dict(zip(names, rng.integers(3000, 6000, regions)))
    usual = dict(zip(names, rng.uniform(800, 1500, regions)))
    total = pre_days + days
    bursts = np.zeros(total)
    for begin in [*rng.choice(np.arange(total - 60), size=total // 90, replace=False), pre_days + 7]:
        bursts[begin:begin + int(rng.integers(10, 25))] += float(rng.uniform(0.6, 1.2))
    persistence = {name: 0.0 for name in names}
    rows = []
    for offset in range(-pre_days, days):
        day = start + dt.timedelta(days=offset)
        weekly = 0.003 if day.weekday() >= 5 else (-0.0015 if day.weekday() == 0 else 0.0)
        yearly = 0.004 * np.cos(2 * np.pi * (day.timetuple().tm_yday - 350) / 365.25)
        for name in names:
            persistence[name] = 0.6 * persistence[name] + rng.normal(0, 0.0012)
            spend = usual[name] * (1 + bursts[offset + pre_days]) * float(rng.lognormal(0, 0.05))
            rate = (level[name] + weekly + yearly + persistence[name] + campaign_lift * (spend / usual[name] - 1)
                    + (effect if offset >= 0 else 0.0))
            sessions = int(rng.poisson(size[name]))
            converted = int(rng.binomial(sessions, float(np.clip(rate, 0.001, 0.999))))
            revenue = rng.gamma(9.0 * converted, 6.0) if converted else 0.0  # the sum of each order's value
            rows.append((day.isoformat(), name, sessions, round(converted / sessions, 6),
                         round(revenue / sessions, 4), round(spend, 2)))
    frame = pd.DataFrame(rows, columns=["date", "region", "sessions", "conversion", "revenue_per_session",
                                        "marketing_spend"])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


def generate_states_data(path: Path, start: dt.date, days: int, pre_days: int = 84, states: int = 48,
                         seed: int = SEED + 4, effect: float = STATES_TRUE_EFFECT, pre_shock: float = 0.0) -> Path:
    """A model change switched on in one state (`st01`) on `start`, every other state a potential donor;
    observed daily from `pre_days` before `start` to `start + days - 1`. Conversion follows a factor
    model: a state level plus state-specific loadings on a weekly cycle, a holiday ramp and a slow trend,
    with binomial noise from each day's sessions. The treated state's level and loadings are the average
    of five donors' (so a convex combination of donors reproduces it), and `effect` (absolute) is added
    from `start`: the true effect is known. `pre_shock` shifts the treated state alone over the last 28
    pre-period days, so no synthetic control can track it (a failed pre-period fit)."""
    rng = np.random.default_rng(seed)
    names = [f"st{number:02d}" for number in range(1, states + 1)]
    level = rng.uniform(0.035, 0.065, states)
    loadings = rng.uniform(0.5, 1.5, size=(states, 3))
    mix = rng.choice(np.arange(1, states), 5, replace=False)
    level[0], loadings[0] = level[mix].mean(), loadings[mix].mean(axis=0)
    size = rng.integers(40_000, 160_000, states)
    rows = []
    for offset in range(-pre_days, days):
        day = start + dt.timedelta(days=offset)
        factors = np.array([0.004 if day.weekday() >= 5 else (-0.002 if day.weekday() == 0 else 0.0),
                            0.006 * np.exp(-((offset - days) / 20.0) ** 2), 0.004 * (offset + pre_days) / pre_days])
        rate = level + loadings @ factors
        rate[0] += (effect if offset >= 0 else 0.0) + (pre_shock if -28 <= offset < 0 else 0.0)
        sessions = rng.poisson(size)
        converted = rng.binomial(sessions, np.clip(rate, 0.001, 0.999))
        order_value = rng.gamma(900.0, 0.06, states)  # the day's mean order value, about 54
        rows += [(name, day.isoformat(), int(n), round(c / n, 6), round(c * v / n, 4))
                 for name, n, c, v in zip(names, sessions, converted, order_value)]
    frame = pd.DataFrame(rows, columns=["state", "date", "sessions", "conversion", "revenue_per_session"])
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


OBSERVATIONAL_DATASET = "demo_accounts"
OBSERVATIONAL_DATA_PATH = Path("data/demo_accounts.csv")
OBSERVATIONAL_PLAN_PATH = Path("plans/accounts.yaml")
OBSERVATIONAL_TRUE_EFFECT = 2.5  # the candidate adds 2.5 to an account's spend in the window
OBSERVATIONAL_CONTRACT = Contract.model_validate({
    "unique": ["account"],
    "columns": {
        "account": {"type": "str"}, "date": {"type": "date"}, "opted_in": {"type": "int", "min": 0, "max": 1},
        "tenure_months": {"type": "float", "min": 0}, "prior_spend": {"type": "float", "min": 0},
        "urban": {"type": "int", "min": 0, "max": 1}, "prior_sessions": {"type": "float", "min": 0},
        "spend": {"type": "float"}, "complained": {"type": "int", "min": 0, "max": 1},
    },
})


def generate_observational_data(path: Path, start: dt.date, days: int, accounts: int = 4000,
                                seed: int = SEED + 4, effect: float = OBSERVATIONAL_TRUE_EFFECT,
                                selection: float = 1.0) -> Path:
    """Accounts that opted in to the candidate model (no experiment): heavier, longer-tenured, urban accounts
    opt in more often, and the same traits raise spend, so the naive difference overstates the effect.
    Spend in the window adds `effect` for accounts that opted in; complaints (0/1) do not change. The
    selection is on the recorded covariates only, so adjusting for them recovers `effect`; `selection`
    scales how strongly they drive opting in (large: poor overlap)."""
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, accounts)
    prior_spend = rng.gamma(3.0, 10.0, accounts)
    urban = (rng.random(accounts) < 0.55).astype(int)
    prior_sessions = rng.poisson(20, accounts).astype(float)
    logit = selection * (-1.2 + 0.025 * (tenure - 24) + 0.04 * (prior_spend - 30) + 0.6 * urban
                         + 0.03 * (prior_sessions - 20))
    opted = (rng.random(accounts) < 1 / (1 + np.exp(-logit))).astype(int)
    spend = (5 + 0.6 * prior_spend + 0.05 * tenure + 2.0 * urban + 0.2 * prior_sessions + effect * opted
             + rng.normal(0, 4, accounts))
    complained = (rng.random(accounts) < 0.03 + 0.02 * (1 - urban)).astype(int)
    dates = [(start + dt.timedelta(days=int(day))).isoformat() for day in rng.integers(0, days, accounts)]
    frame = pd.DataFrame({"account": [f"a{i:05d}" for i in range(accounts)], "date": dates, "opted_in": opted,
                          "tenure_months": tenure.round(2), "prior_spend": prior_spend.round(2), "urban": urban,
                          "prior_sessions": prior_sessions, "spend": spend.round(4), "complained": complained})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, lineterminator="\n")
    return path


@dataclass(frozen=True)
class DemoOutcome:
    frozen: FrozenPlan
    repinned: bool
    outcome: RunOutcome
    rollout: RunOutcome | None = None
    pipeline: RunOutcome | None = None
    markets: RunOutcome | None = None
    its: RunOutcome | None = None
    states: RunOutcome | None = None
    accounts: RunOutcome | None = None


def _frozen(project: Project, relative: Path, progress: Progress) -> FrozenPlan:
    frozen = freeze_plan(project, project.resolve(relative))
    progress(f"plan {frozen.plan.id} v{frozen.version} frozen at {frozen.frozen_at} "
             f"(hash {frozen.sha256[:12]}); outcome window {frozen.plan.window.start} to {frozen.plan.window.end}")
    return frozen


def _pinned_data(project: Project, name: str, relative: Path, contract: Contract, generate, progress: Progress) -> bool:
    """Generate the data unless it matches its pin; (re-)pin it when the bytes differ. True if re-pinned."""
    data_path = project.resolve(relative)
    catalog = Catalog.load(project)
    pinned = catalog.model.datasets.get(name)
    if not (pinned and data_path.is_file() and sha256_file(data_path) == pinned.sha256):
        progress(f"generating synthetic data into {relative}")
        generate(data_path)
    if pinned and sha256_file(data_path) == pinned.sha256:
        progress(f"{relative} matches its pin in catalog.yaml (sha256 {pinned.sha256[:12]})")
        return False
    catalog.pin_dataset(name, data_path, contract=None if pinned and pinned.contract else contract, replace=True,
                        synthetic=True,
                        reason="impactbook demo regenerated the synthetic data and its bytes differ from the pin "
                               "(another numpy/pandas writes them differently)", by="impactbook demo")
    progress(f"re-pinned {name} in catalog.yaml: the generated bytes differ from the committed pin "
             "(a different numpy/pandas version writes them differently)" if pinned else f"pinned {name} in catalog.yaml")
    return True


def _quasi_experiment(project: Project, plan: Path, dataset: str, data: Path, contract: Contract, generate,
                      progress: Progress) -> tuple[RunOutcome | None, bool]:
    """A quasi-experimental demo plan, when the project has it: frozen, its synthetic data generated over
    its outcome window (with the generator's pre-period before it) and pinned, run. (run, re-pinned)."""
    if not project.resolve(plan).is_file():
        return None, False
    window = _frozen(project, plan, progress).plan.window
    repinned = _pinned_data(project, dataset, data, contract,
                            lambda path: generate(path, window.start, (window.end - window.start).days + 1), progress)
    return run_plan(project, project.resolve(plan), progress=progress), repinned


def run_demo(project: Project, progress: Progress = lambda message: None) -> DemoOutcome:
    frozen = _frozen(project, PLAN_PATH, progress)
    window = frozen.plan.window
    repinned = _pinned_data(project, DATASET, DATA_PATH, DEMO_CONTRACT,
                            lambda path: generate_demo_data(path, window.start, (window.end - window.start).days + 1),
                            progress)
    outcome = run_plan(project, project.resolve(PLAN_PATH), progress=progress)
    rollout = None
    if project.resolve(ROLLOUT_PLAN_PATH).is_file():
        rollout_plan = _frozen(project, ROLLOUT_PLAN_PATH, progress)
        start = rollout_plan.plan.window.start
        repinned |= _pinned_data(project, ROLLOUT_DATASET, ROLLOUT_DATA_PATH, ROLLOUT_CONTRACT,
                                 lambda path: generate_rollout_data(path, start), progress)
        repinned |= _pinned_data(project, FEEDBACK_DATASET, FEEDBACK_DATA_PATH, FEEDBACK_CONTRACT,
                                 lambda path: generate_feedback_data(path, start), progress)
        rollout = run_plan(project, project.resolve(ROLLOUT_PLAN_PATH), progress=progress)
    markets, pinned = _quasi_experiment(project, MARKETS_PLAN_PATH, MARKETS_DATASET, MARKETS_DATA_PATH,
                                        MARKETS_CONTRACT, generate_markets_data, progress)
    repinned |= pinned
    its, pinned = _quasi_experiment(project, ITS_PLAN_PATH, ITS_DATASET, ITS_DATA_PATH, ITS_CONTRACT,
                                    generate_its_data, progress)
    repinned |= pinned
    states, pinned = _quasi_experiment(project, STATES_PLAN_PATH, STATES_DATASET, STATES_DATA_PATH, STATES_CONTRACT,
                                       generate_states_data, progress)
    repinned |= pinned
    accounts, pinned = _quasi_experiment(project, OBSERVATIONAL_PLAN_PATH, OBSERVATIONAL_DATASET,
                                         OBSERVATIONAL_DATA_PATH, OBSERVATIONAL_CONTRACT, generate_observational_data,
                                         progress)
    repinned |= pinned
    pipeline = None
    if project.resolve(PIPELINE_PLAN_PATH).is_file():
        _frozen(project, PIPELINE_PLAN_PATH, progress)
        for name, path, drift, offset in PIPELINE_DATASETS:
            repinned |= _pinned_data(project, name, path, PIPELINE_CONTRACT,
                                     lambda target, d=drift, o=offset: generate_ranking_sessions(target, d, o), progress)
        pipeline = run_plan(project, project.resolve(PIPELINE_PLAN_PATH), progress=progress)
    return DemoOutcome(frozen, repinned, outcome, rollout, pipeline, markets, its, states, accounts)
