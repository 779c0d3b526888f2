"""Render every report of a bundle into its ``reports/`` directory.

    >>> from reports.render import render_reports
    >>> render_reports("runs/20261126T160000Z-linux-x86_64-3fa9c1")   # doctest: +SKIP
    [PosixPath('runs/.../reports/junit.xml'), PosixPath('runs/.../reports/report.pdf')]

Reports are derived: they can be re-rendered at any time from the bundle alone, and a
re-rendering gives the same bytes. ``reports/SHA256SUMS`` is written last, so
``pcert verify`` checks the reports as they now are and a re-rendering never breaks it.
"""

from __future__ import annotations

from pathlib import Path

from evidence import format as fmt
from evidence.atomic import write_bytes_atomic
from evidence.reader import Bundle
from evidence.verify import write_report_sums

from reports.junit import render_junit
from reports.pdf import render_pdf

JUNIT_NAME = "junit.xml"
PDF_NAME = "report.pdf"


def render_reports(bundle_path: Path | str) -> list[Path]:
    """Write reports/junit.xml and reports/report.pdf, then reports/SHA256SUMS.

    Returns the paths of the reports written (not SHA256SUMS).
    """
    bundle = Bundle.open(bundle_path)
    # Render everything before writing anything: a renderer that fails then leaves the old
    # reports and their SHA256SUMS together, and verification keeps passing.
    rendered = {JUNIT_NAME: render_junit(bundle), PDF_NAME: render_pdf(bundle)}
    reports_dir = bundle.path / fmt.REPORTS_DIR
    reports_dir.mkdir(exist_ok=True)
    written = []
    for name, data in rendered.items():
        write_bytes_atomic(reports_dir / name, data)
        written.append(reports_dir / name)
    write_report_sums(reports_dir)
    return written
