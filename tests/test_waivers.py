"""Waivers applied at report time (evidence/waivers.py, reports/model.py): a FAIL stays a FAIL,
shown as dispositioned; an expired waiver is flagged; a waiver that matches nothing is reported."""

from __future__ import annotations

import datetime as dt
import doctest
import re

import pytest
from pypdf import PdfReader

import evidence.waivers
from bundle_factory import make_bundle
from conformance.cli import main
from evidence.errors import InputError
from evidence.reader import Bundle
from evidence.verify import verify_bundle
from evidence.waivers import load_waivers
from reports.model import analyse
from reports.render import ReportOptions, render_reports

WAIVERS = """\
schema: pcert-waivers/1
waivers:
  - id: WVR-001
    covers: [TC-read-001]
    justification: The target's read() reports EBADF here by design; accepted.
    approver: J. Doe (DER)
    date: 2026-11-01
    expires: 2027-05-01
  - id: WVR-002
    kind: interpretation
    covers: [REQ-pthread_create-001]
    justification: SIGSEGV comes from the harness; see PR 12.
    approver: J. Doe (DER)
    date: 2026-01-01
    expires: 2026-06-30
  - id: WVR-003
    covers: [TC-nothing-009]
    justification: An old waiver.
    approver: A. Smith
    date: 2026-01-01
    expires: never
"""
AS_OF = dt.date(2026, 12, 1)


def test_docstring_examples_hold():
    assert doctest.testmod(evidence.waivers).failed == 0


@pytest.fixture()
def waivers_file(tmp_path):
    path = tmp_path / "waivers.yaml"
    path.write_text(WAIVERS)
    return path


def test_a_valid_waiver_dispositions_a_fail_that_stays_a_fail(tmp_path, waivers_file):
    bundle = Bundle.open(make_bundle(tmp_path))
    evidence = analyse(bundle, waivers=load_waivers(waivers_file), as_of=AS_OF)
    problem = next(p for p in evidence.problems if p.case.id == "TC-read-001")
    assert problem.case.verdict == "FAIL" and problem.status == "dispositioned"
    assert problem.disposition.id == "WVR-001"
    assert all(p.id != problem.id for p in evidence.open_problems())


def test_an_expired_waiver_is_flagged_and_leaves_the_problem_open(tmp_path, waivers_file):
    evidence = analyse(Bundle.open(make_bundle(tmp_path)), waivers=load_waivers(waivers_file),
                       as_of=AS_OF)
    # WVR-002 covers the requirement of TC-pthread_create-001 (UNRESOLVED): expired in June.
    problem = next(p for p in evidence.problems if p.case.id == "TC-pthread_create-001")
    assert problem.status == "open"
    assert any("WVR-002 expired" in flag for flag in problem.flags)
    assert any(f.startswith("WVR-002: expired on 2026-06-30") for f in evidence.waiver_findings)
    # Judged before its expiry, the same waiver dispositions it.
    earlier = analyse(Bundle.open(make_bundle(tmp_path / "again")),
                      waivers=load_waivers(waivers_file), as_of=dt.date(2026, 6, 1))
    assert next(p for p in earlier.problems
                if p.case.id == "TC-pthread_create-001").disposition.id == "WVR-002"


def test_a_waiver_that_matches_nothing_is_reported(tmp_path, waivers_file):
    evidence = analyse(Bundle.open(make_bundle(tmp_path)), waivers=load_waivers(waivers_file),
                       as_of=AS_OF)
    assert "WVR-003: matches nothing in this bundle (covers TC-nothing-009)" \
        in evidence.waiver_findings


def test_reports_show_dispositions_flags_and_the_waivers_applied(tmp_path, waivers_file):
    path = make_bundle(tmp_path)
    render_reports(path, ReportOptions(waivers=waivers_file, as_of=AS_OF))
    text = re.sub(r"\s+", " ", "\n".join(
        page.extract_text() for page in PdfReader(path / "reports" / "report.pdf").pages))
    assert "dispositioned" in text and "WVR-001" in text and "WVR-002 expired" in text
    assert "WVR-003: matches nothing" in text
    html = (path / "reports" / "report.html").read_text()
    assert "WVR-003: matches nothing" in html and "expired" in html
    assert (path / "reports" / "waivers-applied.json").exists()
    assert verify_bundle(path).ok
    # Re-rendered without waivers: no stale record of them.
    render_reports(path)
    assert not (path / "reports" / "waivers-applied.json").exists() and verify_bundle(path).ok


def test_the_junit_verdicts_are_unchanged_by_waivers(tmp_path, waivers_file):
    path = make_bundle(tmp_path)
    render_reports(path)
    before = (path / "reports" / "junit.xml").read_bytes()
    render_reports(path, ReportOptions(waivers=waivers_file, as_of=AS_OF))
    assert (path / "reports" / "junit.xml").read_bytes() == before


@pytest.mark.parametrize("text, message", [
    ("schema: other/1\nwaivers: []\n", "field 'schema'"),
    ("schema: pcert-waivers/1\nwaivers:\n  - {id: W, covers: [X], approver: a, date: 2026-01-01,"
     " expires: never}\n", "waivers[0] (W): field 'justification' is missing"),
    ("schema: pcert-waivers/1\nwaivers:\n  - {id: W, covers: [X], justification: j, approver: a,"
     " date: 2026-13-01, expires: never}\n", "field 'date'"),
    ("schema: pcert-waivers/1\nwaivers:\n  - {id: W, covers: [X], justification: j, approver: a,"
     " date: 2026-02-01, expires: 2026-01-01}\n", "before 'date'"),
    ("schema: pcert-waivers/1\nwaivers: [\n", "waivers.yaml:"),
])
def test_a_bad_waivers_file_is_named_with_the_entry_and_field(tmp_path, text, message):
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=re.escape(message)):
        load_waivers(path)


def test_cli_report_with_waivers(tmp_path, waivers_file, capsys):
    path = make_bundle(tmp_path)
    assert main(["report", str(path), "--waivers", str(waivers_file), "--as-of", "2026-12-01"]) == 0
    assert "WVR-002" in (path / "reports" / "report.html").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("schema: nope\n")
    assert main(["report", str(path), "--waivers", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err
