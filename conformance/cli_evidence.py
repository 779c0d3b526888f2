"""Evidence commands of the `pcert` command line: signing, the run index, diff, history, exports,
catalog snapshots, and the options of `pcert report` (waivers, catalog).

    pcert keygen FILE                          # Ed25519 key pair: FILE (private), FILE.pub
    pcert sign BUNDLE --key FILE               # writes BUNDLE/manifest.sig
    pcert verify BUNDLE --key FILE.pub         # (in cli.py) the bundle must be signed by it
    pcert index scan [RUNS_DIR]                # index every bundle in runs/ (runs/index.sqlite)
    pcert index add BUNDLE...                  # index these bundles
    pcert index list                           # the indexed runs
    pcert diff BASE NEW [--window N] [--json]  # exit 1 on a new failure
    pcert history ID [--target T] [--profile P]
    pcert export BUNDLE --format csv|reqif [--out FILE]
    pcert catalog-snapshot --out FILE          # current fingerprints and procedure hashes
    pcert report BUNDLE [--waivers FILE [--as-of DATE]] [--against-catalog [SNAPSHOT]]

BASE and NEW are bundle directories or run ids the index knows. Every command exits 2 with one
message on bad input (cli.py's main prints it).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from evidence.errors import InputError

INDEX_DEFAULT = Path("runs") / "index.sqlite"
CURRENT_CATALOG = "current"
EXIT_OK, EXIT_FAILURES = 0, 1


def register(subparsers) -> None:
    """Add the evidence subcommands to `pcert` (called by cli.build_parser)."""
    keygen = subparsers.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    keygen.add_argument("file", help="private key file to write (FILE.pub gets the public key)")
    keygen.set_defaults(func=_cmd_keygen)

    sign = subparsers.add_parser("sign", help="sign a bundle's manifest (Ed25519)")
    sign.add_argument("bundle")
    sign.add_argument("--key", required=True, help="private key file (pcert keygen)")
    sign.set_defaults(func=_cmd_sign)

    index = subparsers.add_parser("index", help="the run index: add bundles, scan runs/, list")
    index_sub = index.add_subparsers(dest="index_command", required=True)
    add = index_sub.add_parser("add", help="index these bundles")
    add.add_argument("bundles", nargs="+")
    scan = index_sub.add_parser("scan", help="index every bundle of a runs directory")
    scan.add_argument("runs_dir", nargs="?", default="runs")
    listing = index_sub.add_parser("list", help="the indexed runs, oldest first")
    for sub in (add, scan, listing):
        _index_option(sub)
    index.set_defaults(func=_cmd_index)

    diff = subparsers.add_parser("diff", help="compare two runs per test case and requirement")
    diff.add_argument("base", help="bundle directory or run id")
    diff.add_argument("new", help="bundle directory or run id")
    diff.add_argument("--window", type=int, default=10,
                      help="runs looked at for flaky verdicts (default 10)")
    diff.add_argument("--json", action="store_true", help="print the classification as JSON")
    diff.add_argument("--all", action="store_true", help="list unchanged items too")
    _index_option(diff)
    diff.set_defaults(func=_cmd_diff)

    history = subparsers.add_parser("history", help="one test case's or requirement's verdicts "
                                                    "over time (from the run index)")
    history.add_argument("item", help="test case or requirement id")
    history.add_argument("--target")
    history.add_argument("--profile", help="e.g. face-safety-base@3.2")
    _index_option(history)
    history.set_defaults(func=_cmd_history)

    export = subparsers.add_parser("export", help="the trace of a bundle as CSV or ReqIF")
    export.add_argument("bundle")
    export.add_argument("--format", choices=("csv", "reqif"), required=True)
    export.add_argument("--out", help="file to write (default: standard output)")
    export.set_defaults(func=_cmd_export)

    snapshot = subparsers.add_parser("catalog-snapshot",
                                     help="write the current catalog's requirement fingerprints "
                                          "and procedure hashes (for report --against-catalog)")
    snapshot.add_argument("--out", required=True)
    snapshot.add_argument("--specs", action="append", default=[], help="extra spec directory")
    snapshot.set_defaults(func=_cmd_snapshot)


def _index_option(parser) -> None:
    parser.add_argument("--index", default=str(INDEX_DEFAULT),
                        help=f"run index file (default {INDEX_DEFAULT})")


# --------------------------------------------------------------------------- report options

def add_report_options(report) -> None:
    """The options `pcert report` takes for waivers and suspect links (cli.py calls this)."""
    report.add_argument("--waivers", help="waivers file to apply (docs/evidence.md)")
    report.add_argument("--as-of", help="judge waivers on this day, yyyy-mm-dd (default: today, "
                                        "UTC)")
    report.add_argument("--against-catalog", nargs="?", const=CURRENT_CATALOG, metavar="SNAPSHOT",
                        help="mark trace links suspect where the catalog changed since the run: "
                             "this pcert's catalog, or a snapshot file (pcert catalog-snapshot)")
    report.add_argument("--specs", action="append", default=[],
                        help="extra spec directory of the current catalog")


def report_options(args):
    """ReportOptions from `pcert report`'s arguments."""
    from reports.render import ReportOptions
    if args.as_of and not args.waivers:
        raise InputError("--as-of judges waivers: give --waivers FILE too")
    as_of = _date(args.as_of) if args.as_of else dt.datetime.now(dt.timezone.utc).date()
    catalog = None
    if args.against_catalog == CURRENT_CATALOG:
        # A snapshot of this pcert's catalog, written where the bundle is not.
        catalog = Path(tempfile.mkdtemp(prefix="pcert-catalog-")) / "current-catalog.json"
        write_catalog_snapshot(catalog, tuple(Path(d) for d in args.specs))
    elif args.against_catalog:
        catalog = Path(args.against_catalog)
    return ReportOptions(waivers=Path(args.waivers) if args.waivers else None,
                         as_of=as_of if args.waivers else None, catalog=catalog)


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"--as-of {text!r}: not a date yyyy-mm-dd") from None


def trusted_keys(paths: list[str] | None):
    """The public keys of `pcert verify --key` (None when none was given)."""
    from evidence.signing import load_public_key
    return [load_public_key(path) for path in paths] if paths else None


# --------------------------------------------------------------------------- commands

def _cmd_keygen(args) -> int:
    from evidence.signing import PUBLIC_SUFFIX, generate_key, key_id, load_public_key
    path = generate_key(args.file)
    print(f"pcert: private key {path} (keep it secret), public key {path}{PUBLIC_SUFFIX}, "
          f"key id {key_id(load_public_key(path))}")
    return EXIT_OK


def _cmd_sign(args) -> int:
    from evidence.signing import sign_bundle
    path = sign_bundle(args.bundle, args.key)
    record = json.loads(path.read_bytes())
    print(f"pcert: {args.bundle}: signed with ed25519 key {record['key_id']} ({path})")
    return EXIT_OK


def _cmd_index(args) -> int:
    from evidence.index import RunIndex
    with RunIndex(args.index) as index:
        if args.index_command == "add":
            for bundle in args.bundles:
                print(f"{bundle}: {index.add(bundle)}")
        elif args.index_command == "scan":
            for path, what in index.scan(args.runs_dir):
                print(f"{path}: {what}")
        else:
            for run in index.runs():
                counts = ", ".join(f"{n} {v}" for v, n in run.summary.items() if n)
                print(f"{run.started_utc}  {run.run_id}  {run.profile}  {run.status}  {counts}")
    return EXIT_OK


def _open_run(reference: str, index):
    """A bundle by directory, or by run id through the index."""
    from evidence.reader import Bundle
    path = Path(reference)
    if path.exists():
        return Bundle.open(path)
    run = index.run(reference) if index is not None else None
    if run is None:
        raise InputError(f"{reference}: neither a bundle directory nor a run id in the run "
                         "index; give the bundle's path, or index it (pcert index add)")
    return Bundle.open(run.path)


def _cmd_diff(args) -> int:
    from evidence.diff import CLASSES, KINDS, UNCHANGED, diff_bundles
    from evidence.index import RunIndex
    index = RunIndex(args.index) if Path(args.index).exists() else None
    base, new = _open_run(args.base, index), _open_run(args.new, index)
    report = diff_bundles(base, new, index=index, window=args.window)
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        print(f"pcert diff {report.base_run} -> {report.new_run} "
              f"(flaky: verdict changed twice or more in the last {len(report.window_runs)} runs)")
        for note in report.notes:
            print(f"  note: {note}")
        for kind in KINDS:
            counts = ", ".join(f"{report.count(kind, c)} {c}" for c in CLASSES
                               if report.count(kind, c))
            print(f"{kind}s: {counts or 'none'}")
        for classification in CLASSES:
            if classification == UNCHANGED and not args.all:
                continue
            for change in report.of(classification):
                history = f"  [{' '.join(change.history)}]" if change.history else ""
                reason = f"  {change.reason[:120]}" if change.reason and change.new not in (
                    None, "PASS") else ""
                print(f"{classification:<13} {change.kind:<11} {change.item}  "
                      f"{change.base or '-'} -> {change.new or '-'}{history}{reason}")
    if index is not None:
        index.close()
    return EXIT_FAILURES if report.has_new_failure else EXIT_OK


def _cmd_history(args) -> int:
    from evidence.index import RunIndex
    if not Path(args.index).exists():
        raise InputError(f"{args.index}: no run index; make one with `pcert index scan runs`")
    with RunIndex(args.index) as index:
        rows = index.history(args.item, target=args.target, profile=args.profile)
    if not rows:
        raise InputError(f"{args.item}: in no indexed run (check the id, or index the runs with "
                         "`pcert index scan runs`)")
    print(f"{args.item}: {len(rows)} runs")
    previous = None
    for row in rows:
        changed = " (fingerprint changed)" if previous and row.fingerprint != previous else ""
        reason = f"  {row.reason[:100]}" if row.reason else ""
        print(f"{row.started_utc}  {row.run_id}  {row.profile:<24} {row.verdict:<12}"
              f"{changed}{reason}")
        previous = row.fingerprint
    return EXIT_OK


def _cmd_export(args) -> int:
    from evidence.reader import Bundle
    from reports.exports import render_csv, render_reqif
    bundle = Bundle.open(args.bundle)
    data = render_csv(bundle) if args.format == "csv" else render_reqif(bundle)
    if args.out:
        from evidence.atomic import write_bytes_atomic
        write_bytes_atomic(args.out, data)
        print(f"pcert: {args.out}")
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return EXIT_OK


def _cmd_snapshot(args) -> int:
    count = write_catalog_snapshot(Path(args.out), tuple(Path(d) for d in args.specs))
    print(f"pcert: {args.out}: {count[0]} requirements, {count[1]} procedures")
    return EXIT_OK


def write_catalog_snapshot(path: Path, spec_dirs: tuple[Path, ...] = ()) -> tuple[int, int]:
    """Write the fingerprints of every requirement of the catalog (behavioural and interface)
    and the sha256 of every generated procedure; returns their numbers."""
    from evidence.snapshot import write_snapshot
    from . import version
    from .catalog import Catalog
    from .generate import generate
    from .profiles import interfaces
    catalog = Catalog.load(spec_dirs)
    requirements = {r.id: r.fingerprint for r in catalog.behavioural_requirements()}
    requirements.update({r.id: r.fingerprint
                         for r in catalog.interface_requirements(interfaces())})
    sources = generate(catalog.spec_set, list(catalog.spec_set.test_cases))
    procedures = {tc_id: p.sha256 for tc_id, p in sources.procedures.items()}
    identity = version.identity()
    write_snapshot(path, requirements, procedures,
                   source=f"pcert {identity.get('version')} at "
                          f"{identity.get('git_commit') or 'no commit'}")
    return len(requirements), len(procedures)

