"""capture.py: scraps leave scrapbook as plain JSON and are checked against the output contract."""

from __future__ import annotations

import numpy as np
import pandas as pd

from impactbook.capture import _plain, scrap_problems


def test_numpy_and_pandas_values_become_json():
    value = {"a": np.float64(1.5), "b": np.int64(2), "c": np.array([1, 2]), "d": float("nan"),
             "e": pd.DataFrame({"x": [1]}), "f": (1, 2), "g": np.bool_(True)}
    assert _plain(value) == {"a": 1.5, "b": 2, "c": [1, 2], "d": None, "e": [{"x": 1}], "f": [1, 2], "g": True}


def test_contract_problems_name_each_scrap():
    contract = {"n": "integer", "flag": "boolean", "table": "array", "x": "decimal"}
    problems = scrap_problems({"n": True, "flag": 1, "x": 1}, contract, "t.ipynb")
    assert problems == ["scrap 'n': expected integer, got bool", "scrap 'flag': expected boolean, got int",
                        "scrap 'table': missing (the template declares it but never glued it)",
                        "scrap 'x': the contract names unknown type 'decimal' (use one of number, integer, string, "
                        "boolean, object, array)"]
