"""Run the presence checks of a scope with a toolchain: units, namespace and link checks in
parallel, each cached by content, then the records and the profile verdict.

>>> # check_scope(select(load_profile("posix-2024"), multi_process=True),
>>> #             Toolchain.for_target(load_target("linux-x86_64")),
>>> #             cache_dir=Path("~/.cache/pcert"))
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from targets.toolchain import Toolchain

from .cache import ResultCache, include_dirs_digest
from .compiler import Compiler, diagnostic
from .expectations import data_headers
from .link import LINKABLE, LinkItem, LinkProgram, check_links
from .namespace import Rules
from .options import parse_macros, posix_version
from .records import PresenceRun, Outcomes, build_run
from .scope import Scope, Unit
from .snippets import UnitSource, unit_source
from .units import HEADER_STAGE, Finding, check_unit


def check_scope(scope: Scope, toolchain: Toolchain, *, cache_dir: Path, progress=None,
                jobs: int | None = None) -> PresenceRun:
    """Check every expectation of `scope` with `toolchain`; results under `cache_dir/presence`."""
    started = time.time()
    compiler = Compiler(toolchain, scope.edition)
    identity = {**compiler.identity(), "include_dirs": include_dirs_digest(toolchain.cflags)}
    cache = ResultCache(Path(cache_dir) / "presence")
    identity["libraries"] = compiler.libraries(cache.get_or_compute(
        {"kind": "libraries", "identity": identity}, compiler.libraries))
    sources = {unit: unit_source(unit, rows, scope.edition) for unit, rows in scope.units.items()}
    total = len(sources) + 1
    done = 0

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress.update(done, total, what)

    if progress is not None:
        progress.phase("presence", f"{scope.profile.label}: {len(scope.expectations)} "
                                   f"expectations in {len(sources)} units with {toolchain.cc}")
    macros = _probe_options(compiler, identity, cache)
    headers_version = posix_version(macros)
    recheck = headers_version is not None and headers_version < scope.edition.posix_version

    # Hits are read here; only the misses go to the pool, largest units first so that the
    # pool ends with short jobs.
    findings: dict[Unit, dict[int, Finding]] = {}
    namespace: dict[Unit, dict] = {}
    pending = {}
    for unit, source in sorted(sources.items(), key=lambda kv: -len(kv[1].checks)):
        task = _UnitTask(compiler, identity, source, recheck, scope.edition.key)
        stored = cache.get(task.material)
        if stored is None:
            pending[unit] = task
        else:
            findings[unit], namespace[unit] = task.load(stored)
            tick(unit.name)
    if pending:
        with ThreadPoolExecutor(max_workers=min(jobs or os.cpu_count() or 1, len(pending))) as pool:
            futures = {unit: pool.submit(task.compute) for unit, task in pending.items()}
            for unit, future in futures.items():
                findings[unit], namespace[unit] = pending[unit].load(
                    cache.put(pending[unit].material, future.result()))
                tick(unit.name)
    namespace = {unit: found for unit, found in sorted(namespace.items()) if found is not None}
    program = LinkProgram(_link_items(scope, sources, findings))
    link_failures = _links(compiler, identity, cache, program)
    tick("link")
    if progress is not None:
        progress.close()

    outcomes = Outcomes(scope=scope, sources=sources, findings=findings, program=program,
                        link_failures=link_failures, namespace=namespace, macros=macros,
                        headers_posix_version=headers_version, identity=identity,
                        flags={level: compiler.flags(level) for level in ("base", "xsi")},
                        link_command=compiler.link_command("link.c", "xsi"),
                        cache_hits=cache.hits, cache_misses=cache.misses,
                        started=started, finished=time.time())
    return build_run(outcomes)


def _probe_options(compiler: Compiler, identity: dict, cache: ResultCache) -> dict | None:
    """The option constants of <unistd.h> under the XSI macros, or None without <unistd.h>."""
    def compute():
        out = compiler.preprocess("options.c", "#include <unistd.h>\n", "xsi", ("-dM",))
        return {"available": out.ok, "macros": parse_macros(out.stdout) if out.ok else {}}
    result = cache.get_or_compute({"kind": "options", "identity": identity,
                                   "flags": compiler.flags("xsi")}, compute)
    return result["macros"] if result["available"] else None


class _UnitTask:
    """A unit's checks and, where the data has rules for its header, its namespace check."""

    def __init__(self, compiler: Compiler, identity: dict, source: UnitSource, recheck: bool,
                 edition_key: str):
        unit = source.unit
        self.compiler, self.source, self.recheck = compiler, source, recheck
        self.rules = (Rules.for_header(unit.header, unit.standard, edition_key)
                      if unit.header in data_headers() else None)
        self.material = {
            "kind": "unit", "identity": identity, "flags": compiler.flags(unit.level),
            "extensions": compiler.flags(unit.level, extensions=True) if recheck else None,
            "source": source.text,
            "namespace": None if self.rules is None else [sorted(self.rules.names),
                                                          self.rules.patterns]}

    def compute(self) -> dict:
        findings, namespace = check_unit(self.compiler, self.source,
                                         recheck_extensions=self.recheck,
                                         namespace_rules=self.rules)
        return {"findings": {str(i): f.to_json() for i, f in findings.items()},
                "namespace": namespace}

    @staticmethod
    def load(stored: dict) -> tuple[dict[int, Finding], dict | None]:
        return ({int(i): Finding.from_json(f) for i, f in stored["findings"].items()},
                stored["namespace"])


def _link_items(scope: Scope, sources: dict[Unit, UnitSource],
                findings: dict[Unit, dict[int, Finding]]) -> list[LinkItem]:
    """One item per required interface that has a linkable row whose name is declared."""
    where = {}
    for unit, source in sources.items():
        for check in source.checks:
            where[id(check.expectation)] = findings[unit][check.index]
    items = []
    for name in sorted(scope.required):
        rows = [e for e in scope.primary_rows(name) if e.kind in LINKABLE]
        if not rows:
            continue
        row = rows[0]
        finding = where[id(row)]
        if not finding.ok and finding.stage in ("declared", HEADER_STAGE):
            continue      # not declared: nothing to link (the link test case is UNTESTED)
        items.append(LinkItem(name, row.header, row.checks or (row.name,), row.kind))
    return items


def _links(compiler: Compiler, identity: dict, cache: ResultCache,
           program: LinkProgram) -> dict[int, str]:
    material = {"kind": "link", "identity": identity, "flags": compiler.flags("xsi"),
                "source": program.text}
    stored = cache.get_or_compute(material, lambda: {
        str(i): diagnostic(message) for i, message in check_links(compiler, program).items()})
    return {int(i): message for i, message in stored.items()}
