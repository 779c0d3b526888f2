"""Suspect links: a later catalog that rewords a requirement or changes a procedure turns the
links suspect and their results "needs re-run" (reports/suspect.py, evidence/snapshot.py)."""

from __future__ import annotations

import doctest
import hashlib
import json
import re

import pytest
from pypdf import PdfReader

import evidence.fingerprints
import evidence.snapshot
from bundle_factory import make_bundle
from evidence.errors import InputError
from evidence.reader import Bundle
from evidence.snapshot import load_snapshot, write_snapshot
from reports.model import analyse
from reports.render import ReportOptions, render_reports
from reports.suspect import inconsistent_links, suspect_links


@pytest.mark.parametrize("module", [evidence.snapshot, evidence.fingerprints])
def test_docstring_examples_hold(module):
    assert doctest.testmod(module).failed == 0


def _catalog(bundle: Bundle) -> tuple[dict, dict]:
    """The catalog the bundle was run against."""
    return ({r["id"]: r["fingerprint"] for r in bundle.requirements},
            {t["id"]: t["procedure"]["sha256"] for t in bundle.testcases})


def _fingerprint(text: str) -> str:
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def test_an_unchanged_catalog_makes_nothing_suspect(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    assert suspect_links(bundle, *_catalog(bundle)) == {}
    assert analyse(bundle, current_requirements=_catalog(bundle)[0]).needs_rerun() == []


def test_a_reworded_requirement_turns_its_links_suspect(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path, n_cases=12))
    requirements, procedures = _catalog(bundle)
    requirements["REQ-read-001"] = _fingerprint("read() at end of file returns 0, reworded.")
    suspect = suspect_links(bundle, requirements, procedures)
    assert list(suspect) == [("REQ-read-001", "TC-read-001")]
    assert "requirement wording changed" in suspect[("REQ-read-001", "TC-read-001")][0]
    evidence = analyse(bundle, current_requirements=requirements, current_procedures=procedures)
    assert [case.id for case in evidence.needs_rerun()] == ["TC-read-001"]
    row = next(r for r in evidence.requirements if r.id == "REQ-read-001")
    assert [case.id for case in row.suspect_cases()] == ["TC-read-001"]


def test_a_changed_or_removed_procedure_and_a_removed_requirement_are_suspect(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    requirements, procedures = _catalog(bundle)
    procedures["TC-open-001"] = "f" * 64
    del procedures["TC-close-001"]
    del requirements["REQ-clock_gettime-001"]
    reasons = {link: " ".join(r) for link, r in suspect_links(bundle, requirements,
                                                               procedures).items()}
    assert "procedure changed" in reasons[("REQ-open-001", "TC-open-001")]
    assert "test case no longer in the catalog" in reasons[("REQ-close-001", "TC-close-001")]
    assert "requirement no longer in the catalog" in \
        reasons[("REQ-clock_gettime-001", "TC-clock_gettime-001")]


def test_recorded_fingerprints_are_what_the_result_is_judged_against(tmp_path):
    """A result that records the fingerprint it ran against (results.jsonl) is suspect when
    that fingerprint, not requirements.json's, differs from the catalog; and a bundle whose
    results disagree with its own requirements.json says so without any catalog."""
    path = make_bundle(tmp_path)
    rows = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    for row in rows:
        if row["id"] == "TC-open-001":
            row["requirement_fingerprints"] = {"REQ-open-001": "a" * 64}
    (path / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    from test_documents import _reseal
    _reseal(path)
    bundle = Bundle.open(path)
    assert list(inconsistent_links(bundle)) == [("REQ-open-001", "TC-open-001")]
    assert ("REQ-open-001", "TC-open-001") in suspect_links(bundle, *_catalog(bundle))


def test_reports_against_a_catalog_snapshot_mark_suspect_links(tmp_path):
    path = make_bundle(tmp_path)
    requirements, procedures = _catalog(Bundle.open(path))
    requirements["REQ-read-001"] = _fingerprint("new wording")
    snapshot = tmp_path / "catalog.json"
    write_snapshot(snapshot, requirements, procedures, source="test catalog")
    assert load_snapshot(snapshot).requirements == requirements
    render_reports(path, ReportOptions(catalog=snapshot))
    text = re.sub(r"\s+", " ", "\n".join(
        p.extract_text() for p in PdfReader(path / "reports" / "report.pdf").pages))
    assert "1 results need re-run" in text and "suspect, needs re-run" in text
    assert "requirement wording changed since the run" in text
    csv_text = (path / "reports" / "trace.csv").read_text()
    assert "requirement wording changed" in csv_text


def test_a_bad_snapshot_is_named(tmp_path):
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"schema": "pcert-catalog-snapshot/1", "requirements": {"R": "x"},
                                "procedures": {}}))
    with pytest.raises(InputError, match=r"requirements\['R'\]"):
        load_snapshot(path)
