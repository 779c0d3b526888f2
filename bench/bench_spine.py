"""Figures for the spine: first result after QEMU starts, guest overhead per test case, whole-run
wall time, cold and cached build time. Prints; asserts nothing (these machines are noisy).

    .venv/bin/python bench/bench_spine.py [--target linux-x86_64] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.catalog import Catalog  # noqa: E402
from conformance.generate import generate  # noqa: E402
from conformance.plan import make_plan  # noqa: E402
from conformance.profiles import load_profile  # noqa: E402
from conformance.progress import Progress  # noqa: E402
from conformance.run import RunOptions, _stage_sources, execute, runtime_dir  # noqa: E402
from targets.definition import load_target  # noqa: E402
from targets.toolchain import Toolchain  # noqa: E402


def build_times(target_name: str) -> tuple[float, float]:
    """Generate + compile into an empty cache, then the same again (cache hit)."""
    target = load_target(target_name)
    catalog = Catalog.load()
    plan = make_plan(catalog, load_profile("face-safety-base"), multi_process=target.multi_process)
    rt = runtime_dir()
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(2):
            t0 = time.perf_counter()
            sources = generate(catalog.spec_set, [tc.id for tc in plan.test_cases])
            stage = _stage_sources(sources.files, Path(cache))
            Toolchain.for_target(target).cached_build(
                [*(stage / n for n in sorted(sources.files)), rt / "pcert.c"], [rt],
                Path(cache) / "build")
            times.append(time.perf_counter() - t0)
    return times[0], times[1]


def one_run(target_name: str, out: Path) -> dict:
    quiet = Progress(open("/dev/null", "w"), interactive=False)
    t0 = time.perf_counter()
    # One worker: the figures are per boot, and a second QEMU would share the two cores.
    execute(RunOptions(target=target_name, out=out, jobs=1, checks="behaviour"), progress=quiet)
    total = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    timed = [r for r in results if r["host_time"] and r["host_time"]["end"] is not None]
    span = timed[-1]["host_time"]["end"] - timed[0]["host_time"]["start"]
    in_tests = sum(r["guest_duration_s"] or 0 for r in timed)
    return {
        "first_result_s": manifest["exit"]["first_result_s"],
        "machine_wall_s": manifest["exit"]["wall_s"],
        "pcert_run_s": total,
        "overhead_ms": 1000 * (span - in_tests) / max(1, len(timed) - 1),
        "cases": len(results),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="linux-x86_64")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    cold, cached = build_times(args.target)
    print(f"build ({args.target}): cold {cold:.2f} s, cached {cached:.3f} s   (goal: cached <= 2 s)")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            runs.append(one_run(args.target, Path(tmp) / f"run{i}"))
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"run ({args.target}, {runs[0]['cases']} test cases, median of {len(runs)}):")
    print(f"  first result after machine start  {med['first_result_s']:.2f} s   (goal <= 3 s)")
    print(f"  guest overhead per test case      {med['overhead_ms']:.2f} ms  (goal <= 5 ms)")
    print(f"  machine wall time                 {med['machine_wall_s']:.2f} s")
    print(f"  whole pcert run (build..reports)  {med['pcert_run_s']:.2f} s")


if __name__ == "__main__":
    main()
