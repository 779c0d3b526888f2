"""Turn what the compiler showed into evidence records: requirements, test cases, results, the
generated sources, and the profile verdict for the manifest's `presence` section.

Verdicts: PASS; FAIL (missing, mistyped, out of bounds, does not link); UNSUPPORTED where the
item is optional, or its POSIX option is one the target's headers declare unsupported;
UNRESOLVED where the expected type cannot even be named with the header alone; UNTESTED for
the link check of an interface that is not declared. Namespace test cases are PASS or FAIL
(UNTESTED when the header is missing) and verify advisory requirements the verdict ignores.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace

from evidence.format import VERDICTS

from .. import profiles
from ..catalog import interface_requirement, interface_requirement_id
from ..requirements import Requirement
from .compiler import TIMEOUT_S
from .expectations import Expectation, load_expectations
from .link import CANNOT_LINK, LinkProgram
from .options import option_names, option_supported
from .scope import Scope, Unit
from .snippets import PROBLEMS, Check, UnitSource
from .units import HEADER_STAGE, Finding
from .verdict import profile_verdict
from .wording import (case_id, expectation_id, link_case_id, namespace_id, namespace_statement,
                      statement)

PROCEDURES = "procedures/presence"
ADVISORY = "advisory"
_STAGE_TEXT = {
    "declared": "not declared (or not defined)",
    HEADER_STAGE: "the header is missing or does not compile",
    "constant": "not usable as a constant expression",
    "if": "not usable in #if",
    "type": "declared with another type",
}


@dataclass
class PresenceRun:
    """Everything a bundle needs from the presence checks (see conformance.presence)."""

    requirements: list[Requirement]
    testcases: list[dict]
    results: list[dict]
    files: dict[str, bytes]
    verdict: dict
    command: list[str] = field(default_factory=list)
    tool: dict = field(default_factory=dict)      # for the manifest's tools.compiler
    started: float = 0.0
    finished: float = 0.0

    @property
    def summary(self) -> dict[str, int]:
        counts = dict.fromkeys(VERDICTS, 0)
        for row in self.results:
            counts[row["verdict"]] += 1
        return counts


@dataclass
class Outcomes:
    """What the engine found, before it becomes records."""

    scope: Scope
    sources: dict[Unit, UnitSource]
    findings: dict[Unit, dict[int, Finding]]
    program: LinkProgram
    link_failures: dict[int, str]
    namespace: dict[Unit, dict]
    macros: dict | None
    headers_posix_version: int | None
    identity: dict
    flags: dict[str, list[str]]
    link_command: list[str]
    cache_hits: int
    cache_misses: int
    started: float
    finished: float


def _duplicates() -> set[tuple[str, str]]:
    seen, twice = set(), set()
    for e in load_expectations():
        key = (e.header, e.label)
        (twice if key in seen else seen).add(key)
    return twice


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Builder:
    def __init__(self, o: Outcomes):
        self.o = o
        self.scope = o.scope
        self.label = o.scope.profile.label
        self.standard = o.scope.edition.standard
        self.twice = _duplicates()
        self.requirements: dict[str, Requirement] = {}
        self.cases: list[dict] = []
        self.results: list[dict] = []
        self.entries: list[dict] = []     # per test case facts for the verdict

    # -- requirements ------------------------------------------------------------------------

    def _add(self, requirement: Requirement) -> str:
        self.requirements.setdefault(requirement.id, requirement)
        return requirement.id

    def expectation_requirement(self, e: Expectation, unit: Unit) -> str:
        text = statement(e)
        if unit.level == "xsi":
            text = "On XSI-conformant systems: " + text[0].lower() + text[1:]
        source = {"standard": self.standard, "section": f"<{e.header}>",
                  "interface": e.interface or e.label, "data": e.source}
        if e.option_group:
            source["option"] = e.option_group
        return self._add(Requirement.make(
            expectation_id(e, duplicate=(e.header, e.label) in self.twice),
            interface=e.interface or e.label, unit=e.header.removesuffix(".h"), text=text,
            source=source, method="compile", profiles=(self.label,)))

    def interface_requirement(self, name: str, header: str) -> str:
        if interface_requirement_id(name) in self.requirements:
            return interface_requirement_id(name)
        iface = profiles.interfaces().get(name) or profiles.Interface(
            name=name, header=header, kind="callable", option_group="", editions=())
        requirement = interface_requirement(iface)
        return self._add(replace(requirement, profiles=(self.label,)))

    # -- records -----------------------------------------------------------------------------

    def add_case(self, *, case: dict, verdict: str, reason: str, file: str = "",
                 line: int | None = None, facts: dict) -> None:
        index = len(self.cases)
        sha = case["procedure"]["sha256"]
        self.cases.append({**case, "index": index, "kind": "normal", "timeout_s": TIMEOUT_S})
        self.results.append({
            "id": case["id"], "index": index, "verdict": verdict, "code": VERDICTS[verdict],
            "reason": reason if verdict != "PASS" else "",
            "file": file if verdict != "PASS" else "",
            "line": line if verdict != "PASS" else None, "guest_duration_s": None,
            "console": None, "host_time": None, "verifies": list(case["verifies"]),
            "procedure_sha256": sha})
        self.entries.append({**facts, "test_case": case["id"], "verdict": verdict,
                             "reason": reason})

    def compile_case(self, unit: Unit, source: UnitSource, check: Check, finding: Finding) -> None:
        e = check.expectation
        req = self.expectation_requirement(e, unit)
        verifies = [req]
        if e.interface and any(r is e for r in self.scope.primary_rows(e.interface)):
            verifies.append(self.interface_requirement(e.interface, e.header))
        verdict, reason, problem = self._judge(e, finding)
        self.add_case(
            case={"id": case_id(req), "title": f"<{e.header}> {e.label} ({e.kind})",
                  "unit": e.header.removesuffix(".h"), "interface": e.interface or e.label,
                  "verifies": verifies, "options": option_names(e.option_group),
                  "inputs": check.text,
                  "expected": self.requirements[req].text + " Checked by compiling against "
                              "the target's headers; the snippet compiles only if it holds.",
                  "method": "compile", "header": e.header,
                  "procedure": {"file": f"{PROCEDURES}/{source.file}", "function": check.tag,
                                "sha256": check.sha256}},
            verdict=verdict, reason=reason, file=f"{PROCEDURES}/{source.file}", line=finding.line,
            facts={"check": "compile", "row_id": id(e), "name": e.label, "header": e.header,
                   "kind": e.kind, "interface": e.interface, "option_group": e.option_group,
                   "problem": problem, "stage": finding.stage, "optional": e.optional,
                   "expected": e.expected_value, "diagnostic": finding.diagnostic,
                   "extension_only": finding.extension_only})

    def _judge(self, e: Expectation, f: Finding) -> tuple[str, str, str]:
        """(verdict, reason, problem) of one compile check."""
        if f.ok:
            return "PASS", "", ""
        problem = "missing" if f.stage == HEADER_STAGE else PROBLEMS.get(f.stage, "missing")
        if f.unresolved and f.stage == HEADER_STAGE:
            return ("UNRESOLVED", f"{e.label}: the compiler cannot compile even the header "
                    f"alone, so nothing in it can be checked: {f.diagnostic}", "unresolved")
        if f.unresolved:
            return ("UNRESOLVED", f"{e.label}: the expected type cannot be named with this "
                    f"header alone, so the declared type cannot be compared: {f.diagnostic}",
                    "unresolved")
        supported = option_supported(e.option_group, self.o.macros)
        if supported is False:
            return ("UNSUPPORTED", f"{e.label}: {_unsupported(e.option_group)}: {f.diagnostic}",
                    "option")
        if e.optional and f.stage in ("declared", HEADER_STAGE):
            return ("UNSUPPORTED", "optional item not provided (it belongs to an option, or its "
                    f"value may be left indeterminate): {f.diagnostic}", "optional")
        if f.stage == "value":
            what = (f"value not {e.expected_value}" if e.kind == "macro-str"
                    else f"value outside the bound {e.operator} {e.bound}")
        else:
            what = _STAGE_TEXT.get(f.stage, "fails")
        note = ""
        if f.extension_only:
            note = (f" [declared only when extensions are enabled (_GNU_SOURCE and the like): "
                    f"the headers predate {self.standard}]")
        return "FAIL", f"{e.label}: {what}: {f.diagnostic}{note}", problem

    def link_cases(self) -> None:
        program, failures = self.o.program, self.o.link_failures
        linked = {item.interface: i for i, item in enumerate(program.items)}
        declared = self._declared_rows()
        for name in sorted(self.scope.required):
            rows = [e for e in self.scope.primary_rows(name)
                    if e.kind in ("function", "macro-function", "variable", "callable", "object")]
            if not rows:
                continue     # only a macro or constant: the compile check verifies it
            row = rows[0]
            req = self.interface_requirement(name, row.header)
            facts = {"check": "link", "name": name, "header": row.header, "kind": row.kind,
                     "interface": name, "option_group": row.option_group, "problem": "",
                     "stage": "link", "optional": row.optional, "expected": "",
                     "diagnostic": "", "extension_only": False}
            if name in linked:
                i = linked[name]
                text, sha, function = program.items_text[i], program.sha256(i), f"pcert_l{i}"
                message = failures.get(i)
                if message is None:
                    verdict, reason = "PASS", ""
                elif message.startswith(CANNOT_LINK):
                    verdict, reason = "UNRESOLVED", message
                elif option_supported(row.option_group, self.o.macros) is False:
                    verdict, reason = "UNSUPPORTED", (f"{_unsupported(row.option_group)}: "
                                                      f"{message}")
                else:
                    verdict, reason = "FAIL", f"does not link: {message}"
                    facts.update(problem="missing", diagnostic=message)
            else:
                text = f"/* {name}: not referred to; its declaration check failed */"
                sha, function = _sha(text), "not_linked"
                compile_verdict, compile_case, problem = declared.get(id(row), ("FAIL", "", ""))
                verdict = "UNSUPPORTED" if compile_verdict == "UNSUPPORTED" else "UNTESTED"
                facts["problem"] = problem if verdict == "UNSUPPORTED" else ""
                reason = f"not linked: its declaration check did not pass ({compile_case})"
            self.add_case(
                case={"id": link_case_id(name), "title": f"{name} links",
                      "unit": row.header.removesuffix(".h"), "interface": name,
                      "verifies": [req], "options": option_names(row.option_group),
                      "inputs": text,
                      "expected": f"A program that refers to {name} through <{row.header}> "
                                  f"links with the target's libraries.",
                      "method": "link", "header": row.header,
                      "procedure": {"file": f"{PROCEDURES}/link.c", "function": function,
                                    "sha256": sha}},
                verdict=verdict, reason=reason, file=f"{PROCEDURES}/link.c",
                line=program.first_line(linked[name]) if name in linked else None, facts=facts)

    def _declared_rows(self) -> dict[int, tuple[str, str, str]]:
        """id(expectation) -> (verdict, test case id, problem) of its compile check."""
        table = {}
        for case, result, entry in zip(self.cases, self.results, self.entries):
            if entry["check"] == "compile":
                table[entry["row_id"]] = (result["verdict"], case["id"], entry["problem"])
        return table

    def namespace_cases(self) -> None:
        for unit in sorted(self.o.namespace):
            found = self.o.namespace[unit]
            req = self._add(Requirement.make(
                namespace_id(unit.header, unit.level), interface=f"<{unit.header}>",
                unit=unit.header.removesuffix(".h"),
                text=namespace_statement(unit.header, unit.level, self.standard),
                source={"standard": self.standard, "section": f"<{unit.header}>",
                        "severity": ADVISORY, "data": "conform/data (allow, allow-header)"},
                method="compile", profiles=(self.label,)))
            text = f"#include <{unit.header}>\n"
            names = found["names"]
            if not found["available"]:
                verdict, reason = "UNTESTED", f"header not available: {found['diagnostic']}"
            elif names:
                verdict = "FAIL"
                reason = (f"defines {len(names)} name{'s' if len(names) != 1 else ''} outside "
                          f"its namespace: {_describe(names)}")
            else:
                verdict, reason = "PASS", ""
            file = f"{PROCEDURES}/{unit.name}.namespace.c"
            self.add_case(
                case={"id": case_id(req), "title": f"<{unit.header}> namespace"
                      + (" (XSI)" if unit.level == "xsi" else ""),
                      "unit": unit.header.removesuffix(".h"), "interface": f"<{unit.header}>",
                      "verifies": [req], "options": [], "inputs": text,
                      "expected": "The preprocessed header names nothing outside the names "
                                  "allowed to it (advisory; the profile verdict ignores it).",
                      "method": "namespace", "header": unit.header,
                      "procedure": {"file": file, "function": "namespace", "sha256": _sha(text)}},
                verdict=verdict, reason=reason, file=file,
                facts={"check": "namespace", "name": f"<{unit.header}>", "header": unit.header,
                       "level": unit.level, "names": names, "kind": "header", "interface": "",
                       "option_group": "", "problem": "namespace" if names else "",
                       "stage": "namespace", "optional": False, "expected": "",
                       "diagnostic": "", "extension_only": False})


def _unsupported(group: str) -> str:
    return (f"option {group} not supported: the target's <unistd.h> defines it as -1 "
            f"(or, for an X/Open option group, not at all)")


def _describe(names: list[str], limit: int = 40) -> str:
    shown = names[:limit]
    return ", ".join(shown) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def build_run(o: Outcomes) -> PresenceRun:
    b = _Builder(o)
    for unit in sorted(o.sources):
        source = o.sources[unit]
        for check in source.checks:
            b.compile_case(unit, source, check, o.findings[unit][check.index])
    b.link_cases()
    b.namespace_cases()
    files = {f"{PROCEDURES}/{s.file}": s.text.encode("utf-8") for s in o.sources.values()}
    files[f"{PROCEDURES}/link.c"] = o.program.text.encode("utf-8")
    for unit in o.namespace:
        files[f"{PROCEDURES}/{unit.name}.namespace.c"] = f"#include <{unit.header}>\n".encode()
    commands = {"compile": {level: [o.identity["command"], *flags, "-fsyntax-only", "UNIT.c"]
                            for level, flags in o.flags.items()},
                "namespace": {level: [o.identity["command"], *flags, "-E", "-dD", "UNIT.c"]
                              for level, flags in o.flags.items()},
                "link": o.link_command}
    files[f"{PROCEDURES}/commands.json"] = (json.dumps(commands, indent=2, sort_keys=True)
                                            + "\n").encode("utf-8")
    for entry in b.entries:
        entry.pop("row_id", None)
    verdict = profile_verdict(o, b.entries, b.results)
    return PresenceRun(
        requirements=sorted(b.requirements.values(), key=lambda r: r.id),
        testcases=b.cases, results=b.results, files=dict(sorted(files.items())),
        verdict=verdict, command=list(o.link_command),
        tool={"command": o.identity["command"], "version": o.identity["version"],
              "sha256": o.identity["sha256"]},
        started=o.started, finished=o.finished)
