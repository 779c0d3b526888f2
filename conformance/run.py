"""The run orchestrator: plan → generate → build → boot → collect → bundle → report.

>>> # pcert run --target host --profile face-safety-base --out runs/x
>>> # is RunOptions(target="host", profile="face-safety-base", out=Path("runs/x"))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from evidence.format import make_run_id
from evidence.writer import BundleWriter
from reports.render import render_reports
from targets import kernel as kernels
from targets.definition import Target, load_target
from targets.drivers.host import HostMachine
from targets.drivers.qemu import QemuMachine
from targets.image import build_image
from targets.readiness import check_ready
from targets.toolchain import Toolchain

from . import version
from .catalog import Catalog
from .collect import Collector
from .errors import RunError
from .generate import generate
from .plan import Plan, make_plan
from .profiles import load_profile
from .progress import Progress


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


@dataclass
class RunResult:
    bundle: Path
    summary: dict[str, int]
    reports: list[Path] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(n == 0 for v, n in self.summary.items() if v != "PASS")


def cache_root(explicit: Path | None = None) -> Path:
    if explicit:
        return explicit
    if os.environ.get("PCERT_CACHE"):
        return Path(os.environ["PCERT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "pcert"


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


def execute(options: RunOptions, progress: Progress | None = None) -> RunResult:
    progress = progress or Progress()
    target = load_target(options.target)
    profile = load_profile(options.profile)
    problems = check_ready(target)
    if problems:
        raise RunError(f"target {target.name} is not ready: " + "; ".join(problems))
    catalog = Catalog.load(tuple(options.spec_dirs))
    plan = make_plan(catalog, profile, multi_process=target.multi_process, only=options.only)
    if not plan.test_cases:
        raise RunError(f"profile {profile.label} selects no test case on {target.name}")
    cache = cache_root(options.cache_dir)

    started = time.time()
    run_id = make_run_id(target.name, dt.datetime.fromtimestamp(started, dt.timezone.utc),
                         secrets.token_bytes(3))
    out = options.out or options.runs_dir / run_id
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists and is not empty: evidence is never overwritten; "
                       f"choose another --out")

    progress.phase("plan", f"{profile.label} on {target.name}: {len(plan.test_cases)} test cases, "
                           f"{len(plan.requirements)} requirements")
    progress.phase("generate", f"{len(plan.test_cases)} procedures")
    sources = generate(catalog.spec_set, [tc.id for tc in plan.test_cases])
    stage = _stage_sources(sources.files, cache)

    progress.phase("build", f"{target.toolchain.cc} ({len(sources.files)} generated files + runtime)")
    toolchain = Toolchain.for_target(target)
    rt = runtime_dir()
    binary = toolchain.cached_build(
        [*(stage / n for n in sorted(sources.files)), rt / "pcert.c"], [rt], cache / "build")

    kernel = None
    if target.kind == "qemu-linux":
        progress.phase("kernel", "checking the cache")
        kernel = kernels.ensure_kernel(target, cache_dir=cache / "kernels", override=options.kernel)
    # One directory per binary: concurrent runs never swap images.
    image = build_image(target, binary, cache / "images" / binary.parent.name)

    nonce = secrets.token_hex(8)
    guest_env = {"PCERT_NONCE": nonce}
    if options.timeout_s:
        guest_env["PCERT_TIMEOUT"] = str(options.timeout_s)
    machine = (QemuMachine(target, kernel.path, image.path, guest_env) if kernel is not None
               else HostMachine(binary, guest_env))

    writer = BundleWriter(out)
    collector = Collector([tc.id for tc in plan.test_cases], nonce)
    collector.on_progress = progress.update
    progress.phase("boot", f"{target.name} ({' '.join(machine.command()[:1])})")
    clock0 = time.monotonic()
    with writer.open_console() as console:
        def on_output(data: bytes) -> None:
            console.write(data)
            collector.feed(data, now=time.monotonic() - clock0)

        outcome = machine.run(on_output, idle_timeout_s=target.machine.idle_timeout_s,
                              run_timeout_s=target.machine.run_timeout_s,
                              until=lambda: collector.ended)
        console_size = console.size
    progress.close()
    collector.finish()
    results = collector.results(stop_reason=outcome.reason, console_size=console_size)
    finished = time.time()

    procedures = sources.procedures
    for row in results:
        tc = catalog.spec_set.test_cases[row["id"]]
        row["verifies"] = list(tc.verifies)
        row["procedure_sha256"] = procedures[tc.id].sha256
    summary = {v: 0 for v in ("PASS", "FAIL", "UNRESOLVED", "UNSUPPORTED", "UNTESTED", "UNINITIATED")}
    for row in results:
        summary[row["verdict"]] += 1

    writer.write_json("requirements.json", [r.to_json() for r in plan.requirements])
    writer.write_json("testcases.json", _testcases_json(plan, procedures))
    for name, data in sorted(sources.files.items()):
        writer.write_bytes(f"procedures/{name}", data)
    for name in ("pcert.c", "pcert.h"):
        writer.add_file(f"procedures/runtime/{name}", rt / name)
    writer.write_jsonl("results.jsonl", results)
    writer.write_jsonl("anomalies.jsonl", collector.anomalies)
    manifest = {
        "run_id": run_id,
        "started_utc": _utc(started),
        "finished_utc": _utc(finished),
        "pcert": version.identity(),
        "plan": {**plan.to_json(), "checks": "behaviour"},
        "target": target.to_json(),
        "tools": {"compiler": {"command": toolchain.cc, "version": toolchain.version(),
                               "sha256": toolchain.sha256()},
                  **({"qemu": {"command": machine.command()[0], "version": machine.version(),
                               "sha256": machine.sha256()}} if kernel is not None else {})},
        "kernel": _kernel_json(kernel),
        "image": {"kind": image.kind, "sha256": image.sha256, "size": image.size},
        "command": machine.command(),
        "nonce": nonce,
        "guest": dict(sorted(collector.start.fields.items())) if collector.start else {},
        "exit": {"reason": outcome.reason, "status": outcome.exit_status,
                 "first_output_s": outcome.first_output_s,
                 "first_result_s": collector.first_result_time, "wall_s": round(outcome.wall_s, 3),
                 "anomalies": len(collector.anomalies)},
        "summary": summary,
    }
    writer.finalize(manifest, status="complete" if collector.ended else "incomplete")
    progress.phase("report", str(out / "reports"))
    reports = render_reports(out)
    return RunResult(bundle=out, summary=summary, reports=reports)


def _kernel_json(kernel) -> dict | None:
    if kernel is None:
        return None
    return {"package": kernel.package, "version": kernel.version, "deb_sha256": kernel.deb_sha256,
            "sha256": kernel.sha256, "source": kernel.source, "file": Path(kernel.path).name}


def _testcases_json(plan: Plan, procedures) -> list[dict]:
    rows = []
    for index, tc in enumerate(plan.test_cases):
        proc = procedures[tc.id]
        inputs = "\n".join(p for p in (tc.setup.strip(), f"ret = {tc.call};" if tc.call else "") if p)
        rows.append({
            "id": tc.id, "index": index, "title": tc.title, "unit": tc.unit,
            "interface": tc.interface, "kind": tc.kind, "verifies": list(tc.verifies),
            "options": list(tc.options), "timeout_s": tc.timeout_s, "inputs": inputs,
            "expected": tc.expected,
            "procedure": {"file": f"procedures/{proc.file}", "function": proc.function,
                          "sha256": proc.sha256},
        })
    return rows
