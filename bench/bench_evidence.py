"""Figures for the evidence package: rendering time of the document set (PDF, HTML, JUnit, CSV,
ReqIF) for a synthetic bundle of 10,000 test cases and 3,000 requirements, and the time to
diff two such bundles (with the run index). Goals: PDF <= 15 s, diff <= 3 s. Prints; asserts
nothing (these machines are noisy).

    .venv/bin/python bench/bench_evidence.py [--cases 10000] [--requirements 3000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from evidence.diff import diff_bundles  # noqa: E402
from evidence.format import VERDICTS  # noqa: E402
from evidence.index import RunIndex  # noqa: E402
from evidence.reader import Bundle  # noqa: E402
from evidence.writer import BundleWriter  # noqa: E402
from reports.exports import render_csv, render_reqif  # noqa: E402
from reports.html import render_html  # noqa: E402
from reports.junit import render_junit  # noqa: E402
from reports.model import analyse  # noqa: E402
from reports.pdf import render_pdf  # noqa: E402

UNITS = ("file-io", "clocks", "threads", "signals", "mutex", "semaphores", "message-queues",
         "sockets", "memory", "process")
REASONS = {"FAIL": "read(fd, buf, 1): got -1 (errno EBADF), want 0",
           "UNRESOLVED": "crashed: SIGSEGV", "UNSUPPORTED": "option _POSIX_TIMERS not supported",
           "UNTESTED": "needs a writable /tmp", "UNINITIATED": "not reported"}


def synthetic_bundle(directory: Path, n_cases: int, n_requirements: int, seed: int,
                     stamp: str) -> Path:
    """A schema-valid bundle: ~90 % of the requirements verified by 1-2 test cases each, a few
    percent of the verdicts not PASS (seeded, so two seeds differ in a few verdicts)."""
    rng = random.Random(seed)
    layout = random.Random(0)            # the plan is the same for every seed
    requirements = []
    for number in range(n_requirements):
        unit = UNITS[number % len(UNITS)]
        text = (f"Requirement {number} of unit {unit}: the interface returns the documented "
                f"value and sets errno as the standard describes for case {number}.")
        requirements.append({
            "id": f"REQ-{unit}-{number:05d}", "interface": f"if{number % 400}", "unit": unit,
            "text": text, "source": {"standard": "POSIX.1-2017", "section": f"if{number % 400}()"},
            "method": "test" if number % 5 else "link", "status": "active",
            "fingerprint": hashlib.sha256(text.encode()).hexdigest(),
            "profiles": ["face-safety-base@3.2"] + (["pse52"] if number % 2 else [])})
    requirements.sort(key=lambda r: r["id"])
    tested = [r["id"] for r in requirements][: int(n_requirements * 0.9)]
    files: dict[str, str] = {}
    testcases, results, console = [], [], bytearray()
    for index in range(n_cases):
        unit = UNITS[index % len(UNITS)]
        tc_id = f"TC-{unit}-{index:05d}"
        function = "tc_" + tc_id.replace("-", "_")
        body = (f"/* {tc_id}: synthetic */\nvoid {function}(void)\n{{\n    int ret;\n"
                f"    ret = probe({index});\n    PCERT_ASSERT_INT(ret, ==, 0);\n}}\n")
        name = f"procedures/{unit}-{index // 500}.c"
        files[name] = files.get(name, '#include "pcert.h"\n\n') + body + "\n"
        verifies = sorted({tested[layout.randrange(len(tested))]
                           for _ in range(1 + (index % 4 == 0))})
        testcases.append({
            "id": tc_id, "index": index, "title": f"synthetic check {index} of {unit}",
            "unit": unit, "interface": f"if{index % 400}",
            "kind": "robustness" if index % 3 == 2 else "normal", "verifies": verifies,
            "options": [], "timeout_s": 10, "inputs": f"ret = probe({index});",
            "expected": "returns 0",
            "procedure": {"file": name, "function": function,
                          "sha256": hashlib.sha256(body.encode()).hexdigest()}})
        roll = rng.random()
        verdict = ("FAIL" if roll < 0.02 else "UNRESOLVED" if roll < 0.03 else
                   "UNSUPPORTED" if roll < 0.05 else "PASS")
        start = len(console)
        console += f"PCERT1 0123456789abcdef {index} result idx={index} id={tc_id} {verdict}\n".encode()
        results.append({
            "id": tc_id, "index": index, "verdict": verdict, "code": VERDICTS[verdict],
            "reason": REASONS.get(verdict, ""), "file": f"{unit}.c" if verdict != "PASS" else "",
            "line": 42 if verdict != "PASS" else None, "guest_duration_s": 0.001,
            "console": {"start": start, "end": len(console)},
            "host_time": {"start": index * 0.01, "end": index * 0.01 + 0.005},
            "verifies": verifies, "procedure_sha256": testcases[-1]["procedure"]["sha256"]})
    writer = BundleWriter(directory)
    for name, text in sorted(files.items()):
        writer.write_bytes(name, text.encode())
    writer.write_json("requirements.json", requirements)
    writer.write_json("testcases.json", testcases)
    writer.write_jsonl("results.jsonl", results)
    writer.write_bytes("console.log", bytes(console))
    writer.finalize({
        "run_id": f"{stamp}-linux-x86_64-{seed:06x}", "started_utc": _utc(stamp),
        "finished_utc": _utc(stamp), "pcert": {"version": "0.1.0", "git_commit": None},
        "plan": {"profile": "face-safety-base", "edition": "3.2", "checks": "behaviour",
                 "test_cases": n_cases, "requirements": n_requirements},
        "target": {"name": "linux-x86_64"}, "tools": {}, "kernel": None,
        "image": {"kind": "initramfs", "sha256": "5" * 64, "size": 1},
        "command": ["qemu-system-x86_64"], "nonce": "0123456789abcdef", "guest": {},
        "exit": {"reason": "powered off", "status": 0, "wall_s": 1.0}})
    return directory


def _utc(stamp: str) -> str:
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"


def timed(label: str, action):
    """Run ``action``; print its wall time and this process's CPU time (on a busy machine the
    CPU time says more about the code)."""
    start, cpu = time.perf_counter(), time.process_time()
    value = action()
    print(f"{label:<42} {time.perf_counter() - start:7.2f} s wall "
          f"{time.process_time() - cpu:7.2f} s cpu", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--requirements", type=int, default=3_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_path = timed("write base bundle (setup)", lambda: synthetic_bundle(
            tmp / "base", args.cases, args.requirements, 1, "20261126T160000Z"))
        new_path = timed("write new bundle (setup)", lambda: synthetic_bundle(
            tmp / "new", args.cases, args.requirements, 2, "20261127T160000Z"))
        print(f"bundle: {args.cases} test cases, {args.requirements} requirements; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        bundle = Bundle.open(base_path)
        timed("read and analyse", lambda: analyse(Bundle.open(base_path)))
        pdf = timed("render PDF (goal <= 15 s)", lambda: render_pdf(bundle))
        print(f"  PDF: {len(pdf) / 1e6:.1f} MB")
        html = timed("render HTML", lambda: render_html(bundle))
        print(f"  HTML: {len(html) / 1e6:.1f} MB")
        timed("render JUnit", lambda: render_junit(bundle))
        timed("render CSV", lambda: render_csv(bundle))
        timed("render ReqIF", lambda: render_reqif(bundle))
        index = RunIndex(tmp / "index.sqlite")
        timed("index both runs", lambda: (index.add(base_path), index.add(new_path)))
        report = timed("diff base new, indexed (goal <= 3 s)", lambda: diff_bundles(
            Bundle.open(base_path), Bundle.open(new_path), index=index))
        timed("diff base new, from the bundles", lambda: diff_bundles(
            Bundle.open(base_path), Bundle.open(new_path)))
        print("  " + ", ".join(f"{c}: {len(report.of(c, 'testcase'))}"
                               for c in ("new failure", "fixed", "still failing", "flaky")))


if __name__ == "__main__":
    main()
