"""JUnit XML report of one run, rendered from its evidence bundle alone.

    >>> from evidence.reader import Bundle
    >>> from reports.junit import render_junit
    >>> xml_bytes = render_junit(Bundle.open("runs/20261126T160000Z-linux-x86_64-3fa9c1"))  # doctest: +SKIP

Layout: one ``<testsuite>`` named after the run, one ``<testcase>`` per planned test case in plan
order (``classname`` = unit, else interface; ``name`` = "<id> <title>"). Verdicts map to JUnit as
CI tools understand them:

    PASS                     -> (nothing)
    FAIL                     -> <failure message=reason>  with "file:line" in its text
    UNRESOLVED, UNINITIATED  -> <error message=reason>
    UNSUPPORTED, UNTESTED    -> <skipped message=reason>

Each ``<testcase>`` carries ``<properties>`` (TET verdict and code, the requirement ids it
verifies, the procedure's sha256) and its slice of the console as ``<system-out>``.

Why junit-xml builds the elements but we serialise: junit-xml has no per-testcase properties and
its pretty-printer round-trips through minidom. We take its ``<testsuite>`` element, add the
properties with ElementTree, and serialise it ourselves (exactly as ElementTree would,
reports/xmltext.py), so the output depends on the bundle only (byte-reproducible). Every string
from the bundle goes through ``xml_safe`` first: the guest printed it, so it may hold any byte,
and the result must be well-formed XML regardless.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from evidence.format import VERDICTS as TET_CODES
from junit_xml import TestCase, TestSuite

from reports.xmltext import tree_bytes

# Characters XML 1.0 forbids (C0 controls except TAB/LF/CR, surrogates, U+FFFE/U+FFFF). A lone
# surrogate can reach us through a JSON "\ud800" escape even though console bytes are decoded
# with errors="replace".
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_REPLACEMENT = "\ufffd"

_SKIPPED_VERDICTS = ("UNSUPPORTED", "UNTESTED")

# A planned test case with no line in results.jsonl is reported, never dropped.
_MISSING_RESULT_REASON = "no result recorded in the bundle"


def xml_safe(value: object) -> str:
    """Text that can go into any XML text node or attribute.

    >>> xml_safe("ok\\x00\\x1b[0m\\r\\n")
    'ok\ufffd\ufffd[0m\\n'

    Forbidden characters become U+FFFD, so a reader sees that something was there.
    CR LF and lone CR become LF: an XML parser would normalise them anyway.
    """
    text = "" if value is None else str(value)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _XML_INVALID.sub(_REPLACEMENT, text)


def console_text(raw: bytes) -> str:
    """Console bytes as XML-safe text (invalid UTF-8 becomes U+FFFD)."""
    return xml_safe(raw.decode("utf-8", errors="replace"))


def location(result: dict) -> str:
    """``file:line`` of a result, or ``file`` alone, or "" when the guest gave none."""
    file, line = result.get("file") or "", result.get("line")
    if not file:
        return ""
    return f"{file}:{line}" if line is not None else str(file)


def differential_note(result: dict) -> str:
    """For a differential check: its seed, examples and reproducer; "" for other results.

    >>> differential_note({"differential": {"seed": 0, "examples": 57, "max_examples": 100,
    ...                    "falsifying": {"reproducer": "differential/TC-DIFF-strtol.c"}}})
    'seed 0, 57 examples (at most 100); reproducer differential/TC-DIFF-strtol.c'
    """
    diff = result.get("differential")
    if not isinstance(diff, dict):
        return ""
    note = (f"seed {diff.get('seed')}, {diff.get('examples')} examples "
            f"(at most {diff.get('max_examples')})")
    falsifying = diff.get("falsifying")
    if isinstance(falsifying, dict) and falsifying.get("reproducer"):
        note += f"; reproducer {falsifying['reproducer']}"
    return note


def render_junit(bundle) -> bytes:
    """Render the bundle's results as a UTF-8 JUnit XML document (bytes, with declaration)."""
    rows = _plan_rows(bundle)
    manifest = bundle.manifest
    suite = TestSuite(
        name=xml_safe(manifest.get("run_id")),
        test_cases=[_junit_case(testcase, result, console_text(bundle.console_slice(result)))
                    for testcase, result in rows],
        hostname=xml_safe(_target_name(manifest)) or None,
        # The run's own start time: a render date would break reproducibility.
        timestamp=xml_safe(manifest.get("started_utc")) or None,
        properties=_suite_properties(manifest),
    )
    suite_element = suite.build_xml_doc()
    # build_xml_doc emits <testcase> elements in the order of suite.test_cases, i.e. plan order.
    for element, (testcase, result) in zip(suite_element.iter("testcase"), rows):
        element.insert(0, _testcase_properties(testcase, result))
    return _serialise(suite_element)


def _plan_rows(bundle) -> list[tuple[dict, dict]]:
    """(test case, result) in plan order; a planned case without a result reads UNINITIATED."""
    results_by_id = {result.get("id"): result for result in bundle.results}
    return [(testcase, results_by_id.get(testcase.get("id")) or {
                "id": testcase.get("id"), "verdict": "UNINITIATED", "code": 6,
                "reason": _MISSING_RESULT_REASON, "console": None})
            for testcase in bundle.testcases]


def _verdict(result: dict) -> str:
    return str(result.get("verdict") or "UNRESOLVED")


def _junit_case(testcase: dict, result: dict, console: str) -> TestCase:
    duration = result.get("guest_duration_s")
    case = TestCase(
        name=xml_safe(f"{testcase.get('id')} {testcase.get('title') or ''}".rstrip()),
        classname=xml_safe(testcase.get("unit") or testcase.get("interface") or "") or None,
        elapsed_sec=float(duration) if isinstance(duration, (int, float)) else None,
        stdout=console or None,
        file=xml_safe(result.get("file")) or None,
        line=xml_safe(result.get("line")) if result.get("line") is not None else None,
    )
    verdict = _verdict(result)
    reason = xml_safe(result.get("reason")) or verdict
    where = xml_safe(location(result))
    detail = f"{reason}\n  at {where}" if where else reason
    if verdict == "FAIL":
        case.add_failure_info(message=reason, output=detail, failure_type=verdict)
    elif verdict in _SKIPPED_VERDICTS:
        case.add_skipped_info(message=reason, output=detail)
    elif verdict != "PASS":
        # UNRESOLVED, UNINITIATED, and anything unknown: an error is the honest JUnit reading.
        case.add_error_info(message=reason, output=detail, error_type=xml_safe(verdict))
    return case


def _testcase_properties(testcase: dict, result: dict) -> ET.Element:
    verdict = _verdict(result)
    code = result.get("code", TET_CODES.get(verdict))
    procedure = testcase.get("procedure") or {}
    pairs = [
        ("verdict", verdict),
        ("tet_code", code),
        ("kind", testcase.get("kind")),
        ("procedure_file", procedure.get("file")),
        ("procedure_function", procedure.get("function")),
        ("procedure_sha256", procedure.get("sha256") or result.get("procedure_sha256")),
    ]
    # One property per requirement: tools show repeated names, and a comma list would be ambiguous.
    pairs += [("verifies", requirement_id) for requirement_id in testcase.get("verifies") or []]
    properties = ET.Element("properties")
    for name, value in pairs:
        if value is not None and value != "":
            ET.SubElement(properties, "property", {"name": name, "value": xml_safe(value)})
    return properties


def _target_name(manifest: dict) -> str:
    target = manifest.get("target") or {}
    if isinstance(target, dict):
        return str(target.get("name") or target.get("id") or "")
    return str(target)


def _suite_properties(manifest: dict) -> dict:
    """Configuration identification, in a fixed order (dicts keep insertion order)."""
    plan = manifest.get("plan") or {}
    pcert = manifest.get("pcert") or {}
    kernel = manifest.get("kernel") or {}
    image = manifest.get("image") or {}
    pairs = [
        ("run_id", manifest.get("run_id")),
        ("status", manifest.get("status")),
        ("started_utc", manifest.get("started_utc")),
        ("finished_utc", manifest.get("finished_utc")),
        ("target", _target_name(manifest)),
        ("profile", plan.get("profile")),
        ("edition", plan.get("edition")),
        ("checks", plan.get("checks")),
        ("pcert_version", pcert.get("version")),
        ("pcert_git_commit", pcert.get("git_commit")),
        ("kernel_package", kernel.get("package")),
        ("kernel_version", kernel.get("version")),
        ("kernel_sha256", kernel.get("sha256")),
        ("image_sha256", image.get("sha256")),
        ("nonce", manifest.get("nonce")),
    ]
    return {name: xml_safe(value) for name, value in pairs if value not in (None, "")}


def _serialise(suite_element: ET.Element) -> bytes:
    # junit-xml sums float durations into "0.005999999999999999"; six decimals, as per case.
    suite_element.set("time", f"{float(suite_element.get('time') or 0):.6f}")
    root = ET.Element("testsuites")
    for key in ("disabled", "errors", "failures", "tests", "time"):
        root.set(key, suite_element.get(key, "0"))
    root.append(suite_element)
    # indent() touches only whitespace between elements, never a leaf's text (system-out).
    ET.indent(root, space="  ")
    return tree_bytes(root) + b"\n"
