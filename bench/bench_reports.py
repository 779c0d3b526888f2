"""Wall time of ``render_reports`` (the end of every ``pcert run``) for a given bundle: the median
of several renderings, each of a fresh copy of the bundle in a fresh process (so no cache of an
earlier rendering helps), and the sha256 of every file written (the same bundle must give the
same bytes: compare the sums before and after a change). Without a bundle, a synthetic one
(bench_evidence.py) of ``--cases`` test cases. Prints; asserts nothing (these machines are
noisy).

    .venv/bin/python bench/bench_reports.py runs/nightly [--repeat 3] [--sums]
    .venv/bin/python bench/bench_reports.py --cases 3000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_evidence import synthetic_bundle  # noqa: E402
from evidence import format as fmt  # noqa: E402
from reports.render import render_reports  # noqa: E402

ONCE = "--render-once"         # internal: render one copy in this process, print the times


def fresh_copy(bundle: Path, into: Path) -> Path:
    """The bundle without its reports: every rendering starts from the same state."""
    copy = into / bundle.name
    shutil.copytree(bundle, copy, symlinks=True,
                    ignore=lambda folder, names: [fmt.REPORTS_DIR] if Path(folder) == bundle
                    else [])
    return copy


def render_once(copy: Path) -> None:
    """Render ``copy``'s reports here (imports already done, as in ``pcert run``); print the
    wall time and the CPU time of this process and its children."""
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    render_reports(copy)
    print(f"{time.perf_counter() - start:.4f} {_cpu_seconds() - cpu_before:.4f}")


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def timed_render(bundle: Path) -> tuple[float, float, dict[str, str]]:
    """(wall s, CPU s, sha256 of each report file) of one rendering in a new process."""
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
        copy = fresh_copy(bundle, Path(tmp))
        done = subprocess.run([sys.executable, __file__, ONCE, str(copy)], check=True,
                              capture_output=True, text=True)
        wall, cpu = (float(value) for value in done.stdout.split())
        reports = copy / fmt.REPORTS_DIR
        sums = {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
                for path in sorted(reports.iterdir())}
    return wall, cpu, sums


def report(args: argparse.Namespace) -> None:
    """Render ``args.bundle`` ``args.repeat`` times; print the times (and sums)."""
    walls, sums_seen = [], []
    for number in range(1, args.repeat + 1):
        wall, cpu, sums = timed_render(args.bundle)
        walls.append(wall)
        sums_seen.append(sums)
        print(f"rendering {number}: {wall:6.2f} s wall {cpu:6.2f} s cpu", flush=True)
    print(f"render_reports {args.bundle}: median {statistics.median(walls):.2f} s wall of "
          f"{args.repeat}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if any(sums != sums_seen[0] for sums in sums_seen):
        print("WARNING: renderings of the same bundle differ")
    if args.sums:
        for name, digest in sums_seen[0].items():
            print(f"{digest}  {name}")


def main() -> None:
    if sys.argv[1:2] == [ONCE]:
        render_once(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, nargs="?", help="a run's bundle directory")
    parser.add_argument("--cases", type=int, default=3000,
                        help="without a bundle: test cases of the synthetic one (default 3000)")
    parser.add_argument("--repeat", type=int, default=3, help="renderings (default 3)")
    parser.add_argument("--sums", action="store_true", help="print the sha256 of every report")
    args = parser.parse_args()
    if args.bundle is None:
        with tempfile.TemporaryDirectory(prefix="bench-reports-") as tmp:
            args.bundle = synthetic_bundle(Path(tmp) / "synthetic", args.cases,
                                           args.cases * 3 // 10, 1, "20261126T160000Z")
            report(args)
    else:
        report(args)


if __name__ == "__main__":
    main()
