"""Figures per target: time from the machine's start to the first result, and the whole run.
Prints; asserts nothing (these machines are noisy, and other work shares them).

    .venv/bin/python bench/bench_targets.py                       # every target, whole plan
    .venv/bin/python bench/bench_targets.py --targets linux-aarch64,baremetal-aarch64-picolibc
    .venv/bin/python bench/bench_targets.py --only TC-open-001,TC-close-001

For each target: plan the profile, generate, build (partial builds allowed, as for any
target), boot with the target's driver and collect; a boot that stops before its end record is
followed by another at the next test case without a result (as a run does). Columns:

- first result: seconds from the machine's start (QEMU's exec) to the first result record.
- machine: seconds the machine(s) ran, all boots together; boots: how many.
- build: seconds to generate and build (a cache hit when built before).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conformance.catalog import Catalog  # noqa: E402
from conformance.collect import Collector  # noqa: E402
from conformance.generate import generate  # noqa: E402
from conformance.plan import make_plan  # noqa: E402
from conformance.profiles import load_profile  # noqa: E402
from conformance.run import cache_root, runtime_dir  # noqa: E402
from targets.definition import list_targets, load_target  # noqa: E402
from targets.drivers import make_machine  # noqa: E402
from targets.image import build_image  # noqa: E402
from targets.kernel import ensure_kernel  # noqa: E402
from targets.readiness import check_ready  # noqa: E402
from targets.toolchain import Toolchain  # noqa: E402

MAX_BOOTS = 20


def bench(name: str, profile: str, only: frozenset[str] | None, work: Path) -> dict:
    target = load_target(name)
    problems = check_ready(target)
    if problems:
        return {"target": name, "error": "; ".join(problems)}
    catalog = Catalog.load()
    plan = make_plan(catalog, load_profile(profile), multi_process=target.multi_process,
                     only=only)
    ids = [tc.id for tc in plan.test_cases]
    t0 = time.perf_counter()
    sources = generate(catalog.spec_set, ids)
    stage = work / name / "src"
    stage.mkdir(parents=True)
    generated = []
    for file, data in sorted(sources.files.items()):
        (stage / file).write_bytes(data)
        generated.append(stage / file)
    rt = runtime_dir()
    build = Toolchain.for_target(target).cached_build_info(
        [*generated, rt / "pcert.c"], [rt], cache_root() / "build", optional=generated)
    build_s = time.perf_counter() - t0
    image = build_image(target, build.path, work / name / "image")
    kernel = ensure_kernel(target, cache_dir=cache_root() / "kernels") \
        if target.needs_kernel else None

    nonce = secrets.token_hex(8)
    done: dict[int, str] = {}           # index -> verdict, over all boots
    first_result, machine_s, boots, first = None, 0.0, 0, 0
    while first is not None and boots < MAX_BOOTS:
        boots += 1
        machine = make_machine(target, binary=build.path, image=image, kernel=kernel,
                               guest_env={"PCERT_NONCE": nonce, "PCERT_FIRST": str(first)})
        collector = Collector(ids, nonce)   # a boot's sequence numbers start at 0 again
        start = time.monotonic()
        outcome = machine.run(lambda chunk: collector.feed(chunk, now=time.monotonic() - start),
                              idle_timeout_s=target.machine.idle_timeout_s,
                              run_timeout_s=target.machine.run_timeout_s,
                              until=lambda: collector.ended)
        machine_s += outcome.wall_s
        if first_result is None and collector.first_result_time is not None:
            first_result = collector.first_result_time
        # The test case in flight when a boot stops keeps UNRESOLVED; the next boot starts
        # after it, as a run does.
        for row in collector.results(stop_reason=outcome.reason, console_size=0):
            if row["verdict"] != "UNINITIATED":
                done.setdefault(row["index"], row["verdict"])
        first = None if collector.ended else next(
            (i for i in range(len(ids)) if i not in done), None)
    verdicts = Counter(done.get(i, "UNINITIATED") for i in range(len(ids)))
    return {"target": name, "cases": len(ids), "first_result_s": first_result,
            "machine_s": machine_s, "boots": boots, "build_s": build_s,
            "verdicts": dict(verdicts), "stubs": len(build.stubs)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", default=",".join(n for n in list_targets()))
    parser.add_argument("--profile", default="face-safety-base")
    parser.add_argument("--only", help="comma-separated test case ids (a reduced plan)")
    args = parser.parse_args()
    only = frozenset(args.only.split(",")) if args.only else None
    print(f"{'target':<28} {'cases':>5} {'first result':>12} {'machine':>9} {'boots':>5} "
          f"{'build':>7}  verdicts")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.targets.split(","):
            row = bench(name, args.profile, only, Path(tmp))
            if "error" in row:
                print(f"{name:<28} not ready: {row['error']}")
                continue
            first = "-" if row["first_result_s"] is None else f"{row['first_result_s']:.2f} s"
            verdicts = ", ".join(f"{n} {v}" for v, n in sorted(row["verdicts"].items()))
            print(f"{name:<28} {row['cases']:>5} {first:>12} {row['machine_s']:>7.1f} s "
                  f"{row['boots']:>5} {row['build_s']:>5.1f} s  {verdicts}", flush=True)


if __name__ == "__main__":
    main()
