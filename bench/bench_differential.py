"""Figures for the differential checks: every property with the same seed and example budget on
`host` (the agent over a socketpair) and on each QEMU target (the agent over a serial port),
measured in one run of this script: calls per second through the agent, time to a usable
channel, and the whole differential phase. Prints; asserts nothing.

    .venv/bin/python bench/bench_differential.py [--examples 100] [--targets host,linux-x86_64]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.progress import Progress  # noqa: E402
from conformance.run import RunOptions, execute  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--targets", default="host,linux-x86_64,linux-aarch64")
    args = parser.parse_args()
    quiet = Progress(open("/dev/null", "w"), interactive=False)
    print(f"every property (posix-2017), seed 1, at most {args.examples} examples each")
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets.split(","):
            out = Path(tmp) / target
            t0 = time.perf_counter()
            result = execute(RunOptions(target=target, profile="posix-2017", checks="differential",
                                        seed=1, max_examples=args.examples, out=out, jobs=1),
                             progress=quiet)
            wall = time.perf_counter() - t0
            diff = json.loads((out / "manifest.json").read_text())["differential"]
            calls = sum(b["calls"] for b in diff["boots"])
            busy = sum(b["busy_s"] for b in diff["boots"])
            ready = ", ".join(f"{b['ready_s']:.2f} s" for b in diff["boots"])
            print(f"  {target:16} {wall:6.1f} s whole run, {calls} calls, "
                  f"{calls / busy if busy else 0:7.0f} calls/s, channel ready after {ready}; "
                  f"{result.summary.get('FAIL', 0)} FAIL")


if __name__ == "__main__":
    main()
