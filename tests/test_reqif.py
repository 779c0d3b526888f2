"""The trace exported as ReqIF is imported by StrictDoc (from PyPI) with every requirement, test
case and link; the CSV export has one row per link and per gap."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bundle_factory import make_bundle
from conformance.cli import main
from evidence.reader import Bundle
from reports.exports import CSV_COLUMNS, render_csv, render_reqif
from test_documents import _edit_json

strictdoc_reader = pytest.importorskip("strictdoc.backend.sdoc.reader")


def _doctored_bundle(tmp_path: Path) -> Path:
    """Factory bundle with a requirement no test verifies, a test case verifying two
    requirements, a test case tracing to nothing and markup in a wording."""
    path = make_bundle(tmp_path, n_cases=8)

    def requirements(records):
        records.append(dict(records[0], id="REQ-zz-001", text='Wording with <b>&amp; "quotes"'))
    _edit_json(path, "requirements.json", requirements)

    def testcases(records):
        records[0]["verifies"] = ["REQ-open-001", "REQ-read-001"]
        records[4]["verifies"] = ["REQ-gone-001"]
    _edit_json(path, "testcases.json", testcases)
    return path


def _strictdoc_import(reqif: Path, out: Path) -> dict[str, dict]:
    """Convert with StrictDoc's own command, then read its documents back with its reader:
    {uid: {"document", "parents"}}."""
    strictdoc = shutil.which("strictdoc", path=str(Path(sys.executable).parent)) or "strictdoc"
    subprocess.run([strictdoc, "convert", str(reqif), str(out)], check=True,
                   capture_output=True, timeout=300)
    nodes = {}
    for sdoc in sorted(out.glob("*.sdoc")):
        document = strictdoc_reader.SDReader.read(sdoc.read_text(), file_path=str(sdoc))
        for node in document.section_contents:
            nodes[node.reserved_uid] = {
                "document": document.title,
                "parents": sorted((ref.ref_uid, ref.role) for ref in node.relations)}
    return nodes


def test_strictdoc_imports_every_requirement_test_case_and_link(tmp_path):
    path = _doctored_bundle(tmp_path)
    bundle = Bundle.open(path)
    reqif = tmp_path / "trace.reqif"
    reqif.write_bytes(render_reqif(bundle))
    nodes = _strictdoc_import(reqif, tmp_path / "sdoc")
    requirement_ids = {r["id"] for r in bundle.requirements}
    for requirement_id in requirement_ids:
        assert nodes[requirement_id]["document"] == "Requirements"
    for testcase in bundle.testcases:
        node = nodes[testcase["id"]]
        assert node["document"] == "Test cases"
        expected = sorted((rid, "Verifies") for rid in testcase["verifies"]
                          if rid in requirement_ids)
        assert node["parents"] == expected
    assert nodes["TC-open-001"]["parents"] == [("REQ-open-001", "Verifies"),
                                               ("REQ-read-001", "Verifies")]
    assert len(nodes) == len(requirement_ids) + len(bundle.testcases)


def test_reqif_is_well_formed_with_unique_identifiers(tmp_path):
    import xml.etree.ElementTree as ET
    root = ET.fromstring(render_reqif(Bundle.open(_doctored_bundle(tmp_path))))
    identifiers = [e.get("IDENTIFIER") for e in root.iter() if e.get("IDENTIFIER")]
    assert len(identifiers) == len(set(identifiers))


def test_csv_has_a_row_per_link_and_per_gap(tmp_path):
    path = _doctored_bundle(tmp_path)
    rows = list(csv.DictReader(io.StringIO(render_csv(Bundle.open(path)).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    links = {(r["requirement_id"], r["testcase_id"]) for r in rows}
    assert ("REQ-open-001", "TC-open-001") in links and ("REQ-read-001", "TC-open-001") in links
    assert ("REQ-zz-001", "") in links                 # no test case
    assert ("", "TC-close-001") in links               # traces to no requirement of the bundle
    failing = next(r for r in rows if r["testcase_id"] == "TC-read-001")
    assert failing["verdict"] == "FAIL" and failing["problem_report"] == "PR-TC-read-001"


def test_csv_cells_cannot_run_as_formulas(tmp_path):
    path = make_bundle(tmp_path)
    _edit_json(path, "requirements.json", lambda r: r[0].update(text="=HYPERLINK(\"x\")"))
    text = render_csv(Bundle.open(path)).decode()
    assert "'=HYPERLINK" in text


def test_cli_export(tmp_path, capsys):
    path = make_bundle(tmp_path)
    assert main(["export", str(path), "--format", "reqif", "--out", str(tmp_path / "t.reqif")]) == 0
    assert (tmp_path / "t.reqif").read_bytes() == render_reqif(Bundle.open(path))
    capsys.readouterr()
    assert main(["export", str(path), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("requirement_id,")
