"""Render every report of a bundle into its ``reports/`` directory.

    >>> from reports.render import render_reports
    >>> render_reports("runs/20261126T160000Z-linux-x86_64-3fa9c1")   # doctest: +SKIP
    [PosixPath('runs/.../reports/junit.xml'), PosixPath('runs/.../reports/report.pdf'), ...]
    >>> render_reports("runs/x", options=ReportOptions(waivers=Path("waivers.yaml"),
    ...                as_of=date(2026, 12, 1), catalog=Path("catalog.json")))  # doctest: +SKIP

Reports are derived: they can be re-rendered at any time from the bundle alone (plus the
waivers file, its judging date and the catalog snapshot when given, which are copied into
``reports/`` so the set says what it was rendered with), and a re-rendering gives the same
bytes. ``reports/SHA256SUMS`` is written last, so ``pcert verify`` checks the reports as they
now are and a re-rendering never breaks it.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import multiprocessing
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from evidence import format as fmt
from evidence.atomic import encode_json, write_bytes_atomic
from evidence.gcpause import collection_paused
from evidence.reader import Bundle
from evidence.snapshot import load_snapshot
from evidence.verify import write_report_sums
from evidence.waivers import load_waivers

from reports.exports import render_csv, render_reqif
from reports.html import render_html
from reports.junit import render_junit
from reports.model import Evidence, analyse
from reports.pdf import render_pdf
from reports.pdf_documents import first_grid, later_grids
from reports.pdf_layout import PendingGrid
from reports.spool import Spool

JUNIT_NAME = "junit.xml"
PDF_NAME = "report.pdf"
HTML_NAME = "report.html"
CSV_NAME = "trace.csv"
REQIF_NAME = "trace.reqif"
REPORT_ORDER = (JUNIT_NAME, PDF_NAME, HTML_NAME, CSV_NAME, REQIF_NAME)
WAIVERS_NAME = "waivers-applied.json"
CATALOG_NAME = "catalog-snapshot.json"


@dataclass(frozen=True)
class ReportOptions:
    """What to render with besides the bundle. ``as_of`` is the day waivers are judged on
    (required with ``waivers``: a report never reads the clock)."""

    waivers: Path | None = None
    as_of: dt.date | None = None
    catalog: Path | None = None


def _can_fork() -> bool:
    return (os.cpu_count() or 1) >= 2 and hasattr(os, "fork")


def _started(render: Callable[[], bytes], fallback: Callable[[], bytes],
             spool: Spool) -> Callable[[], bytes]:
    """Start `render` in a forked child and return a function that waits for its bytes.

    `spool`: what this process hands the child while it renders. If the child fails,
    `fallback` runs here instead: a failure then raises its own exception in this process."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)

    def child() -> None:
        spool.reading()
        try:
            sender.send_bytes(render())
        except BaseException:  # noqa: BLE001 - the parent renders again and raises
            sender.send_bytes(b"")
        finally:
            sender.close()

    process = context.Process(target=child, daemon=True)
    process.start()
    sender.close()
    spool.writing()

    def result() -> bytes:
        try:
            data = receiver.recv_bytes()
        except EOFError:
            data = b""
        finally:
            receiver.close()
            process.join()
        return data if data else fallback()

    return result


def _pending_grids(spool: Spool) -> Iterator[PendingGrid]:
    """Placeholders for the PDF grids the parent sends: the n-th made gets the n-th sent."""
    received: list[tuple | None] = []

    def fetch(index: int) -> tuple:
        while len(received) <= index:
            received.append(spool.receive())
        state, received[index] = received[index], None
        return state

    for index in itertools.count():
        yield PendingGrid(functools.partial(fetch, index))


def _other_reports(bundle: Bundle, evidence: Evidence) -> dict[str, bytes]:
    return {JUNIT_NAME: render_junit(bundle), HTML_NAME: render_html(bundle, evidence),
            CSV_NAME: render_csv(bundle, evidence), REQIF_NAME: render_reqif(bundle, evidence)}


def _render_on_two_cores(bundle: Bundle, evidence: Evidence, spool: Spool,
                         meanwhile: Callable[[], None]) -> dict[str, bytes]:
    """The PDF, the slowest, is laid out in a forked child. This process first wraps the text
    of the PDF's largest tables (handed over one by one through `spool`, while the child lays
    out what comes before them), then renders the other reports, then does `meanwhile`. The
    child makes the first of those tables itself: it would only wait for it, while this
    process makes the next."""
    pdf = _started(lambda: render_pdf(bundle, evidence, grids=itertools.chain(
                       [first_grid(evidence)], _pending_grids(spool))),
                   fallback=lambda: render_pdf(bundle, evidence), spool=spool)
    try:
        for grid in later_grids(evidence):
            if not spool.send(grid.state()):
                break                   # the child failed: pdf() renders it here
    finally:
        spool.close()
    rendered = _other_reports(bundle, evidence)
    meanwhile()                         # raises nothing: render_reports keeps its error
    rendered[PDF_NAME] = pdf()
    return rendered


def _render_all(bundle: Bundle, evidence: Evidence,
                meanwhile: Callable[[], None]) -> dict[str, bytes]:
    """Every report's bytes, by name, in the order they are written; `meanwhile` is done
    while the PDF's child renders (on one core: after everything)."""
    spool = None
    if _can_fork():
        try:
            spool = Spool()
        except OSError:                 # no temporary file to hand tables over: one core
            pass
    with collection_paused():
        if spool is not None:
            rendered = _render_on_two_cores(bundle, evidence, spool, meanwhile)
        else:
            rendered = {PDF_NAME: render_pdf(bundle, evidence), **_other_reports(bundle, evidence)}
            meanwhile()
    return {name: rendered[name] for name in REPORT_ORDER}


def render_reports(bundle_path: Path | str, options: ReportOptions | None = None, *,
                   meanwhile: Callable[[], None] = lambda: None) -> list[Path]:
    """Write the reports (JUnit, PDF, HTML, trace CSV and ReqIF), then reports/SHA256SUMS.

    Returns the paths of the reports written (not SHA256SUMS). ``meanwhile``: other work of
    the caller's, done while this process would only wait for the PDF's child (a run indexes
    itself then); an exception it raises is raised once the reports are written.
    """
    options = options or ReportOptions()
    bundle = Bundle.open(bundle_path)
    waivers = load_waivers(options.waivers) if options.waivers else None
    if waivers is not None and options.as_of is None:
        raise ValueError("render_reports: waivers need the date they are judged on (as_of)")
    snapshot = load_snapshot(options.catalog) if options.catalog else None
    evidence = analyse(
        bundle, waivers=waivers, as_of=options.as_of,
        current_requirements=snapshot.requirements if snapshot else None,
        current_procedures=snapshot.procedures if snapshot else None,
        catalog_source=f"the catalog snapshot {options.catalog.name}"
                       + (f" ({snapshot.source})" if snapshot and snapshot.source else "")
        if snapshot else None)
    # Render everything before writing anything: a renderer that fails then leaves the old
    # reports and their SHA256SUMS together, and verification keeps passing.
    failed: list[Exception] = []

    def caller_work() -> None:
        try:
            meanwhile()
        except Exception as exc:  # noqa: BLE001 - the caller's, raised after the reports
            failed.append(exc)

    rendered = _render_all(bundle, evidence, caller_work)
    inputs = {}
    if waivers is not None:
        inputs[WAIVERS_NAME] = encode_json({"as_of": options.as_of.isoformat(),
                                            "waivers": [w.to_json() for w in waivers]})
    if options.catalog:
        inputs[CATALOG_NAME] = Path(options.catalog).read_bytes()
    reports_dir = bundle.path / fmt.REPORTS_DIR
    reports_dir.mkdir(exist_ok=True)
    written = []
    for name, data in rendered.items():
        write_bytes_atomic(reports_dir / name, data)
        written.append(reports_dir / name)
    # What a previous rendering was given but this one was not must not linger beside it.
    for name in (WAIVERS_NAME, CATALOG_NAME):
        if name in inputs:
            write_bytes_atomic(reports_dir / name, inputs[name])
        elif (reports_dir / name).exists():
            (reports_dir / name).unlink()
    write_report_sums(reports_dir)
    if failed:
        raise failed[0]
    return written
