"""The coverage count: how deeply the behavioural suite covers a profile's interfaces.

Every interface of the profile falls in exactly one class:

- `no-behaviour`: a spec file says it has no run-time behaviour (a macro expanding to a
  constant), with the reason;
- `normal+robustness`: at least one normal-range and one robustness test case;
- `normal-only` / `robustness-only`: test cases of one kind only;
- `presence-only`: no behavioural test case; only the presence (compile and link) checks.

A test case counts for the interface it is filed under (that of the first requirement it
verifies). For errno values, each interface's note in the spec files lists the values its ERRORS
section names; a value is `tested` when a test case of the interface provokes it (expect.errno,
an error number in expect.return, or `errors`), `untestable` when the note gives a reason, and
`untested` otherwise.

>>> from conformance.catalog import Catalog
>>> from conformance.profiles import load_profile
>>> report = coverage_report(Catalog.load(), load_profile("face-safety-extended"))
>>> report["interfaces"], sum(report["summary"].values())
(361, 361)
>>> print(format_coverage(report).splitlines()[0])           # doctest: +ELLIPSIS
FACE Technical Standard 3.2 OS profile Safety Extended (face-safety-extended@3.2)
"""

from __future__ import annotations

from collections import Counter, defaultdict

from . import profiles
from .catalog import Catalog
from .plan import make_plan
from .profiles import Profile

CLASSES = ("normal+robustness", "normal-only", "robustness-only", "presence-only", "no-behaviour")


def coverage_report(catalog: Catalog, profile: Profile) -> dict:
    """Coverage of `profile` (all its interfaces, multi-process ones included) as plain data."""
    spec_set = catalog.spec_set
    required = sorted(profile.required)
    plan = make_plan(catalog, profile, multi_process=True)
    cases_of: dict[str, list] = defaultdict(list)
    for tc in plan.test_cases:
        cases_of[tc.interface].append(tc)
    units_of: dict[str, Counter] = defaultdict(Counter)
    for req in spec_set.requirements.values():
        units_of[req.interface][req.unit] += 1
    table = profiles.interfaces()

    rows = []
    for name in required:
        note = spec_set.interfaces.get(name)
        cases = cases_of.get(name, [])
        kinds = Counter(tc.kind for tc in cases)
        provoked = {e for tc in cases for e in tc.errors}
        listed = list(note.errors) if note else []
        untestable = dict(note.untestable) if note else {}
        if note is not None and not note.behaviour:
            status = "no-behaviour"
        elif kinds["normal"] and kinds["robustness"]:
            status = "normal+robustness"
        elif kinds["normal"] or kinds["robustness"]:
            status = "normal-only" if kinds["normal"] else "robustness-only"
        else:
            status = "presence-only"
        if units_of.get(name):
            unit = sorted(units_of[name].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        elif note is not None:
            unit = note.unit
        else:
            unit = table[name].unit if name in table else "?"
        rows.append({
            "interface": name, "unit": unit, "multi_process_only": name in profile.multi_process_only,
            "status": status, "normal": kinds["normal"], "robustness": kinds["robustness"],
            "reason": (note.reason if not note.behaviour else note.no_normal) if note else "",
            "errors_listed": listed,
            "errors_tested": sorted(e for e in listed if e in provoked),
            "errors_untestable": {e: untestable[e] for e in listed if e in untestable and e not in provoked},
            "errors_untested": sorted(e for e in listed if e not in provoked and e not in untestable),
            "errors_beyond_list": sorted(provoked - set(listed)) if note and listed else [],
        })

    units: dict[str, dict] = {}
    for row in rows:
        u = units.setdefault(row["unit"], {"interfaces": 0, "test_cases": 0,
                                           **{c: 0 for c in CLASSES}})
        u["interfaces"] += 1
        u[row["status"]] += 1
        u["test_cases"] += row["normal"] + row["robustness"]
    in_profile = set(required)
    not_applicable = [na for na in spec_set.not_applicable]
    return {
        "profile": profile.label,
        "title": profile.title,
        "interfaces": len(required),
        "test_cases": len(plan.test_cases),
        "kinds": dict(sorted(Counter(tc.kind for tc in plan.test_cases).items())),
        "summary": {c: sum(1 for r in rows if r["status"] == c) for c in CLASSES},
        "errors": {
            "listed": sum(len(r["errors_listed"]) for r in rows),
            "tested": sum(len(r["errors_tested"]) for r in rows),
            "untestable": sum(len(r["errors_untestable"]) for r in rows),
            "untested": sum(len(r["errors_untested"]) for r in rows),
        },
        "not_applicable": len(not_applicable),
        "units": dict(sorted(units.items())),
        "interfaces_detail": rows,
        "without_behavioural_tests": [r["interface"] for r in rows if r["status"] == "presence-only"],
        "no_behaviour": {r["interface"]: r["reason"] for r in rows if r["status"] == "no-behaviour"},
        "outside_profile_test_cases": sum(1 for tc in spec_set.test_cases.values()
                                          if tc.interface not in in_profile),
        "differential": _differential(in_profile),
    }


def _differential(in_profile: set[str]) -> dict:
    """The differential properties (docs/agent.md) that check interfaces of the profile."""
    from .agent.properties import properties_for
    chosen = properties_for(frozenset(in_profile))
    return {"properties": len(chosen),
            "interfaces": sorted({i for p in chosen for i in p.interfaces} & in_profile)}


def format_coverage(report: dict) -> str:
    """The report as text: totals, one line per unit, then the gaps by name."""
    s = report["summary"]
    e = report["errors"]
    lines = [
        f"{report['title']} ({report['profile']})",
        f"  {report['interfaces']} interfaces, {report['test_cases']} behavioural test cases "
        f"({', '.join(f'{n} {k}' for k, n in report['kinds'].items()) or 'none'})",
        "  " + ", ".join(f"{s[c]} {c}" for c in CLASSES),
        f"  errno values listed in ERRORS sections: {e['listed']}: {e['tested']} tested, "
        f"{e['untestable']} not provokable portably (with reasons), {e['untested']} untested",
        f"  not-applicable table combinations: {report['not_applicable']}",
        f"  differential checks (Hypothesis against Python oracles): "
        f"{report['differential']['properties']} properties over "
        f"{len(report['differential']['interfaces'])} interfaces",
        "",
        f"  {'unit':<22}{'ifaces':>7}{'cases':>7}{'n+r':>6}{'n':>5}{'r':>5}{'pres':>6}{'none':>6}",
    ]
    for unit, u in report["units"].items():
        lines.append(f"  {unit:<22}{u['interfaces']:>7}{u['test_cases']:>7}"
                     f"{u['normal+robustness']:>6}{u['normal-only']:>5}{u['robustness-only']:>5}"
                     f"{u['presence-only']:>6}{u['no-behaviour']:>6}")
    gaps = [r for r in report["interfaces_detail"]
            if r["status"] in ("presence-only", "normal-only", "robustness-only")]
    if gaps:
        lines += ["", "  interfaces without normal-range and robustness test cases:"]
        lines += [f"    {r['interface']:<32} {r['status']}" + (f": {r['reason']}" if r["reason"] else "")
                  for r in gaps]
    if report["no_behaviour"]:
        lines += ["", "  interfaces without run-time behaviour:"]
        lines += [f"    {name:<32} {reason}" for name, reason in report["no_behaviour"].items()]
    untested = [r for r in report["interfaces_detail"] if r["errors_untested"]]
    if untested:
        lines += ["", "  errno values listed but not tested:"]
        lines += [f"    {r['interface']:<32} {' '.join(r['errors_untested'])}" for r in untested]
    return "\n".join(lines) + "\n"
