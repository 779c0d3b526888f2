"""The verification document set (reports/model.py, pdf_documents.py, html.py): trace rows checked
against results.jsonl, gaps, problem reports, coverage, PDF pages rendered to images, the HTML
opened in headless Chromium, byte-reproducibility.

Bundles come from tests/bundle_factory.py; tests that need a gap doctor one and re-seal it.
"""

from __future__ import annotations

import doctest
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader

import reports.exports
import reports.model
import reports.pdf_layout
import reports.procedures
import reports.textsafe
from bundle_factory import make_bundle
from evidence.atomic import encode_json, sha256_file
from evidence.reader import Bundle
from reports.html import render_html
from reports.model import (GAP_NO_TEST, GAP_NORMAL_ONLY, GAP_ROBUSTNESS_ONLY, NO_TEST, analyse,
                           worst)
from reports.pdf import render_pdf
from reports.render import render_reports

CHROMIUM = shutil.which("chromium")
# What Chromium logs about a page: console messages (CONSOLE(line)), script errors, resources it
# could not or would not load. Its complaints about this machine (no D-Bus, no GPU) are not.
PAGE_PROBLEM = re.compile(r"CONSOLE\(|Uncaught|net::ERR|Refused to|Not allowed to load|"
                          r"Failed to load resource")


def _reseal(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    for name in manifest["files"]:
        path = bundle / name
        manifest["files"][name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    (bundle / "manifest.json").write_bytes(encode_json(manifest))


def _edit_json(bundle: Path, name: str, change) -> None:
    records = json.loads((bundle / name).read_text())
    change(records)
    (bundle / name).write_bytes(encode_json(records))
    _reseal(bundle)


def _results(bundle: Path) -> dict[str, dict]:
    return {row["id"]: row for row in
            (json.loads(line) for line in (bundle / "results.jsonl").read_text().splitlines())}


@pytest.mark.parametrize("module", [reports.model, reports.pdf_layout, reports.procedures,
                                    reports.textsafe, reports.exports])
def test_docstring_examples_hold(module):
    assert doctest.testmod(module).failed == 0


# --------------------------------------------------------------------------- the trace model

def check_trace_against_results(bundle_path: Path) -> None:
    """Every trace-matrix row, both ways, agrees with results.jsonl and testcases.json."""
    bundle = Bundle.open(bundle_path)
    evidence = analyse(bundle)
    results = _results(bundle_path)
    testcases = {t["id"]: t for t in json.loads((bundle_path / "testcases.json").read_text())}
    requirement_ids = {r["id"] for r in json.loads((bundle_path / "requirements.json").read_text())}
    # requirement -> test cases -> results
    assert [row.id for row in evidence.requirements] == sorted(requirement_ids)
    for row in evidence.requirements:
        expected = [t for t in testcases.values() if row.id in t["verifies"]]
        assert [case.id for case in row.cases] == [t["id"] for t in expected]
        verdicts = [results[t["id"]]["verdict"] if t["id"] in results else "UNINITIATED"
                    for t in expected]
        assert [case.verdict for case in row.cases] == verdicts
        assert row.outcome == (worst(verdicts) if verdicts else NO_TEST)
        assert (GAP_NO_TEST in row.gaps) == (not expected)
    # test case -> requirements
    assert [case.id for case in evidence.cases] == list(testcases)
    for case in evidence.cases:
        assert case.verdict == results.get(case.id, {"verdict": "UNINITIATED"})["verdict"]
        assert case.known_requirements == [r for r in testcases[case.id]["verifies"]
                                           if r in requirement_ids]
    assert {c.id for c in evidence.untraced} == {
        t for t, tc in testcases.items() if not set(tc["verifies"]) & requirement_ids}


def test_every_trace_row_matches_results_jsonl(tmp_path):
    check_trace_against_results(make_bundle(tmp_path, n_cases=13))


def test_gaps_name_untested_normal_only_robustness_only_and_untraced(tmp_path):
    path = make_bundle(tmp_path, n_cases=6)

    def doctor(testcases):
        testcases[0]["kind"] = "normal"           # REQ-open-001: normal-range only
        testcases[1]["kind"] = "robustness"       # REQ-read-001: robustness only
        testcases[4]["verifies"] = ["REQ-gone-001"]   # REQ-close-001 untested, TC untraced
    _edit_json(path, "testcases.json", doctor)
    evidence = analyse(Bundle.open(path))
    gaps = {row.id: row.gaps for row in evidence.requirements}
    assert gaps["REQ-open-001"] == [GAP_NORMAL_ONLY]
    assert gaps["REQ-read-001"] == [GAP_ROBUSTNESS_ONLY]
    assert gaps["REQ-close-001"] == [GAP_NO_TEST]
    assert [case.id for case in evidence.untraced] == ["TC-close-001"]
    check_trace_against_results(path)
    text = _pdf_text(render_pdf(Bundle.open(path)))
    gaps_section = text[text.rindex("6 Trace gaps"):text.rindex("7 Requirements-based")]
    assert "Requirements with no test case: 1" in gaps_section and "REQ-close-001" in gaps_section
    assert f"normal-range tests only: {len(evidence.gap_rows(GAP_NORMAL_ONLY))}" in gaps_section
    assert "REQ-gone-001" in gaps_section


def test_each_discrepancy_has_a_problem_report_and_pass_has_none(tmp_path):
    evidence = analyse(Bundle.open(make_bundle(tmp_path)))
    problems = {p.case.verdict: p for p in evidence.problems}
    # The factory's profile requires its requirements: UNSUPPORTED is a discrepancy there.
    assert sorted(problems) == ["FAIL", "UNINITIATED", "UNRESOLVED", "UNSUPPORTED", "UNTESTED"]
    assert problems["FAIL"].id == "PR-TC-read-001" and problems["FAIL"].status == "open"
    assert all(case.problem is None for case in evidence.cases if case.verdict == "PASS")


def test_unsupported_is_no_discrepancy_where_the_profile_does_not_require_it(tmp_path):
    path = make_bundle(tmp_path)
    _edit_json(path, "requirements.json",
               lambda reqs: [r.update(profiles=["pse51"]) for r in reqs])
    verdicts = {p.case.verdict for p in analyse(Bundle.open(path)).problems}
    assert "UNSUPPORTED" not in verdicts and "FAIL" in verdicts


def test_coverage_per_profile_counts_tested_passed_and_discrepant(tmp_path):
    path = make_bundle(tmp_path, n_cases=6)
    _edit_json(path, "requirements.json", lambda reqs: reqs.append(dict(
        reqs[0], id="REQ-zz-001", profiles=["pse52"])))
    coverage = {c.profile: c for c in analyse(Bundle.open(path)).coverage}
    assert set(coverage) == {"face-safety-base", "pse52"}
    base, pse52 = coverage["face-safety-base"], coverage["pse52"]
    assert (base.requirements, base.with_tests, base.passed, base.discrepant) == (6, 6, 1, 5)
    assert (pse52.requirements, pse52.no_test) == (7, 1)


def test_configuration_index_names_every_evidence_file_tool_kernel_and_image(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    items = {(i.category, i.name): i for i in analyse(bundle).configuration}
    for name, entry in bundle.manifest["files"].items():
        assert items[("evidence", name)].sha256 == entry["sha256"]
    assert items[("tool", "compiler")].version == bundle.manifest["tools"]["compiler"]["version"]
    assert items[("kernel", bundle.manifest["kernel"]["package"])].sha256 == "4" * 64
    assert items[("image", "initramfs")].sha256 == "5" * 64
    assert ("environment", "environment hash") in items


# --------------------------------------------------------------------------- PDF

def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_pdf_has_outline_contents_with_page_numbers_and_running_header(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    data = render_pdf(bundle)
    reader = PdfReader(io.BytesIO(data))
    outline = [item.title for item in reader.outline if not isinstance(item, list)]
    assert outline[:3] == ["1 Configuration index", "2 Verification results summary",
                           "3 Problem reports"]
    assert "10 Software Verification Cases and Procedures" in outline
    assert "Appendix B: Guest start record" in outline
    # Each bookmark points at the page its section starts on, and the contents say that page.
    first = reader.pages[0].extract_text()
    for item in reader.outline:
        if isinstance(item, list):
            continue
        number = reader.get_destination_page_number(item)
        assert item.title in reader.pages[number].extract_text()
        assert re.search(re.escape(item.title) + r"[ .\n]*" + str(number + 1) + r"\b", first), \
            item.title
    for page in reader.pages:
        text = page.extract_text()
        assert bundle.manifest["run_id"] in text and "profile face-safety-base@3.2" in text


def test_pdf_svcp_has_inputs_criteria_procedure_source_and_sha256(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    text = _pdf_text(render_pdf(bundle))
    svcp = text[text.rindex("10 Software Verification Cases and Procedures"):]
    for testcase in bundle.testcases:
        assert testcase["id"] in svcp and testcase["procedure"]["sha256"] in svcp
        assert testcase["inputs"] in svcp
    assert "PCERT_CHECK(read_probe() == 0);" in svcp       # the procedure's source
    assert "UNSUPPORTED when _POSIX_TIMERS is not supported" in svcp


def test_pdf_pages_render_to_images(tmp_path):
    """Every page rasterises (poppler), and the first page is not blank."""
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(render_pdf(Bundle.open(make_bundle(tmp_path))))
    pages = len(PdfReader(pdf).pages)
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True,
                   capture_output=True)
    images = sorted(tmp_path.glob("page-*.png"))
    assert len(images) == pages
    assert all(image.read_bytes().startswith(b"\x89PNG") for image in images)
    assert images[0].stat().st_size > 5000      # text on it, not a blank page


# --------------------------------------------------------------------------- HTML

def open_in_chromium(page: Path, tmp_path: Path) -> str:
    """The DOM headless Chromium built from ``page``; fails on any console message or load
    error the browser logs."""
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chromium'}", "--enable-logging=stderr",
         "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)
    problems = [line for line in result.stderr.splitlines() if PAGE_PROBLEM.search(line)]
    assert not problems, problems
    return result.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup)")
def test_html_opens_in_headless_chromium_without_errors(tmp_path):
    path = make_bundle(tmp_path)
    render_reports(path)
    page = path / "reports" / "report.html"
    dom = open_in_chromium(page, tmp_path)
    bundle = Bundle.open(path)
    for testcase in bundle.testcases:
        assert f'id="{testcase["id"]}"' in dom
    for requirement in bundle.requirements:
        assert f'id="{requirement["id"]}"' in dom
    assert 'id="svcp"' in dom and "Software Verification Results" in dom


def test_html_is_self_contained_and_escapes_guest_text(tmp_path):
    path = make_bundle(tmp_path)
    injection = '<script>alert(1)</script><img src="http://x/y.png">'
    results = (path / "results.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in results]
    for row in rows:
        if row["verdict"] == "FAIL":
            row["reason"] = injection + "\x00"
    (path / "results.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    _reseal(path)
    page = render_html(Bundle.open(path)).decode("utf-8")
    assert "<script" not in page and "<img" not in page and "<link" not in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "\\x00" in page


def test_the_callers_work_runs_once_while_the_pdf_renders_and_its_error_follows_the_reports(
        tmp_path):
    path = make_bundle(tmp_path)
    calls = []
    render_reports(path, meanwhile=lambda: calls.append("indexed"))
    assert calls == ["indexed"]

    shutil.rmtree(path / "reports")

    def failing() -> None:
        raise RuntimeError("the index is locked")

    with pytest.raises(RuntimeError, match="the index is locked"):
        render_reports(path, meanwhile=failing)
    # The caller's failure costs no report: they are all written, SHA256SUMS last.
    assert sorted(p.name for p in (path / "reports").iterdir()) == [
        "SHA256SUMS", "junit.xml", "report.html", "report.pdf", "trace.csv", "trace.reqif"]


def test_html_pdf_csv_reqif_are_byte_reproducible(tmp_path):
    first = make_bundle(tmp_path / "a")
    second = make_bundle(tmp_path / "b")
    render_reports(first)
    render_reports(second)
    for name in ("report.pdf", "report.html", "trace.csv", "trace.reqif", "junit.xml"):
        assert (first / "reports" / name).read_bytes() == (second / "reports" / name).read_bytes()
