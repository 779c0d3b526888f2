"""What the verification documents say, computed once from a bundle (and the waivers and
catalog snapshot given at report time); the PDF, HTML, CSV and ReqIF renderers only lay it out.

>>> from evidence.reader import Bundle
>>> evidence = analyse(Bundle.open("runs/x"))                              # doctest: +SKIP
>>> [row.requirement["id"] for row in evidence.requirements if "no test case" in row.gaps]  # doctest: +SKIP
['REQ-IF-FD_CLR', ...]
>>> evidence.open_problems()[0].id                                          # doctest: +SKIP
'PR-TC-read-002'

Words (docs/evidence.md):

- **discrepancy**: a result that does not show its requirements met: FAIL, UNRESOLVED,
  UNINITIATED and UNTESTED always; UNSUPPORTED when the run's profile requires one of the
  requirements the test case verifies (whether UNSUPPORTED is acceptable depends on the profile).
  Each discrepancy has a **problem report** ``PR-<test case id>``, stable from run to run.
- **disposition**: a waiver valid on the report's date that covers the test case (or one of its
  requirements). The verdict never changes; the problem report is then *dispositioned*, else
  *open*. An expired or not yet valid waiver leaves it open and is flagged.
- **gap**: a requirement with no test case; a requirement verified by test with normal-range
  test cases only (no robustness test) or robustness test cases only (no normal-range test); a
  test case that traces to no requirement of the bundle.
- **suspect link**: see reports/suspect.py; the result of a suspect link *needs re-run*.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from evidence import format as fmt
from evidence.fingerprints import environment_sha256
from evidence.waivers import Waiver

from reports.suspect import inconsistent_links, suspect_links

VERDICTS = tuple(fmt.VERDICTS)
SEVERITY = fmt.SEVERITY
ALWAYS_DISCREPANT = frozenset({"FAIL", "UNRESOLVED", "UNINITIATED", "UNTESTED"})
NO_TEST = fmt.NO_TEST
worst = fmt.worst
MISSING_RESULT_REASON = "no result recorded in the bundle"

GAP_NO_TEST = "no test case"
GAP_NORMAL_ONLY = "normal-range tests only (no robustness test)"
GAP_ROBUSTNESS_ONLY = "robustness tests only (no normal-range test)"


@dataclass
class CaseRow:
    """One planned test case with its result (UNINITIATED when the bundle has none)."""

    testcase: dict
    result: dict
    verdict: str
    known_requirements: list[str]            # the ids it verifies that the bundle lists
    problem: "ProblemReport | None" = None
    suspect: dict[str, list[str]] = field(default_factory=dict)   # requirement id -> reasons

    @property
    def id(self) -> str:
        return str(self.testcase.get("id"))

    @property
    def needs_rerun(self) -> bool:
        return bool(self.suspect)


@dataclass
class RequirementRow:
    requirement: dict
    cases: list[CaseRow]
    outcome: str                              # most serious verdict, or "no test"
    gaps: list[str]

    @property
    def id(self) -> str:
        return str(self.requirement.get("id"))

    def suspect_cases(self) -> list[CaseRow]:
        return [case for case in self.cases if self.id in case.suspect]


@dataclass
class ProblemReport:
    id: str
    case: CaseRow
    disposition: Waiver | None = None         # the valid waiver that dispositions it
    flags: list[str] = field(default_factory=list)   # expired or not yet valid waivers

    @property
    def status(self) -> str:
        return "dispositioned" if self.disposition else "open"


@dataclass
class ProfileCoverage:
    profile: str
    requirements: int = 0
    with_tests: int = 0
    passed: int = 0             # every test case PASS
    discrepant: int = 0         # at least one discrepancy
    other: int = 0              # tested, with a verdict this pcert does not know

    @property
    def no_test(self) -> int:
        return self.requirements - self.with_tests


@dataclass
class ConfigItem:
    category: str
    name: str
    version: str
    sha256: str
    detail: str = ""


@dataclass
class Evidence:
    bundle: object
    cases: list[CaseRow]
    requirements: list[RequirementRow]
    untraced: list[CaseRow]
    problems: list[ProblemReport]
    coverage: list[ProfileCoverage]
    configuration: list[ConfigItem]
    waivers: list[Waiver]
    waiver_findings: list[str]
    as_of: dt.date | None
    catalog_source: str | None                # None: no catalog was compared

    @property
    def manifest(self) -> dict:
        return self.bundle.manifest

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id") or "")

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for case in self.cases:
            counts[case.verdict] = counts.get(case.verdict, 0) + 1
        return counts

    def open_problems(self) -> list[ProblemReport]:
        return [problem for problem in self.problems if problem.status == "open"]

    def needs_rerun(self) -> list[CaseRow]:
        return [case for case in self.cases if case.needs_rerun]

    def gap_rows(self, gap: str) -> list[RequirementRow]:
        return [row for row in self.requirements if gap in row.gaps]

    def configuration_line(self) -> str:
        """One line for running headers: target, profile, image hash."""
        manifest = self.manifest
        plan = manifest.get("plan") or {}
        target = manifest.get("target") or {}
        image = manifest.get("image") or {}
        profile = plan.get("profile") or "no profile"
        if plan.get("edition"):
            profile += f"@{plan['edition']}"
        parts = [f"target {target.get('name') or '?'}", f"profile {profile}"]
        if image.get("sha256"):
            parts.append(f"image {image['sha256'][:12]}")
        return ", ".join(parts)


def verdict_of(result: dict) -> str:
    return str(result.get("verdict") or "UNRESOLVED")


def analyse(bundle, *, waivers: list[Waiver] | None = None, as_of: dt.date | None = None,
            current_requirements: dict[str, str] | None = None,
            current_procedures: dict[str, str] | None = None,
            catalog_source: str | None = None) -> Evidence:
    """Compute the documents' content. ``waivers`` are judged on the day ``as_of`` (required
    with waivers: a report never reads the clock). A catalog (``current_requirements`` and/or
    ``current_procedures``) turns links suspect where it differs from what the run used."""
    if waivers and as_of is None:
        raise ValueError("analyse: waivers need the date they are judged on (as_of)")
    requirements = sorted(bundle.requirements, key=lambda r: str(r.get("id")))
    by_id = {str(r.get("id")): r for r in requirements}
    cases = _case_rows(bundle, by_id)
    catalog_given = current_requirements is not None or current_procedures is not None
    suspect = inconsistent_links(bundle)
    if catalog_given:
        for link, reasons in suspect_links(bundle, current_requirements,
                                           current_procedures).items():
            suspect.setdefault(link, []).extend(reasons)
    cases_by_id = {case.id: case for case in cases}
    for (requirement_id, testcase_id), reasons in suspect.items():
        if testcase_id in cases_by_id:
            cases_by_id[testcase_id].suspect[requirement_id] = reasons

    requirement_rows = _requirement_rows(requirements, cases)
    untraced = [case for case in cases if not case.known_requirements]
    profile = _run_profiles(bundle.manifest)
    problems = [_problem(case) for case in cases if _discrepant(case, by_id, profile)]
    findings = _apply_waivers(problems, waivers or [], as_of, cases, by_id)
    return Evidence(
        bundle=bundle, cases=cases, requirements=requirement_rows, untraced=untraced,
        problems=problems, coverage=_coverage(requirement_rows, by_id),
        configuration=configuration_items(bundle), waivers=list(waivers or []),
        waiver_findings=findings, as_of=as_of,
        catalog_source=(catalog_source or "catalog snapshot") if catalog_given else None)


def _case_rows(bundle, by_id: dict[str, dict]) -> list[CaseRow]:
    results = {result.get("id"): result for result in bundle.results}
    rows = []
    for testcase in bundle.testcases:
        result = results.get(testcase.get("id")) or {
            "id": testcase.get("id"), "verdict": "UNINITIATED", "code": 6,
            "reason": MISSING_RESULT_REASON, "console": None}
        verifies = [str(rid) for rid in testcase.get("verifies") or []]
        rows.append(CaseRow(testcase, result, verdict_of(result),
                            [rid for rid in verifies if rid in by_id]))
    return rows


def _requirement_rows(requirements: list[dict], cases: list[CaseRow]) -> list[RequirementRow]:
    cases_of: dict[str, list[CaseRow]] = {}
    for case in cases:
        for requirement_id in case.known_requirements:
            cases_of.setdefault(requirement_id, []).append(case)
    rows = []
    for requirement in requirements:
        tests = cases_of.get(str(requirement.get("id")), [])
        rows.append(RequirementRow(requirement, tests,
                                   worst([c.verdict for c in tests]) if tests else NO_TEST,
                                   _gaps(requirement, tests)))
    return rows


def _gaps(requirement: dict, tests: list[CaseRow]) -> list[str]:
    if not tests:
        return [GAP_NO_TEST]
    # Robustness (DO-178C 6.4.2.2) is about behaviour: a presence check (compile, link) has none.
    if requirement.get("method", "test") != "test":
        return []
    kinds = {case.testcase.get("kind") for case in tests
             if case.testcase.get("method", "test") == "test"}
    if kinds == {"normal"}:
        return [GAP_NORMAL_ONLY]
    if kinds == {"robustness"}:
        return [GAP_ROBUSTNESS_ONLY]
    return []


def _run_profiles(manifest: dict) -> set[str]:
    """The names a requirement's ``profiles`` may use for the run's profile."""
    plan = manifest.get("plan") or {}
    profile, edition = plan.get("profile"), plan.get("edition")
    if not profile:
        return set()
    return {profile, f"{profile}@{edition}"} if edition else {profile}


def _discrepant(case: CaseRow, by_id: dict[str, dict], run_profiles: set[str]) -> bool:
    if case.verdict in ALWAYS_DISCREPANT or case.verdict not in SEVERITY:
        return True
    if case.verdict == "UNSUPPORTED":
        return any(run_profiles & set(by_id[rid].get("profiles") or [])
                   for rid in case.known_requirements)
    return False


def _problem(case: CaseRow) -> ProblemReport:
    problem = ProblemReport(id=f"PR-{case.id}", case=case)
    case.problem = problem
    return problem


def _apply_waivers(problems: list[ProblemReport], waivers: list[Waiver], as_of,
                   cases: list[CaseRow], by_id: dict[str, dict]) -> list[str]:
    """Disposition problem reports; return the findings about the waivers themselves."""
    known = {case.id for case in cases} | set(by_id)
    findings = []
    used: set[str] = set()
    for problem in problems:
        covering = [w for w in waivers
                    if problem.case.id in w.covers
                    or any(rid in w.covers for rid in problem.case.known_requirements)]
        for waiver in covering:
            state = waiver.state(as_of)
            if state == "valid" and problem.disposition is None:
                problem.disposition = waiver
                used.add(waiver.id)
            elif state != "valid":
                when = waiver.expires if state == "expired" else waiver.date
                problem.flags.append(f"{waiver.kind} {waiver.id} {state} "
                                     f"({'expired' if state == 'expired' else 'approved'} "
                                     f"{when.isoformat()}); the problem report stays open")
    for waiver in waivers:
        state = waiver.state(as_of)
        unknown = [item for item in waiver.covers if item not in known]
        if state == "expired":
            findings.append(f"{waiver.id}: expired on {waiver.expires.isoformat()} (judged "
                            f"on {as_of.isoformat()}): it dispositions nothing")
        elif state == "not yet valid":
            findings.append(f"{waiver.id}: dated {waiver.date.isoformat()}, after "
                            f"{as_of.isoformat()}: it dispositions nothing yet")
        if unknown and len(unknown) == len(waiver.covers):
            findings.append(f"{waiver.id}: matches nothing in this bundle (covers "
                            f"{', '.join(unknown)})")
        elif unknown:
            findings.append(f"{waiver.id}: covers ids not in this bundle: {', '.join(unknown)}")
        elif state == "valid" and waiver.id not in used:
            findings.append(f"{waiver.id}: matches no discrepancy of this run (what it covers "
                            "passed or is acceptable): it may be withdrawn")
    return findings


def _coverage(rows: list[RequirementRow], by_id: dict[str, dict]) -> list[ProfileCoverage]:
    table: dict[str, ProfileCoverage] = {}
    for row in rows:
        if row.requirement.get("status") == "obsolete":
            continue
        for profile in row.requirement.get("profiles") or []:
            entry = table.setdefault(str(profile), ProfileCoverage(str(profile)))
            entry.requirements += 1
            if not row.cases:
                continue
            entry.with_tests += 1
            verdicts = {case.verdict for case in row.cases}
            if verdicts == {"PASS"}:
                entry.passed += 1
            elif verdicts & (ALWAYS_DISCREPANT | {"UNSUPPORTED"}):
                # For the profiles that list the requirement, UNSUPPORTED is not acceptable.
                entry.discrepant += 1
            else:
                entry.other += 1
    return [table[name] for name in sorted(table)]


# --------------------------------------------------------------------------- configuration

def configuration_items(bundle) -> list[ConfigItem]:
    """Everything that produced the run, with its version and sha256 (configuration index)."""
    manifest = bundle.manifest
    pcert = manifest.get("pcert") or {}
    items = [ConfigItem("tool", "pcert", str(pcert.get("version") or ""), "",
                        _join(("commit", pcert.get("git_commit") or "unknown"),
                              ("uncommitted changes", "yes" if pcert.get("dirty") else None)))]
    for name, sha in sorted((pcert.get("specs") or {}).items()):
        items.append(ConfigItem("spec items", str(name), "", str(sha)))
    items.append(ConfigItem("format", "evidence bundle", str(manifest.get("schema") or ""), ""))
    target = manifest.get("target") or {}
    if isinstance(target, dict):
        definition = target.get("definition") or {}
        items.append(ConfigItem("target", str(target.get("name") or ""),
                                str(target.get("kind") or ""),
                                str(definition.get("sha256") or ""),
                                _join(("file", definition.get("file")),
                                      ("", target.get("description")))))
    for role, tool in sorted((manifest.get("tools") or {}).items()):
        if isinstance(tool, dict):
            items.append(ConfigItem("tool", str(role), str(tool.get("version") or ""),
                                    str(tool.get("sha256") or ""),
                                    _join(("command", tool.get("command")))))
    kernel = manifest.get("kernel")
    if isinstance(kernel, dict):
        items.append(ConfigItem("kernel", str(kernel.get("package") or kernel.get("file") or
                                              "kernel"), str(kernel.get("version") or ""),
                                str(kernel.get("sha256") or ""),
                                _join(("source", kernel.get("source")),
                                      (".deb sha256", kernel.get("deb_sha256")))))
    else:
        items.append(ConfigItem("kernel", "none", "", "", "runs on the host or bare metal"))
    image = manifest.get("image")
    if isinstance(image, dict):
        items.append(ConfigItem("image", str(image.get("kind") or ""), "",
                                str(image.get("sha256") or ""),
                                _join(("size (bytes)", image.get("size")))))
    host = manifest.get("host")
    if isinstance(host, dict):
        items.append(ConfigItem("host", str(host.get("os") or "host"),
                                str(host.get("release") or ""), "",
                                _join(("machine", host.get("machine")),
                                      ("Python", host.get("python")))))
    recorded = manifest.get("environment_sha256")
    computed = environment_sha256(manifest)
    items.append(ConfigItem("environment", "environment hash", "", str(recorded or computed),
                            "target, tools, kernel, host" + (
                                "" if not recorded or recorded == computed else
                                f"; differs from the manifest's contents ({computed})")))
    for name, entry in sorted((manifest.get("files") or {}).items()):
        if isinstance(entry, dict):
            items.append(ConfigItem("evidence", name, "", str(entry.get("sha256") or ""),
                                    _join(("size (bytes)", entry.get("size")))))
    return items


def _join(*pairs) -> str:
    """``"label value; label value"`` for the pairs whose value is present."""
    return "; ".join(f"{label} {value}".strip() for label, value in pairs
                     if value is not None and value != "")
