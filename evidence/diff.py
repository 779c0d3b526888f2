"""Compare two runs, per test case and per requirement: what a nightly job must say at a glance.

>>> report = diff_bundles(Bundle.open("runs/base"), Bundle.open("runs/new"), index=RunIndex("runs/index.sqlite"))  # doctest: +SKIP
>>> report.count("testcase", NEW_FAILURE)                                              # doctest: +SKIP
1

Classes (failing = FAIL, UNRESOLVED or UNINITIATED; evidence.format.FAILING):

=============  ============================================================================
new failure    failing in NEW, not failing in BASE, or failing and absent from BASE
fixed          failing in BASE, not failing in NEW
still failing  failing in both
new            absent from BASE, not failing in NEW
removed        absent from NEW
flaky          the verdict changed at least twice within the last N runs of the series
               (same target and profile, from the run index, up to NEW): takes precedence
               over the four above, so a flip-flopping item does not fail a nightly
changed        another verdict change (PASS -> UNSUPPORTED, a requirement losing its test)
unchanged      the same verdict
=============  ============================================================================

``pcert diff`` exits 1 when there is a new failure. Verdicts come from the run index when it
holds the run with the same manifest, else from the bundle. Without an index flaky is judged
on BASE and NEW alone (so never found); a run the index lacks is placed just before NEW.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import format as fmt
from .index import REQUIREMENT, TESTCASE, RunIndex, series_profile, verdict_tables
from .reader import Bundle

NEW_FAILURE, FIXED, STILL_FAILING = "new failure", "fixed", "still failing"
NEW, REMOVED, FLAKY, CHANGED, UNCHANGED = "new", "removed", "flaky", "changed", "unchanged"
CLASSES = (NEW_FAILURE, FIXED, STILL_FAILING, NEW, REMOVED, FLAKY, CHANGED, UNCHANGED)
KINDS = (TESTCASE, REQUIREMENT)
DEFAULT_WINDOW = 10


@dataclass(frozen=True)
class Change:
    kind: str                 # testcase | requirement
    item: str
    classification: str
    base: str | None          # verdict in BASE, None when absent
    new: str | None
    reason: str = ""          # NEW's reason (or BASE's when removed)
    history: tuple[str, ...] = ()   # verdicts in the window, oldest first (flaky only)


@dataclass
class DiffReport:
    base_run: str
    new_run: str
    window: int
    window_runs: list[str]
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)    # environment, image, pcert changes

    def count(self, kind: str, classification: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind and c.classification == classification)

    def of(self, classification: str, kind: str | None = None) -> list[Change]:
        return [c for c in self.changes
                if c.classification == classification and (kind is None or c.kind == kind)]

    @property
    def has_new_failure(self) -> bool:
        return any(c.classification == NEW_FAILURE for c in self.changes)

    def to_json(self) -> dict:
        return {
            "base": self.base_run, "new": self.new_run, "window": self.window,
            "window_runs": self.window_runs, "notes": self.notes,
            "counts": {kind: {c: self.count(kind, c) for c in CLASSES} for kind in KINDS},
            "changes": [{"kind": c.kind, "id": c.item, "class": c.classification,
                         "base": c.base, "new": c.new, "reason": c.reason,
                         **({"history": list(c.history)} if c.history else {})}
                        for c in self.changes if c.classification != UNCHANGED],
        }


def classify(base: str | None, new: str | None) -> str:
    """The class of one item from its two verdicts (flaky aside).

    >>> classify("PASS", "FAIL"), classify("FAIL", "UNSUPPORTED"), classify(None, "UNRESOLVED")
    ('new failure', 'fixed', 'new failure')
    """
    if new is None:
        return REMOVED
    failing_now = new in fmt.FAILING
    if base is None:
        return NEW_FAILURE if failing_now else NEW
    failing_before = base in fmt.FAILING
    if failing_now:
        return STILL_FAILING if failing_before else NEW_FAILURE
    if failing_before:
        return FIXED
    return UNCHANGED if base == new else CHANGED


def changes_in(verdicts: list[str]) -> int:
    """How many times a sequence of verdicts changes: PASS FAIL PASS -> 2."""
    return sum(1 for before, after in zip(verdicts, verdicts[1:]) if before != after)


def diff_bundles(base: Bundle, new: Bundle, index: RunIndex | None = None,
                 window: int = DEFAULT_WINDOW) -> DiffReport:
    """Classify every test case and requirement of two bundles (see the module doc)."""
    # The index holds every indexed run's verdicts: reading them there is ~30 times faster
    # than reading and validating two bundles of 10,000 results.
    read = index.tables if index is not None else verdict_tables
    base_tables, new_tables = read(base), read(new)
    window_runs, past = _window(base, new, index, window)
    report = DiffReport(base.run_id, new.run_id, window, window_runs, notes=_notes(base, new))
    for kind in KINDS:
        before, after = base_tables[kind], new_tables[kind]
        for item in sorted(set(before) | set(after)):
            old = before[item][0] if item in before else None
            now = after[item][0] if item in after else None
            reason = (after.get(item) or before.get(item))[1]
            classification = classify(old, now)
            history: tuple[str, ...] = ()
            if now is not None and old is not None:
                sequence = _sequence(past.get((kind, item), {}), window_runs, base.run_id, old,
                                     new.run_id, now)
                if changes_in(sequence) >= 2:
                    classification, history = FLAKY, tuple(sequence)
            report.changes.append(Change(kind, item, classification, old, now, reason, history))
    return report


def _window(base: Bundle, new: Bundle, index: RunIndex | None,
            size: int) -> tuple[list[str], dict]:
    """The last ``size`` runs of NEW's series up to NEW (BASE and NEW included) and the
    indexed verdicts in them."""
    if index is None:
        return [base.run_id, new.run_id], {}
    target = str((new.manifest.get("target") or {}).get("name") or "-")
    runs = index.window(target, series_profile(new.manifest),
                        (new.manifest["started_utc"], new.run_id), size)
    if new.run_id not in runs:
        runs.append(new.run_id)
    if base.run_id not in runs:      # an older baseline: it comes just before NEW
        runs.insert(runs.index(new.run_id), base.run_id)
    runs = runs[-max(size, 2):]
    return runs, index.verdicts_in([r for r in runs if r not in (base.run_id, new.run_id)])


def _sequence(past: dict[str, str], window_runs: list[str], base_id: str, base_verdict: str,
              new_id: str, new_verdict: str) -> list[str]:
    known = dict(past, **{base_id: base_verdict, new_id: new_verdict})
    return [known[run_id] for run_id in window_runs if run_id in known]


def _notes(base: Bundle, new: Bundle) -> list[str]:
    """What changed around the results: environment, image, pcert, profile."""
    notes = []
    for label, pick in (
            ("environment", lambda m: m.get("environment_sha256")),
            ("image", lambda m: (m.get("image") or {}).get("sha256")),
            ("pcert", lambda m: " ".join(str(v) for v in ((m.get("pcert") or {}).get("version"),
                                                          (m.get("pcert") or {}).get("git_commit"))
                                         if v)),
            ("profile", series_profile),
            ("target", lambda m: (m.get("target") or {}).get("name"))):
        before, after = pick(base.manifest), pick(new.manifest)
        if before and after and before != after:
            notes.append(f"{label} changed: {before} -> {after}")
    return notes
