"""The run index: one SQLite file kept with the runs (``runs/index.sqlite``) that knows every
bundle's identification and the verdict of each of its test cases and requirements, so a
nightly job can compare runs and show an item's history without opening every bundle.

>>> index = RunIndex("runs/index.sqlite")                   # doctest: +SKIP
>>> index.add("runs/20261126T160000Z-linux-x86_64-3fa9c1")  # doctest: +SKIP
'added'
>>> [row.verdict for row in index.history("TC-open-001")]   # doctest: +SKIP
['PASS', 'PASS', 'FAIL']

The index is derived: it can be deleted and rebuilt with :meth:`RunIndex.scan`. Each change is
one SQLite transaction, so a killed process leaves the index as it was before or after.
A requirement's verdict is the most serious verdict of its test cases, or ``no test``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import format as fmt
from .errors import BundleError, InputError
from .reader import Bundle

INDEX_NAME = "index.sqlite"
INDEX_SCHEMA = "pcert-index/1"
TESTCASE, REQUIREMENT = "testcase", "requirement"

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    path TEXT NOT NULL,
    started_utc TEXT NOT NULL,
    finished_utc TEXT NOT NULL,
    target TEXT NOT NULL,
    profile TEXT NOT NULL,
    status TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    environment_sha256 TEXT,
    image_sha256 TEXT,
    pcert_version TEXT,
    pcert_commit TEXT,
    summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    item TEXT NOT NULL,
    verdict TEXT NOT NULL,
    reason TEXT NOT NULL,
    fingerprint TEXT,
    PRIMARY KEY (run_id, kind, item)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS verdicts_by_item ON verdicts (item, kind);
CREATE INDEX IF NOT EXISTS runs_by_series ON runs (target, profile, started_utc);
"""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    path: str
    started_utc: str
    target: str
    profile: str
    status: str
    environment_sha256: str | None
    image_sha256: str | None
    summary: dict


@dataclass(frozen=True)
class HistoryRow:
    run_id: str
    started_utc: str
    target: str
    profile: str
    kind: str
    verdict: str
    reason: str
    fingerprint: str | None       # requirement fingerprint or procedure sha256 as run


def series_profile(manifest: dict) -> str:
    """``face-safety-base@3.2``: the profile a run was judged against, with its edition."""
    plan = manifest.get("plan") or {}
    profile = plan.get("profile") or "-"
    return f"{profile}@{plan['edition']}" if plan.get("edition") and profile != "-" else profile


def verdict_tables(bundle: Bundle) -> dict[str, dict[str, tuple[str, str, str | None]]]:
    """{kind: {id: (verdict, reason, fingerprint)}} for the test cases and requirements of a
    bundle; a planned test case without a result is UNINITIATED."""
    results = {row["id"]: row for row in bundle.results}
    cases, verdicts_of = {}, {}
    for testcase in bundle.testcases:
        result = results.get(testcase["id"])
        verdict = result["verdict"] if result else "UNINITIATED"
        reason = result["reason"] if result else "no result recorded in the bundle"
        procedure = (result or {}).get("procedure_sha256") or testcase["procedure"]["sha256"]
        cases[testcase["id"]] = (verdict, reason, procedure)
        for requirement_id in testcase["verifies"]:
            verdicts_of.setdefault(requirement_id, []).append(verdict)
    requirements = {}
    for requirement in bundle.requirements:
        found = verdicts_of.get(requirement["id"])
        requirements[requirement["id"]] = (fmt.worst(found) if found else fmt.NO_TEST, "",
                                           requirement["fingerprint"])
    return {TESTCASE: cases, REQUIREMENT: requirements}


class RunIndex:
    """The SQLite run index at ``path`` (created on first use)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.execute("PRAGMA foreign_keys = ON")
            with self.db:
                self.db.executescript(_TABLES)
                found = self.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
                if found is None:
                    self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (INDEX_SCHEMA,))
                elif found[0] != INDEX_SCHEMA:
                    raise InputError(f"{self.path}: a run index of format {found[0]!r}, this "
                                     f"pcert reads {INDEX_SCHEMA!r}; delete it and rebuild it "
                                     "with `pcert index scan`")
        except sqlite3.DatabaseError as error:
            raise InputError(f"{self.path}: not a usable run index ({error}); delete it and "
                             "rebuild it with `pcert index scan`") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "RunIndex":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- adding ------------------------------------------------------------------------------

    def add(self, bundle_path: Path | str) -> str:
        """Index one bundle: ``added``, ``updated`` (its manifest changed, or it moved) or
        ``unchanged``. BundleError when it is not a readable bundle."""
        bundle = Bundle.open(bundle_path)
        manifest = bundle.manifest
        manifest_sha = hashlib.sha256((bundle.path / fmt.MANIFEST).read_bytes()).hexdigest()
        path = str(bundle.path.resolve())
        known = self.db.execute("SELECT manifest_sha256, path FROM runs WHERE run_id = ?",
                                (bundle.run_id,)).fetchone()
        if known == (manifest_sha, path):
            return "unchanged"
        tables = verdict_tables(bundle)
        image = manifest.get("image") or {}
        pcert = manifest.get("pcert") or {}
        target = manifest.get("target") or {}
        with self.db:
            self.db.execute("DELETE FROM runs WHERE run_id = ?", (bundle.run_id,))
            self.db.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (bundle.run_id, path, manifest["started_utc"], manifest["finished_utc"],
                 str(target.get("name") or "-"), series_profile(manifest), manifest["status"],
                 manifest_sha, manifest.get("environment_sha256"), image.get("sha256"),
                 pcert.get("version"), pcert.get("git_commit"),
                 json.dumps(manifest.get("summary") or {}, sort_keys=True)))
            self.db.executemany(
                "INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?)",
                ((bundle.run_id, kind, item, verdict, reason, fingerprint)
                 for kind, table in tables.items()
                 for item, (verdict, reason, fingerprint) in table.items()))
        return "updated" if known else "added"

    def scan(self, runs_dir: Path | str) -> list[tuple[str, str]]:
        """Index every bundle directly under ``runs_dir`` (and forget indexed runs whose
        directory is gone from it). Returns (path, what happened) pairs, sorted; a directory
        that is not a readable bundle is reported, not fatal."""
        runs_dir = Path(runs_dir)
        if not runs_dir.is_dir():
            raise InputError(f"{runs_dir}: not a directory; give the directory holding the run "
                             "bundles (runs/)")
        found = []
        for child in sorted(runs_dir.iterdir()):
            if not child.is_dir() or not (child / fmt.MANIFEST).exists():
                continue
            try:
                found.append((str(child), self.add(child)))
            except BundleError as error:
                found.append((str(child), f"skipped: {error}"))
        prefix = str(runs_dir.resolve()) + "/"
        for run_id, path in self.db.execute("SELECT run_id, path FROM runs").fetchall():
            if path.startswith(prefix) and not Path(path, fmt.MANIFEST).exists():
                with self.db:
                    self.db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                found.append((path, "forgotten: the bundle is gone"))
        return sorted(found)

    # -- reading -----------------------------------------------------------------------------

    def runs(self, target: str | None = None, profile: str | None = None) -> list[RunRow]:
        """Indexed runs, oldest first, optionally of one target and/or profile."""
        query = ("SELECT run_id, path, started_utc, target, profile, status, environment_sha256,"
                 " image_sha256, summary FROM runs WHERE (? IS NULL OR target = ?) AND "
                 "(? IS NULL OR profile = ?) ORDER BY started_utc, run_id")
        return [RunRow(*row[:8], json.loads(row[8]))
                for row in self.db.execute(query, (target, target, profile, profile))]

    def run(self, run_id: str) -> RunRow | None:
        row = self.db.execute(
            "SELECT run_id, path, started_utc, target, profile, status, environment_sha256, "
            "image_sha256, summary FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return RunRow(*row[:8], json.loads(row[8])) if row else None

    def history(self, item: str, target: str | None = None,
                profile: str | None = None) -> list[HistoryRow]:
        """Verdicts of one test case or requirement over time, oldest first."""
        query = ("SELECT r.run_id, r.started_utc, r.target, r.profile, v.kind, v.verdict, "
                 "v.reason, v.fingerprint FROM verdicts v JOIN runs r ON r.run_id = v.run_id "
                 "WHERE v.item = ? AND (? IS NULL OR r.target = ?) AND (? IS NULL OR "
                 "r.profile = ?) ORDER BY r.started_utc, r.run_id")
        return [HistoryRow(*row) for row in
                self.db.execute(query, (item, target, target, profile, profile))]

    def tables(self, bundle: Bundle) -> dict[str, dict[str, tuple[str, str, str | None]]]:
        """:func:`verdict_tables` of ``bundle`` from the index when it holds this run with the
        same manifest (no need to read the bundle's records), else from the bundle."""
        manifest_sha = hashlib.sha256((bundle.path / fmt.MANIFEST).read_bytes()).hexdigest()
        known = self.db.execute("SELECT manifest_sha256 FROM runs WHERE run_id = ?",
                                (bundle.run_id,)).fetchone()
        if known is None or known[0] != manifest_sha:
            return verdict_tables(bundle)
        tables: dict[str, dict[str, tuple[str, str, str | None]]] = {TESTCASE: {}, REQUIREMENT: {}}
        for kind, item, verdict, reason, fingerprint in self.db.execute(
                "SELECT kind, item, verdict, reason, fingerprint FROM verdicts WHERE run_id = ?",
                (bundle.run_id,)):
            tables[kind][item] = (verdict, reason, fingerprint)
        return tables

    def window(self, target: str, profile: str, until: tuple[str, str],
               size: int) -> list[str]:
        """Run ids of the last ``size`` runs of a series up to (started_utc, run_id) ``until``,
        oldest first."""
        rows = self.db.execute(
            "SELECT run_id FROM runs WHERE target = ? AND profile = ? AND "
            "(started_utc < ? OR (started_utc = ? AND run_id <= ?)) "
            "ORDER BY started_utc DESC, run_id DESC LIMIT ?",
            (target, profile, until[0], until[0], until[1], size)).fetchall()
        return [run_id for (run_id,) in reversed(rows)]

    def verdicts_in(self, run_ids: list[str]) -> dict[tuple[str, str], dict[str, str]]:
        """{(kind, item): {run_id: verdict}} over the given runs."""
        table: dict[tuple[str, str], dict[str, str]] = {}
        for run_id in run_ids:
            for kind, item, verdict in self.db.execute(
                    "SELECT kind, item, verdict FROM verdicts WHERE run_id = ?", (run_id,)):
                table.setdefault((kind, item), {})[run_id] = verdict
        return table
