"""The verification documents as one self-contained HTML file, rendered from a bundle alone.

    >>> from evidence.reader import Bundle
    >>> from reports.html import render_html
    >>> page = render_html(Bundle.open("runs/20261126T160000Z-linux-x86_64-3fa9c1"))  # doctest: +SKIP

The same sections as the PDF (reports/pdf_documents.py), from the same analysis
(reports/model.py), with a linked table of contents. One file: the style sheet is inline, there
is no script, no image and no link to anything outside the file, so it opens the same way on
an air-gapped machine years later. Procedure sources and console excerpts are in ``<details>``
elements (open on a click, no script needed).

Byte-reproducible: no clock, stable orders. Every text from the bundle is escaped
(``html.escape``) and its control characters shown as ``\\xNN`` (reports/textsafe.py).
"""

from __future__ import annotations

import json
import shlex
from functools import lru_cache
from html import escape

from evidence.format import VERDICTS as TET_CODES

from reports.model import (GAP_NO_TEST, GAP_NORMAL_ONLY, GAP_ROBUSTNESS_ONLY, SEVERITY, CaseRow,
                           Evidence, analyse)
from reports.junit import differential_note, location
from reports.pdf_documents import EXCERPT_MAX_BYTES, pass_fail_criteria
from reports.procedures import ProcedureSources
from reports.textsafe import CELL_MAX_CHARS, clip, visible_text

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222}
header.run{position:sticky;top:0;background:#f6f6f6;border-bottom:1px solid #ccc;padding:4px 16px;font-size:12px;z-index:1}
main{max-width:1200px;margin:0 auto;padding:8px 16px 48px}
h1{font-size:24px;margin:24px 0 4px}h2{font-size:20px;margin:32px 0 8px;border-bottom:2px solid #444}
h3{font-size:16px;margin:20px 0 6px}
table{border-collapse:collapse;width:100%;margin:6px 0 12px;font-size:12.5px}
th,td{border:1px solid #aaa;padding:3px 5px;vertical-align:top;text-align:left}
th{background:#d9d9d9}tr.group th{background:#ececec}
code,pre,.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12px}
pre{background:#f4f4f4;padding:6px;margin:2px 0;white-space:pre-wrap;overflow-wrap:anywhere}
.mono{overflow-wrap:anywhere}
.PASS{background:#dff0d8}.FAIL,.UNRESOLVED,.UNINITIATED{background:#f2dede}
.UNTESTED,.UNSUPPORTED{background:#fcf8e3}.notest{background:#e6e6e6}
.warn{color:#b35900;font-weight:600}.muted{color:#555}
nav ol{padding-left:20px}nav li{margin:2px 0}
td.n{text-align:right}
@media print{header.run{position:static}details{display:block}}
"""


def render_html(bundle, evidence: Evidence | None = None) -> bytes:
    """Render the bundle as one HTML document (UTF-8 bytes)."""
    evidence = evidence or analyse(bundle)
    page = _Page(evidence)
    sections = [
        ("config", "Configuration index", page.configuration),
        ("summary", "Verification results summary", page.summary),
        ("problems", "Problem reports", page.problems),
        ("trace-req", "Trace matrix: requirement to test cases to results",
         page.trace_requirements),
        ("trace-tc", "Trace matrix: test case to requirements", page.trace_testcases),
        ("gaps", "Trace gaps", page.gaps),
        ("coverage", "Requirements-based coverage analysis per profile", page.coverage),
        ("suspect", "Suspect links and results needing re-run", page.suspect),
        ("svr", "Software Verification Results", page.results),
        ("svcp", "Software Verification Cases and Procedures", page.cases),
        ("anomalies", "Appendix A: Protocol anomalies", page.anomalies),
        ("guest", "Appendix B: Guest start record", page.guest),
    ]
    out = page.out
    run_id = evidence.run_id
    out.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               f"<title>pcert verification evidence {_e(run_id)}</title>\n"
               f"<style>{STYLE}</style>\n</head>\n<body>\n"
               f"<header class=\"run\">pcert verification evidence &mdash; run <b>{_e(run_id)}"
               f"</b> &mdash; {_e(evidence.configuration_line())}</header>\n<main>\n")
    page.title()
    out.append("<nav><h2>Contents</h2><ol>")
    for number, (anchor, title, _) in enumerate(sections, 1):
        shown = title if title.startswith("Appendix") else f"{number} {title}"
        out.append(f"<li><a href=\"#{anchor}\">{_e(shown)}</a></li>")
    out.append("</ol></nav>\n")
    for number, (anchor, title, write) in enumerate(sections, 1):
        shown = title if title.startswith("Appendix") else f"{number} {title}"
        out.append(f"<section id=\"{anchor}\">\n<h2>{_e(shown)}</h2>\n")
        write()
        out.append("</section>\n")
    out.append("</main>\n</body>\n</html>\n")
    return "".join(out).encode("utf-8")


def _e(value: object, limit: int | None = CELL_MAX_CHARS) -> str:
    """Escaped, visible text: markup in guest output stays text."""
    # Remembered when short: verdicts, kinds, ids and criteria recur across sections and test
    # cases. Strings only: 1 and True are equal keys but unequal texts.
    if type(value) is str and len(value) <= REMEMBERED_CHARS:
        return _escaped_remembered(value, limit)
    return escape(visible_text(clip(value, limit)), quote=True)


REMEMBERED_CHARS = 1000


@lru_cache(maxsize=1 << 14)
def _escaped_remembered(text: str, limit: int | None) -> str:
    return escape(visible_text(clip(text, limit)), quote=True)


def _verdict_cell(verdict: str, extra: str = "") -> str:
    css = verdict if verdict in TET_CODES else "notest"
    return f"<td class=\"{css}\"><b>{_e(verdict)}</b>{extra}</td>"


class _Page:
    """Writes the sections into ``out`` (a list of strings joined once at the end)."""

    def __init__(self, evidence: Evidence):
        self.evidence = evidence
        self.out: list[str] = []

    def table(self, headers: list[str], rows) -> None:
        w = self.out.append
        w("<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in headers)
          + "</tr></thead><tbody>\n")
        for row in rows:
            w("<tr>" + "".join(row) + "</tr>\n")
        w("</tbody></table>\n")

    def para(self, text: str, css: str = "") -> None:
        self.out.append(f"<p{f' class={css!r}' if css else ''}>{_e(text, None)}</p>\n")

    # -- title -------------------------------------------------------------------------------

    def title(self) -> None:
        evidence = self.evidence
        manifest = evidence.manifest
        counts = ", ".join(f"{v} {n}" for v, n in evidence.counts().items() if n)
        self.out.append(f"<h1>POSIX/FACE conformance verification evidence</h1>\n"
                        f"<p class=\"mono\">{_e(evidence.run_id)}</p>\n")
        self.para(f"{evidence.configuration_line()}. Run status: "
                  f"{manifest.get('status') or 'unknown'}. {len(evidence.cases)} test cases: "
                  f"{counts or 'none'}. {len(evidence.requirements)} requirements. "
                  f"{len(evidence.problems)} problem reports, "
                  f"{len(evidence.open_problems())} open.")
        if evidence.waivers:
            self.para(f"{len(evidence.waivers)} waivers applied, judged on "
                      f"{evidence.as_of.isoformat()}.")
        if evidence.catalog_source is not None:
            self.para(f"Trace links checked against {evidence.catalog_source}: "
                      f"{len(evidence.needs_rerun())} results need re-run.")

    # -- 1 configuration ---------------------------------------------------------------------

    def configuration(self) -> None:
        manifest = self.evidence.manifest
        plan = manifest.get("plan") or {}
        command = manifest.get("command") or []
        exit_ = manifest.get("exit") or {}
        self.out.append("<h3>Run identification</h3>\n")
        items = [
            ("Run id", manifest.get("run_id")), ("Bundle format", manifest.get("schema")),
            ("Status", manifest.get("status")), ("Started (UTC)", manifest.get("started_utc")),
            ("Finished (UTC)", manifest.get("finished_utc")),
            ("Plan", ", ".join(f"{k} {plan[k]}" for k in ("profile", "edition", "checks",
                                                          "test_cases", "requirements")
                               if plan.get(k) is not None)),
            ("Target", json.dumps(manifest.get("target"), sort_keys=True, ensure_ascii=False)),
            ("Command line", shlex.join(str(a) for a in command)
             if isinstance(command, list) else command),
            ("Nonce", manifest.get("nonce")),
            ("Exit", ", ".join(f"{k} {exit_[k]}" for k in sorted(exit_))),
        ]
        self.table(["Item", "Value"], ([f"<th>{_e(k)}</th>", f"<td class=\"mono\">{_e(v)}</td>"]
                                       for k, v in items))
        self.out.append("<h3>Artifacts and tools</h3>\n")
        self.table(["Category", "Item", "Version", "sha256", "Detail"], (
            [f"<td>{_e(i.category)}</td>", f"<td><b>{_e(i.name)}</b></td>",
             f"<td>{_e(i.version)}</td>", f"<td class=\"mono\">{_e(i.sha256 or '-')}</td>",
             f"<td>{_e(i.detail)}</td>"] for i in self.evidence.configuration))

    # -- 2 summary -----------------------------------------------------------------------------

    def summary(self) -> None:
        evidence = self.evidence
        counts = evidence.counts()
        self.table(["Verdict", "TET code", "Test cases"], (
            [_verdict_cell(v) if counts[v] else f"<td>{_e(v)}</td>",
             f"<td class=\"n\">{TET_CODES.get(v, '?')}</td>", f"<td class=\"n\">{counts[v]}</td>"]
            for v in counts))
        self.para(f"{len(evidence.problems)} problem reports ({len(evidence.open_problems())} "
                  f"open); {len(evidence.gap_rows(GAP_NO_TEST))} requirements with no test "
                  f"case; {len(evidence.untraced)} test cases that trace to no requirement; "
                  f"{len(evidence.needs_rerun())} results need re-run.")
        per_unit: dict[str, dict[str, int]] = {}
        for case in evidence.cases:
            unit = str(case.testcase.get("unit") or case.testcase.get("interface") or "(no unit)")
            per_unit.setdefault(unit, {})
            per_unit[unit][case.verdict] = per_unit[unit].get(case.verdict, 0) + 1
        self.out.append("<h3>Per unit</h3>\n")
        self.table(["Unit", *TET_CODES, "Total"], (
            [f"<td>{_e(unit)}</td>"]
            + [f"<td class=\"n\">{per_unit[unit].get(v) or '-'}</td>" for v in TET_CODES]
            + [f"<td class=\"n\"><b>{sum(per_unit[unit].values())}</b></td>"]
            for unit in sorted(per_unit)))

    # -- 3 problem reports -------------------------------------------------------------------

    def problems(self) -> None:
        evidence = self.evidence
        open_ = evidence.open_problems()
        self.para("A discrepancy is a FAIL, UNRESOLVED, UNINITIATED or UNTESTED verdict, or "
                  "UNSUPPORTED where the run's profile requires the requirement; each has a "
                  "problem report. A waiver never changes a verdict."
                  + (f" Waivers judged on {evidence.as_of.isoformat()}." if evidence.as_of else ""))
        self.out.append(f"<h3>Open problem reports: {len(open_)}</h3>\n")
        order = sorted(open_, key=lambda p: (SEVERITY.index(p.case.verdict)
                                             if p.case.verdict in SEVERITY else -1))
        self.table(["Problem report", "Verdict", "Reason and location", "Verifies", "Notes"], (
            [f"<td id=\"{_e(p.id)}\"><b>{_e(p.id)}</b></td>", _verdict_cell(p.case.verdict),
             f"<td>{_e(p.case.result.get('reason'))}<br><code>{_e(location(p.case.result))}"
             f"</code>{_e(differential_note(p.case.result))}{self._excerpt(p.case)}</td>",
             f"<td>{_e(', '.join(p.case.testcase.get('verifies') or []))}</td>",
             f"<td class=\"warn\">{'<br>'.join(_e(f) for f in p.flags)}</td>"] for p in order))
        done = [p for p in evidence.problems if p.disposition]
        self.out.append(f"<h3>Dispositioned problem reports: {len(done)}</h3>\n")
        self.table(["Problem report", "Verdict", "Reason", "Disposition"], (
            [f"<td id=\"{_e(p.id)}\"><b>{_e(p.id)}</b></td>", _verdict_cell(p.case.verdict),
             f"<td>{_e(p.case.result.get('reason'))}</td>",
             f"<td>{_e(p.disposition.kind)} <b>{_e(p.disposition.id)}</b>, approved by "
             f"{_e(p.disposition.approver)} on {p.disposition.date.isoformat()}, expires "
             f"{_e(p.disposition.expires or 'never')}</td>"] for p in done))
        self.out.append("<h3>Waivers and interpretations</h3>\n")
        if not evidence.waivers:
            self.para("No waivers file was applied (pcert report --waivers FILE).")
            return
        disposed: dict[str, list[str]] = {}
        for problem in done:
            disposed.setdefault(problem.disposition.id, []).append(problem.id)
        self.table(["Waiver", "Covers", "Justification", "Approval", "State", "Dispositions"], (
            [f"<td><b>{_e(w.id)}</b><br>{_e(w.kind)}</td>", f"<td>{_e(', '.join(w.covers))}</td>",
             f"<td>{_e(w.justification)}</td>",
             f"<td>{_e(w.approver)}<br>approved {w.date.isoformat()}<br>expires "
             f"{w.expires.isoformat() if w.expires else 'never'}</td>",
             f"<td class=\"{'' if w.state(evidence.as_of) == 'valid' else 'warn'}\">"
             f"{_e(w.state(evidence.as_of))}</td>",
             f"<td>{_e(', '.join(disposed.get(w.id, [])) or 'nothing')}</td>"]
            for w in evidence.waivers))
        if evidence.waiver_findings:
            self.out.append("<ul>" + "".join(f"<li class=\"warn\">{_e(f)}</li>"
                                             for f in evidence.waiver_findings) + "</ul>\n")

    def _excerpt(self, case: CaseRow) -> str:
        if not isinstance(case.result.get("console"), dict):
            return ""
        raw = self.evidence.bundle.console_slice(case.result)
        tail = raw[-EXCERPT_MAX_BYTES:].decode("utf-8", errors="replace")
        shown = "end of the console slice" if len(raw) > EXCERPT_MAX_BYTES else "console slice"
        return (f"<details><summary>{shown} ({len(raw)} bytes)</summary>"
                f"<pre>{_e(tail, None)}</pre></details>")

    # -- 4-8 trace -----------------------------------------------------------------------------

    def trace_requirements(self) -> None:
        rows = []
        for row in self.evidence.requirements:
            r = row.requirement
            details = ", ".join(str(v) for v in (r.get("interface"), r.get("method"),
                                                 r.get("status")) if v)
            tests = "<br>".join(
                f"<a href=\"#{_e(case.id)}\">{_e(case.id)}</a>: "
                + (_e(case.verdict) if case.verdict == "PASS" else f"<b>{_e(case.verdict)}</b>")
                + (" <span class=\"warn\">suspect, needs re-run</span>" if row.id in case.suspect
                   else "")
                + (f" <a href=\"#{_e(case.problem.id)}\">{_e(case.problem.id)}</a> "
                   f"{_e(case.problem.status)}" if case.problem else "")
                for case in row.cases) or "-"
            gaps = "".join(f"<br><span class=\"muted\">{_e(g)}</span>" for g in row.gaps
                           if g != GAP_NO_TEST)
            rows.append([f"<td id=\"{_e(row.id)}\"><b>{_e(row.id)}</b> {_e(details)}<br>"
                         f"{_e(r.get('text'))}</td>", f"<td>{tests}</td>",
                         _verdict_cell(row.outcome, gaps)])
        for case in self.evidence.untraced:
            claimed = ", ".join(str(x) for x in case.testcase.get("verifies") or []) or "(none)"
            rows.append([f"<td><i>traces to no requirement in the bundle</i> (verifies: "
                         f"{_e(claimed)})</td>", f"<td>{_e(case.id)}: {_e(case.verdict)}</td>",
                         "<td class=\"notest\"></td>"])
        self.table(["Requirement", "Test cases: verdict", "Outcome"], rows)

    def trace_testcases(self) -> None:
        rows = []
        for case in self.evidence.cases:
            known = set(case.known_requirements)
            verifies = "<br>".join(
                (f"<a href=\"#{_e(rid)}\">{_e(rid)}</a>" if rid in known
                 else f"<span class=\"warn\">{_e(rid)} (not in the bundle)</span>")
                + (" <span class=\"warn\">suspect</span>" if rid in case.suspect else "")
                for rid in (str(x) for x in case.testcase.get("verifies") or [])) or "(none)"
            rows.append([f"<td><a href=\"#{_e(case.id)}\">{_e(case.id)}</a><br>"
                         f"{_e(case.testcase.get('title'))}</td>",
                         f"<td>{_e(case.testcase.get('kind'))}<br>"
                         f"{_e(case.testcase.get('method', 'test'))}</td>",
                         f"<td>{verifies}</td>", _verdict_cell(case.verdict)])
        self.table(["Test case", "Kind / method", "Verifies", "Verdict"], rows)

    def gaps(self) -> None:
        for title, gap in (("Requirements with no test case", GAP_NO_TEST),
                           ("Requirements with normal-range tests only", GAP_NORMAL_ONLY),
                           ("Requirements with robustness tests only", GAP_ROBUSTNESS_ONLY)):
            found = self.evidence.gap_rows(gap)
            self.out.append(f"<h3>{_e(title)}: {len(found)}</h3>\n")
            if found:
                self.table(["Requirement", "Method", "Interface", "Test cases"], (
                    [f"<td><a href=\"#{_e(r.id)}\">{_e(r.id)}</a></td>",
                     f"<td>{_e(r.requirement.get('method'))}</td>",
                     f"<td>{_e(r.requirement.get('interface'))}</td>",
                     f"<td>{_e(', '.join(c.id for c in r.cases) or '-')}</td>"] for r in found))
        untraced = self.evidence.untraced
        self.out.append(f"<h3>Test cases that trace to no requirement: {len(untraced)}</h3>\n")
        if untraced:
            self.table(["Test case", "Claims to verify"], (
                [f"<td>{_e(c.id)}</td>",
                 f"<td>{_e(', '.join(c.testcase.get('verifies') or []) or '(nothing)')}</td>"]
                for c in untraced))

    def coverage(self) -> None:
        self.para("For each profile named by the bundle's requirements: its active requirements, "
                  "how many have a test case, how many passed every test case, and how many have "
                  "a discrepancy (for a profile that requires it, UNSUPPORTED is one).")
        self.table(["Profile", "Requirements", "With a test case", "Covered", "All passed",
                    "Discrepancy", "No test"], (
            [f"<td><b>{_e(c.profile)}</b></td>", f"<td class=\"n\">{c.requirements}</td>",
             f"<td class=\"n\">{c.with_tests}</td>",
             f"<td class=\"n\">{100.0 * c.with_tests / c.requirements:.1f} %</td>"
             if c.requirements else "<td>-</td>",
             f"<td class=\"n\">{c.passed}</td>", f"<td class=\"n\">{c.discrepant}</td>",
             f"<td class=\"n\">{c.no_test}</td>"] for c in self.evidence.coverage))

    def suspect(self) -> None:
        evidence = self.evidence
        rerun = evidence.needs_rerun()
        if evidence.catalog_source is None:
            self.para("No current catalog was compared with this bundle (pcert report "
                      "--against-catalog). Links below, if any, are inconsistent within the "
                      "bundle.")
        else:
            self.para(f"Compared with {evidence.catalog_source}: {len(rerun)} results need "
                      "re-run.")
        rows = [[f"<td>{_e(rid)}</td>", f"<td>{_e(case.id)}</td>",
                 f"<td class=\"warn\">{_e('; '.join(reasons))}</td>",
                 f"<td>{_e(case.verdict)}, needs re-run</td>"]
                for case in rerun for rid, reasons in sorted(case.suspect.items())]
        if rows:
            self.table(["Requirement", "Test case", "Why suspect", "Result"], rows)
        else:
            self.para("No suspect link.")

    # -- 9 SVR, 10 SVCP ------------------------------------------------------------------------

    def results(self) -> None:
        rows = []
        for case in self.evidence.cases:
            result, problem = case.result, case.problem
            reason = _e(result.get("reason")) + (f"<br><code>{_e(location(result))}</code>"
                                                 if location(result) else "")
            rows.append([f"<td class=\"n\">{_e(case.testcase.get('index', ''))}</td>",
                         f"<td><a href=\"#{_e(case.id)}\">{_e(case.id)}</a></td>",
                         _verdict_cell(case.verdict, f" ({TET_CODES.get(case.verdict, '?')})"),
                         f"<td>{reason or '-'}</td>",
                         f"<td><a href=\"#{_e(problem.id)}\">{_e(problem.id)}</a> "
                         f"{_e(problem.status)}</td>" if problem else "<td>-</td>"])
        self.table(["#", "Test case", "Verdict", "Reason, location", "Problem report"], rows)

    def cases(self) -> None:
        sources = ProcedureSources.of(self.evidence.bundle)
        units: dict[str, list[CaseRow]] = {}
        for case in self.evidence.cases:
            units.setdefault(str(case.testcase.get("unit") or case.testcase.get("interface")
                                 or "(no unit)"), []).append(case)
        w = self.out.append
        for unit in sorted(units):
            w(f"<h3>Unit {_e(unit)}: {len(units[unit])} test cases</h3>\n<table><tbody>\n")
            for case in units[unit]:
                tc = case.testcase
                procedure = tc.get("procedure") or {}
                conditions = "; ".join(p for p in (
                    f"{'robustness' if tc.get('kind') == 'robustness' else 'normal-range'} "
                    "test case", f"method {tc.get('method', 'test')}",
                    f"header <{tc['header']}>" if tc.get("header") else "",
                    "needs option " + ", ".join(tc["options"]) if tc.get("options")
                    else "needs no POSIX option",
                    f"timeout {tc.get('timeout_s')} s" if tc.get("timeout_s") else "") if p)
                source = sources.source(tc)
                w(f"<tr class=\"group\" id=\"{_e(case.id)}\"><th>{_e(case.id)}</th><th>"
                  f"{_e(tc.get('title'))} [result {_e(case.verdict)}"
                  f"{', ' + _e(case.problem.id) if case.problem else ''}]</th></tr>\n")
                for label, value in (
                        ("Verifies", _e(", ".join(tc.get("verifies") or []) or "(nothing)")),
                        ("Conditions", _e(conditions)),
                        ("Inputs", f"<pre>{_e(tc.get('inputs') or '(none)', None)}</pre>"),
                        ("Expected result", _e(tc.get("expected") or "(not stated)")),
                        ("Pass/fail criteria", _e(pass_fail_criteria(tc))),
                        ("Procedure", f"<code>{_e(procedure.get('file'))} "
                                      f"{_e(procedure.get('function'))}</code><br>sha256 "
                                      f"<code>{_e(procedure.get('sha256'))}</code>"
                                      + (f"<details><summary>source</summary><pre>"
                                         f"{_e(source, None)}</pre></details>" if source else
                                         " (source not found in the bundle's procedures/)"))):
                    w(f"<tr><th>{label}</th><td>{value}</td></tr>\n")
            w("</tbody></table>\n")

    # -- appendices ----------------------------------------------------------------------------

    def anomalies(self) -> None:
        anomalies = list(self.evidence.bundle.anomalies)
        if not anomalies:
            self.para("None: every console record was accepted.")
            return
        self.table(["#", "Anomaly"], ([f"<td class=\"n\">{n}</td>", f"<td class=\"mono\">"
                                       f"{_e(json.dumps(a, sort_keys=True, ensure_ascii=False))}"
                                       "</td>"] for n, a in enumerate(anomalies, 1)))

    def guest(self) -> None:
        guest = self.evidence.manifest.get("guest") or {}
        if not isinstance(guest, dict) or not guest:
            self.para("The guest sent no start record.")
            return
        self.table(["Field", "Value"], (
            [f"<td class=\"mono\">{_e(k)}</td>", f"<td class=\"mono\">{_e(guest[k])}</td>"]
            for k in sorted(guest)))
