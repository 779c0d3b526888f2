"""The run orchestrator: plan → generate → build → boot (in sessions) → collect → bundle → report.

    execute(RunOptions(target="host", profile="face-safety-base", out=Path("runs/x")))
    execute(RunOptions(resume=Path("runs/x")))     # finish an interrupted run

Evidence is never lost: the bundle is sealed as `incomplete` (a checkpoint) before every boot,
so a run killed at any moment leaves a bundle that `pcert verify` accepts as incomplete and
`pcert run --resume` finishes. With `jobs` > 1 the plan is dealt out in interleaved shards, each
booted by its own worker into its own console log, and merged into one bundle; a worker that
has run its shard takes over the rest of a slower worker's (balance.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import secrets
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from evidence.atomic import encode_json_line
from evidence.errors import BundleError
from evidence.fingerprints import environment_sha256
from evidence.format import AGENT_LOG, make_run_id
from evidence.gcpause import long_lived
from evidence.index import RunIndex
from evidence.schema import validate
from evidence.writer import BundleWriter, resumable_manifest
from reports.render import render_reports
from targets import kernel as kernels
from targets.definition import Target, load_target
from targets.drivers import make_machine
from targets.image import build_image
from targets.readiness import check_ready
from targets.snapshot import Snapshot, SnapshotError, ensure_snapshot
from targets.toolchain import BuildInfo, Toolchain

from . import version
from .agent.bundle import PREFIX as DIFFERENTIAL_PREFIX, Differential, plan_differential
from .agent.transport import CALL_TIMEOUT_S
from .background import Background
from .balance import Balancer, check_handovers
from .catalog import Catalog
from .collect import TET_CODES, Collector
from .errors import RunError, RunInterrupted
from .generate import GeneratedSources, generate
from .plan import Plan, make_plan
from .presence import PresenceRun, run_presence
from .presence.bundle import write_presence_bundle
from .profiles import load_profile
from .progress import Progress
from .session import BootRecord, Session, Timeouts, check_boot_row

BOOTS = "boots.jsonl"
SNAPSHOT_LOG = "snapshot.log"  # the console of the cold boot whose saved state the boots restore
IDLE_MARGIN_S = 15  # the host waits this much longer than the longest guest-side timeout
CHECKPOINT_EVERY_S = 1.0
PRESENCE_PREFIXES = ("TC-H-", "TC-L-", "TC-NS-")


@dataclass
class RunOptions:
    target: str = "linux-x86_64"
    profile: str = "face-safety-base"
    out: Path | None = None
    runs_dir: Path = Path("runs")
    kernel: Path | None = None
    spec_dirs: tuple[Path, ...] = ()
    only: frozenset[str] | None = None
    cache_dir: Path | None = None
    timeout_s: int | None = None          # per-test-case default timeout in the guest
    idle_timeout_s: float | None = None   # host: no console progress for this long → hung
    jobs: int | None = None               # parallel workers; None: one per CPU
    resume: Path | None = None
    checks: str = "all"                   # all | behaviour | presence | differential
    seed: int = 0                         # differential: Hypothesis seed
    max_examples: int = 100               # differential: examples per property at most
    boot: str = "snapshot"                # snapshot (where the target can) | cold

    def to_json(self) -> dict:
        """What a resumed run needs to plan the same run again."""
        return {"target": self.target, "profile": self.profile,
                "kernel": str(self.kernel) if self.kernel else None,
                "specs": [str(p) for p in self.spec_dirs],
                "only": sorted(self.only) if self.only is not None else None,
                "timeout_s": self.timeout_s, "idle_timeout_s": self.idle_timeout_s,
                "jobs": self.jobs, "checks": self.checks, "seed": self.seed,
                "max_examples": self.max_examples, "boot": self.boot}

    @classmethod
    def from_json(cls, data: dict, resume: Path) -> "RunOptions":
        return cls(target=data["target"], profile=data["profile"],
                   kernel=Path(data["kernel"]) if data.get("kernel") else None,
                   spec_dirs=tuple(Path(p) for p in data.get("specs", [])),
                   only=frozenset(data["only"]) if data.get("only") is not None else None,
                   timeout_s=data.get("timeout_s"), idle_timeout_s=data.get("idle_timeout_s"),
                   jobs=data.get("jobs"), checks=data.get("checks", "behaviour"),
                   seed=data.get("seed", 0), max_examples=data.get("max_examples", 100),
                   boot=data.get("boot", "cold"), out=resume, resume=resume)


@dataclass
class RunResult:
    bundle: Path
    summary: dict[str, int]
    status: str = "complete"
    reports: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "complete" and all(
            n == 0 for v, n in self.summary.items() if v != "PASS")


def cache_root(explicit: Path | None = None) -> Path:
    """--cache-dir, else targets.kernel.default_cache_dir()."""
    return explicit or kernels.default_cache_dir()


def runtime_dir() -> Path:
    return Path(str(resources.files("targets") / "runtime"))


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stage_sources(files: dict[str, bytes], cache: Path) -> Path:
    """Write generated sources to a directory named by their hash, so paths are stable."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name] + b"\0")
    stage = cache / "src" / digest.hexdigest()[:24]
    if not stage.exists():
        tmp = stage.with_name(stage.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        try:
            tmp.rename(stage)
        except OSError:          # another run staged the same sources first
            shutil.rmtree(tmp, ignore_errors=True)
    return stage


def shards(count: int, jobs: int) -> list[range]:
    """The plan indexes of each worker: every jobs-th, interleaved, so the slow units (signals
    that wait for alarms, timed waits) are spread over all workers instead of one.

    >>> shards(5, 2)
    [range(0, 5, 2), range(1, 5, 2)]
    """
    jobs = max(1, min(jobs, count))
    return [range(w, count, jobs) for w in range(jobs)]


def console_name(worker: int) -> str:
    return "console.log" if worker == 0 else f"console.w{worker}.log"


@dataclass
class Prepared:
    """Everything a run needs before the first boot; the same for a resumed run."""

    options: RunOptions
    target: Target
    catalog: Catalog
    plan: Plan
    sources: GeneratedSources
    toolchain: Toolchain
    binary: Path
    kernel: object | None
    image: object
    presence: PresenceRun | None = None
    build: BuildInfo | None = None
    differential: Differential | None = None
    snapshot: Snapshot | None = None      # boots restore it (docs/snapshot.md)
    cold_why: str = ""                    # why boots are cold, when the target could restore

    @property
    def differential_base(self) -> int:
        return len(self.plan.test_cases) + (len(self.presence.testcases) if self.presence else 0)

    @property
    def planned_ids(self) -> list[str]:
        """Behavioural test cases first (their index is the guest's), then presence checks."""
        extra = [t["id"] for t in self.presence.testcases] if self.presence else []
        extra += self.differential.ids if self.differential else []
        return [tc.id for tc in self.plan.test_cases] + extra

    def presence_rows(self) -> tuple[list[dict], list[dict]]:
        """The presence checks' test cases and results, numbered after the behavioural ones."""
        if self.presence is None:
            return [], []
        base = len(self.plan.test_cases)
        return ([dict(t, index=base + i) for i, t in enumerate(self.presence.testcases)],
                [dict(r, index=base + i) for i, r in enumerate(self.presence.results)])


def _ready_kernel(target: Target, toolchain: Toolchain, kernel_dir: Path,
                  override: Path | None) -> tuple[list[str], kernels.KernelInfo | None]:
    """(problems, None) when the target is not ready here; else ([], its kernel or None).
    The kernel only after the check, which may fetch a foreign architecture's package lists."""
    problems = check_ready(target, toolchain=toolchain)
    if problems or not target.needs_kernel:
        return problems, None
    return [], kernels.ensure_kernel(target, cache_dir=kernel_dir, override=override)


def prepare(options: RunOptions, progress: Progress) -> Prepared:
    target = load_target(options.target)
    profile = load_profile(options.profile)
    toolchain = Toolchain.for_target(target)
    cache = cache_root(options.cache_dir)
    # Subprocesses and hashing, while this thread loads the catalog and generates sources.
    tools = Background(_ready_kernel, target, toolchain, cache / "kernels", options.kernel)
    catalog = Catalog.load(tuple(options.spec_dirs), cache_dir=cache / "catalog")
    only_presence = only_differential = None
    only = options.only
    if only is not None:  # presence checks are named TC-H-, TC-L-, TC-NS-: not spec items
        only_presence = frozenset(i for i in only if i.startswith(PRESENCE_PREFIXES))
        only_differential = frozenset(i for i in only if i.startswith(DIFFERENTIAL_PREFIX))
        only = only - only_presence - only_differential
    plan = make_plan(catalog, profile, multi_process=target.multi_process, only=only)
    differential = None
    if options.checks in ("all", "differential") and only_differential != frozenset():
        differential = plan_differential(catalog, target, only=only_differential,
                                         seed=options.seed, max_examples=options.max_examples,
                                         runtime_dir=runtime_dir(),
                                         interfaces=frozenset(plan.interfaces))
    if not plan.test_cases and not differential:
        raise RunError(f"profile {profile.label} selects no test case on {target.name}")
    progress.phase("plan", f"{profile.label} on {target.name}: {len(plan.test_cases)} test cases, "
                           f"{len(plan.requirements)} requirements")
    sources = generate(catalog.spec_set, [tc.id for tc in plan.test_cases])
    problems, kernel = tools.result()
    if problems:
        raise RunError(f"target {target.name} is not ready: " + "; ".join(problems))
    stage = _stage_sources(sources.files, cache)
    progress.phase("build", f"{target.toolchain.cc} ({len(sources.files)} generated files + runtime)")
    rt = runtime_dir()
    generated = [stage / n for n in sorted(sources.files)]
    # A generated unit the target cannot compile is left out; its test cases report
    # UNSUPPORTED with the compiler's reason (stubs), the runtime itself must build.
    build = toolchain.cached_build_info([*generated, rt / "pcert.c", rt / "pcert_agent.c"], [rt],
                                        cache / "build", optional=generated)
    binary = build.path
    # One directory per binary: concurrent runs never swap images.
    image = build_image(target, binary, cache / "images" / binary.parent.name)
    presence = None
    if options.checks == "all" and only_presence != frozenset():
        progress.phase("presence", f"declarations and links of {len(plan.interfaces)} interfaces")
        presence = run_presence(profile, target, multi_process=target.multi_process,
                                cache_dir=cache, progress=progress)
        if only_presence is not None:
            presence = _select_presence(presence, only_presence)
    if options.checks == "differential":  # the same image as `all`; only its agent mode runs
        plan = replace(plan, test_cases=[], requirements=[])
    return Prepared(options, target, catalog, plan, sources, toolchain, binary, kernel, image,
                    presence, build, differential)


class _Run:
    """One run's state: the bundle writer, one collector and session per worker."""

    def __init__(self, p: Prepared, writer: BundleWriter, manifest_base: dict, nonce: str,
                 jobs: int, progress: Progress, resumed_boots: list[dict]):
        self.p, self.writer, self.nonce, self.progress = p, writer, nonce, progress
        self.manifest_base = manifest_base
        self.ids = [tc.id for tc in p.plan.test_cases]
        self.fingerprints = {r["id"]: r["fingerprint"] for r in _requirements(p)}
        self.lock = threading.RLock()  # collectors and sinks: one thread at a time
        self.sealing = threading.RLock()  # the bundle's record files: one seal at a time
        self.dirty = False              # progress not yet in a checkpoint
        self.stop = threading.Event()
        self.clock0 = time.monotonic()
        # The host waits a little longer than the guest would for each test case, so the
        # guest's own timeout (a precise verdict) always fires first.
        default_case = p.options.timeout_s or 10
        self.timeouts = Timeouts(
            idle_s=p.options.idle_timeout_s or p.target.machine.idle_timeout_s,
            run_s=p.target.machine.run_timeout_s,
            case_s=tuple((tc.timeout_s if tc.timeout_from_spec else default_case) + IDLE_MARGIN_S
                         for tc in p.plan.test_cases))
        self.boots: list[dict] = list(resumed_boots)
        # A checkpoint's encoded rows that will not change, by plan index: (line, verdict).
        self._final_lines: dict[int, tuple[bytes, str]] = {}
        self._pending_lines: dict[int, tuple[bytes, str]] = {}  # valid until the case starts
        self._valid_lines: set[bytes] = set()  # final rows already validated as results
        self.sessions: list[Session] = []
        workers = shards(len(self.ids), jobs)
        for worker, shard in enumerate(workers):
            collector = Collector(self.ids, nonce)
            collector.on_progress = self._on_progress
            name = console_name(worker)
            sink = writer.open_console(name, append=p.options.resume is not None)
            session = Session(self._machine_factory, collector, sink, shard=shard,
                              timeouts=self.timeouts, worker=worker, console_name=name,
                              clock0=self.clock0, lock=self.lock,
                              append_max=p.target.machine.append_max)
            session.on_boot = self._on_boot
            self.sessions.append(session)
        self.balancer = Balancer(self.sessions, self.lock, nonce) if len(self.sessions) > 1 else None
        if resumed_boots:
            self._replay(resumed_boots)

    def _machine_factory(self, env: dict[str, str]):
        guest_env = {"PCERT_NONCE": self.nonce, **env}
        if self.p.options.timeout_s:
            guest_env["PCERT_TIMEOUT"] = str(self.p.options.timeout_s)
        return self.machine(guest_env)

    def machine(self, guest_env: dict[str, str], agent: bool = False):
        """A machine for one boot: restored from the snapshot while restoring works."""
        return make_machine(self.p.target, binary=self.p.binary, image=self.p.image,
                            kernel=self.p.kernel, guest_env=guest_env, agent=agent,
                            snapshot=None if self.p.cold_why else self.p.snapshot,
                            on_restore_failed=self._restore_failed)

    def _restore_failed(self, why: str) -> None:
        """One failed restore sends every later boot of the run cold (the boot says why)."""
        self.p.cold_why = f"a restore failed: {why}"

    def _on_progress(self, done: int, total: int, current: str) -> None:
        done = sum(s.collector.done_count() for s in self.sessions)
        self.dirty = True
        self.progress.update(done, total, current)

    def _checkpoints(self, finished: threading.Event) -> None:
        """Seal what has been obtained about once a second, so a killed pcert loses at most
        that second of results from results.jsonl (the console log keeps every byte)."""
        interval = CHECKPOINT_EVERY_S
        while not finished.wait(interval):
            if self.dirty:
                self.dirty = False  # before the seal: what arrives during it makes the next
                t0 = time.monotonic()
                self.seal("checkpoint")
                # Never spend more than a tenth of the run sealing checkpoints.
                interval = max(CHECKPOINT_EVERY_S, 10 * (time.monotonic() - t0))

    def _replay(self, boots: list[dict]) -> None:
        """Rebuild ownership and every collector from the interrupted run's boots and logs."""
        if self.balancer is not None:
            self.balancer.replay(boots)
        for session in self.sessions:
            data = (self.writer.path / session.console_name).read_bytes()
            session.replay([b for b in boots if b["worker"] == session.worker], data)

    def _on_boot(self, record: BootRecord, running: bool) -> None:
        """Before a boot: seal a checkpoint that names it; after: keep its record."""
        with self.sealing:  # before `lock`, as in seal()
            with self.lock:
                row = record.to_json()
                self.boots = [b for b in self.boots
                              if (b["worker"], b["boot"]) != (row["worker"], row["boot"])]
                self.boots.append(row)
                self.boots.sort(key=lambda b: (b["worker"], b["boot"]))
            if running:
                self.dirty = False
                self.seal("checkpoint")

    def results(self, stop_reason: str) -> list[dict]:
        """Every result row, in plan order, computed afresh."""
        rows: list[dict] = []
        for session in self.sessions:
            rows += self._worker_rows(session, stop_reason, sorted(session.owned))
        rows.sort(key=lambda row: row["index"])  # workers' shards interleave
        return rows + self._other_rows()

    def _worker_rows(self, session: Session, stop_reason: str, indexes) -> list[dict]:
        """The result rows of `indexes` (plan indexes this worker owns), linked."""
        rows = session.collector.results(stop_reason=session.last_stop or stop_reason,
                                         console_size=session.sink.size, indexes=indexes)
        procedures = self.p.sources.procedures
        for row in rows:
            if session.worker:  # ranges point into this worker's own log
                for span in [row["console"]] + [a["console"] for a in row["attempts"]]:
                    if span is not None:
                        span["file"] = session.console_name
            tc = self.p.catalog.spec_set.test_cases[row["id"]]
            row["verifies"] = list(tc.verifies)
            row["procedure_sha256"] = procedures[tc.id].sha256
            self._obtained_against(row)
        return rows

    def _other_rows(self) -> list[dict]:
        """The presence checks' and the differential properties' rows, after the plan's."""
        rows = self.p.presence_rows()[1]
        if self.p.differential is not None:
            rows += self.p.differential.result_rows(self.p.differential_base)
        for row in rows:
            self._obtained_against(row)
        return rows

    def _obtained_against(self, row: dict) -> None:
        """What the result was obtained against: a later change to any of it makes the
        result's links suspect (reports/suspect.py)."""
        row["requirement_fingerprints"] = {r: self.fingerprints[r] for r in row["verifies"]
                                           if r in self.fingerprints}
        row["image_sha256"] = self.manifest_base["image"]["sha256"]
        row["environment_sha256"] = self.manifest_base["environment_sha256"]

    def _checkpoint_results(self) -> tuple[bytes, list[str]]:
        """results.jsonl for a checkpoint, and its verdicts. Its cost follows the results
        obtained since the last checkpoint: a row that can no longer change, and the row of a
        test case not started yet (a constant), are encoded once."""
        lines: list[bytes] = [b""] * len(self.ids)
        verdicts: list[str] = [""] * len(self.ids)
        for session in self.sessions:
            c = session.collector
            fresh = []
            for index in sorted(session.owned):
                # A row kept as final is made again once a repeated sequence number disputes it.
                known = None if index in c.disputed else self._final_lines.get(index)
                if known is None and not c.has_started(index):
                    known = self._pending_lines.get(index)
                if known is None:
                    fresh.append(index)
                else:
                    lines[index], verdicts[index] = known
            for row in self._worker_rows(session, "run interrupted", fresh):
                index = row["index"]
                _not_run_yet([row])
                line = lines[index] = encode_json_line(row)
                verdicts[index] = row["verdict"]
                if c.is_final(index):
                    self._final_lines[index] = (line, row["verdict"])
                    if _valid(row):  # here, while the run goes on, not at its end
                        self._valid_lines.add(line)
                elif not c.has_started(index):
                    self._pending_lines[index] = (line, row["verdict"])
        others = self._other_rows()
        return (b"".join(lines) + b"".join(encode_json_line(row) for row in others),
                verdicts + [row["verdict"] for row in others])

    def seal(self, status: str, stop_reason: str = "") -> dict:
        """Write results, anomalies and boots; `checkpoint` also seals the manifest (the run
        goes on), `incomplete` and `complete` return it for the writer to finalize."""
        with self.sealing:  # one seal at a time, written in the order taken
            with self.lock:  # what the workers have reported, at one moment
                if status == "checkpoint":
                    results, verdicts = self._checkpoint_results()
                else:
                    rows = self.results(stop_reason or "run interrupted")
                    if status != "complete":
                        _not_run_yet(rows)
                    verdicts = [row["verdict"] for row in rows]
                anomalies = [dict(a, worker=s.worker) for s in self.sessions
                             for a in s.collector.anomalies]
                boots = list(self.boots)
                manifest = self._manifest(verdicts, anomalies, boots)
            # Files are written outside `lock`: the workers go on reading their consoles.
            if status == "checkpoint":  # cheap: finalize() validates what a checkpoint wrote
                self.writer.write_bytes("results.jsonl", results)
            else:
                self.writer.write_jsonl("results.jsonl", rows, valid_lines=self._valid_lines)
            checked = status != "checkpoint"
            self.writer.write_jsonl("anomalies.jsonl", anomalies, validate=checked)
            self.writer.write_jsonl(BOOTS, boots, validate=checked)
            if status == "checkpoint":
                return self.writer.checkpoint(manifest)
            return manifest

    def _manifest(self, verdicts: list[str], anomalies: list[dict], boots: list[dict]) -> dict:
        summary = {v: 0 for v in TET_CODES}
        for verdict in verdicts:
            summary[verdict] += 1
        first = self.sessions[0].collector.start
        first_results = [s.collector.first_result_time for s in self.sessions
                         if s.collector.first_result_time is not None]
        first_boot = next((b for b in boots if b["boot"] == 0), None)
        manifest = {
            **self.manifest_base,
            "finished_utc": _utc(time.time()),
            "guest": dict(sorted(first.fields.items())) if first else {},
            "exit": {"reason": boots[-1]["reason"] if boots else "not started",
                     "status": boots[-1]["exit_status"] if boots else None,
                     "boots": len(boots), "workers": len(self.sessions),
                     "first_output_s": first_boot["first_output_s"] if first_boot else None,
                     "first_result_s": min(first_results) if first_results else None,
                     "wall_s": round(time.monotonic() - self.clock0, 3),
                     "anomalies": len(anomalies)},
            "summary": summary,
        }
        if self.p.differential is not None:
            manifest["differential"] = self.p.differential.manifest()
        manifest["boot"] = self.boot_json()
        return manifest

    def boot_json(self) -> dict:
        """How the run booted, for the manifest: from a snapshot (which), or cold (why)."""
        if self.p.snapshot is None:
            return {"method": "cold", "why": self.p.cold_why or
                    f"target {self.p.target.name} has no machine.snapshot (docs/snapshot.md)"}
        return {"method": "snapshot", "snapshot": self.p.snapshot.to_json(),
                "console": SNAPSHOT_LOG,
                **({"later_boots_cold": self.p.cold_why} if self.p.cold_why else {})}

    def prepare_snapshot(self) -> None:
        """Restore boots from a saved state where the target can (docs/snapshot.md); one cold
        boot makes it the first time. If it cannot be made the run boots cold, saying why."""
        p = self.p
        if p.options.boot == "cold":
            p.cold_why = "pcert run --boot cold"
            return
        if not p.target.machine.snapshot:
            return
        qemu = self.manifest_base["tools"]["qemu"]["sha256"]
        try:
            p.snapshot = ensure_snapshot(p.target, p.kernel, p.image,
                                         cache_root(p.options.cache_dir) / "snapshots",
                                         qemu_sha256=qemu)
        except SnapshotError as exc:
            p.cold_why = str(exc)
            return
        self.writer.write_bytes(SNAPSHOT_LOG, p.snapshot.console())

    def run_sessions(self) -> None:
        finished = threading.Event()
        sealer = threading.Thread(target=self._checkpoints, args=(finished,), daemon=True)
        sealer.start()
        try:
            self._run_workers()
        finally:
            finished.set()
            sealer.join()

    def _run_workers(self) -> None:
        if len(self.sessions) == 1:
            self.sessions[0].run(self.stop)
            return
        errors: list[BaseException] = []

        def work(session: Session) -> None:
            try:
                session.run(self.stop)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
                errors.append(exc)
                self.stop.set()

        threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in self.sessions]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:
            self.stop.set()
            for t in threads:
                t.join()
            raise
        if errors:
            raise errors[0]


def _valid(row: dict) -> bool:
    try:
        validate("result", row)
    except BundleError:
        return False  # validated again, and refused with its index, when the run is sealed
    return True


def _not_run_yet(rows: list[dict]) -> None:
    """An interrupted run's rows: what has no verdict yet is not run *yet*."""
    for row in rows:
        if row["verdict"] == "UNINITIATED":
            row["reason"] = ("not run yet: the run was interrupted before it "
                             "(pcert run --resume finishes it)")


def host_identity() -> dict:
    """The machine pcert ran on, without its name (a bundle travels)."""
    uname = platform.uname()
    return {"os": uname.system, "release": uname.release, "machine": uname.machine,
            "python": platform.python_version()}


def _spec_hashes(catalog: Catalog) -> dict[str, str]:
    """sha256 of every spec file the catalog was loaded from, by file name."""
    return {Path(f.path).name: hashlib.sha256(Path(f.path).read_bytes()).hexdigest()
            for f in sorted(catalog.spec_set.files, key=lambda f: Path(f.path).name)}


def _manifest_base(p: Prepared, run_id: str, started: float, nonce: str) -> dict:
    machine = make_machine(p.target, binary=p.binary, image=p.image, kernel=p.kernel,
                           guest_env={"PCERT_NONCE": nonce})
    command = machine.command()
    return {
        "run_id": run_id,
        "started_utc": _utc(started),
        "pcert": {**version.identity(), "specs": _spec_hashes(p.catalog)},
        "options": p.options.to_json(),
        "plan": {**p.plan.to_json(), "checks": p.options.checks,
                 "test_cases": len(p.planned_ids),
                 "requirements": len(_requirements(p))},
        "target": p.target.to_json(),
        "tools": {"compiler": {"command": p.toolchain.cc, "version": p.toolchain.version(),
                               "sha256": p.toolchain.sha256()},
                  **machine.tools_json()},
        "build": p.build.to_json(),
        "kernel": _kernel_json(p.kernel),
        "image": {"kind": p.image.kind, "sha256": p.image.sha256, "size": p.image.size},
        "command": command,
        "nonce": nonce,
        **({"presence": p.presence.verdict} if p.presence else {}),
        "host": host_identity(),
    }


def _requirements(p: Prepared) -> list[dict]:
    """The plan's requirements and the presence checks', once each, sorted by id."""
    by_id = {r.id: r for r in p.plan.requirements}
    for r in (p.presence.requirements if p.presence else []):
        by_id.setdefault(r.id, r)
    for rid in (p.differential.requirement_ids() if p.differential else []):
        if rid not in by_id:
            by_id[rid] = p.catalog.requirement(rid)
    return [by_id[i].to_json() for i in sorted(by_id)]


def _write_static(writer: BundleWriter, p: Prepared) -> None:
    writer.write_json("requirements.json", _requirements(p))
    differential = p.differential.testcase_rows(p.differential_base, CALL_TIMEOUT_S) \
        if p.differential else []
    writer.write_json("testcases.json", _testcases_json(p.plan, p.sources.procedures)
                      + p.presence_rows()[0] + differential)
    for name, data in sorted(p.sources.files.items()):
        writer.write_bytes(f"procedures/{name}", data)
    if p.build.stub_source is not None:
        writer.write_bytes("procedures/pcert_stubs.c", p.build.stub_source)
    for name, data in sorted((p.presence.files if p.presence else {}).items()):
        writer.write_bytes(name, data)
    rt = runtime_dir()
    for name in ("pcert.c", "pcert.h", "pcert_internal.h", "pcert_agent.c"):
        writer.add_file(f"procedures/runtime/{name}", rt / name)
    if p.differential is not None:
        p.differential.write_sources(writer)


def execute(options: RunOptions, progress: Progress | None = None) -> RunResult:
    # What is prepared lives to the end of the run: collecting it again and again while the
    # workers run is wasted (evidence/gcpause.py).
    with long_lived() as keep:
        return _execute(options, progress or Progress(), keep)


def _execute(options: RunOptions, progress: Progress, prepared: Callable[[], None]) -> RunResult:
    resumed: Resumed | None = None
    if options.resume is not None:
        resumed = _load_resume(options.resume)
        options = resumed.options
    started = time.time()
    if options.resume is None:
        target_name = load_target(options.target).name
        run_id = make_run_id(target_name, dt.datetime.fromtimestamp(started, dt.timezone.utc),
                             secrets.token_bytes(3))
        out = options.out or options.runs_dir / run_id
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise RunError(f"{out} already exists and is not empty: evidence is never overwritten; "
                           f"choose another --out, or --resume it if it was interrupted")
    if options.checks == "presence":
        return _presence_only(options, out, progress)
    p = prepare(options, progress)
    if resumed is not None:
        out, manifest_base = options.resume, resumed.manifest_base
        if p.image.sha256 != manifest_base["image"]["sha256"] or \
                p.planned_ids != resumed.planned_ids:
            raise RunError(f"{out}: the plan or image differs from the interrupted run's "
                           "(catalog, specs or toolchain changed); start a new run instead")
        nonce = manifest_base["nonce"]
        writer = BundleWriter(out, resume=True)
        jobs = resumed.workers
    else:
        nonce = secrets.token_hex(8)
        # The tools' versions and hashes (subprocesses, hashing) while the static files go.
        base = Background(_manifest_base, p, run_id, started, nonce)
        existed = out.exists()
        writer = BundleWriter(out)
        try:
            _write_static(writer, p)
            manifest_base = base.result()
        except BaseException:
            _undo_start(out, existed)
            raise
        manifest_base["environment_sha256"] = environment_sha256(manifest_base)
        jobs = options.jobs or os.cpu_count() or 1

    prepared()
    run = _Run(p, writer, manifest_base, nonce, jobs, progress,
               resumed.boots if resumed is not None else [])
    progress.phase("boot", f"{p.target.name}: {len(run.sessions)} worker(s)")
    interrupted = None
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        run.prepare_snapshot()
        run.run_sessions()
        if p.differential is not None:  # after the behavioural boots; re-run on --resume
            run_differential(run)
    except KeyboardInterrupt as exc:
        interrupted = exc
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
    for session in run.sessions:
        session.sink.close()
        session.collector.finish()
    if interrupted is not None:
        writer.finalize(run.seal("incomplete"), status="incomplete")
        raise RunInterrupted(out) from interrupted
    manifest = run.seal("complete", stop_reason=_stop_summary(run))
    writer.finalize(manifest, status="complete")
    progress.phase("report", str(out / "reports"))
    # Indexed while the PDF's child renders, when this process would only wait for it (in a
    # thread beside the reports, the index held back the tables the child waits for).
    reports = render_reports(out, meanwhile=lambda: _index(out))
    return RunResult(bundle=out, summary=manifest["summary"], reports=reports)


def run_differential(run: _Run) -> None:
    """Boot the same image in agent mode and run the differential properties (docs/agent.md);
    its console is appended to worker 0's console log, each boot's range in the manifest."""
    from .agent.session import AgentSession, AgentTimeouts

    p, diff = run.p, run.p.differential
    if diff.unsupported is not None:
        return
    diff.outcomes.clear()
    machine = p.target.machine
    timeouts = AgentTimeouts(boot_s=machine.boot_timeout_s,
                             idle_s=p.options.idle_timeout_s or machine.idle_timeout_s,
                             run_s=machine.run_timeout_s, call_s=CALL_TIMEOUT_S)
    # A resumed run runs the differential phase again, after what the first attempt logged.
    transcript = run.writer.open_console(AGENT_LOG,
                                         append=(run.writer.path / AGENT_LOG).exists())
    try:
        session = AgentSession(lambda env: run.machine({"PCERT_NONCE": run.nonce, **env},
                                                       agent=True),
            run.nonce, run.sessions[0].sink, timeouts=timeouts,
            console_name=run.sessions[0].console_name, clock0=run.clock0,
            transcript=transcript)
        run.progress.phase("differential", f"{len(diff.properties)} properties, seed "
                                           f"{diff.seed}, at most {diff.max_examples} examples each")
        diff.run(session, clock0=run.clock0, progress=run.progress, stop=run.stop)
    finally:
        transcript.close()
    diff.write_files(run.writer)


def _select_presence(presence: PresenceRun, ids: frozenset[str]) -> PresenceRun:
    """Only the presence checks named by --only, and the requirements they verify."""
    unknown = ids - {t["id"] for t in presence.testcases}
    if unknown:
        raise RunError(f"unknown test case id(s): {', '.join(sorted(unknown))}")
    keep = [i for i, t in enumerate(presence.testcases) if t["id"] in ids]
    testcases = [presence.testcases[i] for i in keep]
    verified = {r for t in testcases for r in t["verifies"]}
    return replace(presence, testcases=testcases, results=[presence.results[i] for i in keep],
                   requirements=[r for r in presence.requirements if r.id in verified])


def _presence_only(options: RunOptions, out: Path, progress: Progress) -> RunResult:
    """`pcert run --checks presence`: compile and link checks only, no boot."""
    target, profile = load_target(options.target), load_profile(options.profile)
    problems = [p for p in check_ready(target) if target.toolchain.cc in p]
    if problems:
        raise RunError(f"target {target.name} is not ready: " + "; ".join(problems))
    progress.phase("presence", f"{profile.label} with {target.toolchain.cc}")
    presence = run_presence(profile, target, multi_process=target.multi_process,
                            cache_dir=cache_root(options.cache_dir), progress=progress)
    reports = write_presence_bundle(presence, out, target, profile)
    _index(out)
    return RunResult(bundle=out, summary=presence.summary, reports=reports)


def _undo_start(out: Path, existed: bool) -> None:
    """Nothing written half-way: the bundle directory goes again, or is emptied again when it
    was there (empty) before the run."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in out.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _index(bundle: Path) -> None:
    """Nightly runs are indexed as they finish, beside the runs (runs/index.sqlite)."""
    RunIndex(bundle.parent / "index.sqlite").add(bundle)


def _stop_summary(run: _Run) -> str:
    stops = sorted({s.last_stop for s in run.sessions})
    return "; ".join(stops)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@dataclass
class Resumed:
    """What an interrupted run's bundle tells a resumed run."""

    options: RunOptions
    manifest_base: dict
    boots: list[dict]
    planned_ids: list[str]
    workers: int


def _load_resume(bundle: Path) -> Resumed:
    manifest = resumable_manifest(bundle)
    manifest_path = bundle / "manifest.json"
    if "options" not in manifest:
        raise RunError(f"{manifest_path}: has no 'options'; it was not written by a pcert that "
                       "can resume runs")
    options = RunOptions.from_json(manifest["options"], resume=bundle)
    boots_path = bundle / BOOTS
    boots = _resumable_boots(boots_path)
    testcases = json.loads((bundle / "testcases.json").read_text())
    base = {k: manifest[k] for k in ("run_id", "started_utc", "pcert", "options", "plan", "target",
                                     "tools", "kernel", "image", "command", "nonce",
                                     "environment_sha256", "host", "presence") if k in manifest}
    base["pcert"] = {**manifest["pcert"], **version.identity()}
    workers = manifest.get("exit", {}).get("workers") or options.jobs or os.cpu_count() or 1
    try:
        check_handovers(boots, workers)
    except ValueError as exc:
        raise RunError(f"{boots_path}: a boot's 'took' is malformed ({exc}); the bundle "
                       "cannot be resumed") from None
    return Resumed(options=options, manifest_base=base, boots=boots,
                   planned_ids=[t["id"] for t in testcases], workers=workers)


def _resumable_boots(path: Path) -> list[dict]:
    """The interrupted run's boots.jsonl, each row one a resume can replay, or RunError naming
    the line."""
    if not path.exists():
        return []
    boots = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        try:
            row = json.loads(line)
            check_boot_row(row)
        except ValueError as exc:  # json's errors are ValueErrors too
            raise RunError(f"{path}: line {number}: {exc}; the bundle cannot be resumed") from None
        boots.append(row)
    return boots


def _kernel_json(kernel) -> dict | None:
    if kernel is None:
        return None
    return {**kernel.to_json(), "file": Path(kernel.path).name}


def _testcases_json(plan: Plan, procedures) -> list[dict]:
    rows = []
    for index, tc in enumerate(plan.test_cases):
        proc = procedures[tc.id]
        inputs = "\n".join(p for p in (tc.setup.strip(), f"ret = {tc.call};" if tc.call else "") if p)
        rows.append({
            "id": tc.id, "index": index, "title": tc.title, "unit": tc.unit,
            "interface": tc.interface, "kind": tc.kind, "verifies": list(tc.verifies),
            "options": list(tc.options), "timeout_s": tc.timeout_s, "inputs": inputs,
            "expected": tc.expected, "method": "test",
            "procedure": {"file": f"procedures/{proc.file}", "function": proc.function,
                          "sha256": proc.sha256},
        })
    return rows
