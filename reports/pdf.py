"""PDF verification report of one run, rendered from its evidence bundle alone.

    >>> from evidence.reader import Bundle
    >>> from reports.pdf import render_pdf
    >>> pdf_bytes = render_pdf(Bundle.open("runs/20261126T160000Z-linux-x86_64-3fa9c1"))  # doctest: +SKIP

Sections, in the order a certification engineer reviews them:

1. configuration identification: run, status, times, pcert, target, kernel, image, tools, the
   exact command line, nonce, guest;
2. verdict summary: counts per verdict (with TET codes), then per unit;
3. trace matrix: one row per requirement in the snapshot (sorted by id), with its test cases and
   their verdicts; requirements without a test case are rows marked "no test"; test cases that
   trace to no requirement in the snapshot are rows of their own;
4. test cases not passed, grouped by verdict: reason, file:line, and the end of the console
   slice;
5. protocol anomalies and the guest's start record.

Reproducible: the same bundle gives the same bytes (reportlab ``invariant``, no clock, stable
orders). Safe for any guest output: text is restricted to what the built-in fonts can show and
escaped before it reaches Paragraph markup; console excerpts are drawn as plain text.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from xml.sax.saxutils import escape

from evidence.format import VERDICTS as BUNDLE_VERDICTS
from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (KeepTogether, PageBreak, Paragraph, Preformatted,
                                SimpleDocTemplate, Spacer, Table, TableStyle)

TET_CODES = BUNDLE_VERDICTS                 # verdict -> TET code, in code order
VERDICTS = tuple(TET_CODES)
# Most serious first: the order of the "not passed" section and of a requirement's outcome.
SEVERITY = ("FAIL", "UNRESOLVED", "UNINITIATED", "UNTESTED", "UNSUPPORTED", "PASS")

EXCERPT_MAX_BYTES = 4096
EXCERPT_MAX_LINES = 40
# Bounds on guest- or catalog-supplied text in one table cell: a table row cannot be taller
# than a page, and a runaway reason must not make the report unreadable.
CELL_MAX_CHARS = 1500
ANOMALIES_SHOWN = 50

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
BODY_WIDTH = PAGE_WIDTH - 2 * MARGIN
HEADER_Y = PAGE_HEIGHT - MARGIN      # the body starts 6 mm below the running header
FOOTER_Y = MARGIN - 8 * mm
_EXCERPT_FONT_SIZE = 7
# Courier glyphs are 0.6 em wide: the columns that fit the body width, less the excerpt's indent.
EXCERPT_COLUMNS = int((BODY_WIDTH - 8) / (0.6 * _EXCERPT_FONT_SIZE))

_MISSING_RESULT_REASON = "no result recorded in the bundle"
_VERDICT_COLOURS = {
    "PASS": colors.HexColor("#dff0d8"),
    "FAIL": colors.HexColor("#f2dede"),
    "UNRESOLVED": colors.HexColor("#f2dede"),
    "UNINITIATED": colors.HexColor("#f2dede"),
    "UNTESTED": colors.HexColor("#fcf8e3"),
    "UNSUPPORTED": colors.HexColor("#fcf8e3"),
}
_NO_TEST_COLOUR = colors.HexColor("#e6e6e6")
_HEADER_COLOUR = colors.HexColor("#d9d9d9")


# --------------------------------------------------------------------------- text safety

# C0/C1 controls other than TAB and LF, and the lone surrogates that surrogateescape uses for
# undecodable bytes: all shown as \xNN, the byte the guest sent.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff]")


def _show_byte(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00 if code >= 0xDC00 else code:02x}"


def pdf_text(value: object) -> str:
    """Plain text the built-in (WinAnsi) fonts can draw, not yet markup-escaped.

    >>> pdf_text("ok \\x1b[0m \\u4e2d\\r\\n")
    'ok \\\\x1b[0m ?\\n'

    Control characters become a visible ``\\xNN`` (they are bytes the guest sent); characters
    the fonts lack become "?". TAB and LF are kept, CR LF becomes LF.
    """
    text = "" if value is None else str(value)
    text = _INVISIBLE.sub(_show_byte, text.replace("\r\n", "\n"))
    return text.encode("cp1252", errors="replace").decode("cp1252")


def markup(value: object, limit: int | None = CELL_MAX_CHARS) -> str:
    """Paragraph markup that shows ``value`` literally: ``<b>&`` stays ``<b>&`` on the page.

    Text beyond ``limit`` characters is cut (and says so): a table row cannot outgrow a page.
    """
    text = "" if value is None else str(value)
    cut = ""
    if limit is not None and len(text) > limit:
        text, cut = text[:limit], f" [... {len(text) - limit} more characters not shown]"
    return escape(pdf_text(text) + cut).replace("\n", "<br/>").replace("\t", " ")


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

def render_pdf(bundle) -> bytes:
    """Render the bundle as a PDF report (bytes)."""
    styles = _styles()
    rows = _test_rows(bundle)
    run_id = str(bundle.manifest.get("run_id") or "")
    story = []
    story += _title_page(bundle, rows, styles)
    story += [PageBreak()] + _verdict_summary(bundle, rows, styles)
    story += [PageBreak()] + _trace_matrix(bundle, rows, styles)
    story += [PageBreak()] + _not_passed(bundle, rows, styles)
    story += [PageBreak()] + _anomalies(bundle, styles)
    story += [Spacer(1, 6 * mm)] + _guest_record(bundle, styles)

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer, pagesize=A4, invariant=1,
        leftMargin=MARGIN, rightMargin=MARGIN, topMargin=MARGIN + 6 * mm, bottomMargin=MARGIN,
        title=pdf_text(f"pcert verification report {run_id}"), author="pcert",
        subject="POSIX/FACE conformance evidence", creator="pcert",
    )
    decorate = _page_decoration(run_id)
    doc.build(story, onFirstPage=decorate, onLaterPages=decorate, canvasmaker=_NumberedCanvas)
    return buffer.getvalue()


def _test_rows(bundle) -> list[tuple[dict, dict]]:
    """(test case, result) in plan order; a test case without a result reads as UNINITIATED."""
    results_by_id = {result.get("id"): result for result in bundle.results}
    rows = []
    for testcase in bundle.testcases:
        result = results_by_id.get(testcase.get("id")) or {
            "id": testcase.get("id"), "verdict": "UNINITIATED", "code": 6,
            "reason": _MISSING_RESULT_REASON, "console": None}
        rows.append((testcase, result))
    return rows


def _verdict(result: dict) -> str:
    return str(result.get("verdict") or "UNRESOLVED")


def _location(result: dict) -> str:
    file, line = result.get("file") or "", result.get("line")
    if not file:
        return ""
    return f"{file}:{line}" if line is not None else str(file)


# --------------------------------------------------------------------------- page furniture

class _NumberedCanvas(Canvas):
    """Canvas that knows the page count when the footer is drawn ("Page 3 of 17")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages = []

    def showPage(self):
        # Hold the page until save(); only then is the total known.
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        for page in self._pages:
            self.__dict__.update(page)
            self.setFont("Helvetica", 7.5)
            self.drawRightString(PAGE_WIDTH - MARGIN, FOOTER_Y,
                                 f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def _page_decoration(run_id: str):
    header = pdf_text(f"pcert verification report - run {run_id}")

    def decorate(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setStrokeColor(colors.grey)
        canvas.drawString(MARGIN, HEADER_Y, header)
        canvas.line(MARGIN, HEADER_Y - 3, PAGE_WIDTH - MARGIN, HEADER_Y - 3)
        canvas.line(MARGIN, FOOTER_Y + 9, PAGE_WIDTH - MARGIN, FOOTER_Y + 9)
        canvas.drawString(MARGIN, FOOTER_Y, pdf_text(f"Run {run_id}"))
        canvas.restoreState()

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


# --------------------------------------------------------------------------- 1. configuration

def _title_page(bundle, rows, styles) -> list:
    manifest = bundle.manifest
    counts = _count(rows)
    verdict_line = ", ".join(f"{verdict} {count}" for verdict, count in counts.items() if count)
    story = [
        Spacer(1, 20 * mm),
        Paragraph("POSIX/FACE conformance verification report", styles["title"]),
        Paragraph(markup(manifest.get("run_id")), styles["subtitle"]),
        Paragraph(markup(f"Run status: {manifest.get('status') or 'unknown'}. "
                         f"{len(rows)} test cases: {verdict_line or 'none'}."), styles["body"]),
        Spacer(1, 6 * mm),
        Paragraph("Configuration identification", styles["h1"]),
    ]
    data = [_header(styles, "Item", "Value")]
    for item, value, mono in _configuration_items(bundle):
        data.append([Paragraph(markup(item), styles["cell_bold"]),
                     Paragraph(markup(value), styles["cell_mono" if mono else "cell"])])
    story.append(_table(data, [42 * mm, BODY_WIDTH - 42 * mm]))
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


# --------------------------------------------------------------------------- 2. verdict summary

def _count(rows) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for _, result in rows:
        verdict = _verdict(result)
        counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def _verdict_summary(bundle, rows, styles) -> list:
    counts = _count(rows)
    story = [Paragraph("Verdict summary", styles["h1"])]
    data = [_header(styles, "Verdict", "TET code", "Test cases")]
    for verdict in counts:   # the six TET verdicts in code order, then any unknown ones
        data.append([Paragraph(markup(verdict), styles["cell"]),
                     Paragraph(markup(TET_CODES.get(verdict, "?")), styles["cell"]),
                     Paragraph(str(counts[verdict]), styles["cell"])])
    data.append(_header(styles, "Total", "", str(len(rows))))
    story.append(_table(data, [40 * mm, 25 * mm, 25 * mm]))

    declared = bundle.manifest.get("summary")
    if isinstance(declared, dict) and any(declared.get(v, 0) != counts.get(v, 0) for v in VERDICTS):
        # Reconcile, as TET reports do: the manifest's totals must match results.jsonl.
        story.append(Spacer(1, 3 * mm))
        story.append(Paragraph(markup(
            "Note: the manifest summary differs from the results: "
            + ", ".join(f"{v} {declared.get(v, 0)}" for v in VERDICTS)
            + ". The counts above are from results.jsonl."), styles["body"]))

    story.append(Paragraph("Per unit", styles["h2"]))
    per_unit: dict[str, dict[str, int]] = {}
    for testcase, result in rows:
        unit = str(testcase.get("unit") or testcase.get("interface") or "(no unit)")
        per_unit.setdefault(unit, dict.fromkeys(VERDICTS, 0))
        per_unit[unit][_verdict(result)] = per_unit[unit].get(_verdict(result), 0) + 1
    data = [[Paragraph(f"<b>{markup(title)}</b>", styles["cell_small"]) for title in
             ("Unit", *(f"{v}\n({TET_CODES[v]})" for v in VERDICTS), "Total")]]
    for unit in sorted(per_unit):
        unit_counts = per_unit[unit]
        data.append([Paragraph(markup(unit), styles["cell"])]
                    + [Paragraph(str(unit_counts.get(v, 0)) if unit_counts.get(v) else "-",
                                 styles["cell"]) for v in VERDICTS]
                    + [Paragraph(str(sum(unit_counts.values())), styles["cell_bold"])])
    count_width = 20 * mm   # fits "UNSUPPORTED" in the header
    unit_width = BODY_WIDTH - count_width * len(VERDICTS) - 14 * mm
    story.append(_table(data, [unit_width] + [count_width] * len(VERDICTS) + [14 * mm]))
    return story


# --------------------------------------------------------------------------- 3. trace matrix

def _trace_matrix(bundle, rows, styles) -> list:
    requirements = sorted(bundle.requirements, key=lambda requirement: str(requirement.get("id")))
    known_ids = {str(requirement.get("id")) for requirement in requirements}
    tests_by_requirement: dict[str, list[tuple[dict, dict]]] = {}
    untraced = []
    for testcase, result in rows:
        verifies = [str(rid) for rid in testcase.get("verifies") or []]
        for requirement_id in verifies:
            tests_by_requirement.setdefault(requirement_id, []).append((testcase, result))
        if not any(requirement_id in known_ids for requirement_id in verifies):
            untraced.append((testcase, result))

    untested = sum(1 for r in requirements if str(r.get("id")) not in tests_by_requirement)
    story = [
        Paragraph("Trace matrix: requirement to test cases", styles["h1"]),
        Paragraph(markup(f"{len(requirements)} requirements in the snapshot, {untested} with no "
                         f"test case; {len(untraced)} test cases trace to no requirement in the "
                         "snapshot. Outcome is the most serious verdict of the requirement's "
                         "test cases."), styles["body"]),
        Spacer(1, 3 * mm),
    ]
    data = [_header(styles, "Requirement", "Test cases: verdict", "Outcome")]
    shading = []
    for requirement in requirements:
        requirement_id = str(requirement.get("id"))
        tests = tests_by_requirement.get(requirement_id, [])
        outcome = _worst([_verdict(result) for _, result in tests]) if tests else "no test"
        details = ", ".join(str(value) for value in (requirement.get("interface"),
                                                     requirement.get("method"),
                                                     requirement.get("status")) if value)
        data.append([
            [Paragraph(f"<b>{markup(requirement_id)}</b>  {markup(details)}", styles["cell"]),
             Paragraph(markup(requirement.get("text")), styles["cell_wording"])],
            Paragraph(_tests_cell(tests), styles["cell"]),
            Paragraph(markup(outcome), styles["cell_bold"]),
        ])
        shading.append(_VERDICT_COLOURS.get(outcome, _NO_TEST_COLOUR))
    for testcase, result in untraced:
        claimed = ", ".join(str(rid) for rid in testcase.get("verifies") or []) or "(none)"
        data.append([
            Paragraph(f"<i>traces to no requirement in the snapshot</i> (verifies: "
                      f"{markup(claimed)})", styles["cell"]),
            Paragraph(_tests_cell([(testcase, result)]), styles["cell"]),
            Paragraph(markup(_verdict(result)), styles["cell_bold"]),
        ])
        shading.append(_NO_TEST_COLOUR)
    extra = [("BACKGROUND", (2, row), (2, row), colour) for row, colour in enumerate(shading, 1)]
    # Ids are never cut: the test case column is as wide as its longest "id: VERDICT" line
    # (within bounds); the requirement column, with the wording under the id, takes the rest.
    longest = max((stringWidth(pdf_text(f"{testcase.get('id')}: UNSUPPORTED"), "Helvetica", 7.5)
                   for testcase, _ in rows), default=0)
    tests_width = min(max(longest + 8, 45 * mm), 75 * mm)
    outcome_width = 24 * mm   # fits "UNSUPPORTED"
    widths = [BODY_WIDTH - tests_width - outcome_width, tests_width, outcome_width]
    story.append(_table(data, widths, extra_style=extra))
    return story


def _worst(verdicts: list[str]) -> str:
    rank = {verdict: position for position, verdict in enumerate(SEVERITY)}
    return min(verdicts, key=lambda verdict: rank.get(verdict, -1))   # unknown ranks worst


def _tests_cell(tests) -> str:
    lines = []
    for testcase, result in tests:
        verdict = _verdict(result)
        shown = markup(verdict) if verdict == "PASS" else f"<b>{markup(verdict)}</b>"
        lines.append(f"{markup(testcase.get('id'))}: {shown}")
    return "<br/>".join(lines)


# --------------------------------------------------------------------------- 4. not passed

class _ConsoleExcerpt(Preformatted):
    """Console lines on a light background, drawn literally (no markup), split across pages.

    Takes the lines as they are: Preformatted's own constructor would trim blank lines.
    """

    def __init__(self, lines: list[str], style: ParagraphStyle):
        self.style, self.bulletText, self.lines = style, None, list(lines)

    def draw(self):
        self.canv.saveState()
        self.canv.setFillColor(colors.HexColor("#f4f4f4"))
        self.canv.rect(0, -2, self.width, self.height + 1, stroke=0, fill=1)
        self.canv.restoreState()
        super().draw()

    def split(self, availWidth, availHeight):
        fitting = int(availHeight // self.style.leading)
        if fitting < 1:
            return []
        return [_ConsoleExcerpt(self.lines[:fitting], self.style),
                _ConsoleExcerpt(self.lines[fitting:], self.style)]


def console_excerpt(raw: bytes) -> tuple[str, list[str]]:
    """(caption, lines) showing the end of a console slice, bounded and hard-wrapped.

    Only the last EXCERPT_MAX_BYTES bytes and EXCERPT_MAX_LINES lines are kept: where a test
    case failed, the end of its output is what explains it; console.log keeps the whole.
    """
    total = len(raw)
    tail = raw[-EXCERPT_MAX_BYTES:]
    lines = pdf_text(tail.decode("utf-8", errors="replace")).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    wrapped = []
    for line in lines:
        line = line.expandtabs(8)
        # Continuation lines are marked so a wrap is not mistaken for a newline the guest sent.
        wrapped += [line[:EXCERPT_COLUMNS]] + [
            "+" + line[start:start + EXCERPT_COLUMNS - 1]
            for start in range(EXCERPT_COLUMNS, len(line), EXCERPT_COLUMNS - 1)]
    shown = wrapped[-EXCERPT_MAX_LINES:]
    if len(shown) == len(wrapped) and total == len(tail):
        caption = f"Console slice ({total} bytes):"
    else:
        caption = (f"End of the console slice ({total} bytes; the last {len(shown)} lines "
                   f"of at most {EXCERPT_MAX_BYTES} bytes are shown):")
    return caption, shown


def _not_passed(bundle, rows, styles) -> list:
    story = [Paragraph("Test cases not passed", styles["h1"])]
    by_verdict: dict[str, list] = {}
    for testcase, result in rows:
        if _verdict(result) != "PASS":
            by_verdict.setdefault(_verdict(result), []).append((testcase, result))
    if not by_verdict:
        story.append(Paragraph("Every planned test case passed.", styles["body"]))
        return story
    order = sorted(by_verdict, key=lambda v: (SEVERITY.index(v) if v in SEVERITY else -1, v))
    for verdict in order:
        group = by_verdict[verdict]
        heading = Paragraph(markup(f"{verdict} (TET {TET_CODES.get(verdict, '?')}): {len(group)} "
                                   f"test case{'s' if len(group) != 1 else ''}"), styles["h2"])
        for position, (testcase, result) in enumerate(group):
            # The group heading travels with its first entry, never alone at a page foot.
            story += _failure_entry(bundle, testcase, result, styles,
                                    lead=[heading] if position == 0 else [])
    return story


def _failure_entry(bundle, testcase, result, styles, lead=()) -> list:
    procedure = testcase.get("procedure") or {}
    console = result.get("console")
    verdict = _verdict(result)
    items = [
        ("Verdict", f"{verdict} (TET {result.get('code', TET_CODES.get(verdict))})"),
        ("Reason", result.get("reason") or "(none given)"),
        ("Location", _location(result) or "(none given)"),
        ("Unit / interface", f"{testcase.get('unit') or '-'} / {testcase.get('interface') or '-'}"),
        ("Kind", testcase.get("kind")),
        ("Verifies", ", ".join(str(rid) for rid in testcase.get("verifies") or []) or "(none)"),
        ("Procedure", _labelled(("", procedure.get("file")), ("", procedure.get("function")),
                                ("sha256", procedure.get("sha256")
                                 or result.get("procedure_sha256")))),
        ("Console bytes", f"[{console.get('start')}, {console.get('end')}) of console.log"
         if isinstance(console, dict) else "none: the test case never began"),
    ]
    data = [[Paragraph(markup(item), styles["cell_bold"]),
             Paragraph(markup(value), styles["cell_mono" if item in ("Location", "Procedure")
                                                else "cell"])]
            for item, value in items if value not in (None, "")]
    heading = Paragraph(markup(f"{testcase.get('id')}  {testcase.get('title') or ''}"),
                        styles["h3"])
    details = _table(data, [32 * mm, BODY_WIDTH - 32 * mm], header_rows=0)
    entry = [KeepTogether([*lead, heading, details])]
    raw = bundle.console_slice(result) if isinstance(console, dict) else b""
    if raw:
        caption, lines = console_excerpt(raw)
        entry += [Spacer(1, 2 * mm), Paragraph(markup(caption), styles["cell"]), Spacer(1, 1 * mm),
                  _ConsoleExcerpt(lines, styles["excerpt"])]
    return entry + [Spacer(1, 3 * mm)]


# --------------------------------------------------------------------------- 5. appendices

def _anomalies(bundle, styles) -> list:
    anomalies = list(bundle.anomalies)
    story = [Paragraph("Protocol anomalies", styles["h1"])]
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
    story = [Paragraph("Guest start record", styles["h1"])]
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
