"""The run index (SQLite), `pcert diff` and `pcert history` (evidence/index.py, evidence/diff.py)."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import evidence.diff
from bundle_factory import make_bundle
from conformance.cli import main
from evidence.diff import (CHANGED, FIXED, FLAKY, NEW, NEW_FAILURE, REMOVED, STILL_FAILING,
                           UNCHANGED, classify, diff_bundles)
from evidence.errors import InputError
from evidence.index import RunIndex
from evidence.reader import Bundle
from test_documents import _reseal

VERDICTS = ["PASS", "PASS", "FAIL", "PASS", "UNSUPPORTED", "PASS"]   # ids TC-<interface>-001


def test_docstring_examples_hold():
    assert doctest.testmod(evidence.diff).failed == 0


def run(tmp_path: Path, day: int, verdicts: dict[str, str] | None = None,
        drop: tuple[str, ...] = ()) -> Path:
    """A bundle of the same plan on day ``day`` with some verdicts changed."""
    path = make_bundle(tmp_path / f"day{day}", n_cases=6, verdicts=VERDICTS)
    stamp = f"202611{day:02d}T160000Z"
    manifest = json.loads((path / "manifest.json").read_text())
    rows = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    for row in rows:
        if row["id"] in (verdicts or {}):
            verdict = verdicts[row["id"]]
            codes = {"PASS": 0, "FAIL": 1, "UNRESOLVED": 2, "UNSUPPORTED": 4}
            row.update(verdict=verdict, code=codes[verdict],
                       reason="" if verdict == "PASS" else f"{verdict.lower()} on day {day}")
    testcases = json.loads((path / "testcases.json").read_text())
    keep = [i for i, t in enumerate(testcases) if t["id"] not in drop]
    testcases = [dict(testcases[i], index=n) for n, i in enumerate(keep)]
    rows = [dict(rows[i], index=n) for n, i in enumerate(keep)]
    (path / "testcases.json").write_text(json.dumps(testcases, indent=2, sort_keys=True) + "\n")
    (path / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    counts = {v: 0 for v in manifest["summary"]}
    for row in rows:
        counts[row["verdict"]] += 1
    manifest.update(run_id=f"{stamp}-linux-x86_64-{day:06x}", summary=counts,
                    started_utc=f"2026-11-{day:02d}T16:00:00Z",
                    finished_utc=f"2026-11-{day:02d}T16:00:05Z")
    manifest["plan"]["test_cases"] = len(rows)
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    _reseal(path)
    return path


def test_classify_each_pair_of_verdicts():
    assert classify("PASS", "FAIL") == NEW_FAILURE
    assert classify("UNSUPPORTED", "UNRESOLVED") == NEW_FAILURE
    assert classify("FAIL", "PASS") == FIXED
    assert classify("FAIL", "UNINITIATED") == STILL_FAILING
    assert classify(None, "PASS") == NEW and classify(None, "FAIL") == NEW_FAILURE
    assert classify("PASS", None) == REMOVED
    assert classify("PASS", "UNSUPPORTED") == CHANGED and classify("PASS", "PASS") == UNCHANGED


def test_diff_classifies_test_cases_and_requirements(tmp_path):
    base = run(tmp_path, 1)
    new = run(tmp_path, 2, {"TC-open-001": "FAIL", "TC-clock_gettime-001": "PASS"},
              drop=("TC-timer_create-001",))
    report = diff_bundles(Bundle.open(base), Bundle.open(new))
    by_item = {(c.kind, c.item): c.classification for c in report.changes}
    assert by_item[("testcase", "TC-open-001")] == NEW_FAILURE
    assert by_item[("testcase", "TC-clock_gettime-001")] == FIXED
    assert by_item[("testcase", "TC-timer_create-001")] == REMOVED
    assert by_item[("testcase", "TC-read-001")] == UNCHANGED
    assert by_item[("requirement", "REQ-open-001")] == NEW_FAILURE
    assert by_item[("requirement", "REQ-timer_create-001")] == CHANGED   # lost its test
    assert report.has_new_failure


def test_the_index_finds_flaky_items_over_the_window(tmp_path):
    index = RunIndex(tmp_path / "runs" / "index.sqlite")
    days = [run(tmp_path, 1), run(tmp_path, 2, {"TC-read-001": "FAIL"}),
            run(tmp_path, 3, {"TC-read-001": "PASS"}), run(tmp_path, 4, {"TC-read-001": "FAIL"})]
    for day in days:
        assert index.add(day) == "added"
    assert index.add(days[0]) == "unchanged"
    report = diff_bundles(Bundle.open(days[2]), Bundle.open(days[3]), index=index)
    read = next(c for c in report.changes if c.item == "TC-read-001")
    assert read.classification == FLAKY and read.history == ("PASS", "FAIL", "PASS", "FAIL")
    assert not report.has_new_failure        # a flip-flop does not fail the nightly
    # With a window of two runs only the last change is seen: a new failure.
    narrow = diff_bundles(Bundle.open(days[2]), Bundle.open(days[3]), index=index, window=2)
    assert next(c for c in narrow.changes if c.item == "TC-read-001").classification == NEW_FAILURE
    history = index.history("TC-read-001")
    assert [row.verdict for row in history] == ["PASS", "FAIL", "PASS", "FAIL"]
    assert [row.verdict for row in index.history("REQ-read-001")] == \
        ["PASS", "FAIL", "PASS", "FAIL"]
    index.close()


def test_scan_indexes_a_runs_directory_and_skips_what_is_not_a_bundle(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    first = run(tmp_path, 1).rename(runs / "20261101-run")
    (runs / "broken").mkdir()
    (runs / "broken" / "manifest.json").write_text("{")
    with RunIndex(runs / "index.sqlite") as index:
        found = dict(index.scan(runs))
        assert found[str(first)] == "added"
        assert found[str(runs / "broken")].startswith("skipped:")
        assert [r.run_id for r in index.runs()] == ["20261101T160000Z-linux-x86_64-000001"]


def test_a_corrupt_index_is_named(tmp_path):
    path = tmp_path / "index.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match="index.sqlite"):
        RunIndex(path)


def test_cli_diff_exits_1_on_a_new_failure_and_history_shows_verdicts(tmp_path, capsys):
    index = str(tmp_path / "index.sqlite")
    base, same = run(tmp_path, 1), run(tmp_path, 2)
    worse = run(tmp_path, 3, {"TC-open-001": "FAIL"})
    assert main(["index", "add", str(base), str(same), str(worse), "--index", index]) == 0
    assert main(["diff", str(base), str(same), "--index", index]) == 0
    capsys.readouterr()
    # Run ids work as well as paths, through the index.
    assert main(["diff", "20261102T160000Z-linux-x86_64-000002",
                 "20261103T160000Z-linux-x86_64-000003", "--index", index]) == 1
    out = capsys.readouterr().out
    assert "new failure   testcase    TC-open-001  PASS -> FAIL" in out
    assert main(["diff", str(same), str(worse), "--index", index, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["counts"]["testcase"]["new failure"] == 1
    assert main(["history", "TC-open-001", "--index", index]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "TC-open-001: 3 runs" and "FAIL" in lines[-1] and "PASS" in lines[1]
    assert main(["history", "TC-nothing", "--index", index]) == 2
    assert main(["diff", "no-such-run", str(same), "--index", index]) == 2


def test_verdicts_from_the_index_equal_those_read_from_the_bundles(tmp_path):
    base, new = run(tmp_path, 1), run(tmp_path, 2, {"TC-open-001": "FAIL"})
    with RunIndex(tmp_path / "index.sqlite") as index:
        index.add(base)
        index.add(new)
        indexed = diff_bundles(Bundle.open(base), Bundle.open(new), index=index)
    direct = diff_bundles(Bundle.open(base), Bundle.open(new))
    assert indexed.changes == direct.changes
