"""A complete, verifiable bundle for a presence-only run (`pcert run --checks presence`): no
image is built and nothing boots, so the manifest has no kernel, no image, an empty console
and an exit reason that says so; the compiler is the tool that ran.

    >>> run = run_presence(profile, target, multi_process=target.multi_process,
    ...                    cache_dir=cache)                                  # doctest: +SKIP
    >>> write_presence_bundle(run, Path("runs/x"), target, profile)         # doctest: +SKIP
    [PosixPath('runs/x/reports/junit.xml'), PosixPath('runs/x/reports/report.pdf')]
"""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

from evidence.format import make_run_id
from evidence.writer import BundleWriter
from reports.render import render_reports
from targets.definition import Target

from .. import version
from ..profiles import Profile
from .records import PresenceRun

NO_BOOT = "no boot: presence checks only (compile and link against the target's toolchain)"


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def presence_manifest(run: PresenceRun, target: Target, profile: Profile) -> dict:
    """The manifest fields of a presence-only bundle (the writer adds schema, status, files)."""
    started = run.started
    return {
        "run_id": make_run_id(target.name, dt.datetime.fromtimestamp(started, dt.timezone.utc),
                              secrets.token_bytes(3)),
        "started_utc": _utc(started),
        "finished_utc": _utc(run.finished),
        "pcert": version.identity(),
        "plan": {"profile": profile.name, "edition": profile.edition,
                 "profile_title": profile.title, "checks": "presence",
                 "multi_process": run.verdict["multi_process"],
                 "interfaces": run.verdict["counts"]["interfaces"],
                 "test_cases": len(run.testcases), "requirements": len(run.requirements)},
        "target": target.to_json(),
        "tools": {"compiler": dict(run.tool)},
        "kernel": None,
        "image": None,            # nothing was built to run
        "command": list(run.command),
        "nonce": secrets.token_hex(8),
        "guest": {},
        "exit": {"reason": NO_BOOT, "status": None,
                 "wall_s": round(max(run.finished - run.started, 0.0), 3)},
        "presence": run.verdict,
    }


def write_presence_bundle(run: PresenceRun, out_dir: Path, target: Target,
                          profile: Profile) -> list[Path]:
    """Write the bundle into `out_dir` (new or empty), then its reports; returns the reports."""
    writer = BundleWriter(Path(out_dir))
    writer.write_json("requirements.json", [r.to_json() for r in run.requirements])
    writer.write_json("testcases.json", run.testcases)
    for name, data in sorted(run.files.items()):
        writer.write_bytes(name, data)
    writer.write_jsonl("results.jsonl", run.results)
    with writer.open_console():
        pass              # nothing booted: an empty console, as the format requires one
    writer.finalize(presence_manifest(run, target, profile), status="complete")
    return render_reports(Path(out_dir))
