"""Every target runs a reduced plan end to end through `pcert run` (CI runs every target).

The plan mixes units the targets differ on: file I/O, clocks, threads, semaphores, message
queues, conversions. Each bundle must verify, every test case must have a guest verdict, and
every verdict other than PASS must carry its reason; the bare-metal image, which has neither
threads nor processes, must say so rather than fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.cli import main
from targets.definition import list_targets, load_target
from targets.readiness import check_ready

PLAN = ["TC-open-001", "TC-read-001", "TC-write-001", "TC-close-001", "TC-clock_gettime-001",
        "TC-nanosleep-001", "TC-pthread_create-001", "TC-sem_init-001", "TC-mq_open-001",
        "TC-strtol-convert.b36", "TC-snprintf-format.char"]


def _targets() -> list[str]:
    return [name for name in list_targets() if not name.startswith("example-")]


@pytest.mark.qemu
@pytest.mark.parametrize("name", _targets())
def test_reduced_plan_on_every_target(tmp_path, name):
    target = load_target(name)
    problems = check_ready(target)
    if problems:
        pytest.skip(f"{name} not ready: {'; '.join(problems)}")
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "conformance.cli", "run", "--target", name,
                           "--checks", "behaviour", "--only", ",".join(PLAN), "--out", str(out)],
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode in (0, 1), proc.stderr
    assert main(["verify", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    results = {json.loads(x)["id"]: json.loads(x)
               for x in (out / "results.jsonl").read_text().splitlines()}
    assert sorted(results) == sorted(PLAN)
    assert manifest["status"] == "complete"
    assert all(r["verdict"] not in ("UNINITIATED", "UNRESOLVED") for r in results.values()), \
        {k: (r["verdict"], r["reason"]) for k, r in results.items()}
    assert all(r["reason"] for r in results.values() if r["verdict"] != "PASS")
    for basic in ("TC-open-001", "TC-read-001", "TC-write-001"):
        assert results[basic]["verdict"] == "PASS", results[basic]
    if target.multi_process:  # semihosting reads a closed descriptor as end of file
        assert results["TC-close-001"]["verdict"] == "PASS", results["TC-close-001"]
    if target.kind == "qemu-linux":
        assert manifest["guest"]["ncpu"] == "2"       # Linux targets boot with 2 vCPUs
    if not target.multi_process and target.kind != "host":
        threads = results["TC-pthread_create-001"]
        assert threads["verdict"] == "UNSUPPORTED" and threads["reason"]
