"""Suspect trace links: results obtained against a requirement wording or a procedure that a
later catalog has changed.

Each result records what it was obtained against: the fingerprints of the requirements it
verifies (``requirement_fingerprints``, else requirements.json's) and its procedure's sha256.
Compared with a current catalog (a snapshot, evidence/snapshot.py), a link whose requirement
wording or procedure changed is **suspect**, and its result **needs re-run**:

>>> from evidence.reader import Bundle
>>> bundle = Bundle.open("runs/x")                                          # doctest: +SKIP
>>> links = suspect_links(bundle, {"REQ-open-001": "9f..."}, {"TC-open-001": "c3..."})  # doctest: +SKIP
>>> links[("REQ-open-001", "TC-open-001")]                                  # doctest: +SKIP
['requirement wording changed since the run (fingerprint 5e2a… now 9f0c…)']

Without a catalog, :func:`inconsistent_links` finds links that are suspect within the bundle
itself (a result that ran against other wording or another procedure than the bundle lists).
"""

from __future__ import annotations

Link = tuple[str, str]            # (requirement id, test case id)

REQUIREMENT_CHANGED = "requirement wording changed since the run"
REQUIREMENT_GONE = "requirement no longer in the catalog"
PROCEDURE_CHANGED = "procedure changed since the run"
TESTCASE_GONE = "test case no longer in the catalog"


def _short(sha: str | None) -> str:
    return f"{sha[:8]}…" if sha else "none"


def links_as_run(bundle) -> dict[Link, tuple[str | None, str | None]]:
    """Every (requirement, test case) link of the bundle with the requirement fingerprint and
    the procedure sha256 its result was obtained against."""
    fingerprints = {str(r.get("id")): r.get("fingerprint") for r in bundle.requirements}
    results = {r.get("id"): r for r in bundle.results}
    links = {}
    for testcase in bundle.testcases:
        result = results.get(testcase.get("id")) or {}
        recorded = result.get("requirement_fingerprints") or {}
        procedure = (result.get("procedure_sha256")
                     or (testcase.get("procedure") or {}).get("sha256"))
        for requirement_id in testcase.get("verifies") or []:
            fingerprint = recorded.get(requirement_id) or fingerprints.get(requirement_id)
            links[(requirement_id, testcase["id"])] = (fingerprint, procedure)
    return links


def suspect_links(bundle, current_requirements: dict[str, str] | None,
                  current_procedures: dict[str, str] | None) -> dict[Link, list[str]]:
    """Links made suspect by the current catalog, with the reasons, sorted by link.

    ``current_requirements``: requirement id -> fingerprint; ``current_procedures``: test case
    id -> procedure sha256. Pass None to skip one of the two comparisons. A requirement or test
    case absent from a table given is reported as no longer in the catalog.
    """
    suspect: dict[Link, list[str]] = {}
    for link, (fingerprint, procedure) in sorted(links_as_run(bundle).items()):
        requirement_id, testcase_id = link
        reasons = [reason for reason in (
            _compare(current_requirements, requirement_id, fingerprint, REQUIREMENT_GONE,
                     REQUIREMENT_CHANGED, "fingerprint"),
            _compare(current_procedures, testcase_id, procedure, TESTCASE_GONE,
                     PROCEDURE_CHANGED, "sha256")) if reason]
        if reasons:
            suspect[(requirement_id, testcase_id)] = reasons
    return suspect


def inconsistent_links(bundle) -> dict[Link, list[str]]:
    """Links whose result was obtained against other wording or another procedure than the
    bundle's own requirements.json and testcases.json list (only when results record them)."""
    fingerprints = {str(r.get("id")): r.get("fingerprint") for r in bundle.requirements}
    results = {r.get("id"): r for r in bundle.results}
    found: dict[Link, list[str]] = {}
    for testcase in bundle.testcases:
        result = results.get(testcase.get("id")) or {}
        listed = (testcase.get("procedure") or {}).get("sha256")
        ran = result.get("procedure_sha256")
        recorded = result.get("requirement_fingerprints") or {}
        for requirement_id in testcase.get("verifies") or []:
            reasons = []
            as_run = recorded.get(requirement_id)
            snapshot = fingerprints.get(requirement_id)
            if as_run and snapshot and as_run != snapshot:
                reasons.append(f"result obtained against other wording than requirements.json "
                               f"(fingerprint {_short(as_run)}, listed {_short(snapshot)})")
            if ran and listed and ran != listed:
                reasons.append(f"result obtained with another procedure than testcases.json "
                               f"lists (sha256 {_short(ran)}, listed {_short(listed)})")
            if reasons:
                found[(requirement_id, testcase["id"])] = reasons
    return found


def _compare(current: dict[str, str] | None, key: str, as_run: str, gone: str, changed: str,
             what: str) -> str:
    """Why the link is suspect on this side ("" when it is not, or the side is not compared)."""
    if current is None:
        return ""
    now = current.get(key)
    if now is None:
        return gone
    if now != as_run:
        return f"{changed} ({what} {_short(as_run)} now {_short(now)})"
    return ""
