"""Differential checks in the bundle: planned test cases, results, reproducers (docs/agent.md).

    diff = plan_differential(catalog, target, only=None, seed=0, max_examples=100,
                             runtime_dir=runtime_dir())
    diff.testcase_rows(base_index, call_timeout_s)   # testcases.json rows
    diff.run(agent_session, clock0=...)     # boots the image in agent mode, runs every property
    diff.result_rows(base_index)            # results.jsonl rows (UNINITIATED where not run yet)
    diff.write_files(writer)                # differential/<TC id>.c for each falsifying example

Each property is one test case (`check: differential`, method "test"), its procedure the agent's
C source (what executes the calls in the image) and its oracle the Python property table. A
FAIL carries the shrunk example (input, got, want) in the result's `differential` field, and
its reproducer, a small C program that makes the same call, as `differential/<TC id>.c`. The
seed and example counts are in every result and in the manifest's `differential`: the same
seed and image give the same examples and the same results.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from evidence.format import AGENT_LOG, VERDICTS as TET_CODES

from ..errors import RunError
from . import AgentLost

KIND = "differential"
PREFIX = "TC-DIFF-"
AGENT_SOURCE = "pcert_agent.c"   # in targets/runtime/, copied to procedures/runtime/
ORACLE_FILES = ("properties.py", "oracles.py", "hypo.py")   # copied to procedures/differential/
MAX_FAILED_BOOTS = 2   # agent boots in a row that fail before the rest is given up


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Differential:
    """The differential part of one run: the properties planned, and what became of them."""

    properties: list            # conformance.agent.properties.Property, in id order
    seed: int
    max_examples: int
    unsupported: str | None     # why the target cannot run them (no agent channel), or None
    agent_source: bytes
    oracle_sources: dict[str, bytes]
    outcomes: dict[str, dict] = field(default_factory=dict)   # id -> result fields
    boots: list[dict] = field(default_factory=list)
    log_name: str = AGENT_LOG   # the file each result's byte range points into

    @property
    def ids(self) -> list[str]:
        return [p.id for p in self.properties]

    @property
    def procedure_sha256(self) -> str:
        return _sha256(self.agent_source)

    @property
    def oracle_sha256(self) -> str:
        digest = hashlib.sha256()
        for name in sorted(self.oracle_sources):
            digest.update(name.encode() + b"\0" + self.oracle_sources[name] + b"\0")
        return digest.hexdigest()

    def requirement_ids(self) -> list[str]:
        return sorted({r for p in self.properties for r in p.verifies})

    # -- testcases.json -----------------------------------------------------------------------

    def testcase_rows(self, base: int, call_timeout_s: float) -> list[dict]:
        rows = []
        for i, prop in enumerate(self.properties):
            rows.append({
                "id": prop.id, "index": base + i, "title": prop.title, "unit": prop.unit,
                "interface": prop.interfaces[0] if prop.interfaces else "",
                "interfaces": list(prop.interfaces), "kind": "normal", "check": KIND,
                "verifies": list(prop.verifies), "options": [], "timeout_s": call_timeout_s,
                "inputs": (f"Hypothesis examples of the property {prop.id} "
                           f"(procedures/differential/properties.py), seed {self.seed}, "
                           f"at most {self.max_examples}"),
                "expected": ("every reply of the agent agrees with the Python oracle "
                             "(procedures/differential/oracles.py)"),
                "method": "test",
                "procedure": {"file": f"procedures/runtime/{AGENT_SOURCE}",
                              "function": "pcert_agent_serve", "sha256": self.procedure_sha256},
                "oracle": {"files": [f"procedures/differential/{n}" for n in sorted(self.oracle_sources)],
                           "sha256": self.oracle_sha256},
            })
        return rows

    # -- running ------------------------------------------------------------------------------

    def run(self, session, *, clock0: float, progress=None, stop=None) -> None:
        """Run every property not yet run, booting in agent mode as needed (`session`: an
        AgentSession); a property that lost the agent is followed by a fresh boot."""
        from .hypo import run_property  # Hypothesis is imported only when differential runs

        if self.unsupported is not None:
            return
        agent, failed_boots, last_boot_failure = None, 0, ""
        # Each property's evidence is its stretch of the agent channel's transcript.
        log = session.transcript if session.transcript is not None else session.sink
        self.log_name = AGENT_LOG if session.transcript is not None else session.console_name
        try:
            for n, prop in enumerate(self.properties):
                if stop is not None and stop.is_set():
                    break
                if progress is not None:
                    progress.update(n, len(self.properties), prop.id)
                t0 = time.monotonic()
                start = log.size
                if agent is None:
                    if failed_boots >= MAX_FAILED_BOOTS:
                        self._record(prop, "UNRESOLVED", f"not run: {last_boot_failure}", t0,
                                     clock0, start, log.size)
                        continue
                    try:
                        agent = session.boot()
                        failed_boots = 0
                    except AgentLost as exc:
                        failed_boots += 1
                        last_boot_failure = str(exc)
                        self._record(prop, "UNRESOLVED", str(exc), t0, clock0, start,
                                     log.size)
                        continue
                outcome = run_property(agent, prop, seed=self.seed, max_examples=self.max_examples)
                self._record(prop, outcome.verdict, outcome.reason, t0, clock0, start,
                             log.size, outcome)
                if outcome.lost:
                    session.shutdown(quit=False)
                    agent = None
        finally:
            if agent is not None:
                session.shutdown(quit=True)
            self.boots = [b.to_json() for b in session.boots]

    def _record(self, prop, verdict: str, reason: str, t0: float, clock0: float, start: int,
                end: int, outcome=None) -> None:
        if verdict != "PASS" and not reason:
            reason = "(no reason given)"
        falsifying = None
        if outcome is not None and outcome.falsifying:
            falsifying = {k: v for k, v in outcome.falsifying.items() if k != "reproducer"}
            if outcome.falsifying.get("reproducer"):
                falsifying["reproducer"] = f"differential/{prop.id}.c"
        self.outcomes[prop.id] = {
            "verdict": verdict, "reason": "" if verdict == "PASS" else reason,
            "console": {"file": self.log_name, "start": start, "end": end} if end > start else None,
            "host_time": {"start": round(t0 - clock0, 3), "end": round(time.monotonic() - clock0, 3)},
            "differential": {"seed": self.seed, "max_examples": self.max_examples,
                             "examples": outcome.examples if outcome else 0,
                             "falsifying": falsifying},
            "reproducer_source": (outcome.falsifying or {}).get("reproducer") if outcome else None,
        }

    # -- results.jsonl, files, manifest -------------------------------------------------------

    def result_rows(self, base: int) -> list[dict]:
        rows = []
        for i, prop in enumerate(self.properties):
            got = self.outcomes.get(prop.id)
            if self.unsupported is not None:
                verdict, reason, extra = "UNSUPPORTED", self.unsupported, {}
            elif got is None:
                verdict, reason, extra = "UNINITIATED", "the differential checks did not reach it", {}
            else:
                verdict, reason = got["verdict"], got["reason"]
                extra = {k: got[k] for k in ("console", "host_time", "differential")}
            rows.append({
                "id": prop.id, "index": base + i, "verdict": verdict, "code": TET_CODES[verdict],
                "reason": reason, "file": "", "line": None, "guest_duration_s": None,
                "console": None, "host_time": None, "verifies": list(prop.verifies),
                "procedure_sha256": self.procedure_sha256,
                "differential": {"seed": self.seed, "max_examples": self.max_examples,
                                 "examples": 0, "falsifying": None},
                **extra})
        return rows

    def write_files(self, writer) -> None:
        """The reproducer of each falsifying example, as differential/<TC id>.c."""
        for prop in self.properties:
            source = self.outcomes.get(prop.id, {}).get("reproducer_source")
            if source:
                writer.write_bytes(f"differential/{prop.id}.c", source.encode("utf-8"))

    def write_sources(self, writer) -> None:
        """What decides the differential results besides the image: the Python side."""
        for name, data in sorted(self.oracle_sources.items()):
            writer.write_bytes(f"procedures/differential/{name}", data)

    def manifest(self) -> dict:
        from importlib.metadata import version  # the examples of a seed depend on it
        return {"seed": self.seed, "max_examples": self.max_examples,
                "hypothesis": version("hypothesis"),
                "properties": len(self.properties), "unsupported": self.unsupported,
                "examples": sum(o["differential"]["examples"] for o in self.outcomes.values()),
                "boots": list(self.boots)}


def plan_differential(catalog, target, *, only: frozenset[str] | None, seed: int,
                      max_examples: int, runtime_dir: Path,
                      interfaces: frozenset[str] | None = None) -> Differential:
    """The properties to run: those named by --only, else those checking an interface of the
    profile (`interfaces`; all when None)."""
    from .properties import properties_for  # imports Hypothesis: only when planned

    props = sorted(properties_for(interfaces if only is None else None), key=lambda p: p.id)
    if only is not None:
        unknown = only - {p.id for p in props}
        if unknown:
            raise RunError(f"unknown test case id(s): {', '.join(sorted(unknown))}")
        props = [p for p in props if p.id in only]
    known = catalog.spec_set.requirements
    missing = sorted({r for p in props for r in p.verifies if r not in known})
    if missing:
        raise RunError(f"differential properties verify requirements the catalog does not "
                       f"have: {', '.join(missing)}")
    unsupported = None
    if not target.agent_channel:
        unsupported = (f"target {target.name} has no agent channel (machine.agent_args, "
                       "docs/agent.md): differential checks need one")
    here = Path(__file__).resolve().parent
    return Differential(properties=props, seed=seed, max_examples=max_examples,
                        unsupported=unsupported,
                        agent_source=(runtime_dir / AGENT_SOURCE).read_bytes(),
                        oracle_sources={n: (here / n).read_bytes() for n in ORACLE_FILES})
