"""`pcert matrix`: run one profile on several targets and show the verdicts side by side.

    pcert matrix --targets linux-x86_64,linux-aarch64,baremetal-aarch64-picolibc \\
                 --profile face-safety-base --out runs/matrix

Each target runs as its own `pcert run` process (`python -m conformance.cli run --target T
--profile P --out OUT/T`), `--jobs` of them at a time, each with its share of the CPUs for its
own workers; its output goes to OUT/T.log. The bundles OUT/<target> are then read by
reports/matrix.py, which prints the table and writes OUT/matrix.txt, matrix.csv and matrix.pdf.

    >>> bundles = run_matrix(["host", "linux-x86_64"], "face-safety-base", Path("runs/m"),
    ...                      jobs=2)                                     # doctest: +SKIP

Exit status: 0 every target ran and passed every check, 1 every target ran (some checks did not
pass), 2 a target gave no bundle (its log says why) or the arguments were wrong.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from evidence.errors import BundleError
from evidence.reader import Bundle
from reports.matrix import load_matrix, render_terminal, write_matrix
from targets.definition import load_target

from .errors import RunError
from .profiles import load_profile

EXIT_OK, EXIT_FAILURES, EXIT_ERROR = 0, 1, 2
LOG_TAIL_LINES = 5

# run_one(target, profile, bundle_dir, only, workers, log) -> exit status of that run
RunOne = Callable[[str, str, Path, "str | None", int, Path], int]


def bundle_name(target: str) -> str:
    """The folder of a target's bundle: its name, or a definition file's stem.

    >>> bundle_name("linux-x86_64"), bundle_name("vendor/my-rtos.toml")
    ('linux-x86_64', 'my-rtos')
    """
    return Path(target).stem if target.endswith(".toml") or "/" in target else target


def run_target(target: str, profile: str, bundle_dir: Path, only: str | None, workers: int,
               log: Path) -> int:
    """One `pcert run` as a subprocess; its output goes to `log`. Returns its exit status."""
    command = [sys.executable, "-m", "conformance.cli", "run", "--target", target,
               "--profile", profile, "--out", str(bundle_dir), "--jobs", str(workers)]
    if only:
        command += ["--only", only]
    with open(log, "wb") as out:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=out,
                              stderr=subprocess.STDOUT).returncode


def run_matrix(targets: list[str], profile: str, out_dir: Path, jobs: int, *,
               only: str | None = None, run_one: RunOne = run_target,
               say: Callable[[str], None] = print) -> list[Path]:
    """Run `profile` on every target into OUT/<target>; the bundles that exist, in order.

    Targets and profile are checked before anything runs; an existing non-empty bundle folder
    is refused (evidence is never overwritten).
    """
    if not targets:
        raise RunError("matrix: --targets names no target")
    names = [bundle_name(t) for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RunError(f"matrix: target {duplicates[0]} is named twice in --targets")
    for target in targets:
        load_target(target)  # TargetError names the file and field
    load_profile(profile)
    out_dir = Path(out_dir)
    for name in names:
        folder = out_dir / name
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise RunError(f"{folder} already exists and is not empty: evidence is never "
                           "overwritten; choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(jobs, len(targets)))
    workers = max(1, (os.cpu_count() or 1) // jobs)
    lock = threading.Lock()

    def one(target: str, name: str) -> int:
        with lock:
            say(f"matrix: {name}: running ({workers} worker(s), log {out_dir / f'{name}.log'})")
        status = run_one(target, profile, out_dir / name, only, workers, out_dir / f"{name}.log")
        with lock:
            say(f"matrix: {name}: finished with exit status {status}")
        return status

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        statuses = list(pool.map(one, targets, names))
    bundles = []
    for target, name, status in zip(targets, names, statuses):
        folder = out_dir / name
        try:
            Bundle.open(folder)
            bundles.append(folder)
        except BundleError:
            say(f"matrix: {name}: no bundle (exit status {status}); the end of its log:")
            for line in _tail(out_dir / f"{name}.log"):
                say(f"    {line}")
    return bundles


def _tail(log: Path) -> list[str]:
    try:
        text = log.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ["(no log)"]
    from reports.matrix import terminal_text
    return [terminal_text(line) for line in text.splitlines()[-LOG_TAIL_LINES:]]


def _cmd_matrix(args) -> int:
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(args.out) if args.out else Path("runs") / f"matrix-{stamp}"
    bundles = run_matrix(targets, args.profile, out, args.jobs or (os.cpu_count() or 1),
                         only=args.only)
    if not bundles:
        raise RunError(f"matrix: no target gave a bundle; see the logs in {out}")
    matrix = load_matrix(bundles)
    sys.stdout.write(render_terminal(matrix))
    for path in write_matrix(matrix, out):
        print(f"pcert: matrix {path}")
    if len(bundles) < len(targets):
        return EXIT_ERROR
    passed = all(c.status == "complete" and all(n == 0 for v, n in c.summary.items()
                                                 if v != "PASS") for c in matrix.columns)
    return EXIT_OK if passed else EXIT_FAILURES


def register(subparsers) -> None:
    """Add `pcert matrix` to the CLI (conformance/cli.py COMMAND_MODULES)."""
    parser = subparsers.add_parser(
        "matrix", help="run a profile on several targets and compare them side by side")
    parser.add_argument("--targets", required=True,
                        help="comma-separated target names or .toml paths")
    parser.add_argument("--profile", default="face-safety-base", help="profile[@edition]")
    parser.add_argument("--out", help="folder for the bundles and the matrix "
                                      "(default runs/matrix-<UTC time>)")
    parser.add_argument("--only", help="comma-separated test case ids (a reduced plan)")
    parser.add_argument("-j", "--jobs", type=int,
                        help="targets run at once (default: one per CPU)")
    parser.set_defaults(func=_cmd_matrix)
