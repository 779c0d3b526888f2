"""Robust execution, end to end: fault injection on the host and in a QEMU guest, a run killed
and resumed, Ctrl-C, and parallel workers giving the same verdicts as one."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.cli import main
from targets.definition import load_target
from targets.errors import TargetError
from targets.readiness import check_ready

FAULTS = Path(__file__).parent / "faults"
NORMAL = ["TC-open-001", "TC-read-001", "TC-write-001", "TC-close-001"]
FAULT_IDS = ["TC-write-901", "TC-nanosleep-901", "TC-write-902", "TC-write-903", "TC-write-904",
             "TC-write-905", "TC-write-906", "TC-write-907"]


def pcert(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "conformance.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def children(pid: int) -> list[int]:
    """The processes `pid` started (any of its threads), as Linux lists them."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def assert_gone(pids: list[int], timeout_s: float = 10) -> None:
    """Every one of `pids` has ended (a zombie nobody reaped has ended too)."""
    deadline = time.monotonic() + timeout_s
    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), f"still running after pcert ended: {pids}"


def run_ok(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", *args],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def verdicts(bundle: Path) -> dict[str, tuple[str, str]]:
    rows = [json.loads(x) for x in (bundle / "results.jsonl").read_text().splitlines()]
    return {r["id"]: (r["verdict"], r["reason"]) for r in rows}


def jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def ready(target: str) -> None:
    problems = check_ready(load_target(target))
    if problems:
        pytest.skip(f"{target} not ready: {'; '.join(problems)}")


def test_faults_on_the_host_are_classified_and_lose_nothing(tmp_path):
    out = tmp_path / "b"
    run_ok("run", "--target", "host", "--specs", str(FAULTS), "--only",
           ",".join(FAULT_IDS + NORMAL), "--out", str(out), "-j", "1")
    v = verdicts(out)
    assert v["TC-write-901"] == ("UNRESOLVED", "crashed: SIGSEGV")
    assert v["TC-nanosleep-901"] == ("UNRESOLVED", "hung: no result after 2 s")
    assert v["TC-write-902"] == ("UNRESOLVED", "exited with status 3 without a verdict")
    # Killing the runtime ends the "boot"; the case is tried once more, then given up.
    assert v["TC-write-903"][0] == "UNRESOLVED"
    assert "runtime killed by SIGKILL" in v["TC-write-903"][1]
    assert "took the OS down 2 times" in v["TC-write-903"][1]
    assert v["TC-write-904"][0] == v["TC-write-905"][0] == "UNTESTED"
    assert v["TC-write-906"] == ("PASS", "")
    assert v["TC-write-907"][0] == "FAIL"        # the forged PASS records never count
    assert all(v[tc] == ("PASS", "") for tc in NORMAL)
    boots = jsonl(out / "boots.jsonl")
    assert [b["in_flight"] for b in boots if b["stop"]] == ["TC-write-903", "TC-write-903"]
    assert main(["verify", str(out)]) == 0


@pytest.mark.qemu
def test_faults_in_a_linux_guest_are_classified_and_lose_nothing(tmp_path):
    ready("linux-x86_64")
    out = tmp_path / "b"
    run_ok("run", "--target", "linux-x86_64", "--specs", str(FAULTS), "--only",
           ",".join(FAULT_IDS + NORMAL), "--out", str(out), "-j", "1")
    v = verdicts(out)
    assert v["TC-write-901"] == ("UNRESOLVED", "crashed: SIGSEGV")
    assert v["TC-nanosleep-901"] == ("UNRESOLVED", "hung: no result after 2 s")
    assert v["TC-write-902"] == ("UNRESOLVED", "exited with status 3 without a verdict")
    assert v["TC-write-903"] == ("PASS", "")     # Linux protects init from the signal
    panic, reset = v["TC-write-904"], v["TC-write-905"]
    assert panic[0] == "UNRESOLVED" and panic[1].startswith("kernel panic: sysrq triggered crash")
    assert reset[0] == "UNRESOLVED" and reset[1].startswith("guest reset")
    assert "took the OS down 2 times" in panic[1] and "took the OS down 2 times" in reset[1]
    assert v["TC-write-906"] == ("PASS", "")     # megabytes of noise lose nothing
    assert v["TC-write-907"][0] == "FAIL"
    assert all(v[tc] == ("PASS", "") for tc in NORMAL)
    # Forged records written straight to the console were rejected and kept as anomalies.
    assert any("CRC" in a["reason"] or "crc" in a["reason"] for a in jsonl(out / "anomalies.jsonl"))
    results = jsonl(out / "results.jsonl")
    attempts = {r["id"]: r["attempts"] for r in results}
    assert len(attempts["TC-write-904"]) == 2 and len(attempts["TC-write-905"]) == 2
    console = (out / "console.log").read_bytes()
    for attempt in attempts["TC-write-904"]:
        assert b"sysrq" in console[attempt["console"]["start"]:attempt["console"]["end"]]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["exit"]["boots"] == 5
    assert main(["verify", str(out)]) == 0


@pytest.mark.qemu
def test_faults_on_bare_metal_reboot_at_the_next_test_case(tmp_path):
    ready("baremetal-aarch64-picolibc")
    out = tmp_path / "b"
    run_ok("run", "--target", "baremetal-aarch64-picolibc", "--checks", "behaviour",
           "--specs", str(FAULTS), "--only", ",".join(FAULT_IDS + NORMAL[:3]), "--out", str(out),
           "-j", "1")
    v = verdicts(out)
    # No processes: a crash, a hang or an exit ends the image; the host boots it again at the
    # next test case, tries the culprit once more, then gives up on it.
    crash, hang, exit_ = v["TC-write-901"], v["TC-nanosleep-901"], v["TC-write-902"]
    assert crash[0] == hang[0] == exit_[0] == "UNRESOLVED"
    assert crash[1].startswith("guest exited with status")
    assert hang[1].startswith("hung: no progress for 20 s")   # the target floor (its own 2+15 s is less)
    assert exit_[1].startswith("guest exited with status 3")
    assert all("took the OS down 2 times" in r for _, r in (crash, hang, exit_))
    assert v["TC-write-903"][0] == v["TC-write-904"][0] == v["TC-write-905"][0] == "UNTESTED"
    assert v["TC-write-906"] == ("PASS", "")
    assert v["TC-write-907"][0] == "FAIL"
    assert all(v[tc] == ("PASS", "") for tc in NORMAL[:3])
    assert main(["verify", str(out)]) == 0


def _wait_for(path: Path, needle: bytes, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_bytes():
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never appeared in {path}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_run_resumes_to_the_same_verdicts(tmp_path, how):
    plan = NORMAL[:2] + ["TC-nanosleep-902", "TC-write-901"] + NORMAL[2:]
    common = ["--target", "host", "--specs", str(FAULTS), "--only", ",".join(plan), "-j", "1"]
    whole = tmp_path / "whole"
    run_ok("run", *common, "--out", str(whole))

    cut = tmp_path / "cut"
    proc = pcert("run", *common, "--out", str(cut))
    _wait_for(cut / "console.log", b"id=TC-nanosleep-902")   # inside the slow test case
    # ... and after a checkpoint has sealed the results before it.
    _wait_for(cut / "results.jsonl", b'"verdict":"PASS"')
    machines = children(proc.pid)
    proc.send_signal(how)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == (-signal.SIGKILL if how == signal.SIGKILL else 2)
    assert machines
    assert_gone(machines)     # even after SIGKILL: they die with the thread that started them
    if how == signal.SIGINT:
        assert f"pcert run --resume {cut}" in err
    manifest = json.loads((cut / "manifest.json").read_text())
    assert manifest["status"] == "incomplete"
    assert main(["verify", str(cut)]) == 0       # accepted, as incomplete
    before = verdicts(cut)
    assert before["TC-close-001"] == ("PASS", "")  # obtained before the cut (plan order), kept

    run_ok("run", "--resume", str(cut))
    assert json.loads((cut / "manifest.json").read_text())["status"] == "complete"
    assert {k: v[0] for k, v in verdicts(cut).items()} == {k: v[0] for k, v in verdicts(whole).items()}
    assert main(["verify", str(cut)]) == 0
    assert main(["run", "--resume", str(cut)]) == 2   # a complete run cannot be resumed


def test_parallel_workers_give_the_verdicts_of_one(tmp_path):
    plan = NORMAL + ["TC-write-901", "TC-write-902", "TC-write-903", "TC-write-907",
                     "TC-mkdir-001", "TC-rmdir-001", "TC-lseek-001", "TC-stat-001"]
    common = ["--target", "host", "--specs", str(FAULTS), "--only", ",".join(plan)]
    one, two = tmp_path / "one", tmp_path / "two"
    run_ok("run", *common, "-j", "1", "--out", str(one))
    run_ok("run", *common, "-j", "2", "--out", str(two))
    assert {k: v[0] for k, v in verdicts(one).items()} == {k: v[0] for k, v in verdicts(two).items()}
    assert (two / "console.w1.log").exists()
    rows = jsonl(two / "results.jsonl")
    assert {r["console"].get("file", "console.log") for r in rows if r["console"]} == \
        {"console.log", "console.w1.log"}
    assert main(["verify", str(two)]) == 0
    assert main(["report", str(two)]) == 0       # slices come from each worker's own log


def test_user_specs_may_not_reuse_builtin_ids(tmp_path, capsys):
    specs = tmp_path / "mine"
    specs.mkdir()
    (specs / "mine.yaml").write_text(
        "unit: mine\ntitle: mine\nrequirements:\n"
        "  - id: REQ-open-001\n    interface: open\n    source: {standard: x, section: y}\n"
        "    text: mine\n    method: test\ntest_cases: []\n")
    assert main(["run", "--target", "host", "--specs", str(specs), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "REQ-open-001" in err and "mine.yaml" in err


def test_a_tool_failing_before_the_first_boot_leaves_no_bundle_half_written(tmp_path, monkeypatch,
                                                                             capsys):
    """The tools' versions and hashes are learnt while the static files are written; when
    that fails, the files already written go again."""
    import conformance.run

    def broken(*args):
        raise TargetError("qemu-system-x86_64 --version failed: no such machine")

    monkeypatch.setattr(conformance.run, "_manifest_base", broken)
    given, made = tmp_path / "given", tmp_path / "made"
    given.mkdir()
    for out in (given, made):
        assert main(["run", "--target", "host", "--checks", "behaviour", "--only",
                     "TC-open-001", "--out", str(out)]) == 2
        assert "--version failed" in capsys.readouterr().err
    assert list(given.iterdir()) == [] and not made.exists()


GOOD_BOOT = {"worker": 0, "boot": 0, "env": {"PCERT_FIRST": "0", "PCERT_END": "4"},
             "reason": "running", "stop": "", "exit_status": None,
             "console": {"file": "console.log", "start": 0, "end": 0}, "first_output_s": None,
             "wall_s": 0.0, "in_flight": None}


@pytest.mark.parametrize("line, why", [
    (b"{not json", "Expecting property name"),
    (b"[]", "not a JSON object"),
    (json.dumps({**GOOD_BOOT, "colour": 1}).encode(), "unknown field 'colour'"),
    (json.dumps({k: v for k, v in GOOD_BOOT.items() if k != "console"}).encode(), "no 'console'"),
    (json.dumps({**GOOD_BOOT, "boot": "0"}).encode(), "boot '0'"),
    (json.dumps({**GOOD_BOOT, "env": {"PCERT_FIRST": "-1"}}).encode(),
     "env PCERT_FIRST '-1' is not a number"),
    (json.dumps({**GOOD_BOOT, "console": {"start": 9, "end": 3}}).encode(), "console"),
])
def test_a_corrupt_boots_line_stops_a_resume_naming_file_and_line(tmp_path, line, why):
    """Before a resume replays anything, every boot it would replay is checked: a corrupt one
    is one clear message, not a traceback from deep inside the replay."""
    from conformance.errors import RunError
    from conformance.run import _resumable_boots
    boots = tmp_path / "boots.jsonl"
    boots.write_bytes(json.dumps(GOOD_BOOT).encode() + b"\n" + line + b"\n")
    with pytest.raises(RunError) as raised:
        _resumable_boots(boots)
    assert str(raised.value).startswith(f"{boots}: line 2: ")
    assert why in str(raised.value) and str(raised.value).endswith("cannot be resumed")
    boots.write_bytes(json.dumps(GOOD_BOOT).encode() + b"\n")
    assert _resumable_boots(boots) == [GOOD_BOOT]
