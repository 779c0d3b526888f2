"""PDF verification report of one run, rendered from its evidence bundle alone.

    >>> from evidence.reader import Bundle
    >>> from reports.pdf import render_pdf
    >>> pdf_bytes = render_pdf(Bundle.open("runs/20261126T160000Z-linux-x86_64-3fa9c1"))  # doctest: +SKIP

One PDF holds the verification document set (reports/pdf_documents.py lays out each section
from reports/model.py): title page with the table of contents, configuration index, results
summary, problem reports and waivers, trace matrices both ways, trace gaps, coverage per
profile, suspect links, Software Verification Results, Software Verification Cases and
Procedures; then appendices (protocol anomalies, the guest's start record). Every section is an
outline entry (bookmark); every page has a running header with the run id and configuration and
a "Page n of N" footer.

Reproducible: the same bundle (and the same waivers, date and catalog) gives the same bytes
(reportlab ``invariant``, no clock, stable orders). Safe for any guest output: text is restricted
to what the built-in fonts can show (reports/textsafe.py) and escaped before it reaches Paragraph
markup; grid cells and console excerpts are drawn as plain text.
"""

from __future__ import annotations

import io
import json
import shlex
from collections.abc import Iterable

from evidence.format import VERDICTS as BUNDLE_VERDICTS
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import (Flowable, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table,
                                TableStyle)

from reports.model import Evidence, analyse
from reports.pdf_documents import (_EXCERPT_FONT_SIZE, EXCERPT_MAX_BYTES, EXCERPT_MAX_LINES,
                                   console_excerpt, documents)
from reports.pdf_layout import (BODY_WIDTH, FOOTER_Y, HEADER_Y, MARGIN, PAGE_WIDTH,
                                Contents, NumberedCanvas, contents_entries)
from reports.presence import presence_story
from reports.textsafe import CELL_MAX_CHARS, markup, pdf_text

__all__ = ["render_pdf", "markup", "pdf_text", "console_excerpt", "EXCERPT_MAX_LINES",
           "EXCERPT_MAX_BYTES", "CELL_MAX_CHARS"]

TET_CODES = BUNDLE_VERDICTS                 # verdict -> TET code, in code order
VERDICTS = tuple(TET_CODES)

ANOMALIES_SHOWN = 50

_HEADER_COLOUR = colors.HexColor("#d9d9d9")


def _styles() -> dict[str, ParagraphStyle]:
    base = ParagraphStyle("body", fontName="Helvetica", fontSize=9, leading=11.5)
    cell = ParagraphStyle("cell", base, fontSize=7.5, leading=9)
    return {
        "body": base,
        "title": ParagraphStyle("title", base, fontName="Helvetica-Bold", fontSize=20, leading=26,
                                alignment=TA_CENTER, spaceAfter=6),
        "subtitle": ParagraphStyle("subtitle", base, fontSize=12, leading=16, alignment=TA_CENTER,
                                   spaceAfter=14),
        "h1": ParagraphStyle("h1", base, fontName="Helvetica-Bold", fontSize=14, leading=18,
                             spaceBefore=6, spaceAfter=8, keepWithNext=1),
        "h2": ParagraphStyle("h2", base, fontName="Helvetica-Bold", fontSize=11, leading=14,
                             spaceBefore=10, spaceAfter=4, keepWithNext=1),
        "h3": ParagraphStyle("h3", base, fontName="Helvetica-Bold", fontSize=9, leading=11.5,
                             spaceBefore=8, spaceAfter=3, keepWithNext=1),
        "cell": cell,
        "cell_bold": ParagraphStyle("cell_bold", cell, fontName="Helvetica-Bold"),
        "cell_small": ParagraphStyle("cell_small", cell, fontSize=6.5, leading=8),
        "cell_wording": ParagraphStyle("cell_wording", cell, textColor=colors.HexColor("#333333"),
                                       spaceBefore=1.5),
        "cell_mono": ParagraphStyle("cell_mono", cell, fontName="Courier", fontSize=7),
        "excerpt": ParagraphStyle("excerpt", base, fontName="Courier", fontSize=_EXCERPT_FONT_SIZE,
                                  leading=8.2, leftIndent=4),
    }


# --------------------------------------------------------------------------- entry point

def render_pdf(bundle, evidence: Evidence | None = None, *,
               grids: Iterable[Flowable] | None = None) -> bytes:
    """Render the bundle as a PDF report (bytes). ``evidence``: the analysis with waivers or a
    catalog applied (reports/model.py); by default the bundle's own. ``grids``: the largest
    tables, when another process makes them (``pdf_documents.grids_to_make``, reports/render.py)."""
    evidence = evidence or analyse(bundle)
    styles = _styles()
    run_id = evidence.run_id
    sections, outline = documents(evidence, styles, _configuration_items(bundle), grids)
    story = []
    story += sections
    if isinstance(bundle.manifest.get("presence"), dict):
        story += [PageBreak(), outline.h1("Profile verdict")] + presence_story(
            bundle.manifest["presence"], styles)
    story += [PageBreak(), outline.annex("Protocol anomalies")] + _anomalies(bundle, styles)
    story += [PageBreak(), outline.annex("Guest start record")] + _guest_record(bundle, styles)
    # The title page lists what follows; its page numbers are filled in when the PDF is saved.
    story = _title_page(evidence, styles) + [Contents(contents_entries(story))] + story

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, invariant=1,
        leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 6 * mm, bottomMargin=MARGIN,
        title=pdf_text(f"pcert verification evidence {run_id}"), author="pcert",
        subject="POSIX/FACE conformance evidence", creator="pcert",
    )
    decorate = _page_decoration(run_id, evidence.configuration_line())
    doc.build(story, onFirstPage=decorate, onLaterPages=decorate, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()


# --------------------------------------------------------------------------- page furniture

_NumberedCanvas = NumberedCanvas


def _page_decoration(run_id: str, configuration: str = ""):
    header = pdf_text(f"pcert verification evidence - run {run_id}")
    configuration = pdf_text(configuration)

    drawn: dict = {}                      # canvas -> its first page's decoration operators

    def decorate(canvas, doc):
        # Every page starts in the same graphics state, and the decoration restores what it
        # changes: each page gets the operators of the first (drawn once, copied after).
        if canvas in drawn:
            canvas._code.extend(drawn[canvas])
            return
        start = len(canvas._code)
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setStrokeColor(colors.grey)
        canvas.drawString(MARGIN, HEADER_Y, header)
        canvas.line(MARGIN, HEADER_Y - 3, PAGE_WIDTH - MARGIN, HEADER_Y - 3)
        canvas.line(MARGIN, FOOTER_Y + 9, PAGE_WIDTH - MARGIN, FOOTER_Y + 9)
        # The configuration under the run id: what a page is evidence of, even torn out.
        canvas.drawString(MARGIN, FOOTER_Y, configuration)
        canvas.restoreState()
        drawn[canvas] = canvas._code[start:]

    return decorate


def _table(data, widths, *, header_rows=1, extra_style=()) -> Table:
    """A bordered table whose header repeats on every page and whose rows may split."""
    table = Table(data, colWidths=widths, repeatRows=header_rows, splitInRow=1, hAlign="LEFT")
    style = [
        ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    if header_rows:
        style.append(("BACKGROUND", (0, 0), (-1, header_rows - 1), _HEADER_COLOUR))
    table.setStyle(TableStyle(style + list(extra_style)))
    return table


def _header(styles, *titles) -> list[Paragraph]:
    return [Paragraph(markup(title), styles["cell_bold"]) for title in titles]


# --------------------------------------------------------------------------- title, identification

def _title_page(evidence: Evidence, styles) -> list:
    manifest = evidence.manifest
    counts = evidence.counts()
    verdict_line = ", ".join(f"{verdict} {count}" for verdict, count in counts.items() if count)
    open_ = len(evidence.open_problems())
    story = [
        Spacer(1, 14 * mm),
        Paragraph("POSIX/FACE conformance verification evidence", styles["title"]),
        Paragraph(markup(manifest.get("run_id")), styles["subtitle"]),
        Paragraph(markup(evidence.configuration_line()), styles["subtitle"]),
        Paragraph(markup(f"Run status: {manifest.get('status') or 'unknown'}. "
                         f"{len(evidence.cases)} test cases: {verdict_line or 'none'}. "
                         f"{len(evidence.requirements)} requirements. "
                         f"{len(evidence.problems)} problem reports, {open_} open."),
                  styles["body"]),
    ]
    if evidence.waivers:
        story.append(Paragraph(markup(f"{len(evidence.waivers)} waivers applied, judged on "
                                      f"{evidence.as_of.isoformat()}."), styles["body"]))
    if evidence.catalog_source is not None:
        story.append(Paragraph(markup(f"Trace links checked against {evidence.catalog_source}: "
                                      f"{len(evidence.needs_rerun())} results need re-run."),
                               styles["body"]))
    story += [Spacer(1, 6 * mm), Paragraph("Contents", styles["h1"])]
    return story


def _configuration_items(bundle) -> list[tuple[str, str, bool]]:
    """(item, value, monospace) rows identifying everything that produced the run."""
    manifest = bundle.manifest
    plan = manifest.get("plan") or {}
    pcert = manifest.get("pcert") or {}
    tools = manifest.get("tools") or {}
    kernel = manifest.get("kernel")
    image = manifest.get("image") or {}
    guest = manifest.get("guest") or {}
    exit_ = manifest.get("exit") or {}
    command = manifest.get("command") or []
    items = [
        ("Run id", manifest.get("run_id"), True),
        ("Bundle format", manifest.get("schema"), False),
        ("Status", manifest.get("status"), False),
        ("Started (UTC)", manifest.get("started_utc"), False),
        ("Finished (UTC)", manifest.get("finished_utc"), False),
        ("Plan", _labelled(("profile", plan.get("profile")), ("edition", plan.get("edition")),
                           ("checks", plan.get("checks")),
                           ("test cases", plan.get("test_cases")),
                           ("requirements", plan.get("requirements"))), False),
        ("pcert", _labelled(("version", pcert.get("version")),
                            ("commit", pcert.get("git_commit") or "unknown")), False),
        ("Target", _target_description(manifest.get("target")), True),
        ("Kernel", _kernel_description(kernel), True),
        ("Image", _labelled(("kind", image.get("kind")), ("size (bytes)", image.get("size")),
                            ("sha256", image.get("sha256"))), True),
    ]
    for name in sorted(tools):
        items.append((f"Tool: {name}", _tool_description(tools[name]), True))
    items += [
        ("Command line", shlex.join(str(arg) for arg in command) if isinstance(command, list)
         else command, True),
        ("Nonce", manifest.get("nonce"), True),
        ("Guest uname", _uname(guest), True),
        ("Guest CPUs", guest.get("ncpu"), False),
        ("Exit", _labelled(("reason", exit_.get("reason")), ("status", exit_.get("status")),
                           ("boot (s)", exit_.get("boot_s")), ("wall (s)", exit_.get("wall_s"))),
         False),
        ("Protocol anomalies", len(bundle.anomalies), False),
    ]
    return [(item, "" if value is None else value, mono) for item, value, mono in items]


def _labelled(*pairs) -> str:
    """``"label value; label value"`` for the pairs whose value is present.

    >>> _labelled(("kind", "initramfs"), ("size", None), ("", "gcc 12"))
    'kind initramfs; gcc 12'
    """
    return "; ".join(f"{label} {value}".strip() for label, value in pairs
                     if value is not None and value != "")


def _target_description(target) -> str:
    if not isinstance(target, dict):
        return "" if target is None else str(target)
    name = target.get("name") or target.get("id") or ""
    # The whole definition, sorted, so a reviewer can compare it with the controlled copy.
    definition = json.dumps(target, sort_keys=True, ensure_ascii=False, default=str)
    return f"{name}\n{definition}" if name else definition


def _kernel_description(kernel) -> str:
    if not kernel:
        return "none (runs on the host or a bare-metal image)"
    if not isinstance(kernel, dict):
        return str(kernel)
    return "\n".join(part for part in (
        _labelled(("package", kernel.get("package")), ("version", kernel.get("version")),
                  ("source", kernel.get("source"))),
        _labelled(("deb sha256", kernel.get("deb_sha256"))),
        _labelled(("sha256", kernel.get("sha256"))),
    ) if part)


def _tool_description(tool) -> str:
    if not isinstance(tool, dict):
        return "" if tool is None else str(tool)
    return "\n".join(part for part in (
        str(tool.get("version") or ""),
        _labelled(("command", tool.get("command"))),
        _labelled(("sha256", tool.get("sha256"))),
    ) if part)


def _uname(guest: dict) -> str:
    """The guest's uname, from a ``uname`` field or the start record's own uname fields."""
    uname = guest.get("uname", guest)
    if isinstance(uname, dict):
        return " ".join(str(uname[key]) for key in
                        ("sysname", "nodename", "release", "version", "machine") if key in uname)
    return "" if uname is None else str(uname)


# --------------------------------------------------------------------------- 5. appendices

def _anomalies(bundle, styles) -> list:
    anomalies = list(bundle.anomalies)
    story = []
    if not anomalies:
        story.append(Paragraph("None: every console record was accepted.", styles["body"]))
        return story
    story.append(Paragraph(markup(
        f"{len(anomalies)} {'anomaly' if len(anomalies) == 1 else 'anomalies'} (rejected "
        "records, unknown ids) in anomalies.jsonl"
        + (f"; the first {ANOMALIES_SHOWN} are shown." if len(anomalies) > ANOMALIES_SHOWN
           else ".")),
        styles["body"]))
    story.append(Spacer(1, 3 * mm))
    data = [_header(styles, "#", "Anomaly")]
    for number, anomaly in enumerate(anomalies[:ANOMALIES_SHOWN], 1):
        text = json.dumps(anomaly, sort_keys=True, ensure_ascii=False, default=str)
        data.append([Paragraph(str(number), styles["cell"]),
                     Paragraph(markup(text), styles["cell_mono"])])
    story.append(_table(data, [10 * mm, BODY_WIDTH - 10 * mm]))
    return story


def _guest_record(bundle, styles) -> list:
    guest = bundle.manifest.get("guest") or {}
    story = []
    if not isinstance(guest, dict) or not guest:
        story.append(Paragraph("The guest sent no start record.", styles["body"]))
        return story
    data = [_header(styles, "Field", "Value")]
    for field in sorted(guest):
        value = guest[field]
        if isinstance(value, (dict, list)):
            value = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
        data.append([Paragraph(markup(field), styles["cell_mono"]),
                     Paragraph(markup(value), styles["cell_mono"])])
    story.append(_table(data, [60 * mm, BODY_WIDTH - 60 * mm]))
    return story
