"""capture.py: scraps leave scrapbook as plain JSON and are checked against the output contract."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from impactbook.capture import _plain, glue, read_scraps, scrap_problems


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
    assert scrap_problems({"t": "[1, 2]"}, {"t": "array"}, "t.ipynb") == [
        "scrap 't': expected array, got str (text is kept as text: glue the value itself, not its JSON)"]


def scraps_of(source: str, folder) -> dict:
    """The scraps of a one-cell notebook executed by Papermill in a real kernel."""
    import nbformat
    import papermill

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, folder / "glue.ipynb")
    papermill.execute_notebook(str(folder / "glue.ipynb"), str(folder / "out.ipynb"), kernel_name="python3",
                               progress_bar=False)
    return read_scraps(folder / "out.ipynb")


def test_scraps_glued_in_a_real_kernel_read_back_as_glued(tmp_path):
    """Text stays text: scrapbook's json encoder parses a string scrap as JSON, so "INCONCLUSIVE" failed the
    template's cell and "123" came back as the number 123."""
    values = {"label": "INCONCLUSIVE", "digits": "123", "blank": "", "number": 1.5, "count": 3, "flag": True,
              "table": [{"metric": "m", "p_value": None}], "nested": {"a": ["x", 2]}}
    source = "import impactbook.notebook as ib\n" + "".join(f"ib.glue({k!r}, {v!r})\n" for k, v in values.items())
    source += "ib.glue('shown', {'a': [1, 2]}, display=True)\n"  # (scrapbook's display output read back as null)
    assert scraps_of(source, tmp_path) == {**values, "shown": {"a": [1, 2]}}


def test_a_glued_scrap_is_the_output_scrapbook_writes(monkeypatch):
    """The kernel writes scrapbook's own output without importing scrapbook (and papermill with it)."""
    import IPython.display
    from scrapbook.api import _prepare_ipy_data_format
    from scrapbook.encoders import registry
    from scrapbook.scraps import Scrap, scrap_to_payload

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, **options: shown.append((data, options)))
    values = {"label": ("INCONCLUSIVE", "text"), "rows": ([{"x": 1.5, "y": None}], "json"), "n": (3, "json")}
    for name, (value, encoder) in values.items():
        glue(name, value)
        expected = _prepare_ipy_data_format(name, scrap_to_payload(registry.encode(Scrap(name, value, encoder))),
                                            encoder)
        assert shown.pop() == (expected[0], {"metadata": expected[1], "raw": True})


def test_gluing_in_a_kernel_does_not_import_papermill_or_nbformat(tmp_path):
    source = ("import sys\nimport impactbook.notebook as ib\nib.glue('n', 1)\n"
              "ib.glue('imported', sorted({'scrapbook', 'papermill', 'boto3', 'nbformat'} & set(sys.modules)))\n")
    assert scraps_of(source, tmp_path) == {"n": 1, "imported": []}


def test_times_and_missing_values_become_json():
    value = {"t": np.datetime64("2024-01-02T03:04:05.123456789"), "nat": np.datetime64("NaT"), "NaT": pd.NaT,
             "NA": pd.NA, "day": pd.Timestamp("2024-01-02"), "wait": np.timedelta64(5, "s")}
    assert _plain(value) == {"t": "2024-01-02T03:04:05.123456789", "nat": None, "NaT": None, "NA": None,
                             "day": "2024-01-02T00:00:00", "wait": "P0DT0H0M5S"}
    assert _plain(nested(100)) == nested(100)


def nested(levels: int) -> dict:
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("value", "problem"), [
    (None, ValueError("scrap 'x': the value is empty or not finite (None, NaN, ±inf or NaT), and a scrap cannot be")),
    (float("nan"), ValueError("scrap 'x': the value is empty")),
    (float("inf"), ValueError("scrap 'x': the value is empty or not finite")),
    (pd.NaT, ValueError("scrap 'x': the value is empty")),
    ({1: "a", "1": "b"}, ValueError("scrap 'x': the keys '1' and 1 are the same text")),
    (nested(150), ValueError("scrap 'x': nests more than 100 levels deep")),
    (nested(5000), ValueError("scrap 'x': nests more than 100 levels deep")),
    ("\ud800", TypeError("scrap 'x': not JSON ('utf-8' codec can't encode character '\\ud800'")),
    (Decimal("1.5"), TypeError("scrap 'x': not JSON (Object of type Decimal is not JSON serializable)")),
    ({"ids": {1, 2}}, TypeError("scrap 'x': not JSON (Object of type set is not JSON serializable)")),
    (b"raw", TypeError("scrap 'x': not JSON (Object of type bytes is not JSON serializable)")),
])
def test_a_value_scrapbook_cannot_store_is_refused_in_the_cell_naming_the_scrap(value, problem, monkeypatch):
    """scrapbook.glue refused these in the template's cell; they must not reach the notebook, where one
    unreadable scrap output hides all the others from capture."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, **options: shown.append(data))
    with pytest.raises(type(problem)) as raised:
        glue("x", value)
    assert str(raised.value).startswith(str(problem))
    for name in ("", 1, None):
        with pytest.raises(TypeError, match="a scrap's name is text, not"):
            glue(name, 1)
    assert shown == []


def test_times_in_arrays_and_durations_become_iso_text():
    import datetime as dt

    stamps = np.array(["2020-01-01T00:00:01", "NaT"], dtype="datetime64[ns]")
    assert _plain(stamps) == ["2020-01-01T00:00:01", None]  # (.tolist() had made them integers)
    assert _plain(pd.Series(stamps)) == _plain(pd.DatetimeIndex(stamps)) == ["2020-01-01T00:00:01", None]
    assert _plain(np.array([5, 60], dtype="timedelta64[s]")) == ["P0DT0H0M5S", "P0DT0H1M0S"]
    assert _plain(dt.timedelta(seconds=5)) == "P0DT0H0M5S"
    assert _plain(np.datetime64("2020-01-01")) == "2020-01-01"  # (a day stays a day)
    assert _plain(np.datetime64("2020-01-01T00:00:01.5", "us")) == "2020-01-01T00:00:01.500000"


def test_display_shows_the_value_with_scrapbooks_filters(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda data, **options: shown.append((data, options)))
    glue("x", [1, 2], display=["text/plain"])
    glue("y", 3, display={"exclude": ["text/html"]})
    assert [(data, options) for data, options in shown if "raw" not in options] == \
        [([1, 2], {"include": ["text/plain"]}), (3, {"exclude": ["text/html"]})]


def test_a_scrap_of_a_later_payload_version_is_read_without_scrapbooks_warning(tmp_path, caplog):
    import nbformat

    output = nbformat.v4.new_output("display_data", data={"application/scrapbook.scrap.json+json": {
        "name": "n", "data": 1, "encoder": "json", "version": 2}}, metadata={"scrapbook": {"name": "n", "data": True,
                                                                                          "display": False}})
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("", outputs=[output])])
    nbformat.write(notebook, tmp_path / "out.ipynb")
    with caplog.at_level("DEBUG"):
        assert read_scraps(tmp_path / "out.ipynb") == {"n": 1}
    assert not [r for r in caplog.records if r.name.startswith("scrapbook")], caplog.records


def test_pandas_and_numpy_edge_values_keep_what_was_glued():
    import datetime as dt

    assert _plain(pd.Series([1, None], dtype="Int64")) == [1, None]  # (to_numpy() had made 1 a float)
    assert _plain(np.array(np.datetime64("2024-01-01"))) == "2024-01-01" and _plain(np.array(1.5)) == 1.5
    assert _plain(pd.Series(pd.to_datetime(["2024-01-01 01:00"]).tz_localize("UTC"))) == ["2024-01-01T01:00:00+00:00"]
    for finer in (np.datetime64(1500, "ps"), np.array([1500], dtype="timedelta64[fs]")):
        with pytest.raises(ValueError, match="finer than nanoseconds"):
            _plain(finer)
    with pytest.raises(ValueError, match="scrap 'x': "):
        glue("x", dt.timedelta(days=999_999_999))
