"""The drift table over whole tables against independent references on the same data: scipy's ks_2samp,
a PSI / Jensen-Shannon over numpy.quantile bins counted value by value, scipy's chi2_contingency; the same
numbers whether the tables come as DataFrames, Arrow tables or DuckDB relations, on one thread or two."""

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from impactbook.designs.pipeline_validation.drift_tables import drift_rows
from impactbook.designspecs.pipeline_validation import ColumnDrift
from impactbook.stats.drift import binned_counts, psi


def tables():
    rng = np.random.default_rng(21)
    reference = pd.DataFrame({"a": rng.normal(size=4000), "b": rng.exponential(size=4000).round(1),
                              "kind": rng.choice(["x", "y", "z"], 4000)})
    current = pd.DataFrame({"a": rng.normal(0.2, 1, size=3000), "b": rng.exponential(1.2, size=3000).round(1),
                            "kind": rng.choice(["x", "y", "z"], 3000, p=[0.5, 0.3, 0.2])})
    current.loc[::10, "a"] = np.nan  # nulls are left out of every numeric statistic
    return reference, current


CHECKS = [ColumnDrift(column=c, statistic=s, threshold=0.1, bins=8) for c in ("a", "b") for s in ("psi", "jensen_shannon", "ks")]
CHECKS += [ColumnDrift(column="kind", statistic="chi_square", threshold=5.0)]


def by_key(rows):
    return {(r.column, r.statistic): r for r in rows}


def test_drift_table_matches_independent_references():
    reference, current = tables()
    rows = by_key(drift_rows(reference, current, CHECKS))
    for column in ("a", "b"):
        r, c = reference[column].dropna().to_numpy(), current[column].dropna().to_numpy()
        ks = sps.ks_2samp(r, c, method="asymp")
        assert rows[(column, "ks")].value == pytest.approx(ks.statistic, abs=1e-12)
        assert rows[(column, "ks")].p_value == pytest.approx(ks.pvalue, rel=1e-9)
        edges = np.unique(np.quantile(r, np.arange(1, 8) / 8))
        counts = binned_counts(r, edges), binned_counts(c, edges)
        assert rows[(column, "psi")].value == pytest.approx(psi(*counts).statistic, abs=1e-12)
        assert rows[(column, "jensen_shannon")].value == pytest.approx(jensenshannon(*counts, base=2), abs=1e-12)
    table = pd.crosstab(pd.concat([reference.kind, current.kind]), np.repeat([0, 1], [len(reference), len(current)]))
    statistic, p, _, _ = sps.chi2_contingency(table.T.to_numpy(), correction=False)
    assert rows[("kind", "chi_square")].value == pytest.approx(statistic, rel=1e-12)
    assert rows[("kind", "chi_square")].p_value == pytest.approx(p, rel=1e-9)


def test_arrow_tables_relations_and_threads_give_the_same_table():
    reference, current = tables()
    expected = [(r.column, r.statistic, r.value, r.p_value) for r in drift_rows(reference, current, CHECKS, threads=1)]
    arrow = drift_rows(pa.Table.from_pandas(reference), pa.Table.from_pandas(current), CHECKS, threads=2)
    connection = duckdb.connect()
    connection.register("r", reference)
    connection.register("c", current)
    relations = drift_rows(connection.sql("SELECT * FROM r"), connection.sql("SELECT * FROM c"), CHECKS, connection,
                           threads=2)
    for found in (arrow, relations):
        assert [(r.column, r.statistic) for r in found] == [e[:2] for e in expected]
        assert np.allclose([r.value for r in found], [e[2] for e in expected], rtol=0, atol=1e-12)


def test_rows_are_ranked_by_value_over_threshold_and_flag_breaches():
    reference, current = tables()
    rows = drift_rows(reference, current, CHECKS)
    ratios = [r.value / r.threshold for r in rows]
    assert ratios == sorted(ratios, reverse=True)
    assert all(r.breached == (r.value > r.threshold) for r in rows)
