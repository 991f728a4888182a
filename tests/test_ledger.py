"""ledger.py: append-only, hash-chained; edits and removals are found and named."""

from __future__ import annotations

import json

from impactbook.ledger import GENESIS, Ledger


def _ledger(tmp_path, count=3) -> Ledger:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    for number in range(count):
        ledger.append("note", {"number": number})
    return ledger


def test_entries_chain_to_their_predecessor(tmp_path):
    entries = _ledger(tmp_path).entries()
    assert entries[0]["prev_hash"] == GENESIS
    assert [e["prev_hash"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert Ledger(tmp_path / "ledger.jsonl").problems() == []


def test_identity_is_the_first_entrys_hash_and_stays_as_entries_are_added(tmp_path):
    empty = Ledger(tmp_path / "none" / "ledger.jsonl")
    assert empty.identity() is None, "no entry yet: no identity"
    ledger = _ledger(tmp_path, count=1)
    first = ledger.entries()[0]["hash"]
    assert ledger.identity() == first
    ledger.append("note", {"number": 1})
    assert ledger.identity() == first
    other = Ledger(tmp_path / "other.jsonl")
    other.append("note", {"number": 0, "project": "another"})
    assert other.identity() not in (None, first)


def _rewrite(ledger: Ledger, change) -> None:
    lines = [json.loads(line) for line in ledger.path.read_text().splitlines()]
    change(lines)
    ledger.path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_edited_entry_is_named(tmp_path):
    ledger = _ledger(tmp_path)
    _rewrite(ledger, lambda lines: lines[1].update(number=99))
    assert ledger.problems() == ["ledger.jsonl entry 2: content does not match its hash (the entry was edited)"]


def test_edited_entry_with_recomputed_hash_breaks_the_chain_at_the_next_entry(tmp_path):
    from impactbook.ledger import entry_hash

    ledger = _ledger(tmp_path)

    def forge(lines):
        lines[1]["number"] = 99
        lines[1]["hash"] = entry_hash(lines[1])
    _rewrite(ledger, forge)
    assert ledger.problems() == ["ledger.jsonl entry 3: prev_hash does not match the previous entry (the chain is broken)"]


def test_removed_entry_is_named(tmp_path):
    ledger = _ledger(tmp_path)
    _rewrite(ledger, lambda lines: lines.pop(1))
    problems = ledger.problems()
    assert any("entry 3: sequence number 3, expected 2" in p for p in problems)
    assert any("entry 3: prev_hash" in p for p in problems)


def test_unparseable_line_is_named(tmp_path):
    ledger = _ledger(tmp_path)
    with open(ledger.path, "a") as handle:
        handle.write("{not json\n")
    assert "ledger.jsonl:4" in ledger.problems()[0]


def test_append_chains_to_the_last_entry_read_from_the_end(tmp_path):
    ledger = _ledger(tmp_path, count=2)
    big = {"number": 2, "padding": "x" * 200_000}  # longer than the first window read from the end
    ledger.append("note", big)
    with open(ledger.path, "a") as handle:
        handle.write("\n\n")  # blank lines are skipped, as entries() skips them
    last = ledger.append("note", {"number": 3})
    entries = ledger.entries()
    assert last == entries[-1] and last["seq"] == 4 and last["prev_hash"] == entries[2]["hash"]
    assert ledger.problems() == []


def test_append_once_records_a_value_once(tmp_path):
    ledger = _ledger(tmp_path)
    assert ledger.append("decision", {"run_id": "r1"})["seq"] == 4  # another kind mentioning the value
    first = ledger.append_once("run", {"run_id": "r1", "status": "COMPLETED"}, "run_id")
    assert first is not None and first["seq"] == 5
    assert ledger.append_once("run", {"run_id": "r1", "status": "FAILED"}, "run_id") is None
    assert ledger.append_once("run", {"run_id": "r2"}, "run_id")["seq"] == 6
    assert [e["run_id"] for e in ledger.entries() if e["kind"] == "run"] == ["r1", "r2"]


def test_an_unreadable_last_entry_stops_appends_naming_the_ledger(tmp_path):
    import pytest
    from impactbook.errors import LedgerError

    ledger = _ledger(tmp_path)
    with open(ledger.path, "a") as handle:
        handle.write("{not json\n")
    with pytest.raises(LedgerError, match="last entry is not valid JSON") as raised:
        ledger.append("note", {"number": 4})
    assert str(ledger.path) in str(raised.value)
    assert len(ledger.path.read_text().splitlines()) == 4  # nothing appended


def test_a_whole_last_entry_without_its_newline_counts_and_the_next_append_completes_it(tmp_path):
    ledger = _ledger(tmp_path)
    ledger.path.write_bytes(ledger.path.read_bytes().rstrip(b"\n"))  # an editor stripped the final newline
    assert [e["number"] for e in ledger.entries()] == [0, 1, 2]
    last = ledger.append("note", {"number": 3})
    assert last["seq"] == 4 and [e["number"] for e in ledger.entries()] == [0, 1, 2, 3]
    assert ledger.problems() == []


def test_a_torn_last_line_is_still_dropped_by_the_next_append(tmp_path):
    ledger = _ledger(tmp_path)
    whole = ledger.path.read_bytes()
    ledger.path.write_bytes(whole + whole.splitlines(keepends=True)[-1][:-5])  # an append killed mid-write
    assert len(ledger.entries()) == 3
    assert ledger.append("note", {"number": 3})["seq"] == 4
    assert ledger.problems() == [] and len(ledger.path.read_bytes().splitlines()) == 4
