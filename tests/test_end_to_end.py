"""End to end through the real CLI: a QEMU-booted linux-x86_64 run and a native host run,
each producing a bundle that verifies, with JUnit and PDF reports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pypdf import PdfReader

from conformance.cli import main
from targets.definition import load_target
from targets.readiness import check_ready


def pcert(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "conformance.cli", *args],
                          capture_output=True, text=True, timeout=900)


def _run(tmp_path_factory, target: str) -> tuple[Path, subprocess.CompletedProcess]:
    problems = check_ready(load_target(target))
    if problems:
        pytest.skip(f"{target} not ready: {'; '.join(problems)}")
    out = tmp_path_factory.mktemp(target) / "bundle"
    proc = pcert("run", "--target", target, "--profile", "face-safety-base", "--out", str(out))
    assert proc.returncode in (0, 1), proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def qemu_bundle(tmp_path_factory):
    return _run(tmp_path_factory, "linux-x86_64")


@pytest.fixture(scope="module")
def host_bundle(tmp_path_factory):
    return _run(tmp_path_factory, "host")


def _load(bundle: Path):
    manifest = json.loads((bundle / "manifest.json").read_text())
    results = [json.loads(line) for line in (bundle / "results.jsonl").read_text().splitlines()]
    testcases = json.loads((bundle / "testcases.json").read_text())
    requirements = json.loads((bundle / "requirements.json").read_text())
    return manifest, results, testcases, requirements


@pytest.mark.qemu
def test_qemu_run_produces_a_complete_bundle(qemu_bundle):
    bundle, proc = qemu_bundle
    manifest, results, testcases, requirements = _load(bundle)
    assert manifest["status"] == "complete"
    assert manifest["exit"]["reason"] == "powered off"
    assert manifest["target"]["name"] == "linux-x86_64"
    assert manifest["kernel"]["package"].startswith("linux-image-")
    assert len(manifest["kernel"]["sha256"]) == 64
    assert manifest["command"][0] == "qemu-system-x86_64"
    # The guest told us who it is, and it is the Linux kernel we booted with 2 vCPUs.
    assert manifest["guest"]["sysname"] == "Linux"
    assert manifest["guest"]["ncpu"] == "2"
    assert manifest["guest"]["opt._POSIX_THREADS"] != "undef"
    assert len(results) == len(testcases) >= 40
    assert [r["id"] for r in results] == [t["id"] for t in testcases]
    assert all(r["reason"] for r in results if r["verdict"] != "PASS")
    # A full run holds presence checks (no console) after the test cases run in the guest.
    method = {t["id"]: t.get("method", "test") for t in testcases}
    assert {"test", "compile", "link"} <= set(method.values())
    assert manifest["presence"]["profile"].startswith("face-safety-base")
    results = [r for r in results if method[r["id"]] == "test"]
    # Every test case ran and reached a verdict from the guest.
    assert all(r["verdict"] != "UNINITIATED" for r in results), proc.stderr
    passed = sum(r["verdict"] == "PASS" for r in results)
    assert passed >= 0.9 * len(results), [r for r in results if r["verdict"] != "PASS"]
    for r in results:
        console = (bundle / r["console"].get("file", "console.log")).read_bytes()
        start, end = r["console"]["start"], r["console"]["end"]
        assert 0 <= start < end <= len(console)
        assert b"PCERT1 " + manifest["nonce"].encode() in console[start:end]
    assert {t for r in results for t in r["verifies"]} <= {q["id"] for q in requirements}
    assert proc.returncode == (0 if sum(manifest["summary"].values()) == manifest["summary"]["PASS"]
                               else 1)


@pytest.mark.qemu
def test_qemu_bundle_verifies_and_reports_render(qemu_bundle):
    bundle, _ = qemu_bundle
    assert main(["verify", str(bundle)]) == 0
    manifest, results, testcases, requirements = _load(bundle)
    suite = ET.parse(bundle / "reports" / "junit.xml").getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == len(results)
    text = "\n".join(page.extract_text() for page in PdfReader(bundle / "reports" / "report.pdf").pages)
    assert manifest["run_id"] in text
    assert manifest["kernel"]["package"] in text
    for req in requirements:
        if not req["id"].startswith("REQ-IF-"):
            assert req["id"] in text


def test_host_run_and_rerendered_reports_are_byte_identical(host_bundle):
    bundle, _ = host_bundle
    manifest, results, _, _ = _load(bundle)
    assert manifest["kernel"] is None
    assert len(results) >= 40
    junit = (bundle / "reports" / "junit.xml").read_bytes()
    pdf = (bundle / "reports" / "report.pdf").read_bytes()
    assert main(["report", str(bundle)]) == 0
    assert (bundle / "reports" / "junit.xml").read_bytes() == junit
    assert (bundle / "reports" / "report.pdf").read_bytes() == pdf
    assert main(["verify", str(bundle)]) == 0


def test_presence_only_run_needs_no_boot(tmp_path):
    out = tmp_path / "presence"
    proc = pcert("run", "--target", "host", "--checks", "presence", "--out", str(out))
    assert proc.returncode in (0, 1), proc.stderr
    manifest, results, testcases, _ = _load(out)
    assert manifest["plan"]["checks"] == "presence" and manifest["kernel"] is None
    assert {t["method"] for t in testcases} >= {"compile", "link"}
    assert all(r["console"] is None for r in results)
    assert all(r["reason"] for r in results if r["verdict"] != "PASS")
    verdict = manifest["presence"]
    if verdict["missing"] or verdict["mistyped"]:
        assert verdict["provides_all"] is False
    assert main(["verify", str(out)]) == 0


@pytest.mark.parametrize("tamper", ["change", "remove", "add"])
@pytest.mark.parametrize("name", ["results.jsonl", "console.log", "procedures/pcert_cases.c",
                                  "reports/report.pdf"])
def test_verify_names_every_tampered_file(host_bundle, tmp_path, capsys, tamper, name):
    bundle = tmp_path / "copy"
    shutil.copytree(host_bundle[0], bundle)
    path = bundle / name
    if tamper == "change":
        path.write_bytes(path.read_bytes() + b" ")
    elif tamper == "remove":
        path.unlink()
    else:
        path = path.with_name("extra-" + path.name)
        path.write_bytes(b"not evidence")
    capsys.readouterr()
    assert main(["verify", str(bundle)]) == 1
    assert str(path.relative_to(bundle)) in capsys.readouterr().out


@pytest.mark.parametrize("args, fragment", [
    (["run", "--target", "no-such-target"], "no-such-target"),
    (["run", "--target", "host", "--profile", "face-bogus"], "unknown profile 'face-bogus'"),
    (["run", "--target", "host", "--kernel", "/nonexistent/vmlinuz"], "/nonexistent/vmlinuz"),
    (["verify", "/nonexistent/bundle"], "/nonexistent/bundle"),
])
def test_bad_input_exits_2_with_one_clear_message(args, fragment, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert "Traceback" not in err


def test_malformed_user_spec_is_rejected_with_file_and_line(tmp_path, capsys):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "bad.yaml").write_text("unit: mine\ntitle: x\nrequirements: []\ntest_cases:\n"
                                    "  - id: TC-open-900\n    title: t\n    verifies: [REQ-nope-001]\n"
                                    "    kind: normal\n    body: ''\n    expected: x\n")
    out = tmp_path / "bundle"
    assert main(["run", "--target", "host", "--specs", str(specs), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "REQ-nope-001" in err
    assert not out.exists()


def test_existing_bundle_directory_is_not_overwritten(host_bundle, capsys):
    bundle = host_bundle[0]
    before = sorted(p.name for p in bundle.iterdir())
    assert main(["run", "--target", "host", "--out", str(bundle)]) == 2
    assert str(bundle) in capsys.readouterr().err
    assert sorted(p.name for p in bundle.iterdir()) == before
    assert main(["verify", str(bundle)]) == 0
