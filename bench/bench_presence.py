"""Figures for the presence checks: wall time of a full profile's presence check on one target,
cold (empty cache) and cached (the same again), with the CPU time the compiler used. Prints;
asserts nothing (these machines are shared and noisy).

    .venv/bin/python bench/bench_presence.py [--target linux-x86_64] [--profile posix-2024]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.presence import run_presence  # noqa: E402
from conformance.profiles import load_profile  # noqa: E402
from targets.definition import load_target  # noqa: E402


def _cpu() -> tuple[float, float]:
    """(CPU seconds of the compilers run so far, of this process)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = resource.getrusage(resource.RUSAGE_SELF)
    return children.ru_utime + children.ru_stime, own.ru_utime + own.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="linux-x86_64")
    parser.add_argument("--profile", default="posix-2024")
    args = parser.parse_args()
    target, profile = load_target(args.target), load_profile(args.profile)
    with tempfile.TemporaryDirectory() as cache:
        figures = []
        for label in ("cold", "cached"):
            (cc0, py0), t0 = _cpu(), time.perf_counter()
            run = run_presence(profile, target, multi_process=target.multi_process,
                               cache_dir=Path(cache))
            (cc1, py1), wall = _cpu(), time.perf_counter() - t0
            figures.append((label, wall, cc1 - cc0, py1 - py0, run))
    run = figures[0][-1]
    counts = run.verdict["counts"]
    print(f"presence {profile.label} on {args.target}: {counts['expectations']} expectations, "
          f"{counts['interfaces']} interfaces, {len(run.testcases)} test cases")
    goals = {"cold": "goal <= 10 s on 2 cores", "cached": "goal <= 1 s"}
    for label, wall, cc, py, r in figures:
        cache = r.verdict["cache"]
        print(f"  {label:6}  wall {wall:6.2f} s   CPU: compilers {cc:5.2f} s, pcert {py:5.2f} s   "
              f"cache {cache['hits']} hits / {cache['misses']} misses   ({goals[label]})")
    print(f"  load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"(other work on the machine stretches wall times)")
    print(f"  verdict: provides_all={run.verdict['provides_all']}, "
          + ", ".join(f"{v} {n}" for v, n in run.summary.items() if n))


if __name__ == "__main__":
    main()
