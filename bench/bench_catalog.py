"""Figures for loading the catalog (built-in spec files): without the cache, cold (empty cache:
parse, check and store) and warm (unchanged spec files: from the cache), in this process and in
a fresh one (interpreter start and imports included, what a command pays). Medians of --runs.
Goal: warm well under 0.2 s. Prints; asserts nothing (these machines are noisy).

    .venv/bin/python bench/bench_catalog.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conformance.catalog import Catalog  # noqa: E402
from conformance.specitems import builtin_spec_dir, load_spec_dirs  # noqa: E402

# What a fresh process runs: import, then load with the cache in argv[1].
FRESH = ("import sys; from pathlib import Path; from conformance.catalog import Catalog; "
         "Catalog.load(cache_dir=Path(sys.argv[1]))")


def median_s(action, runs: int, before=lambda: None) -> float:
    """Median wall time of ``action()``, with ``before()`` (untimed) ahead of each run."""
    times = []
    for _ in range(runs):
        before()
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def in_process(runs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch)
        empty = lambda: [p.unlink() for p in cache.glob("*.pickle")]  # noqa: E731
        return {
            "no cache": median_s(lambda: load_spec_dirs([builtin_spec_dir()]), runs),
            "cold": median_s(lambda: Catalog.load(cache_dir=cache), runs, before=empty),
            "warm": median_s(lambda: Catalog.load(cache_dir=cache), runs),
        }


def fresh_process(runs: int) -> dict[str, float]:
    def load(cache: Path) -> None:
        subprocess.run([sys.executable, "-c", FRESH, str(cache)], cwd=ROOT, check=True)

    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch)
        empty = lambda: [p.unlink() for p in cache.glob("*.pickle")]  # noqa: E731
        return {
            "interpreter and imports": median_s(
                lambda: subprocess.run([sys.executable, "-c", "import conformance.catalog"],
                                       cwd=ROOT, check=True), runs),
            "cold": median_s(lambda: load(cache), runs, before=empty),
            "warm": median_s(lambda: load(cache), runs),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    files = len([*builtin_spec_dir().glob("*.yaml"), *builtin_spec_dir().glob("*.yml")])
    print(f"catalog: {files} built-in spec files, median of {args.runs}")
    for where, figures in (("in process", in_process(args.runs)),
                           ("fresh process", fresh_process(args.runs))):
        print(f"  {where}:")
        for label, seconds in figures.items():
            print(f"    {label:<24} {seconds:6.3f} s")


if __name__ == "__main__":
    main()
