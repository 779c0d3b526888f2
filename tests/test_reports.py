"""Reports rendered from evidence bundles: JUnit XML, PDF, and render_reports.

Bundles come from tests/bundle_factory.py (one test case of each verdict by default). Some tests
doctor a bundle (hostile guest output, a requirement without a test, a dangling trace) and then
re-seal its manifest, so the bundle stays one that `pcert verify` accepts.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from bundle_factory import REASONS, make_bundle
from evidence.atomic import encode_json, encode_json_line, sha256_file
from evidence.reader import Bundle
from evidence.verify import verify_bundle
from reports.junit import render_junit
from reports.pdf import EXCERPT_MAX_LINES, render_pdf
from reports.render import render_reports

REPO = Path(__file__).resolve().parents[1]
INJECTION = "<b>&</para><font color=red>x</font>&amp;"
GUEST_NOISE = b"\x00\x1b[31m\xff\xfe caf\xc3\xa9 \xe4\xb8\xad\r\n"   # NUL, ESC, bad UTF-8, é, CJK


# --------------------------------------------------------------------------- doctoring bundles

def _reseal(bundle: Path) -> None:
    """Record the current hashes of the edited evidence files in manifest.json."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    for name in manifest["files"]:
        path = bundle / name
        manifest["files"][name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    (bundle / "manifest.json").write_bytes(encode_json(manifest))


def _load_results(bundle: Path) -> list[dict]:
    return [json.loads(line) for line in (bundle / "results.jsonl").read_text().splitlines()]


def _save_results(bundle: Path, results: list[dict]) -> None:
    (bundle / "results.jsonl").write_bytes(b"".join(encode_json_line(r) for r in results))


def _insert_console(bundle: Path, testcase_id: str, data: bytes) -> None:
    """Insert ``data`` at the end of one test case's console slice, shifting later slices."""
    results = _load_results(bundle)
    at = next(r for r in results if r["id"] == testcase_id)["console"]["end"]
    console = (bundle / "console.log").read_bytes()
    (bundle / "console.log").write_bytes(console[:at] + data + console[at:])
    for result in results:
        span = result["console"]
        if span:
            span["start"] += len(data) if span["start"] >= at else 0
            span["end"] += len(data) if span["end"] >= at else 0
    _save_results(bundle, results)


def _hostile_bundle(tmp_path: Path) -> Path:
    """A factory bundle with markup in guest output, reason, title and requirement wording, a
    requirement that no test case verifies, and a test case that traces to no requirement."""
    bundle = make_bundle(tmp_path)
    said = b"guest says " + INJECTION.encode() + b"\n" + GUEST_NOISE
    _insert_console(bundle, "TC-read-001", said)
    results = _load_results(bundle)
    for result in results:
        if result["verdict"] == "FAIL":
            result["reason"] = f"got {INJECTION} \x00\u4e2d"
    _save_results(bundle, results)

    requirements = json.loads((bundle / "requirements.json").read_text())
    extra = dict(requirements[0], id="REQ-unlinked-001", text=f"Wording with {INJECTION} in it.")
    requirements = sorted(requirements + [extra], key=lambda r: r["id"])
    (bundle / "requirements.json").write_bytes(encode_json(requirements))

    testcases = json.loads((bundle / "testcases.json").read_text())
    for testcase in testcases:
        if testcase["id"] == "TC-close-001":   # its requirement REQ-close-001 is left untested
            testcase["verifies"] = ["REQ-retired-009"]
        if testcase["id"] == "TC-read-001":
            testcase["title"] = f"read {INJECTION}"
    (bundle / "testcases.json").write_bytes(encode_json(testcases))
    _reseal(bundle)
    return bundle


def _pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _flat(text: str) -> str:
    """Whitespace collapsed: a wrapped line must not hide a phrase."""
    return re.sub(r"\s+", " ", text)


def _section(text: str, start: str, end: str) -> str:
    """The body's section between two headings (the table of contents names them first)."""
    body = text.index(start, text.index(start) + len(start))
    return text[body:text.index(end, body)]


# --------------------------------------------------------------------------- JUnit

def test_junit_has_one_testcase_per_planned_case_in_plan_order(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    root = ET.fromstring(render_junit(bundle))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [case.get("name").split(" ")[0] for case in cases] == [t["id"] for t in bundle.testcases]
    assert [case.get("classname") for case in cases] == [t["unit"] for t in bundle.testcases]
    assert cases[0].get("name") == f"{bundle.testcases[0]['id']} {bundle.testcases[0]['title']}"
    assert suite.get("name") == bundle.manifest["run_id"]
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) \
        == ("6", "1", "2", "2")


def test_junit_maps_verdicts_to_failure_error_and_skipped(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    cases = ET.fromstring(render_junit(bundle)).findall(".//testcase")
    by_verdict = {result["verdict"]: case for result, case in zip(bundle.results, cases)}

    assert [child.tag for child in by_verdict["PASS"]] == ["properties", "system-out"]
    failure = by_verdict["FAIL"].find("failure")
    assert failure.get("message") == REASONS["FAIL"]
    assert "file-io.c:42" in failure.text
    assert by_verdict["FAIL"].get("file") == "file-io.c" and by_verdict["FAIL"].get("line") == "42"
    for verdict in ("UNRESOLVED", "UNINITIATED"):
        error = by_verdict[verdict].find("error")
        assert error.get("message") == REASONS[verdict] and error.get("type") == verdict
        assert by_verdict[verdict].find("failure") is None
    for verdict in ("UNSUPPORTED", "UNTESTED"):
        assert by_verdict[verdict].find("skipped").get("message") == REASONS[verdict]
        assert by_verdict[verdict].find("error") is None


def test_junit_carries_properties_and_console_slices(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    suite = ET.fromstring(render_junit(bundle)).find("testsuite")
    suite_properties = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert suite_properties["run_id"] == bundle.manifest["run_id"]
    assert suite_properties["nonce"] == bundle.manifest["nonce"]
    assert suite_properties["kernel_package"] == bundle.manifest["kernel"]["package"]

    for testcase, result, case in zip(bundle.testcases, bundle.results, suite.findall("testcase")):
        properties = [(p.get("name"), p.get("value")) for p in case.find("properties")]
        assert ("verdict", result["verdict"]) in properties
        assert ("tet_code", str(result["code"])) in properties
        assert ("procedure_sha256", testcase["procedure"]["sha256"]) in properties
        assert [value for name, value in properties if name == "verifies"] == testcase["verifies"]
        out = case.find("system-out")
        if result["console"] is None:
            assert out is None
        else:
            assert f"id={testcase['id']}" in out.text
            assert bundle.console_slice(result).decode("utf-8", "replace").replace("\r\n", "\n") \
                == out.text


def test_junit_shows_hostile_guest_output_literally(tmp_path):
    bundle = Bundle.open(_hostile_bundle(tmp_path))
    root = ET.fromstring(render_junit(bundle))
    failing = root.find(".//testcase/failure/..")
    assert INJECTION in failing.get("name")
    assert failing.find("failure").get("message") == f"got {INJECTION} \ufffd\u4e2d"
    out = failing.find("system-out").text
    assert f"guest says {INJECTION}\n" in out
    assert "\ufffd[31m\ufffd\ufffd café 中\n" in out   # NUL and ESC replaced, bad UTF-8 replaced


def test_a_planned_case_without_result_is_reported_uninitiated(tmp_path):
    path = make_bundle(tmp_path, n_cases=3, verdicts=["PASS"])
    _save_results(path, _load_results(path)[:2])
    _reseal(path)
    bundle = Bundle.open(path)
    last = ET.fromstring(render_junit(bundle)).findall(".//testcase")[-1]
    assert last.get("name").startswith(bundle.testcases[-1]["id"])
    assert "no result" in last.find("error").get("message")
    assert "no result recorded" in _pdf_text(render_pdf(bundle))


class _StubBundle:
    """The reader's interface with results and console slices chosen by a test."""

    def __init__(self, real: Bundle, results: list[dict], slices: dict[str, bytes]):
        self.manifest, self.requirements = real.manifest, real.requirements
        self.testcases, self.anomalies = real.testcases, real.anomalies
        self.results, self._slices = results, slices

    def console_slice(self, result: dict) -> bytes:
        return self._slices.get(result["id"], b"")


@pytest.fixture(scope="module")
def factory_bundle(tmp_path_factory) -> Bundle:
    return Bundle.open(make_bundle(tmp_path_factory.mktemp("hypothesis")))


_ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=60)   # surrogates too


@settings(max_examples=150, deadline=None)
@given(console=st.binary(max_size=400), reason=_ANY_TEXT, file=_ANY_TEXT)
def test_junit_is_well_formed_for_any_guest_bytes(factory_bundle, console, reason, file):
    results = [dict(r, reason=reason, file=file) for r in factory_bundle.results]
    slices = {r["id"]: console for r in results}
    data = render_junit(_StubBundle(factory_bundle, results, slices))
    root = ET.fromstring(data)   # raises on anything that is not well-formed XML
    assert len(root.findall(".//testcase")) == len(factory_bundle.testcases)


@settings(max_examples=12, deadline=None)
@given(console=st.binary(max_size=6000), reason=_ANY_TEXT)
def test_pdf_renders_any_guest_bytes(factory_bundle, console, reason):
    results = [dict(r, reason=reason) for r in factory_bundle.results]
    slices = {r["id"]: console for r in results}
    data = render_pdf(_StubBundle(factory_bundle, results, slices))
    assert data.startswith(b"%PDF") and len(PdfReader(io.BytesIO(data)).pages) >= 4


# --------------------------------------------------------------------------- PDF

def test_pdf_identifies_the_configuration(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    text = _pdf_text(render_pdf(bundle))
    manifest = bundle.manifest
    for expected in (manifest["run_id"], manifest["nonce"], manifest["kernel"]["package"],
                     manifest["kernel"]["sha256"], manifest["image"]["sha256"],
                     manifest["tools"]["compiler"]["version"], manifest["tools"]["qemu"]["version"],
                     "qemu-system-x86_64 -M pc -accel tcg -nographic", "2026-11-26T16:00:05Z",
                     "Linux pcert 6.1.0-56-cloud-amd64"):
        assert expected in text
    # The running footer names the run on every page, with the page count.
    pages = PdfReader(io.BytesIO(render_pdf(bundle))).pages
    for number, page in enumerate(pages, 1):
        assert f"Page {number} of {len(pages)}" in _flat(page.extract_text())
        assert manifest["run_id"] in page.extract_text()


def test_pdf_summarises_verdicts_with_tet_codes(tmp_path):
    text = _pdf_text(render_pdf(Bundle.open(make_bundle(tmp_path, n_cases=5,
                                                        verdicts=["PASS", "PASS", "FAIL"]))))
    summary = _section(text, "2.1 Verdicts", "2.2 Per unit")
    # verdicts cycle: PASS PASS FAIL PASS PASS
    assert re.search(r"PASS\s+0\s+4\b", summary) and re.search(r"FAIL\s+1\s+1\b", summary)
    assert re.search(r"UNSUPPORTED\s+4\s+0\b", summary) and re.search(r"Total\s+5\b", summary)


def test_pdf_trace_matrix_has_every_requirement_untested_and_untraced_rows(tmp_path):
    bundle = Bundle.open(_hostile_bundle(tmp_path))
    text = _pdf_text(render_pdf(bundle))
    matrix = _section(text, "4 Trace matrix: requirement", "5 Trace matrix: test case")
    ids = [requirement["id"] for requirement in bundle.requirements]
    positions = [matrix.index(requirement_id) for requirement_id in ids]
    assert positions == sorted(positions)   # one row per requirement, sorted by id

    def row(requirement_id: str) -> str:
        start = matrix.index(requirement_id)
        following = [p for p in positions if p > start]
        return matrix[start:following[0] if following else len(matrix)]

    assert "no test" in row("REQ-unlinked-001") and "no test" in row("REQ-close-001")
    assert "TC-read-001: FAIL" in row("REQ-read-001") and "no test" not in row("REQ-read-001")
    untraced = matrix[matrix.index("traces to no requirement"):]
    assert "REQ-retired-009" in untraced and "TC-close-001: UNTESTED" in untraced


def test_pdf_details_failures_with_reason_location_and_console_excerpt(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    text = _pdf_text(render_pdf(bundle))
    failures = _section(text, "3.1 Open problem reports", "3.2 Dispositioned")
    for verdict in ("FAIL", "UNRESOLVED", "UNINITIATED", "UNTESTED", "UNSUPPORTED"):
        assert REASONS[verdict] in failures
    assert failures.index("FAIL (TET 1)") < failures.index("UNRESOLVED (TET 2)")
    assert "file-io.c:42" in failures
    # The failing case's console slice: what it printed and an interleaved kernel message.
    assert "data=diag:%20%01%20100%25%20sure%0A" in failures
    assert "random: crng init done" in failures
    assert "TC-open-001" not in failures   # PASS is not listed


def test_pdf_shows_hostile_text_literally(tmp_path):
    text = _flat(_pdf_text(render_pdf(Bundle.open(_hostile_bundle(tmp_path)))))
    assert text.count(INJECTION) >= 4   # requirement wording, title, reason, console excerpt
    assert f"got {INJECTION} \\x00?" in text    # NUL made visible, CJK replaced
    assert "\\x00\\x1b[31m?? café ?" in text   # in the Courier console excerpt


def test_pdf_console_excerpt_is_bounded_to_the_end_of_the_slice(tmp_path):
    path = make_bundle(tmp_path)
    noise = b"".join(b"noise line %04d\r\n" % n for n in range(2000))
    _insert_console(path, "TC-read-001", noise + b"Z" * 300 + b"\nlast words\n")
    _reseal(path)
    text = _pdf_text(render_pdf(Bundle.open(path)))
    assert "last words" in text and "noise line 1999" in text
    # 40 lines in all: "last words", the 300 Zs wrapped in 3 lines, and 36 noise lines.
    assert "noise line 1964" in text and "noise line 1963" not in text
    assert "Z" * 100 in text and "Z" * 200 not in text
    assert f"the last {EXCERPT_MAX_LINES} lines" in text


def test_pdf_of_an_incomplete_run_says_so(tmp_path):
    text = _pdf_text(render_pdf(Bundle.open(make_bundle(tmp_path, status="incomplete"))))
    assert "Run status: incomplete" in text


# --------------------------------------------------------------------------- render_reports

def test_render_reports_writes_reports_that_verify_and_rerender_identically(tmp_path):
    path = _hostile_bundle(tmp_path)
    written = render_reports(path)
    names = ["junit.xml", "report.pdf", "report.html", "trace.csv", "trace.reqif"]
    assert written == [path / "reports" / name for name in names]
    first = {p.name: p.read_bytes() for p in written}
    assert verify_bundle(path).ok
    sums = (path / "reports" / "SHA256SUMS").read_text()
    assert all(f"  {name}\n" in sums for name in names)

    render_reports(path)
    assert {p.name: p.read_bytes() for p in written} == first
    assert verify_bundle(path).ok
    assert not [p for p in (path / "reports").iterdir() if p.name.endswith(".tmp")]


def test_a_tampered_report_is_named_and_rerendering_repairs_it(tmp_path):
    path = make_bundle(tmp_path)
    render_reports(path)
    pdf = path / "reports" / "report.pdf"
    pdf.write_bytes(pdf.read_bytes() + b"%% edited\n")
    assert verify_bundle(path).changed == ["reports/report.pdf"]
    render_reports(path)
    assert verify_bundle(path).ok


def test_reports_depend_on_the_bundle_only(tmp_path):
    """Same bundle content in another directory, in another process with another hash seed:
    the same bytes (no path, clock, or set order leaks into a report)."""
    here = make_bundle(tmp_path / "a")
    there = make_bundle(tmp_path / "b")
    render_reports(here)
    script = "import sys; from reports.render import render_reports; render_reports(sys.argv[1])"
    env = dict(os.environ, PYTHONHASHSEED="12345",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-c", script, str(there)], check=True, env=env, cwd=REPO)
    for name in ("junit.xml", "report.pdf", "report.html", "trace.csv", "trace.reqif",
                 "SHA256SUMS"):
        assert (here / "reports" / name).read_bytes() == (there / "reports" / name).read_bytes()
