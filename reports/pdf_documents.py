"""The verification documents of the PDF report, laid out from :mod:`reports.model`.

    >>> story = documents(analyse(bundle), styles)          # doctest: +SKIP

Sections, numbered, each an outline entry and a line of the table of contents, in the order a
certification engineer reviews them:

1. Configuration index: the run's identification, then every artifact and tool with its
   version and sha256.
2. Verification results summary: verdicts with TET codes, per unit; problem reports.
3. Problem reports: open ones (grouped by verdict, with reason, location, requirements and the
   end of the console slice), dispositioned ones with their waiver; the waivers themselves.
4. Trace matrix, requirement to test cases to results; 5. test case to requirements;
6. trace gaps; 7. requirements-based coverage per profile; 8. suspect links.
9. Software Verification Results: the verdict of every procedure.
10. Software Verification Cases and Procedures: every test case with inputs, conditions,
    expected result, pass/fail criteria, the procedure's source and sha256.

Large tables use :class:`reports.pdf_layout.Grid`: 10,000 test cases render in seconds. The
largest (sections 4, 5, 6, 9 and 10) come from :func:`grids_to_make`, so that another process can
wrap their text while the PDF is laid out (reports/render.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from evidence.format import VERDICTS as TET_CODES
from reportlab.lib import colors
from reportlab.platypus import KeepTogether, PageBreak, Paragraph, Spacer

from reports.junit import differential_note, location
from reports.model import (GAP_NO_TEST, GAP_NORMAL_ONLY, GAP_ROBUSTNESS_ONLY, SEVERITY, VERDICTS,
                           Evidence, ProblemReport)
from reports.pdf_layout import (BODY_WIDTH, GAP, Grid, Heading, Listing, cell, group_row,
                                lines_cell)
from reports.procedures import ProcedureSources
from reports.textsafe import cell_text, markup, pdf_text

EXCERPT_MAX_BYTES = 4096
EXCERPT_MAX_LINES = 40
_EXCERPT_FONT_SIZE = 7
# Courier glyphs are 0.6 em wide: the columns that fit the body width, less the excerpt's indent.
EXCERPT_COLUMNS = int((BODY_WIDTH - 8) / (0.6 * _EXCERPT_FONT_SIZE))
SOURCE_MAX_CHARS = 8000

VERDICT_COLOURS = {
    "PASS": colors.HexColor("#dff0d8"),
    "FAIL": colors.HexColor("#f2dede"),
    "UNRESOLVED": colors.HexColor("#f2dede"),
    "UNINITIATED": colors.HexColor("#f2dede"),
    "UNTESTED": colors.HexColor("#fcf8e3"),
    "UNSUPPORTED": colors.HexColor("#fcf8e3"),
}
NO_TEST_COLOUR = colors.HexColor("#e6e6e6")
SUSPECT_COLOUR = colors.HexColor("#b35900")
ROW_HEADER = colors.HexColor("#eeeeee")


class Outline:
    """Numbers the headings: "3 Problem reports", "3.1 Open problem reports", "A ..."."""

    def __init__(self, styles):
        self.styles = styles
        self.section, self.subsection = 0, 0
        self.appendix = 0

    def h1(self, title: str) -> Heading:
        self.section, self.subsection = self.section + 1, 0
        text = f"{self.section} {title}"
        return Heading(markup(text), self.styles["h1"], level=0, key=f"s{self.section}",
                       title=pdf_text(text))

    def h2(self, title: str) -> Heading:
        self.subsection += 1
        text = f"{self.section}.{self.subsection} {title}"
        return Heading(markup(text), self.styles["h2"], level=1,
                       key=f"s{self.section}.{self.subsection}", title=pdf_text(text))

    def annex(self, title: str) -> Heading:
        self.appendix += 1
        letter = chr(ord("A") + self.appendix - 1)
        text = f"Appendix {letter}: {title}"
        return Heading(markup(text), self.styles["h1"], level=0, key=f"a{letter}",
                       title=pdf_text(text))


def _para(text: str, styles, style: str = "body") -> Paragraph:
    return Paragraph(markup(text, limit=None), styles[style])


def verdict_label(verdict: str) -> str:
    return f"{verdict} ({TET_CODES[verdict]})" if verdict in TET_CODES else verdict


# --------------------------------------------------------------------------- 1 configuration

def configuration_index(evidence: Evidence, outline: Outline, identification: list) -> list:
    """``identification``: (item, value, mono) rows naming the run (reports/pdf.py)."""
    styles = outline.styles
    story = [outline.h1("Configuration index"),
             _para("Everything that produced this evidence, identified by version and sha256. "
                   "A re-run with the same items is expected to give the same results.", styles),
             outline.h2("Run identification")]
    rows = [[cell(cell_text(item), bold=True), cell(cell_text(value), mono=mono)]
            for item, value, mono in identification]
    story.append(Grid([42 * 2.835, BODY_WIDTH - 42 * 2.835], rows,
                      header=[cell("Item", bold=True), cell("Value", bold=True)]))
    story.append(outline.h2("Artifacts and tools"))
    rows = [[cell(cell_text(item.category)), cell(cell_text(item.name), bold=True),
             cell(cell_text(item.version)), cell(item.sha256 or "-", mono=True),
             cell(cell_text(item.detail))] for item in evidence.configuration]
    story.append(Grid([48, 100, 90, 140, BODY_WIDTH - 378], rows, header=[
        cell(title, bold=True) for title in ("Category", "Item", "Version", "sha256", "Detail")]))
    return story


# --------------------------------------------------------------------------- 2 summary

def results_summary(evidence: Evidence, outline: Outline) -> list:
    styles = outline.styles
    counts = evidence.counts()
    story = [outline.h1("Verification results summary"), outline.h2("Verdicts")]
    rows = [[cell(verdict, bold=True, background=VERDICT_COLOURS.get(verdict) if counts[verdict]
                  else None), cell(str(TET_CODES.get(verdict, "?"))), cell(str(counts[verdict]))]
            for verdict in counts]
    rows.append([cell("Total", bold=True), cell(""), cell(str(len(evidence.cases)), bold=True)])
    story.append(Grid([110, 60, 60], rows, header=[
        cell(t, bold=True) for t in ("Verdict", "TET code", "Test cases")]))
    declared = evidence.manifest.get("summary")
    if isinstance(declared, dict) and any(declared.get(v, 0) != counts.get(v, 0) for v in VERDICTS):
        # Reconcile, as TET reports do: the manifest's totals must match results.jsonl.
        story += [Spacer(1, 4), _para(
            "Note: the manifest summary differs from the results: "
            + ", ".join(f"{v} {declared.get(v, 0)}" for v in VERDICTS)
            + ". The counts above are from results.jsonl.", styles)]
    open_ = len(evidence.open_problems())
    story += [Spacer(1, 4), _para(
        f"{len(evidence.problems)} problem reports ({open_} open); "
        f"{len(evidence.gap_rows(GAP_NO_TEST))} requirements with no test case; "
        f"{len(evidence.untraced)} test cases that trace to no requirement; "
        f"{len(evidence.needs_rerun())} results need re-run.", styles)]
    story.append(outline.h2("Per unit"))
    per_unit: dict[str, dict[str, int]] = {}
    for case in evidence.cases:
        unit = str(case.testcase.get("unit") or case.testcase.get("interface") or "(no unit)")
        per_unit.setdefault(unit, dict.fromkeys(VERDICTS, 0))
        per_unit[unit][case.verdict] = per_unit[unit].get(case.verdict, 0) + 1
    rows = [[cell(cell_text(unit))] + [cell(str(per_unit[unit].get(v)) if per_unit[unit].get(v)
                                            else "-") for v in VERDICTS]
            + [cell(str(sum(per_unit[unit].values())), bold=True)] for unit in sorted(per_unit)]
    count_width = 62   # fits "UNSUPPORTED" in bold
    story.append(Grid([BODY_WIDTH - count_width * len(VERDICTS) - 40]
                      + [count_width] * len(VERDICTS) + [40], rows,
                      header=[cell("Unit", bold=True)]
                      + [cell(f"{v}\n({TET_CODES[v]})", bold=True) for v in VERDICTS]
                      + [cell("Total", bold=True)], size=7))
    return story


# --------------------------------------------------------------------------- 3 problem reports

def problem_reports(evidence: Evidence, outline: Outline) -> list:
    styles = outline.styles
    open_, done = evidence.open_problems(), [p for p in evidence.problems if p.disposition]
    story = [outline.h1("Problem reports"), _para(
        f"{len(evidence.problems)} discrepancies, one problem report each: {len(open_)} open, "
        f"{len(done)} dispositioned by a waiver. A discrepancy is a FAIL, UNRESOLVED, "
        "UNINITIATED or UNTESTED verdict, or UNSUPPORTED where the run's profile requires the "
        "requirement. A waiver never changes a verdict."
        + (f" Waivers judged on {evidence.as_of.isoformat()}." if evidence.as_of else ""),
        styles)]
    story.append(outline.h2("Open problem reports"))
    if not open_:
        story.append(_para("None: every discrepancy is dispositioned, or there is none.", styles))
    story += _problem_entries(evidence, open_, styles)
    story.append(outline.h2("Dispositioned problem reports"))
    if not done:
        story.append(_para("None.", styles))
    else:
        rows = [[cell(p.id, bold=True), cell(verdict_label(p.case.verdict)),
                 cell(cell_text(p.case.result.get("reason"))),
                 cell(f"{p.disposition.kind} {p.disposition.id}\napproved by "
                      f"{cell_text(p.disposition.approver)} on {p.disposition.date.isoformat()}"
                      f"\nexpires {p.disposition.expires or 'never'}")] for p in done]
        story.append(Grid([120, 62, 170, BODY_WIDTH - 352], rows, header=[
            cell(t, bold=True) for t in ("Problem report", "Verdict", "Reason", "Disposition")]))
    story.append(outline.h2("Waivers and interpretations"))
    story += _waivers(evidence, styles)
    return story


def _problem_entries(evidence: Evidence, problems: list[ProblemReport], styles) -> list:
    by_verdict: dict[str, list[ProblemReport]] = {}
    for problem in problems:
        by_verdict.setdefault(problem.case.verdict, []).append(problem)
    order = sorted(by_verdict, key=lambda v: (SEVERITY.index(v) if v in SEVERITY else -1, v))
    story = []
    for verdict in order:
        group = by_verdict[verdict]
        heading = Paragraph(markup(f"{verdict} (TET {TET_CODES.get(verdict, '?')}): {len(group)} "
                                   f"test case{'s' if len(group) != 1 else ''}"), styles["h3"])
        for position, problem in enumerate(group):
            story += _problem_entry(evidence, problem, styles,
                                    lead=[heading] if position == 0 else [])
    return story


def _problem_entry(evidence: Evidence, problem: ProblemReport, styles, lead=()) -> list:
    case = problem.case
    testcase, result = case.testcase, case.result
    procedure = testcase.get("procedure") or {}
    console = result.get("console")
    items = [
        ("Test case", f"{case.id}  {testcase.get('title') or ''}"),
        ("Verdict", f"{case.verdict} (TET {result.get('code', TET_CODES.get(case.verdict))})"),
        ("Reason", result.get("reason") or "(none given)"),
        ("Location", location(result) or "(none given)"),
        ("Differential", differential_note(result)),
        ("Unit / interface", f"{testcase.get('unit') or '-'} / {testcase.get('interface') or '-'}"),
        ("Kind", testcase.get("kind")),
        ("Verifies", ", ".join(str(rid) for rid in testcase.get("verifies") or []) or "(none)"),
        ("Procedure", " ".join(str(v) for v in (procedure.get("file"), procedure.get("function"))
                               if v)
         + f" sha256 {procedure.get('sha256') or result.get('procedure_sha256')}"),
        ("Console bytes", f"[{console.get('start')}, {console.get('end')}) of "
                          f"{console.get('file', 'console.log')}"
         if isinstance(console, dict) else "none: the test case never began"),
    ]
    items += [("Waiver", flag) for flag in problem.flags]
    if case.needs_rerun:
        items.append(("Suspect", "needs re-run: " + "; ".join(
            f"{rid}: {', '.join(reasons)}" for rid, reasons in sorted(case.suspect.items()))))
    rows = [[cell(label, bold=True),
             cell(cell_text(value), mono=label in ("Location", "Procedure"),
                  colour=SUSPECT_COLOUR if label in ("Waiver", "Suspect") else None)]
            for label, value in items if value not in (None, "")]
    grid = Grid([110, BODY_WIDTH - 110], rows,
                header=[cell(problem.id, bold=True), cell(f"{problem.status}", bold=True)])
    entry = [KeepTogether([*lead, grid])]
    raw = evidence.bundle.console_slice(result) if isinstance(console, dict) else b""
    if raw:
        caption, lines = console_excerpt(raw)
        entry += [Spacer(1, 2), Paragraph(markup(caption), styles["cell"]), Spacer(1, 1),
                  Listing(lines, styles["excerpt"])]
    return entry + [Spacer(1, 8)]


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


def _waivers(evidence: Evidence, styles) -> list:
    if not evidence.waivers:
        return [_para("No waivers file was applied (pcert report --waivers FILE).", styles)]
    disposed: dict[str, list[str]] = {}
    for problem in evidence.problems:
        if problem.disposition:
            disposed.setdefault(problem.disposition.id, []).append(problem.id)
    rows = []
    for waiver in evidence.waivers:
        state = waiver.state(evidence.as_of)
        rows.append([
            cell(f"{waiver.id}\n{waiver.kind}", bold=True,
                 background=None if state == "valid" else VERDICT_COLOURS["FAIL"]),
            cell(cell_text(", ".join(waiver.covers))),
            cell(cell_text(waiver.justification)),
            cell(f"{cell_text(waiver.approver)}\napproved {waiver.date.isoformat()}\nexpires "
                 f"{waiver.expires.isoformat() if waiver.expires else 'never'}\n{state}"),
            cell(", ".join(disposed.get(waiver.id, [])) or "nothing"),
        ])
    story = [Grid([70, 90, 160, 90, BODY_WIDTH - 410], rows, header=[
        cell(t, bold=True) for t in ("Waiver", "Covers", "Justification", "Approval",
                                     "Dispositions")])]
    if evidence.waiver_findings:
        story += [Spacer(1, 4), _para("Findings about the waivers:", styles, "h3")]
        story.append(Grid([BODY_WIDTH], [[cell(cell_text(f), colour=SUSPECT_COLOUR)]
                                         for f in evidence.waiver_findings]))
    return story


# --------------------------------------------------------------------------- 4-8 trace

def trace_requirements(evidence: Evidence, outline: Outline, grids: Iterator[Grid]) -> list:
    """``grids``: what :func:`grids_to_make` gives (made here or in another process), at
    this section's grid; sections 5, 6, 9 and 10 take theirs from it in turn."""
    styles = outline.styles
    untested = len(evidence.gap_rows(GAP_NO_TEST))
    return [outline.h1("Trace matrix: requirement to test cases to results"), _para(
        f"{len(evidence.requirements)} requirements in the bundle, sorted by id; {untested} with "
        "no test case. Outcome is the most serious verdict of the requirement's test cases; "
        "gaps are named under it. A suspect link (its requirement or procedure changed since "
        "the run) is marked, and its result needs re-run.", styles), Spacer(1, 4), next(grids)]


def _requirements_grid(evidence: Evidence) -> Grid:
    rows = []
    for row in evidence.requirements:
        requirement = row.requirement
        details = ", ".join(str(requirement[key]) for key in ("interface", "method", "status")
                            if requirement.get(key))
        tests = [(f"{case.id}: {case.verdict}" + (" - suspect, needs re-run"
                                                  if row.id in case.suspect else "")
                  + (f" - {case.problem.id} {case.problem.status}" if case.problem else ""),
                  case.verdict != "PASS" or row.id in case.suspect) for case in row.cases]
        outcome = [(row.outcome, True)] + [(gap, False) for gap in row.gaps if gap != GAP_NO_TEST]
        rows.append([
            lines_cell([(f"{cell_text(row.id)}  {cell_text(details)}", True),
                        (cell_text(requirement.get("text")), False)]),
            lines_cell([(cell_text(text), bold) for text, bold in tests] or [("-", False)]),
            lines_cell(outcome, background=VERDICT_COLOURS.get(row.outcome, NO_TEST_COLOUR)),
        ])
    for case in evidence.untraced:
        claimed = ", ".join(str(rid) for rid in case.testcase.get("verifies") or []) or "(none)"
        rows.append([cell(cell_text(f"traces to no requirement in the bundle (verifies: "
                                    f"{claimed})"), italic=True),
                     cell(cell_text(f"{case.id}: {case.verdict}")),
                     cell(case.verdict, bold=True, background=NO_TEST_COLOUR)])
    return Grid([BODY_WIDTH - 250, 170, 80], rows, header=[
        cell(t, bold=True) for t in ("Requirement", "Test cases: verdict", "Outcome")])


def trace_testcases(evidence: Evidence, outline: Outline, grids: Iterator[Grid]) -> list:
    styles = outline.styles
    return [outline.h1("Trace matrix: test case to requirements"), _para(
        f"{len(evidence.cases)} test cases in plan order, with the requirements each verifies. "
        "A requirement the bundle does not list is marked.", styles), Spacer(1, 4), next(grids)]


def _testcases_grid(evidence: Evidence) -> Grid:
    rows = []
    for case in evidence.cases:
        testcase = case.testcase
        known = set(case.known_requirements)
        requirements = [(rid + ("" if rid in known else " (not in the bundle)")
                         + (" - suspect" if rid in case.suspect else ""),
                         rid not in known or rid in case.suspect)
                        for rid in (str(r) for r in testcase.get("verifies") or [])]
        rows.append([
            cell(cell_text(f"{case.id}\n{testcase.get('title') or ''}", 300)),
            cell(f"{testcase.get('kind') or '-'}\n{testcase.get('method', 'test')}"),
            lines_cell([(cell_text(t), b) for t, b in requirements] or [("(none)", True)]),
            cell(case.verdict, bold=True, background=VERDICT_COLOURS.get(case.verdict)),
        ])
    return Grid([190, 60, BODY_WIDTH - 320, 70], rows, header=[
        cell(t, bold=True) for t in ("Test case", "Kind / method", "Verifies", "Verdict")])


_GAPS = (("Requirements with no test case", GAP_NO_TEST),
         ("Requirements with normal-range tests only", GAP_NORMAL_ONLY),
         ("Requirements with robustness tests only", GAP_ROBUSTNESS_ONLY))


def trace_gaps(evidence: Evidence, outline: Outline, grids: Iterator[Grid]) -> list:
    """``grids``: at this section's grids, one per kind of gap found (:func:`_gap_grids`)."""
    styles = outline.styles
    story = [outline.h1("Trace gaps"), _para(
        "Requirements a test case does not verify, or verifies only in part, and test cases "
        "that trace to no requirement. Robustness is asked of requirements verified by test.",
        styles)]
    for title, gap in _GAPS:
        found = evidence.gap_rows(gap)
        story += [outline.h2(f"{title}: {len(found)}")]
        if found:
            story.append(next(grids))
    story.append(outline.h2(f"Test cases that trace to no requirement: {len(evidence.untraced)}"))
    if evidence.untraced:
        story.append(next(grids))
    return story


def _gap_grids(evidence: Evidence) -> Iterator[Grid]:
    for _, gap in _GAPS:
        found = evidence.gap_rows(gap)
        if found:
            yield Grid([130, 45, 90, BODY_WIDTH - 265], [
                [cell(cell_text(r.id), bold=True), cell(cell_text(r.requirement.get("method"))),
                 cell(cell_text(r.requirement.get("interface"))),
                 cell(cell_text(", ".join(c.id for c in r.cases) or "-"))] for r in found],
                header=[cell(t, bold=True) for t in ("Requirement", "Method", "Interface",
                                                     "Test cases")])
    if evidence.untraced:
        yield Grid([190, BODY_WIDTH - 190], [
            [cell(cell_text(c.id), bold=True),
             cell(cell_text(", ".join(str(r) for r in c.testcase.get("verifies") or [])
                            or "(verifies nothing)"))] for c in evidence.untraced],
            header=[cell("Test case", bold=True), cell("Claims to verify", bold=True)])


def coverage(evidence: Evidence, outline: Outline) -> list:
    styles = outline.styles
    story = [outline.h1("Requirements-based coverage analysis per profile"), _para(
        "For each profile named by the bundle's requirements: how many of its active "
        "requirements have a test case, how many of those passed every test case, and how "
        "many have a discrepancy (for a profile that requires a requirement, UNSUPPORTED is "
        "a discrepancy).", styles), Spacer(1, 4)]
    rows = []
    for entry in evidence.coverage:
        share = (f"{100.0 * entry.with_tests / entry.requirements:.1f} %"
                 if entry.requirements else "-")
        rows.append([cell(cell_text(entry.profile), bold=True), cell(str(entry.requirements)),
                     cell(str(entry.with_tests)), cell(share), cell(str(entry.passed)),
                     cell(str(entry.discrepant)), cell(str(entry.no_test))])
    if not rows:
        rows = [[cell("(the requirements name no profile)")] + [cell("")] * 6]
    story.append(Grid([BODY_WIDTH - 330, 55, 55, 55, 55, 55, 55], rows, header=[
        cell(t, bold=True) for t in ("Profile", "Require-\nments", "With a\ntest case",
                                     "Covered", "All\npassed", "Discre-\npancy", "No test")]))
    return story


def suspect_links_section(evidence: Evidence, outline: Outline) -> list:
    styles = outline.styles
    rerun = evidence.needs_rerun()
    if evidence.catalog_source is None:
        intro = ("No current catalog was compared with this bundle (pcert report "
                 "--against-catalog). Links below, if any, are inconsistent within the bundle.")
    else:
        intro = (f"Compared with {evidence.catalog_source}: {len(rerun)} results need re-run "
                 "because a requirement they verify was reworded or removed, or their "
                 "procedure changed.")
    story = [outline.h1("Suspect links and results needing re-run"), _para(intro, styles)]
    rows = [[cell(cell_text(rid), bold=True), cell(cell_text(case.id)),
             cell(cell_text("; ".join(reasons)), colour=SUSPECT_COLOUR),
             cell(f"{case.verdict}\nneeds re-run")]
            for case in rerun for rid, reasons in sorted(case.suspect.items())]
    if rows:
        story += [Spacer(1, 4), Grid([110, 120, BODY_WIDTH - 300, 70], rows, header=[
            cell(t, bold=True) for t in ("Requirement", "Test case", "Why suspect", "Result")])]
    else:
        story.append(_para("No suspect link.", styles))
    return story


# --------------------------------------------------------------------------- 9 SVR

def verification_results(evidence: Evidence, outline: Outline, grids: Iterator[Grid]) -> list:
    styles = outline.styles
    return [outline.h1("Software Verification Results"), _para(
        "The verdict of every procedure, in plan order, with its reason and the problem "
        "report of each discrepancy.", styles), Spacer(1, 4), next(grids)]


def _results_grid(evidence: Evidence) -> Grid:
    rows = []
    for case in evidence.cases:
        result = case.result
        reason = "\n".join(part for part in (cell_text(result.get("reason"), 400),
                                             cell_text(location(result))) if part)
        problem = case.problem
        rows.append([
            cell(str(case.testcase.get("index", ""))),
            cell(cell_text(case.id), bold=True),
            cell(verdict_label(case.verdict), background=VERDICT_COLOURS.get(case.verdict)),
            cell(reason or "-"),
            cell(f"{problem.id}\n{problem.status}" if problem else "-",
                 colour=SUSPECT_COLOUR if problem and problem.status == "open" else None),
        ])
    return Grid([24, 150, 64, BODY_WIDTH - 348, 110], rows, header=[
        cell(t, bold=True) for t in ("#", "Test case", "Verdict", "Reason, location",
                                     "Problem report")])


# --------------------------------------------------------------------------- 10 SVCP

def cases_and_procedures(evidence: Evidence, outline: Outline, grids: Iterator[Grid]) -> list:
    """``grids``: at this section's grids, one per unit."""
    styles = outline.styles
    story = [outline.h1("Software Verification Cases and Procedures"), _para(
        "Each test case with its inputs, conditions, expected result and pass/fail criteria, "
        "and the procedure that executes it: its source as it ran (from the bundle's "
        "procedures/) and its sha256. Grouped by unit, in plan order.", styles)]
    for unit, cases in _units(evidence).items():
        story += [outline.h2(f"Unit {unit}: {len(cases)} test cases"), next(grids)]
    return story


def _procedure_grids(evidence: Evidence) -> Iterator[Grid]:
    sources = ProcedureSources.of(evidence.bundle)
    for cases in _units(evidence).values():
        rows = []
        for case in cases:
            rows += _case_rows(case, sources) + [GAP]
        # One grid per unit: each test case's id and title head its rows, also on a new page.
        yield Grid([118, BODY_WIDTH - 118], rows[:-1])


def grids_to_make(evidence: Evidence) -> Iterator[Grid]:
    """The grids of sections 4, 5, 6, 9 and 10, in story order: most of the story's cost
    (every line of every procedure is wrapped here), so another process can make them while
    this one lays out what comes before each (reports/render.py)."""
    yield first_grid(evidence)
    yield from later_grids(evidence)


def first_grid(evidence: Evidence) -> Grid:
    """Section 4's grid: the layout reaches it before another process could have it made, so
    the PDF's process makes it while the other makes the next (reports/render.py)."""
    return _requirements_grid(evidence)


def later_grids(evidence: Evidence) -> Iterator[Grid]:
    """The grids of :func:`grids_to_make` after the first."""
    yield _testcases_grid(evidence)
    yield from _gap_grids(evidence)
    yield _results_grid(evidence)
    yield from _procedure_grids(evidence)


def _units(evidence: Evidence) -> dict[str, list]:
    """Unit (else interface) -> its test cases in plan order; units sorted."""
    units: dict[str, list] = {}
    for case in evidence.cases:
        units.setdefault(str(case.testcase.get("unit") or case.testcase.get("interface")
                             or "(no unit)"), []).append(case)
    return {unit: units[unit] for unit in sorted(units)}


def _case_rows(case, sources: ProcedureSources) -> list:
    testcase = case.testcase
    procedure = testcase.get("procedure") or {}
    method = testcase.get("method", "test")
    conditions = "; ".join(part for part in (
        f"{'robustness' if testcase.get('kind') == 'robustness' else 'normal-range'} test case",
        f"method {method}",
        f"interface {testcase.get('interface')}" if testcase.get("interface") else "",
        f"header <{testcase['header']}>" if testcase.get("header") else "",
        "needs option " + ", ".join(testcase.get("options")) if testcase.get("options") else
        "needs no POSIX option",
        f"timeout {testcase.get('timeout_s')} s" if testcase.get("timeout_s") else "",
    ) if part)
    source = sources.source(testcase)
    rows = [
        ("Verifies", ", ".join(str(r) for r in testcase.get("verifies") or []) or "(nothing)",
         False),
        ("Conditions", conditions, False),
        ("Inputs", testcase.get("inputs") or "(none)", True),
        ("Expected result", testcase.get("expected") or "(not stated)", False),
        ("Pass/fail criteria", pass_fail_criteria(testcase), False),
        ("Procedure", f"{procedure.get('file') or '-'}  {procedure.get('function') or ''}\nsha256 "
                      f"{procedure.get('sha256') or '-'}", True),
        ("Source", source or "(not found in the bundle's procedures/; see the file above)", True),
    ]
    result = f"result {case.verdict}" + (f", {case.problem.id}" if case.problem else "")
    return [group_row([cell(cell_text(case.id), bold=True),
                       cell(cell_text(f"{testcase.get('title') or ''}   [{result}]", 300),
                            bold=True)])] + [
        [cell(label, bold=True), cell(cell_text(value, SOURCE_MAX_CHARS), mono=mono)]
        for label, value, mono in rows]


def pass_fail_criteria(testcase: dict) -> str:
    """What decides the verdict of a test case, from how it verifies (docs/protocol.md)."""
    method = testcase.get("method", "test")
    if method == "compile":
        return ("PASS when the declarations compile against the target's headers; FAIL when "
                "the compiler rejects one (its diagnostic is the reason).")
    if method == "link":
        return ("PASS when every symbol resolves when linking with the target's libraries; FAIL "
                "when one does not.")
    if method == "namespace":
        return ("PASS when the header defines no name beyond those the standard allows; FAIL "
                "names the extra ones.")
    options = testcase.get("options") or []
    criteria = ("PASS when every assertion of the procedure holds; FAIL when one does not (the "
                "reason gives the assertion with file:line and the values); UNRESOLVED when its "
                "setup cannot be established, or it crashes, or it gives no result within "
                f"{testcase.get('timeout_s') or 'the default'} s")
    if options:
        criteria += f"; UNSUPPORTED when {', '.join(options)} is not supported"
    return criteria + "."


# --------------------------------------------------------------------------- the set

def documents(evidence: Evidence, styles, identification: list,
              grids: Iterable[Grid] | None = None) -> tuple[list, Outline]:
    """The numbered sections and the outline that numbered them (appendices continue it).
    ``grids``: what :func:`grids_to_make` gives, if made elsewhere; by default made here."""
    outline = Outline(styles)
    grids = iter(grids_to_make(evidence) if grids is None else grids)
    story = []
    for part in (lambda: configuration_index(evidence, outline, identification),
                 lambda: results_summary(evidence, outline),
                 lambda: problem_reports(evidence, outline),
                 lambda: trace_requirements(evidence, outline, grids),
                 lambda: trace_testcases(evidence, outline, grids),
                 lambda: trace_gaps(evidence, outline, grids),
                 lambda: coverage(evidence, outline),
                 lambda: suspect_links_section(evidence, outline),
                 lambda: verification_results(evidence, outline, grids),
                 lambda: cases_and_procedures(evidence, outline, grids)):
        story += [PageBreak()] + part()
    return story, outline
