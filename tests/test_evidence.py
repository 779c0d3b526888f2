"""The evidence bundle: written atomically, read back unchanged, and any tampering named."""

from __future__ import annotations

import doctest
import gc
import functools
import json
import os
import shutil
import subprocess
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from hypothesis import given, settings, strategies as st

import evidence.atomic
import evidence.fastschema
import evidence.format
import evidence.reader
import evidence.schema
import evidence.verify
import evidence.writer
from bundle_factory import ALL_VERDICTS, NONCE, make_bundle
from evidence.atomic import copy_file_atomic, write_bytes_atomic, write_json_atomic
from evidence.errors import BundleError
from evidence.format import VERDICTS, make_run_id
from evidence.gcpause import long_lived
from evidence.reader import Bundle
from evidence.schema import load_schema
from evidence.verify import verify_bundle, write_report_sums
from evidence.writer import BundleWriter


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))


def rewrite_manifest(bundle: Path, change) -> None:
    manifest = manifest_of(bundle)
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@functools.cache
def _factory_manifest() -> str:
    with tempfile.TemporaryDirectory() as scratch:
        return (make_bundle(Path(scratch), n_cases=1) / "manifest.json").read_text("utf-8")


def base_manifest(n_cases: int = 0) -> dict:
    """A valid manifest body (without the fields finalize fills in) for hand-made bundles."""
    manifest = json.loads(_factory_manifest())
    for filled_by_finalize in ("schema", "status", "files", "summary"):
        del manifest[filled_by_finalize]
    manifest["plan"]["test_cases"] = n_cases
    manifest["plan"]["requirements"] = 0
    return manifest


def result_row(index: int, verdict: str = "PASS", reason: str = "", tc_id: str = "") -> dict:
    return {"id": tc_id or f"TC-x-{index:03d}", "index": index, "verdict": verdict,
            "code": VERDICTS[verdict], "reason": reason, "file": "", "line": None,
            "guest_duration_s": None, "console": None, "host_time": None,
            "verifies": [], "procedure_sha256": None}


def planned_row(index: int, tc_id: str) -> dict:
    return {"id": tc_id, "index": index, "title": "t", "unit": "u", "interface": "x",
            "kind": "normal", "verifies": [], "options": [], "timeout_s": 10, "inputs": "",
            "expected": "", "procedure": {"file": "procedures/u.c", "function": "tc_x",
                                          "sha256": "0" * 64}}


def write_minimal(writer: BundleWriter, rows: list[dict] = (), console: bool = True) -> None:
    """The files every bundle needs, for ``rows`` as results."""
    writer.write_json("requirements.json", [])
    writer.write_json("testcases.json", [planned_row(r["index"], r["id"]) for r in rows])
    writer.write_jsonl("results.jsonl", rows)
    if console:
        writer.write_bytes("console.log", b"")


# -- the docstrings are examples; keep them true --------------------------------------------

@pytest.mark.parametrize("module", [evidence.atomic, evidence.format, evidence.reader,
                                    evidence.schema, evidence.verify, evidence.writer,
                                    evidence.fastschema])
def test_docstring_examples_hold(module):
    assert doctest.testmod(module).failed == 0


def test_a_run_freezes_what_it_prepared_and_leaves_collection_as_it_found_it():
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with long_lived() as keep:
        assert not gc.isenabled()          # no collection while the plan is built
        prepared = [{"row": i} for i in range(1000)]
        keep()
        assert gc.isenabled() and gc.get_freeze_count() >= len(prepared)
        keep()                             # once is enough; twice changes nothing
    assert gc.isenabled() and gc.get_freeze_count() == 0
    with pytest.raises(ValueError):        # a failed run before keep(): collection back on
        with long_lived():
            raise ValueError("no such target")
    assert gc.isenabled() and gc.get_freeze_count() == 0


# -- run ids ---------------------------------------------------------------------------------

def test_run_id_is_utc_stamp_target_and_entropy():
    local = timezone(timedelta(hours=-5))
    now = datetime(2026, 11, 26, 11, 0, 0, tzinfo=local)
    assert make_run_id("linux-x86_64", now, b"\x3f\xa9\xc1\xff") == \
        "20261126T160000Z-linux-x86_64-3fa9c1"


@pytest.mark.parametrize("target, now, entropy", [
    ("linux-x86_64", datetime(2026, 1, 1), b"abc"),                      # naive time
    ("../etc", datetime(2026, 1, 1, tzinfo=timezone.utc), b"abc"),       # not a name
    ("host", datetime(2026, 1, 1, tzinfo=timezone.utc), b"ab"),          # too little entropy
])
def test_run_id_refuses_ambiguous_or_unsafe_input(target, now, entropy):
    with pytest.raises(ValueError):
        make_run_id(target, now, entropy)


# -- writer and reader -----------------------------------------------------------------------

def test_factory_bundle_reads_back_with_every_verdict_and_console_range(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    assert [r["verdict"] for r in bundle.results] == list(ALL_VERDICTS)
    assert [r["code"] for r in bundle.results] == list(VERDICTS.values())
    assert bundle.summary() == bundle.manifest["summary"] == {v: 1 for v in VERDICTS}
    assert [t["id"] for t in bundle.testcases] == [r["id"] for r in bundle.results]
    assert [t["index"] for t in bundle.testcases] == list(range(6))
    ids = [q["id"] for q in bundle.requirements]
    assert ids == sorted(ids)
    assert {v for r in bundle.results for v in r["verifies"]} <= set(ids)
    console = bundle.console_bytes()
    assert b"\x00\xff" in console and b"\xfe\xfe" in console  # binary garbage kept untouched
    for result in bundle.results:
        piece = bundle.console_slice(result)
        if result["verdict"] == "UNINITIATED":
            assert piece == b""
        else:
            assert piece.startswith(f"PCERT1 {NONCE} ".encode())
            assert f"id={result['id']} ".encode() in piece
            assert f"verdict={result['verdict']} ".encode() in piece
    (anomaly,) = bundle.anomalies
    assert console[anomaly["offset"]:].startswith(b"PCERT1 ")
    for testcase in bundle.testcases:
        source = bundle.procedure_source(testcase)
        assert f"int {testcase['procedure']['function']}(void)" in source


def test_factory_is_deterministic(tmp_path):
    first = make_bundle(tmp_path / "a", n_cases=9, verdicts=["PASS", "FAIL"])
    second = make_bundle(tmp_path / "b", n_cases=9, verdicts=["PASS", "FAIL"])
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert Bundle.open(first).summary()["FAIL"] == 4


def test_written_records_read_back_exactly(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    odd = "line\u2028separator\x85next\x1cfile\x00nul \u00e9\U0001f600 \"quoted\"\r\n"
    rows = [result_row(0), result_row(1, "FAIL", odd), result_row(2, "UNINITIATED", "never ran")]
    write_minimal(writer, rows)
    requirement = {"id": "REQ-open-001", "interface": "open", "unit": "file-io", "text": odd,
                   "source": {"standard": "POSIX.1-2017", "section": "open()", "edition": "7"},
                   "method": "test", "status": "active", "fingerprint": "a" * 64,
                   "profiles": []}
    writer.write_json("requirements.json", [requirement])  # replaces the empty list
    written = writer.finalize(base_manifest(3), status="incomplete")
    bundle = Bundle.open(tmp_path / "run")
    assert bundle.results == rows
    assert bundle.requirements == [requirement]
    assert bundle.manifest == written
    assert bundle.status == "incomplete"
    assert bundle.anomalies == []
    lines = (tmp_path / "run" / "results.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    for line, row in zip(lines, rows):  # compact, sorted keys, UTF-8 as is
        assert line == json.dumps(row, sort_keys=True, separators=(",", ":"),
                                  ensure_ascii=False).encode("utf-8")


def test_json_files_are_sorted_indented_utf8_with_trailing_newline(tmp_path):
    path = make_bundle(tmp_path) / "manifest.json"
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "command"')
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2,
                              ensure_ascii=False) + "\n"


def test_manifest_lists_every_file_except_itself_and_reports(tmp_path):
    bundle = make_bundle(tmp_path, n_cases=2)
    files = manifest_of(bundle)["files"]
    on_disk = sorted(p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file())
    assert sorted(files) == [name for name in on_disk if name != "manifest.json"]
    for name, entry in files.items():
        data = (bundle / name).read_bytes()
        assert entry["size"] == len(data)
        assert entry["sha256"] == evidence.atomic.hashlib.sha256(data).hexdigest()


def test_add_file_copies_and_lists_it(tmp_path):
    source = tmp_path / "initramfs.cpio"
    source.write_bytes(bytes(range(256)) * 10)
    writer = BundleWriter(tmp_path / "run")
    writer.add_file("image/initramfs.cpio", source)
    write_minimal(writer)
    manifest = writer.finalize(base_manifest())
    assert (tmp_path / "run" / "image" / "initramfs.cpio").read_bytes() == source.read_bytes()
    assert manifest["files"]["image/initramfs.cpio"]["size"] == 2560
    assert manifest["summary"] == {verdict: 0 for verdict in VERDICTS}


def test_finalize_requires_the_files_every_bundle_has(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    writer.write_json("testcases.json", [])
    with pytest.raises(BundleError, match="requirements.json, results.jsonl, console.log not "
                                          "written"):
        writer.finalize(base_manifest())
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_console_sink_keeps_bytes_on_disk_while_open(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer, console=False)
    sink = writer.open_console()
    chunks = [b"\x00\xff\r\n", b"PCERT1 half a rec", b"ord\n", bytes(range(256))]
    for chunk in chunks:
        assert sink.write(chunk) == len(chunk)
        # A run killed now must still have every byte received so far.
        assert (tmp_path / "run" / "console.log").read_bytes() == b"".join(
            chunks[:chunks.index(chunk) + 1])
    assert sink.size == sum(map(len, chunks))
    assert sink.close() == sink.size == sink.close()
    with pytest.raises(ValueError):
        sink.write(b"late")
    with pytest.raises(ValueError):
        writer.open_console()
    manifest = writer.finalize(base_manifest())
    assert manifest["files"]["console.log"]["size"] == sink.size


def test_finalize_refuses_an_open_console(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer, console=False)
    writer.open_console().write(b"boot")
    with pytest.raises(ValueError, match="console"):
        writer.finalize(base_manifest())
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_writer_refuses_a_non_empty_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    BundleWriter(run)  # an empty directory is fine
    (run / "console.log").write_bytes(b"old evidence")
    with pytest.raises(BundleError, match=str(run)):
        BundleWriter(run)
    assert (run / "console.log").read_bytes() == b"old evidence"


@pytest.mark.parametrize("name", ["../escape.c", "/abs.c", "a//b.c", "./a.c", "manifest.json",
                                  "reports/junit.xml", ""])
def test_writer_refuses_names_outside_its_part_of_the_bundle(tmp_path, name):
    writer = BundleWriter(tmp_path / "run")
    with pytest.raises(ValueError):
        writer.write_bytes(name, b"x")
    assert list((tmp_path / "run").iterdir()) == []


def test_a_finalized_bundle_cannot_change(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer)
    writer.finalize(base_manifest())
    with pytest.raises(ValueError, match="finalized"):
        writer.write_bytes("procedures/late.c", b"")
    with pytest.raises(ValueError, match="finalized"):
        writer.finalize(base_manifest())


def test_writer_validates_records_and_names_the_line_and_field(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    bad = result_row(1, "FAIL", reason="")  # every non-PASS verdict needs a reason
    with pytest.raises(BundleError, match=r"results\.jsonl\[1\].*'reason'"):
        writer.write_jsonl("results.jsonl", [result_row(0), bad])
    wrong_code = dict(result_row(0), code=4)
    with pytest.raises(BundleError, match=r"results\.jsonl\[0\].*'code'"):
        writer.write_jsonl("results.jsonl", [wrong_code])
    reversed_range = dict(result_row(0), console={"start": 9, "end": 3})
    with pytest.raises(BundleError, match="'console': end 3 is before start 9"):
        writer.write_jsonl("results.jsonl", [reversed_range])
    assert not (tmp_path / "run" / "results.jsonl").exists()


def test_finalize_checks_the_summary_against_the_results(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer, [result_row(0)])
    manifest = dict(base_manifest(1), summary={v: 0 for v in VERDICTS})
    with pytest.raises(BundleError, match="'summary'"):
        writer.finalize(manifest)
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_finalize_reconciles_results_with_the_plan(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer, [result_row(0), result_row(1)])
    with pytest.raises(BundleError, match="2 lines, but the manifest's plan.test_cases is 3"):
        writer.finalize(base_manifest(3))
    writer.write_json("testcases.json", [planned_row(0, "TC-x-000"), planned_row(1, "TC-y")])
    with pytest.raises(BundleError, match="position 1: planned TC-y, result TC-x-001"):
        writer.finalize(base_manifest(2))
    writer.write_json("testcases.json", [planned_row(0, "TC-x-000")])
    with pytest.raises(BundleError, match="position 1: planned nothing, result TC-x-001"):
        writer.finalize(base_manifest(2))
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_finalize_refuses_evidence_changed_after_writing(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer)
    writer.write_bytes("procedures/a.c", b"int a;\n")
    (tmp_path / "run" / "procedures" / "a.c").write_bytes(b"int b;\n")
    with pytest.raises(BundleError, match="a.c: changed after it was written"):
        writer.finalize(base_manifest())


def test_finalize_refuses_symbolic_links(tmp_path):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer)
    (tmp_path / "outside.c").write_bytes(b"int x;\n")
    (tmp_path / "run" / "linked.c").symlink_to(tmp_path / "outside.c")
    with pytest.raises(BundleError, match="linked.c: is a symbolic link"):
        writer.finalize(base_manifest())


# -- schema ----------------------------------------------------------------------------------

@pytest.mark.parametrize("field", load_schema("manifest")["required"])
def test_schema_names_each_missing_manifest_field(tmp_path, field):
    writer = BundleWriter(tmp_path / "run")
    write_minimal(writer)
    manifest = base_manifest()
    manifest.pop(field, None)
    if field in ("schema", "status", "files", "summary"):
        # Filled in by finalize: check it where it matters, reading an archived bundle.
        writer.finalize(manifest)
        rewrite_manifest(tmp_path / "run", lambda m: m.pop(field))
        with pytest.raises(BundleError, match=f"manifest.json: field '{field}'"):
            Bundle.open(tmp_path / "run")
        return
    with pytest.raises(BundleError, match=f"manifest.json: field '{field}'") as raised:
        writer.finalize(manifest)
    assert "regenerate the bundle or correct the field" in str(raised.value)
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_reader_names_a_missing_field_in_an_archived_manifest(tmp_path):
    bundle = make_bundle(tmp_path)
    rewrite_manifest(bundle, lambda m: m["exit"].pop("reason"))
    with pytest.raises(BundleError, match=r"manifest\.json: field 'exit\.reason' is missing"):
        Bundle.open(bundle)
    with pytest.raises(BundleError, match=r"exit\.reason"):
        verify_bundle(bundle)


@pytest.mark.parametrize("change, field", [
    (lambda m: m["plan"].update(test_cases=-1), "plan.test_cases"),
    (lambda m: m["files"]["console.log"].update(sha256="XYZ"), "files['console.log'].sha256"),
    (lambda m: m.update(nonce="not hex"), "nonce"),
    (lambda m: m["summary"].update(MAYBE=1), "summary"),
    (lambda m: m["files"].update({"../../etc/passwd": {"sha256": "0" * 64, "size": 1}}),
     "files"),
])
def test_schema_names_the_nested_field_that_is_wrong(tmp_path, change, field):
    bundle = make_bundle(tmp_path, n_cases=2)
    rewrite_manifest(bundle, change)
    with pytest.raises(BundleError) as raised:
        Bundle.open(bundle)
    assert f"field '{field}'" in str(raised.value)


def test_schemas_describe_every_property():
    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                has_text = "description" in sub or "$ref" in sub
                assert has_text, f"{where}.{name} has no description"
            for key, sub in node.items():
                if key not in ("allOf", "if", "then"):  # conditions restate, not define
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for index, sub in enumerate(node):
                walk(sub, f"{where}[{index}]")
    for kind in evidence.schema.KINDS:
        walk(load_schema(kind), kind)


@pytest.mark.parametrize("kind", evidence.schema.KINDS)
def test_record_schemas_follow_the_json_schema_meta_schema(kind):
    """pcert does not check its own schemas at run time; this does."""
    jsonschema.Draft202012Validator.check_schema(load_schema(kind))


# -- reader errors ---------------------------------------------------------------------------

def test_reader_explains_a_missing_manifest(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json: missing; the run was interrupted"):
        Bundle.open(bundle)
    with pytest.raises(BundleError, match="nowhere"):
        Bundle.open(tmp_path / "nowhere")


def test_reader_gives_line_and_column_of_a_truncated_manifest(tmp_path):
    bundle = make_bundle(tmp_path)
    data = (bundle / "manifest.json").read_bytes()
    (bundle / "manifest.json").write_bytes(data[:len(data) // 2])
    with pytest.raises(BundleError, match=r"manifest\.json: line \d+ column \d+: invalid JSON"):
        Bundle.open(bundle)


def test_reader_refuses_a_newer_format_by_name(tmp_path):
    bundle = make_bundle(tmp_path)
    rewrite_manifest(bundle, lambda m: m.update(schema="pcert-bundle/2"))
    with pytest.raises(BundleError, match="'pcert-bundle/2'.*use the pcert version"):
        Bundle.open(bundle)


def test_reader_names_the_corrupt_results_line(tmp_path):
    bundle = make_bundle(tmp_path)
    lines = (bundle / "results.jsonl").read_bytes().split(b"\n")
    lines[2] = lines[2][:40]
    (bundle / "results.jsonl").write_bytes(b"\n".join(lines))
    opened = Bundle.open(bundle)
    assert opened.manifest["run_id"]  # the manifest alone still opens
    with pytest.raises(BundleError, match=r"results\.jsonl: line 3 column \d+: invalid JSON"):
        opened.results


def test_reader_names_a_result_field_that_breaks_the_schema(tmp_path):
    bundle = make_bundle(tmp_path)
    rows = [json.loads(line) for line in (bundle / "results.jsonl").read_bytes().splitlines()]
    rows[1]["verdict"] = "GREAT"
    (bundle / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(BundleError, match=r"results\.jsonl: line 2: field 'verdict'"):
        Bundle.open(bundle).results


def test_console_range_beyond_the_log_is_an_error_not_a_short_slice(tmp_path):
    bundle = Bundle.open(make_bundle(tmp_path))
    result = dict(bundle.results[0], console={"start": 0, "end": 10**9})
    with pytest.raises(BundleError, match="console.log has"):
        bundle.console_slice(result)


def test_missing_evidence_file_is_named_on_first_use(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "testcases.json").unlink()
    (bundle / "anomalies.jsonl").unlink()
    opened = Bundle.open(bundle)
    with pytest.raises(BundleError, match="testcases.json: missing.*pcert verify"):
        opened.testcases
    with pytest.raises(BundleError, match="anomalies.jsonl: missing"):
        opened.anomalies  # listed in the manifest, so its absence is damage


# -- verify ----------------------------------------------------------------------------------

def render_reports(bundle: Path, text: str = "<testsuites/>") -> None:
    reports = bundle / "reports"
    (reports / "html").mkdir(parents=True, exist_ok=True)
    (reports / "junit.xml").write_text(text)
    (reports / "report.pdf").write_bytes(b"%PDF-1.4 " + text.encode())
    (reports / "html" / "index.html").write_text(f"<p>{text}</p>")
    write_report_sums(reports)


def test_intact_bundle_verifies(tmp_path):
    bundle = make_bundle(tmp_path)
    report = verify_bundle(bundle)
    assert report.ok and report.status == "complete"
    assert (report.changed, report.missing, report.extra, report.problems) == ([], [], [], [])


def test_incomplete_run_verifies_but_says_so(tmp_path):
    report = verify_bundle(make_bundle(tmp_path, status="incomplete"))
    assert report.ok and report.status == "incomplete"


@pytest.mark.parametrize("name", ["console.log", "results.jsonl", "testcases.json",
                                  "procedures/file-io.c", "procedures/pcert_runtime.h",
                                  "reports/junit.xml", "reports/html/index.html"])
@pytest.mark.parametrize("tamper", ["change", "remove", "add"])
def test_verify_names_every_tampered_file(tmp_path, name, tamper):
    bundle = make_bundle(tmp_path)
    render_reports(bundle)
    path = bundle / name
    if tamper == "change":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, same size: only the hash can tell
        path.write_bytes(bytes(data))
    elif tamper == "remove":
        path.unlink()
    else:
        path = path.with_name("extra-" + path.name)
        path.write_bytes(b"not evidence")
    report = verify_bundle(bundle)
    expected = {"change": "changed", "remove": "missing", "add": "extra"}[tamper]
    relative = path.relative_to(bundle).as_posix()
    assert getattr(report, expected) == [relative]
    assert not report.ok
    others = {"changed", "missing", "extra"} - {expected}
    assert all(getattr(report, other) == [] for other in others)
    assert len(report.problems) == 1 and report.problems[0].startswith(relative + ": ")


def test_verify_names_files_added_in_new_directories(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "notes").mkdir()
    (bundle / "notes" / "readme.txt").write_text("hi")
    (bundle / ".hidden").write_text("hi")
    assert verify_bundle(bundle).extra == [".hidden", "notes/readme.txt"]


def test_verify_names_a_file_replaced_by_a_symbolic_link(tmp_path):
    bundle = make_bundle(tmp_path)
    copy = tmp_path / "copy.log"
    shutil.copy(bundle / "console.log", copy)
    (bundle / "console.log").unlink()
    (bundle / "console.log").symlink_to(copy)
    report = verify_bundle(bundle)
    assert report.changed == ["console.log"]
    assert report.problems == ["console.log: is not a regular file (a symbolic link, directory "
                               "or special file), not the file listed in the manifest"]


def test_rerendered_reports_verify_and_stale_sums_do_not(tmp_path):
    bundle = make_bundle(tmp_path)
    render_reports(bundle, "first")
    assert verify_bundle(bundle).ok
    (bundle / "reports" / "junit.xml").write_text("second")
    assert verify_bundle(bundle).changed == ["reports/junit.xml"]
    render_reports(bundle, "second")  # the renderer rewrites SHA256SUMS last
    assert verify_bundle(bundle).ok


def test_reports_without_sums_are_a_problem_but_no_reports_are_fine(tmp_path):
    bundle = make_bundle(tmp_path)
    (bundle / "reports").mkdir()
    assert verify_bundle(bundle).ok  # empty reports/: nothing rendered yet
    (bundle / "reports" / "junit.xml").write_text("<testsuites/>")
    report = verify_bundle(bundle)
    assert not report.ok
    assert report.problems == ["reports/SHA256SUMS: missing while reports/ holds reports "
                               "(junit.xml); re-render the reports (the renderer writes it last)"]


def test_malformed_sums_line_is_named(tmp_path):
    bundle = make_bundle(tmp_path)
    render_reports(bundle)
    sums = bundle / "reports" / "SHA256SUMS"
    sums.write_text(sums.read_text() + "deadbeef junit.xml\n")
    report = verify_bundle(bundle)
    assert report.problems == ["reports/SHA256SUMS: line 4 is not '<sha256>  <name>'; "
                               "re-render the reports"]


def test_report_sums_are_sorted_and_sha256sum_compatible(tmp_path):
    bundle = make_bundle(tmp_path)
    render_reports(bundle)
    lines = (bundle / "reports" / "SHA256SUMS").read_text().splitlines()
    names = [line.split("  ", 1)[1] for line in lines]
    assert names == sorted(names) == ["html/index.html", "junit.xml", "report.pdf"]
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "--check", "--strict", "SHA256SUMS"],
                               cwd=bundle / "reports", capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


# -- property: arbitrary text survives the round trip ---------------------------------------

ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)


@settings(max_examples=60, deadline=None)
@given(reason=ANY_TEXT.filter(bool), guest=st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=5),
       command=st.lists(ANY_TEXT, max_size=4), target=st.dictionaries(ANY_TEXT, ANY_TEXT),
       version=ANY_TEXT.filter(bool))
def test_manifest_round_trips_any_strings(reason, guest, command, target, version):
    with tempfile.TemporaryDirectory() as scratch:
        writer = BundleWriter(Path(scratch) / "run")
        write_minimal(writer)
        manifest = dict(base_manifest(), guest=guest, command=command, target=target,
                        exit={"reason": reason, "status": None, "boot_s": None, "wall_s": 0.5},
                        pcert={"version": version, "git_commit": None})
        written = writer.finalize(manifest)
        raw = (Path(scratch) / "run" / "manifest.json").read_bytes()
        raw.decode("utf-8")  # strict: lone surrogates are escaped, never raw
        assert Bundle.open(Path(scratch) / "run").manifest == written
        assert written["guest"] == guest and written["exit"]["reason"] == reason
        assert verify_bundle(Path(scratch) / "run").ok


@settings(max_examples=60, deadline=None)
@given(reasons=st.lists(ANY_TEXT.filter(bool), min_size=1, max_size=5))
def test_results_lines_round_trip_any_reason(reasons):
    rows = [result_row(i, "FAIL", reason) for i, reason in enumerate(reasons)]
    with tempfile.TemporaryDirectory() as scratch:
        writer = BundleWriter(Path(scratch) / "run")
        write_minimal(writer, rows)
        writer.finalize(base_manifest(len(rows)))
        assert Bundle.open(Path(scratch) / "run").results == rows


# -- atomic writes ---------------------------------------------------------------------------

def test_atomic_write_leaves_only_the_file(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"a": 1})
    write_json_atomic(tmp_path / "m.json", {"a": 2})
    assert os.listdir(tmp_path) == ["m.json"]
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 2}


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_failed_atomic_write_keeps_the_old_file_whole(tmp_path, monkeypatch, failing):
    target = tmp_path / "manifest.json"
    write_json_atomic(target, {"old": True})
    before = target.read_bytes()

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, broken)
    with pytest.raises(OSError, match="No space"):
        write_bytes_atomic(target, b'{"new": tr')  # would be half a file if written in place
    with pytest.raises(OSError, match="No space"):
        write_json_atomic(target, {"new": True})
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["manifest.json"]  # no temporary file left behind


def test_failed_copy_and_bundle_write_keep_the_old_file(tmp_path, monkeypatch):
    writer = BundleWriter(tmp_path / "run")
    writer.write_json("testcases.json", [])
    source = tmp_path / "src.bin"
    source.write_bytes(b"x" * 100_000)
    copy_file_atomic(source, tmp_path / "copy.bin")

    def broken(*args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        writer.write_bytes("testcases.json", b'[{"half a')
    with pytest.raises(OSError):
        copy_file_atomic(tmp_path / "run" / "testcases.json", tmp_path / "copy.bin")
    monkeypatch.undo()
    assert (tmp_path / "run" / "testcases.json").read_bytes() == b"[]\n"
    assert (tmp_path / "copy.bin").read_bytes() == b"x" * 100_000
    assert sorted(os.listdir(tmp_path / "run")) == ["testcases.json"]
    assert sorted(os.listdir(tmp_path)) == ["copy.bin", "run", "src.bin"]


# -- the fast schema check agrees with jsonschema ---------------------------------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False)
    | st.text(max_size=6) | st.sampled_from(["PASS", "FAIL", "0" * 64, "procedures/a.c"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["result", "testcase", "requirement"]), field=st.text(max_size=20),
       value=_json_values, drop=st.booleans())
def test_fast_schema_check_never_accepts_what_jsonschema_rejects(kind, field, value, drop):
    """A real record with one field replaced by (or dropped for) an arbitrary JSON value."""
    from evidence.schema import _fast_check, _validator
    record = {"result": result_row(1, "FAIL", "r"), "testcase": planned_row(1, "TC-x-001"),
              "requirement": {"id": "R", "interface": "i", "unit": "u", "text": "t",
                              "source": {"standard": "s", "section": "x"}, "method": "test",
                              "status": "active", "fingerprint": "0" * 64,
                              "profiles": []}}[kind]
    keys = sorted(record)
    name = keys[len(field) % len(keys)] if field else field
    if drop:
        record.pop(name, None)
    else:
        record[name] = value
    fast = _fast_check(kind)(record)
    valid = _validator(kind).is_valid(record)
    assert fast is None or fast == valid
