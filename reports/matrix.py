"""The target matrix: the same checks on several targets side by side, from their bundles alone.

    >>> m = load_matrix([Path("matrix/linux-x86_64"), Path("matrix/baremetal-aarch64-picolibc")])
    ...                                                                  # doctest: +SKIP
    >>> print(render_terminal(m))                                        # doctest: +SKIP
    >>> write_matrix(m, Path("matrix"))          # matrix.csv, matrix.pdf  # doctest: +SKIP

One row per test case (its interface and the requirements it verifies), one column per target;
each cell is that target's verdict with its reason. A test case absent from a target's plan
(an MP interface on a target without processes) shows "n/a". A row *differs* when its cells are
not all alike; every difference carries the reason its bundle gives.

- terminal: a summary per target, the rows that differ (verdicts abbreviated), then the reasons
  behind them grouped by (target, verdict, reason) with a count and example test cases.
- CSV: every row; per target a verdict column and a reason column.
- PDF (landscape A4): the summary, interfaces × targets (the worst verdict and how many of the
  interface's test cases passed), then every test case × target with the reasons.

Everything from a bundle may come from the guest: it is shown with control and formatting
characters escaped (terminal), formula-safe (CSV) and font-safe (PDF).
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from evidence.atomic import write_bytes_atomic
from evidence.format import VERDICTS
from evidence.reader import Bundle
from reports.textsafe import cell_text, pdf_text, visible_text

CSV_NAME = "matrix.csv"
PDF_NAME = "matrix.pdf"
TEXT_NAME = "matrix.txt"
TERMINAL_ROWS = 150          # differing rows shown in the terminal; the CSV and PDF have all
EXAMPLES = 3                 # test cases named per reason in the terminal
SHORT = {"PASS": "PASS", "FAIL": "FAIL", "UNRESOLVED": "UNRES", "UNSUPPORTED": "UNSUP",
         "UNTESTED": "UNTST", "UNINITIATED": "UNINI", None: "n/a"}
# Worst first: what an interface's cell shows when its test cases disagree.
SEVERITY = ("FAIL", "UNRESOLVED", "UNINITIATED", "UNSUPPORTED", "UNTESTED", "PASS")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Column:
    """One target's run: its label, identity and verdict counts."""

    label: str
    target: str
    run_id: str
    status: str
    system: str
    ncpu: str
    summary: dict[str, int]


@dataclass(frozen=True)
class Row:
    """One test case across the targets; `cells[i]` is (verdict, reason) or None (not planned)."""

    test_case: str
    interface: str
    requirements: tuple[str, ...]
    cells: tuple[tuple[str, str] | None, ...]

    @property
    def differs(self) -> bool:
        return len({cell[0] if cell else None for cell in self.cells}) > 1


@dataclass(frozen=True)
class Matrix:
    profile: str
    columns: list[Column]
    rows: list[Row]

    def differing(self) -> list[Row]:
        return [row for row in self.rows if row.differs]


def load_matrix(bundle_paths: list[Path]) -> Matrix:
    """The matrix of the bundles, in the order given (one column each)."""
    bundles = [Bundle.open(p) for p in bundle_paths]
    columns, seen = [], Counter()
    for bundle in bundles:
        target = bundle.manifest.get("target", {}).get("name", "?")
        seen[target] += 1
        label = target if seen[target] == 1 else f"{target} ({bundle.run_id})"
        guest = bundle.manifest.get("guest") or {}
        system = " ".join(str(guest.get(k, "")) for k in ("sysname", "release", "machine")
                          if guest.get(k))
        columns.append(Column(label=label, target=target, run_id=bundle.run_id,
                              status=bundle.status, system=system or "(no start record)",
                              ncpu=str(guest.get("ncpu", "?")), summary=bundle.summary()))
    info: dict[str, tuple[str, tuple[str, ...]]] = {}
    verdicts: list[dict[str, tuple[str, str]]] = []
    for bundle in bundles:
        for testcase in bundle.testcases:
            info.setdefault(testcase["id"], (testcase.get("interface") or "",
                                             tuple(testcase.get("verifies") or ())))
        verdicts.append({r["id"]: (r["verdict"], r.get("reason") or "") for r in bundle.results})
    rows = [Row(test_case=tc, interface=interface, requirements=requirements,
                cells=tuple(v.get(tc) for v in verdicts))
            for tc, (interface, requirements) in sorted(info.items(),
                                                        key=lambda kv: (kv[1][0], kv[0]))]
    profiles = sorted({str(b.manifest.get("plan", {}).get("profile", "?")) for b in bundles})
    return Matrix(profile=", ".join(profiles), columns=columns, rows=rows)


def interface_cells(matrix: Matrix) -> list[tuple[str, list[tuple[str | None, int, int]]]]:
    """Per interface, per target: (worst verdict or None, test cases passed, planned)."""
    by_interface: dict[str, list[Row]] = defaultdict(list)
    for row in matrix.rows:
        by_interface[row.interface].append(row)
    out = []
    for interface, rows in sorted(by_interface.items()):
        cells = []
        for i in range(len(matrix.columns)):
            got = [row.cells[i][0] for row in rows if row.cells[i] is not None]
            worst = min(got, key=SEVERITY.index) if got else None
            cells.append((worst, got.count("PASS"), len(got)))
        out.append((interface, cells))
    return out


# --------------------------------------------------------------------------- terminal

def terminal_text(value: object) -> str:
    """One line a terminal shows as it is: controls, format characters (bidi overrides) and
    line breaks escaped, so guest text cannot move the cursor or recolour the screen."""
    text = visible_text(value).replace("\n", "\\n").replace("\t", " ")
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cf", "Zl", "Zp") else c
                   for c in text)


def render_terminal(matrix: Matrix, *, limit: int = TERMINAL_ROWS) -> str:
    """The summary, the differing rows (at most `limit`) and the reasons behind them."""
    cols = matrix.columns
    lines = [f"pcert matrix: profile {terminal_text(matrix.profile)} on {len(cols)} targets", ""]
    width = max([len(c.label) for c in cols] + [6])
    counts = " ".join(f"{SHORT[v]:>5}" for v in VERDICTS)
    lines.append(f"     {'target':<{width}}  {counts}  ncpu  system")
    for n, col in enumerate(cols, start=1):
        numbers = " ".join(f"{col.summary.get(v, 0):>5}" for v in VERDICTS)
        state = "" if col.status == "complete" else f"  ({terminal_text(col.status)})"
        lines.append(f"[{n}]  {terminal_text(col.label):<{width}}  {numbers}  "
                     f"{terminal_text(col.ncpu):>4}  {terminal_text(col.system)}{state}")
    differing = matrix.differing()
    lines += ["", f"{len(matrix.rows)} test cases, {len(differing)} with different verdicts "
                  f"between the targets" + (":" if differing else ".")]
    if differing:
        name_width = min(48, max([len(r.test_case) for r in differing] + [9]))
        iface_width = min(20, max([len(r.interface) for r in differing] + [9]))
        head = " ".join(f"{f'[{n}]':>5}" for n in range(1, len(cols) + 1))
        lines.append(f"  {'interface':<{iface_width}}  {'test case':<{name_width}}  {head}")
        for row in differing[:limit]:
            cells = " ".join(f"{SHORT[c[0] if c else None]:>5}" for c in row.cells)
            lines.append(f"  {terminal_text(row.interface)[:iface_width]:<{iface_width}}  "
                         f"{terminal_text(row.test_case)[:name_width]:<{name_width}}  {cells}")
        if len(differing) > limit:
            lines.append(f"  ... {len(differing) - limit} more rows differ: see {CSV_NAME} and "
                         f"{PDF_NAME}")
        lines += ["", "Why (the reasons the bundles give, by target; count, then examples):"]
        lines += _reason_lines(matrix, differing)
    return "\n".join(lines) + "\n"


def _reason_lines(matrix: Matrix, differing: list[Row]) -> list[str]:
    groups: dict[tuple[int, str, str], list[str]] = defaultdict(list)
    for row in differing:
        for i, cell in enumerate(row.cells):
            if cell is None:
                groups[(i, "n/a", "not in this target's plan")].append(row.test_case)
            elif cell[0] != "PASS":
                groups[(i, cell[0], cell[1])].append(row.test_case)
    lines = []
    for (i, verdict, reason), cases in sorted(groups.items(),
                                              key=lambda kv: (kv[0][0], -len(kv[1]), kv[0][1:])):
        examples = ", ".join(terminal_text(c) for c in cases[:EXAMPLES])
        more = f", ... ({len(cases)} in all)" if len(cases) > EXAMPLES else ""
        lines.append(f"  [{i + 1}] {SHORT.get(verdict, verdict):>5} x{len(cases):<4} "
                     f"{terminal_text(reason)[:160]}")
        lines.append(f"              e.g. {examples}{more}")
    return lines


# --------------------------------------------------------------------------- CSV

def _csv_cell(value: object) -> str:
    text = visible_text("" if value is None else value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(matrix: Matrix) -> bytes:
    """Every row: interface, requirements, test case, then verdict and reason per target."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    header = ["interface", "requirements", "test_case", "differs"]
    for col in matrix.columns:
        header += [f"{col.label} verdict", f"{col.label} reason"]
    writer.writerow([_csv_cell(h) for h in header])
    for row in matrix.rows:
        values = [row.interface, " ".join(row.requirements), row.test_case,
                  "yes" if row.differs else "no"]
        for cell in row.cells:
            values += ["n/a", "not in this target's plan"] if cell is None else list(cell)
        writer.writerow([_csv_cell(v) for v in values])
    return out.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- PDF

def render_pdf(matrix: Matrix) -> bytes:
    """Landscape A4: summary, interfaces × targets, test cases × targets with reasons."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer

    from reports.pdf_layout import Grid, cell
    from reports.textsafe import markup

    backgrounds = {"PASS": colors.HexColor("#e2f0d9"), "FAIL": colors.HexColor("#f8cbad"),
                   "UNRESOLVED": colors.HexColor("#ffe699"),
                   "UNINITIATED": colors.HexColor("#ffe699"),
                   "UNSUPPORTED": colors.HexColor("#e7e6e6"),
                   "UNTESTED": colors.HexColor("#e7e6e6"), None: colors.white}
    page = landscape(A4)
    margin = 12 * mm
    body = page[0] - 2 * margin
    styles = getSampleStyleSheet()
    cols = matrix.columns
    story = [Paragraph(markup(f"Target matrix: profile {matrix.profile}"), styles["Title"]),
             Paragraph(markup(f"{len(matrix.rows)} test cases on {len(cols)} targets; "
                              f"{len(matrix.differing())} differ. Each cell: the target's "
                              "verdict, and the reason its bundle gives for any verdict but "
                              "PASS."), styles["Normal"]), Spacer(1, 4 * mm)]

    summary_widths = [8 * mm, 55 * mm, 48 * mm] + [13 * mm] * len(VERDICTS)
    summary_widths.append(body - sum(summary_widths))
    story.append(Grid(summary_widths, [
        [cell(f"[{n}]"), cell(cell_text(c.label), bold=True), cell(cell_text(c.run_id), mono=True)]
        + [cell(c.summary.get(v, 0)) for v in VERDICTS]
        + [cell(cell_text(f"{c.system}; CPUs online: {c.ncpu}; bundle {c.status}"))]
        for n, c in enumerate(cols, start=1)],
        header=[cell(""), cell("target"), cell("run")] + [cell(SHORT[v]) for v in VERDICTS]
        + [cell("system (start record)")]))

    story += [PageBreak(), Paragraph("Interfaces by target", styles["Heading2"]),
              Paragraph(markup("Worst verdict of the interface's test cases, and how many of "
                               "them passed."), styles["Normal"]), Spacer(1, 2 * mm)]
    first = 45 * mm
    widths = [first] + [(body - first) / max(1, len(cols))] * len(cols)
    rows = [[cell(cell_text(interface), mono=True)]
            + [cell("n/a" if worst is None else f"{worst} {passed}/{planned}",
                    background=backgrounds[worst]) for worst, passed, planned in cells]
            for interface, cells in interface_cells(matrix)]
    story.append(Grid(widths, rows, header=[cell("interface")] + [
        cell(cell_text(f"[{n}] {c.label}"), bold=True) for n, c in enumerate(cols, start=1)],
        size=6.5, leading=8))

    story += [PageBreak(), Paragraph("Test cases by target", styles["Heading2"]),
              Spacer(1, 2 * mm)]
    first = 62 * mm
    widths = [first] + [(body - first) / max(1, len(cols))] * len(cols)
    rows = []
    for row in matrix.rows:
        label = f"{row.test_case}\n{row.interface}: {' '.join(row.requirements)}"
        cells = [cell(cell_text(label), mono=True, bold=row.differs)]
        for item in row.cells:
            if item is None:
                cells.append(cell("n/a: not in this target's plan", background=backgrounds[None]))
            else:
                text = item[0] if item[0] == "PASS" else f"{item[0]}: {item[1]}"
                cells.append(cell(cell_text(text, 400), background=backgrounds.get(item[0])))
        rows.append(cells)
    story.append(Grid(widths, rows, header=[cell("test case / interface: requirements")] + [
        cell(cell_text(f"[{n}] {c.label}"), bold=True) for n, c in enumerate(cols, start=1)],
        size=6, leading=7.2))

    title = pdf_text(f"pcert target matrix ({matrix.profile})")

    def decorate(canvas, doc):
        canvas.saveState()
        canvas.setFont("Helvetica", 7)
        canvas.drawString(margin, page[1] - margin + 4 * mm, title)
        canvas.drawRightString(page[0] - margin, margin - 6 * mm, f"page {doc.page}")
        canvas.restoreState()

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=page, invariant=1, leftMargin=margin,
                            rightMargin=margin, topMargin=margin, bottomMargin=margin,
                            title=title, author="pcert", creator="pcert")
    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def write_matrix(matrix: Matrix, out_dir: Path) -> list[Path]:
    """Write matrix.txt (the terminal text), matrix.csv and matrix.pdf into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in ((TEXT_NAME, render_terminal(matrix, limit=len(matrix.rows)).encode()),
                       (CSV_NAME, render_csv(matrix)), (PDF_NAME, render_pdf(matrix))):
        write_bytes_atomic(out_dir / name, data)
        written.append(out_dir / name)
    return written
