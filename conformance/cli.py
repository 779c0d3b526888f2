"""The `pcert` command line.

Exit status: 0 every selected check passed (or the bundle is intact); 1 the run completed with
failures (or the bundle does not verify); 2 usage or infrastructure error, with one message
saying what to do.

    pcert run [--target T] [--profile P] [--out DIR]
    pcert verify BUNDLE
    pcert report BUNDLE
    pcert targets
    pcert catalog [--profile P] [--json] [--coverage]
    pcert prepare TARGET
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from evidence.errors import BundleError
from targets.errors import TargetError

from .cli_evidence import add_report_options, report_options, trusted_keys
from .errors import RunError, RunInterrupted
from .profiles import ProfileError
from .specitems import SpecError

EXIT_OK, EXIT_FAILURES, EXIT_ERROR = 0, 1, 2

# Modules under conformance/ that add subcommands (see build_parser).
COMMAND_MODULES: tuple[str, ...] = ("cli_evidence", "matrix")


class UsageError(Exception):
    pass


def _cmd_run(args) -> int:
    from .run import RunOptions, execute
    only = frozenset(x for x in args.only.split(",") if x) if args.only else None
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"-j {args.jobs}: give at least 1 worker")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: give a number >= 0")
    if args.examples < 1:
        raise UsageError(f"--examples {args.examples}: give at least 1")
    options = RunOptions(target=args.target, profile=args.profile,
                         out=Path(args.out) if args.out else None,
                         kernel=Path(args.kernel) if args.kernel else None,
                         spec_dirs=tuple(Path(d) for d in args.specs), only=only,
                         timeout_s=args.timeout, idle_timeout_s=args.idle_timeout,
                         jobs=args.jobs, resume=Path(args.resume) if args.resume else None,
                         checks=args.checks, seed=args.seed, max_examples=args.examples,
                         boot=args.boot)
    if options.kernel is not None and not options.kernel.is_file():
        raise UsageError(f"--kernel {options.kernel}: no such file")
    for spec_dir in options.spec_dirs:
        if not spec_dir.is_dir():
            raise UsageError(f"--specs {spec_dir}: no such directory")
    result = execute(options)
    counts = ", ".join(f"{n} {v}" for v, n in result.summary.items() if n)
    print(f"pcert: {counts}")
    print(f"pcert: bundle {result.bundle}")
    for path in result.reports:
        print(f"pcert: report {path}")
    return EXIT_OK if result.passed else EXIT_FAILURES


def _cmd_verify(args) -> int:
    from evidence.verify import verify_bundle
    report = verify_bundle(Path(args.bundle), trusted_keys(args.key))
    for line in report.problems:
        print(f"{args.bundle}: {line}")
    for line in report.notes:
        print(f"{args.bundle}: note: {line}")
    if report.ok:
        print(f"{args.bundle}: intact ({report.status}; {report.signature})")
        return EXIT_OK
    return EXIT_FAILURES


def _cmd_report(args) -> int:
    from reports.render import render_reports
    for path in render_reports(Path(args.bundle), report_options(args)):
        print(path)
    return EXIT_OK


def _cmd_targets(args) -> int:
    from targets.definition import list_targets, load_target
    from targets.readiness import check_ready
    width = max(len(n) for n in list_targets())
    for name in list_targets():
        target = load_target(name)
        problems = check_ready(target)
        state = "ready" if not problems else "not ready: " + "; ".join(problems)
        print(f"{name:<{width}}  {state}")
        print(f"{'':<{width}}  {target.description}")
    return EXIT_OK


def _cmd_prepare(args) -> int:
    from targets import kernel as kernels
    from targets.definition import load_target
    from .run import cache_root
    target = load_target(args.target)
    if not target.needs_kernel:
        print(f"pcert: {target.name} needs nothing prepared")
        return EXIT_OK
    info = kernels.ensure_kernel(target, cache_dir=cache_root() / "kernels")
    print(f"pcert: {target.name}: kernel {info.package or info.path} {info.version or ''} "
          f"sha256 {info.sha256[:16]}…")
    return EXIT_OK


def _cmd_catalog(args) -> int:
    from .catalog import Catalog
    from .plan import make_plan
    from .profiles import load_profile
    catalog = Catalog.load(tuple(Path(d) for d in args.specs))
    if args.coverage:
        from .coverage import coverage_report, format_coverage
        report = coverage_report(catalog, load_profile(args.profile))
        if args.json:
            print(json.dumps(report, indent=2, sort_keys=True))
        else:
            sys.stdout.write(format_coverage(report))
        return EXIT_OK
    plan = make_plan(catalog, load_profile(args.profile), multi_process=not args.single_process)
    tests_of: dict[str, list[str]] = {}
    for tc in plan.test_cases:
        for req in tc.verifies:
            tests_of.setdefault(req, []).append(tc.id)
    if args.json:
        json.dump({"plan": plan.to_json(),
                   "requirements": [{**r.to_json(), "test_cases": tests_of.get(r.id, [])}
                                    for r in plan.requirements],
                   "test_cases": [tc.id for tc in plan.test_cases]},
                  sys.stdout, indent=2, sort_keys=True)
        print()
        return EXIT_OK
    p = plan.to_json()
    print(f"{plan.profile.title} ({plan.profile.label})")
    print(f"  {p['interfaces']} interfaces, {p['requirements']} requirements, "
          f"{p['test_cases']} test cases")
    for req in plan.requirements:
        tests = tests_of.get(req.id, [])
        print(f"  {req.id:<28} {req.method:<8} {len(tests):>3} test(s)  {req.text[:70]}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pcert", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the checks of a profile on a target into a bundle")
    run.add_argument("--target", default="linux-x86_64", help="target name or .toml path")
    run.add_argument("--profile", default="face-safety-base", help="profile[@edition]")
    run.add_argument("--out", help="bundle directory (default runs/<run-id>)")
    run.add_argument("--kernel", help="boot this kernel instead of the target's")
    run.add_argument("--specs", action="append", default=[], help="extra spec directory")
    run.add_argument("--only", help="comma-separated test case ids")
    run.add_argument("--timeout", type=int, help="per-test-case timeout in the guest, seconds")
    run.add_argument("--idle-timeout", type=float,
                     help="host watchdog: no console progress for this long means hung (seconds)")
    run.add_argument("-j", "--jobs", type=int, help="parallel workers (default: one per CPU)")
    run.add_argument("--resume", metavar="BUNDLE", help="finish an interrupted run's bundle")
    run.add_argument("--checks", choices=("all", "behaviour", "presence", "differential"),
                     default="all",
                     help="presence: compile and link checks only, no boot; behaviour: only the "
                          "test cases run in the image; differential: only the generated-input "
                          "checks through the agent (docs/agent.md); all (default): all three")
    run.add_argument("--seed", type=int, default=0,
                     help="differential checks: Hypothesis seed (default 0; same seed, same "
                          "examples)")
    run.add_argument("--examples", type=int, default=100,
                     help="differential checks: examples per property at most (default 100)")
    run.add_argument("--boot", choices=("snapshot", "cold"), default="snapshot",
                     help="snapshot (default): boot once, save the VM state and restore it for "
                          "every boot, where the target allows (docs/snapshot.md); cold: a cold "
                          "boot every time")
    run.set_defaults(func=_cmd_run)

    verify = sub.add_parser("verify", help="check a bundle's integrity")
    verify.add_argument("bundle")
    verify.add_argument("--key", action="append", help="trusted public key (pcert keygen's .pub): "
                        "the bundle must be signed by it (repeat for several)")
    verify.set_defaults(func=_cmd_verify)

    report = sub.add_parser("report", help="render a bundle's reports again")
    report.add_argument("bundle")
    add_report_options(report)
    report.set_defaults(func=_cmd_report)

    targets = sub.add_parser("targets", help="list targets and whether each is ready here")
    targets.set_defaults(func=_cmd_targets)

    prepare = sub.add_parser("prepare", help="fetch what a target needs (kernel) into the cache")
    prepare.add_argument("target")
    prepare.set_defaults(func=_cmd_prepare)

    catalog = sub.add_parser("catalog", help="show the requirements and test cases of a profile")
    catalog.add_argument("--profile", default="face-safety-base")
    catalog.add_argument("--specs", action="append", default=[])
    catalog.add_argument("--single-process", action="store_true",
                         help="plan for a target without multiple processes (drops MP interfaces)")
    catalog.add_argument("--json", action="store_true")
    catalog.add_argument("--coverage", action="store_true",
                         help="count normal-range and robustness coverage per interface and unit")
    catalog.set_defaults(func=_cmd_catalog)

    # Commands that live in their own modules: each has register(subparsers), which adds its
    # subcommand with `func` set; a failure inside raises one of the errors caught in main().
    for module in COMMAND_MODULES:
        importlib.import_module(f"conformance.{module}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RunInterrupted as exc:
        print(f"pcert: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (UsageError, RunError, TargetError, ProfileError, SpecError, BundleError) as exc:
        print(f"pcert: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pcert: interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # The reader went away (`pcert catalog | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
