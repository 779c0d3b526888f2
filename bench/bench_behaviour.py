"""Figures for the behavioural suite (FACE Safety Extended): cold build time of all procedures,
and the wall time of the whole suite in linux-x86_64 (QEMU, one boot per worker) against the
same runner executed natively on the host, as a ratio measured in one run of this script.
Goal: QEMU <= 3 x native + boot. Prints; asserts nothing (these machines are noisy).

    .venv/bin/python bench/bench_behaviour.py [--profile face-safety-extended]
"""

from __future__ import annotations

import argparse
import json
import os
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


def cold_build_s(profile: str, cache: Path) -> tuple[float, int, int]:
    """Seconds to generate and compile every procedure into an empty cache (one gcc call)."""
    target = load_target("linux-x86_64")
    catalog = Catalog.load()
    plan = make_plan(catalog, load_profile(profile), multi_process=True)
    rt = runtime_dir()
    t0 = time.perf_counter()
    sources = generate(catalog.spec_set, [tc.id for tc in plan.test_cases])
    stage = _stage_sources(sources.files, cache)
    Toolchain.for_target(target).cached_build(
        [*(stage / n for n in sorted(sources.files)), rt / "pcert.c"], [rt], cache / "build")
    return time.perf_counter() - t0, len(plan.test_cases), len(sources.files)


def suite_run(target: str, profile: str, out: Path) -> dict:
    """One run of the suite; the machine's wall time, boot time and verdict counts."""
    quiet = Progress(open(os.devnull, "w"), interactive=False)
    t0 = time.perf_counter()
    result = execute(RunOptions(target=target, profile=profile, out=out), progress=quiet)
    total = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    exit_ = manifest["exit"]
    return {"total_s": total, "wall_s": exit_["wall_s"],
            "boot_s": exit_.get("first_output_s") or 0.0,
            "boots": exit_.get("boots", 1), "summary": result.summary}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="face-safety-extended")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build_s, cases, files = cold_build_s(args.profile, tmp / "cold")
        print(f"cold build: {cases} test cases in {files} generated files: {build_s:.1f} s "
              f"(one gcc invocation, {os.cpu_count()} CPUs)")
        # The runs use the usual cache (kernel, builds): they time running, not building.
        host = suite_run("host", args.profile, tmp / "host")
        qemu = suite_run("linux-x86_64", args.profile, tmp / "qemu")
    for name, r in (("host", host), ("linux-x86_64", qemu)):
        counts = ", ".join(f"{n} {v}" for v, n in r["summary"].items() if n)
        print(f"{name:>13}: machine wall {r['wall_s']:.1f} s, first output after "
              f"{r['boot_s']:.1f} s, {r['boots']} boot(s); whole run {r['total_s']:.1f} s; {counts}")
    ratio = qemu["wall_s"] / host["wall_s"]
    net = (qemu["wall_s"] - qemu["boot_s"]) / host["wall_s"]
    print(f"ratio QEMU/native: {ratio:.2f} x (without boot: {net:.2f} x; goal <= 3 x + boot)")


if __name__ == "__main__":
    main()
