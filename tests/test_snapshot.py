"""Booting from a saved VM state (docs/snapshot.md), in real QEMU guests: the same verdicts as
cold boots, the evidence says how each boot started, a broken state falls back to a cold boot,
an image that never waits for its parameters gives a clear SnapshotError."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from targets import kernel as kernels
from targets.definition import load_target
from targets.drivers.qemu import QemuMachine
from targets.drivers.qemu_snapshot import RestoringQemuMachine
from targets.image import build_image
from targets.protocol import RecordParser
from targets.readiness import check_ready
from targets.snapshot import SnapshotError, ensure_snapshot

FAULTS = Path(__file__).parent / "faults"
# 904 panics the kernel; fileno-descriptor.file dup2()s onto descriptor 7, which a restored
# runner (holding the PCERT_PARAMS channel open) once had as its verdict pipe.
CASES = ["TC-open-001", "TC-read-001", "TC-write-904", "TC-close-001",
         "TC-fileno-descriptor.file"]
NONCE = "0123456789abcdef"

pytestmark = pytest.mark.qemu


def ready(target: str):
    t = load_target(target)
    problems = check_ready(t)
    if problems:
        pytest.skip(f"{target} not ready: {'; '.join(problems)}")
    return t


def pcert_run(out: Path, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target",
                           "linux-x86_64", "--specs", str(FAULTS), "--only", ",".join(CASES),
                           "--checks", "behaviour", "-j", "1", "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads((out / "manifest.json").read_text())


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def verdicts(bundle: Path) -> dict[str, tuple[str, str]]:
    return {r["id"]: (r["verdict"], r["reason"]) for r in rows(bundle / "results.jsonl")}


def test_restored_boots_give_the_verdicts_of_cold_boots(tmp_path):
    ready("linux-x86_64")
    snap = pcert_run(tmp_path / "snap")
    cold = pcert_run(tmp_path / "cold", "--boot", "cold")
    assert verdicts(tmp_path / "snap") == verdicts(tmp_path / "cold")
    assert verdicts(tmp_path / "snap")["TC-fileno-descriptor.file"] == ("PASS", "")
    verdict, reason = verdicts(tmp_path / "snap")["TC-write-904"]
    assert verdict == "UNRESOLVED" and "kernel panic" in reason  # it took the OS down twice

    assert snap["boot"]["method"] == "snapshot"
    assert snap["boot"]["console"] == "snapshot.log"
    log = (tmp_path / "snap" / "snapshot.log").read_bytes()
    assert snap["boot"]["snapshot"]["console_sha256"] == __import__("hashlib").sha256(log).hexdigest()
    # The saved boot ends with its ready record, framed with the snapshot's own nonce.
    assert [r.kind for r in RecordParser(snap["boot"]["snapshot"]["nonce"]).feed(log)] == ["ready"]
    # Every boot, also the retry after the kernel panic, restored the state.
    boots = rows(tmp_path / "snap" / "boots.jsonl")
    assert len(boots) == 2 and {b["method"] for b in boots} == {"snapshot"}
    assert cold["boot"] == {"method": "cold", "why": "pcert run --boot cold"}
    assert {b["method"] for b in rows(tmp_path / "cold" / "boots.jsonl")} == {"cold"}
    assert main(["verify", str(tmp_path / "snap")]) == 0


def _prepared(tmp_path: Path):
    """A cached snapshot of a small image, and what made it."""
    target = ready("linux-x86_64")
    from conformance.catalog import Catalog
    from conformance.generate import generate
    from conformance.run import cache_root, runtime_dir
    from targets.toolchain import Toolchain
    cache = cache_root()
    ids = ["TC-open-001", "TC-close-001"]
    sources = generate(Catalog.load().spec_set, ids)
    stage = tmp_path / "src"
    stage.mkdir()
    for name, data in sources.files.items():
        (stage / name).write_bytes(data)
    rt = runtime_dir()
    binary = Toolchain.for_target(target).cached_build_info(
        [*(stage / n for n in sorted(sources.files)), rt / "pcert.c", rt / "pcert_agent.c"],
        [rt], cache / "build").path
    image = build_image(target, binary, cache / "images" / binary.parent.name)
    kernel = kernels.ensure_kernel(target, cache_dir=cache / "kernels")
    qemu = QemuMachine(target, kernel.path, image.path, {}).sha256()
    return target, kernel, image, qemu, tmp_path / "snapshots"


def test_a_snapshot_is_made_once_and_made_again_when_its_state_or_ram_changed(tmp_path):
    target, kernel, image, qemu, store = _prepared(tmp_path)
    first = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
    again = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
    assert again == first and first.ram_size == 512 << 20 and first.size < first.ram_size
    ram_before = first.ram_path.read_bytes()
    # A restored guest writes its RAM copy-on-write: the file stays as it was saved.
    assert _boot(RestoringQemuMachine(target, kernel.path, image.path,
                                      {"PCERT_NONCE": NONCE, "PCERT_ONLY": "TC-open-001"},
                                      snapshot=first))[1].reason == "powered off"
    assert first.ram_path.read_bytes() == ram_before
    # A touched RAM file with the same bytes is hashed again once, and kept.
    os.utime(first.ram_path, ns=(1, 1))
    assert ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu) == first
    meta = json.loads((first.directory / "snapshot.json").read_text())
    assert meta["ram_identity"][2] == 1
    for damaged in (first.path, first.ram_path):
        made = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
        with open(damaged, "r+b") as f:
            f.seek(f.seek(0, 2) // 2)
            f.write(b"\0garbage\0")
        remade = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
        assert remade.nonce != made.nonce, damaged.name


def _boot(machine) -> tuple[list, object]:
    out = bytearray()
    outcome = machine.run(out.extend, idle_timeout_s=60, run_timeout_s=300)
    return RecordParser(NONCE).feed(bytes(out)), outcome


def test_a_state_qemu_cannot_load_falls_back_to_a_cold_boot_with_the_same_parameters(tmp_path):
    target, kernel, image, qemu, store = _prepared(tmp_path)
    good = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
    broken_dir = tmp_path / "broken"
    broken_dir.mkdir()
    (broken_dir / "state").write_bytes(b"not a QEMU migration stream\n" * 100)
    broken = dataclasses.replace(good, directory=broken_dir)
    heard = []
    machine = RestoringQemuMachine(target, kernel.path, image.path,
                                   {"PCERT_NONCE": NONCE, "PCERT_FIRST": "1"}, snapshot=broken,
                                   on_restore_failed=heard.append)
    records, outcome = _boot(machine)
    assert machine.boot_method.startswith("cold (snapshot restore failed: ")
    assert heard and heard[0] in machine.boot_method
    assert [r.kind for r in records][0] == "start" and records[0].fields["first"] == "1"
    assert [r.fields["id"] for r in records if r.kind == "result"] == ["TC-close-001"]
    assert records[-1].kind == "end" and outcome.reason == "powered off"


def test_restored_guests_take_their_parameters_over_the_channel(tmp_path):
    target, kernel, image, qemu, store = _prepared(tmp_path)
    snap = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
    machine = RestoringQemuMachine(target, kernel.path, image.path,
                                   {"PCERT_NONCE": NONCE, "PCERT_ONLY": "TC-open-001"},
                                   snapshot=snap)
    records, outcome = _boot(machine)
    assert machine.boot_method == "snapshot"
    assert [r.kind for r in records] == ["start", "begin", "result", "end"]
    assert records[2].fields["id"] == "TC-open-001" and records[2].fields["verdict"] == "PASS"
    assert outcome.first_output_s is not None and outcome.reason == "powered off"


def test_a_restored_guest_waiting_for_more_runs_the_range_it_is_sent(tmp_path):
    """After its range the runtime says `idle` and waits (docs/protocol.md): a range sent then
    runs in the same boot, confirmed in a `more` record; a line that is not a range of the plan
    ends the listening, and the run."""
    target, kernel, image, qemu, store = _prepared(tmp_path)
    snap = ensure_snapshot(target, kernel, image, store, qemu_sha256=qemu)
    machine = RestoringQemuMachine(target, kernel.path, image.path,
                                   {"PCERT_NONCE": NONCE, "PCERT_FIRST": "0", "PCERT_END": "1"},
                                   snapshot=snap)
    answers = [{"PCERT_NONCE": NONCE, "PCERT_FIRST": "1", "PCERT_END": "2", "PCERT_STEP": "1"},
               {"PCERT_NONCE": NONCE, "PCERT_FIRST": "2", "PCERT_END": "1"}]
    out = bytearray()

    def on_output(data: bytes) -> None:
        out.extend(data)
        if answers and out.count(b" idle clock=") == 3 - len(answers):
            machine.send_params(answers.pop(0))

    outcome = machine.run(on_output, idle_timeout_s=60, run_timeout_s=300)
    records = RecordParser(NONCE).feed(bytes(out))
    assert [r.kind for r in records] == ["start", "begin", "result", "idle", "more", "begin",
                                         "result", "idle", "end"]
    assert {k: records[4].fields[k] for k in ("first", "end", "step")} == {
        "first": "1", "end": "2", "step": "1"}
    assert [r.fields["idx"] for r in records if r.kind == "result"] == ["0", "1"]
    assert records[-1].fields["ran"] == "2" and outcome.reason == "powered off"
    assert (b"pcert: PCERT_PARAMS: PCERT_FIRST, PCERT_END and PCERT_STEP must give a range of "
            b"the plan; no longer listening") in out


def test_an_image_that_never_waits_for_parameters_gives_a_snapshot_error(tmp_path):
    target, kernel, image, qemu, store = _prepared(tmp_path)
    # A plain static program as /init: it exits at once, the kernel panics, QEMU ends.
    src = tmp_path / "exit.c"
    src.write_text("int main(void) { return 0; }\n")
    binary = tmp_path / "exit"
    subprocess.run([target.toolchain.cc, "-static", "-o", str(binary), str(src)], check=True)
    other = build_image(target, binary, tmp_path / "image")
    with pytest.raises(SnapshotError, match="before the runtime waited for its parameters"):
        ensure_snapshot(target, kernel, other, store, qemu_sha256=qemu)
    assert not any(p for p in store.iterdir() if not p.name.startswith("."))
