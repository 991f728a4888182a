"""capture.py: scraps leave scrapbook as plain JSON and are checked against the output contract."""

from __future__ import annotations

import numpy as np
import pandas as pd

from impactbook.capture import _plain, read_scraps, scrap_problems


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


def test_scraps_glued_in_a_real_kernel_read_back_as_glued(tmp_path):
    """Text stays text: scrapbook's json encoder parses a string scrap as JSON, so "INCONCLUSIVE" failed the
    template's cell and "123" came back as the number 123."""
    import nbformat
    import papermill

    values = {"label": "INCONCLUSIVE", "digits": "123", "blank": "", "number": 1.5, "count": 3, "flag": True,
              "table": [{"metric": "m", "p_value": None}], "nested": {"a": ["x", 2]}}
    source = "import impactbook.notebook as ib\n" + "".join(f"ib.glue({k!r}, {v!r})\n" for k, v in values.items())
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, tmp_path / "glue.ipynb")
    papermill.execute_notebook(str(tmp_path / "glue.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                               progress_bar=False)
    assert read_scraps(tmp_path / "out.ipynb") == values
