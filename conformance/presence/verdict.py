"""The profile verdict: does the target provide every interface the profile requires?

Built from the per-test-case facts of conformance.presence.records; stored as the manifest's
`presence` section (fields in docs/presence.md). Rules:

- compile and link test cases decide; namespace test cases are advisory and never do;
- UNSUPPORTED of an optional item is acceptable; UNSUPPORTED because the target's headers say
  a POSIX option is not supported is acceptable for POSIX edition profiles (options are
  optional there) but not for FACE and PSE profiles, which require each listed interface;
- FAIL, UNRESOLVED and UNTESTED are never acceptable.
"""

from __future__ import annotations

from collections import Counter

from .. import profiles

DECIDING = ("compile", "link")
MAX_LISTED = 500          # entries per list; the results hold every one
MAX_NAMES_LISTED = 100    # names per namespace finding


def _accepted(entry: dict, posix_profile: bool) -> bool:
    verdict = entry["verdict"]
    if verdict == "PASS":
        return True
    if verdict == "UNSUPPORTED":
        return entry["problem"] == "optional" or posix_profile or entry.get("optional", False)
    return False


def _item(entry: dict, *fields: str) -> dict:
    item = {"name": entry["name"], "header": entry["header"], "test_case": entry["test_case"]}
    item.update({f: entry[f] for f in fields})
    return item


def profile_verdict(o, entries: list[dict], results: list[dict]) -> dict:
    scope = o.scope
    profile = scope.profile
    posix_profile = profile.name.startswith("posix-")
    deciding = [e for e in entries if e["check"] in DECIDING]
    for e in deciding:
        if e["verdict"] == "UNSUPPORTED" and e["problem"] == "":
            e["problem"] = "option"

    missing, mistyped, bounds, unsupported, unresolved, untested = [], [], [], [], [], []
    for e in deciding:
        v = e["verdict"]
        if v == "FAIL" and e["problem"] == "missing":
            missing.append(_item(e, "kind", "check", "interface", "diagnostic", "extension_only"))
        elif v == "FAIL" and e["problem"] == "out_of_bounds":
            bounds.append(_item(e, "kind", "expected", "diagnostic"))
        elif v == "FAIL":
            mistyped.append(_item(e, "kind", "stage", "diagnostic"))
        elif v == "UNSUPPORTED":
            unsupported.append({**_item(e, "kind", "check"), "reason": e["reason"],
                                "accepted": _accepted(e, posix_profile)})
        elif v == "UNRESOLVED":
            unresolved.append({**_item(e, "kind"), "reason": e["reason"]})
        elif v == "UNTESTED":
            untested.append({**_item(e, "check"), "reason": e["reason"]})

    per_header: dict[str, Counter] = {}
    for e in deciding:
        per_header.setdefault(e["header"], Counter())[e["verdict"].lower()] += 1
    interfaces = _interface_states(scope, deciding, posix_profile)
    table = profiles.interfaces()
    per_unit: dict[str, Counter] = {}
    for name, state in interfaces.items():
        group = table[name].option_group if name in table else ""
        per_unit.setdefault(group or "(no option group)", Counter())[state] += 1

    namespace = [e for e in entries if e["check"] == "namespace"]
    findings = [e for e in namespace if e["verdict"] == "FAIL"]
    counts = Counter(r["verdict"] for r in results)
    provided = sum(1 for s in interfaces.values() if s == "provided")
    return {
        "profile": profile.name,
        "label": profile.label,
        "title": profile.title,
        "edition": profile.edition,
        "standard": scope.edition.standard,
        "multi_process": scope.multi_process,
        "provides_all": all(_accepted(e, posix_profile) for e in deciding),
        "feature_macros": {level: scope.edition.macros(level) for level in ("base", "xsi")},
        "c_standard": scope.edition.c_standard,
        "headers_posix_version": o.headers_posix_version,
        "headers_predate_edition": (o.headers_posix_version is not None
                                    and o.headers_posix_version < scope.edition.posix_version),
        "counts": {
            "interfaces": len(interfaces),
            "interfaces_provided": provided,
            "interfaces_not_provided": len(interfaces) - provided,
            "expectations": sum(1 for e in deciding if e["check"] == "compile"),
            "compile": _verdicts(e for e in deciding if e["check"] == "compile"),
            "link": _verdicts(e for e in deciding if e["check"] == "link"),
            "namespace": _verdicts(namespace),
            "test_cases": dict(sorted(counts.items())),
        },
        "missing": missing[:MAX_LISTED],
        "mistyped": mistyped[:MAX_LISTED],
        "out_of_bounds": bounds[:MAX_LISTED],
        "unsupported": unsupported[:MAX_LISTED],
        "unresolved": unresolved[:MAX_LISTED],
        "untested": untested[:MAX_LISTED],
        "per_header": {h: _lower(c) for h, c in sorted(per_header.items())},
        "per_unit": {u: dict(sorted(c.items())) for u, c in sorted(per_unit.items())},
        "namespace": {
            "severity": "advisory",
            "checked": len(namespace),
            "findings": len(findings),
            "headers": [{"header": e["header"], "level": e["level"], "test_case": e["test_case"],
                         "names": e["names"][:MAX_NAMES_LISTED], "count": len(e["names"])}
                        for e in findings],
        },
        "cache": {"hits": o.cache_hits, "misses": o.cache_misses},
        "toolchain": {**{k: o.identity[k] for k in ("command", "version", "sha256",
                                                     "libc_sha256", "cflags", "ldflags",
                                                     "libraries")},
                      "flags": o.flags, "link_command": o.link_command},
    }


def _verdicts(entries) -> dict[str, int]:
    return dict(sorted(Counter(e["verdict"] for e in entries).items()))


def _lower(counter: Counter) -> dict[str, int]:
    base = {"pass": 0, "fail": 0}
    base.update(counter)
    return dict(sorted(base.items()))


def _interface_states(scope, deciding: list[dict], posix_profile: bool) -> dict[str, str]:
    """interface -> provided | not provided | unsupported (accepted) | unresolved, from its
    deciding test cases (compile checks of its primary rows, and its link check)."""
    primary = {}
    for name in scope.required:
        for e in scope.primary_rows(name):
            primary[(e.header, e.label)] = name
    states: dict[str, list[dict]] = {name: [] for name in scope.required
                                     if scope.primary_rows(name)}
    for e in deciding:
        name = e["interface"] if e["check"] == "link" else primary.get((e["header"], e["name"]))
        if name in states:
            states[name].append(e)
    result = {}
    for name, cases in sorted(states.items()):
        verdicts = {c["verdict"] for c in cases}
        if verdicts <= {"PASS"}:
            result[name] = "provided"
        elif all(_accepted(c, posix_profile) for c in cases):
            result[name] = "unsupported"
        elif "UNRESOLVED" in verdicts and not verdicts & {"FAIL", "UNTESTED"}:
            result[name] = "unresolved"
        else:
            result[name] = "not provided"
    return result
