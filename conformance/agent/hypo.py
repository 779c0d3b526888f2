"""Run one differential property with Hypothesis against a live agent.

    outcome = run_property(agent, BY_ID["TC-DIFF-strtol"], seed=1234, max_examples=200)
    outcome.verdict      # "PASS", "FAIL" or "UNRESOLVED"

The same seed gives the same examples in the same order (no example database, no
derandomisation by test name: `hypothesis.seed` fixes the stream). A disagreement is shrunk by
Hypothesis; the example it replays last is the minimal one, and that is what the outcome
records, with the reply, the oracle's answer and a C reproducer.

A lost channel or a refused request ends the run at once (UNRESOLVED): no verdict can be
drawn about the library from a guest that is down or an op it does not know.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings

from targets.protocol import percent_encode

from . import Agent, AgentError, AgentLost
from .properties import Property


@dataclass
class Outcome:
    id: str
    verdict: str            # PASS | FAIL | UNRESOLVED
    reason: str             # "" for PASS; for FAIL "<call>: got X, want Y"
    examples: int           # examples sent to the agent (shrinking included)
    seed: int
    max_examples: int
    falsifying: dict | None  # {"input", "got", "want", "reproducer"} for FAIL
    lost: bool = False      # the guest must be booted again before the next property

    def to_json(self) -> dict:
        return {"id": self.id, "verdict": self.verdict, "reason": self.reason,
                "examples": self.examples, "seed": self.seed,
                "max_examples": self.max_examples, "falsifying": self.falsifying,
                "lost": self.lost}


def jsonable(value: Any) -> Any:
    """Examples as JSON: bytes percent-encoded like record values (docs/protocol.md), dict keys
    kept in their order, tuples as lists; everything else must already be JSON."""
    if isinstance(value, (bytes, bytearray)):
        return percent_encode(bytes(value))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return repr(value)      # NaN and infinities are not JSON numbers
    return value


@contextmanager
def _code_independent_examples() -> Iterator[None]:
    """Hypothesis (6.131 and later) also draws constants it finds in the source of every
    non-installed module loaded so far, so the examples of one seed would change with what
    else the process imported (an editable install, a test session). Within this block it
    draws only its own constants: the stream depends on the seed and the Hypothesis version."""
    try:
        from hypothesis.internal.conjecture import providers
        empty = type(providers._local_constants)()
        original = providers._get_local_constants
    except (ImportError, AttributeError, TypeError):  # another Hypothesis: nothing to pin
        yield
        return
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        providers._get_local_constants = original
        providers.CONSTANTS_CACHE.cache.clear()


class _Stop(BaseException):
    """Ends the Hypothesis run at once. A BaseException other than SystemExit/GeneratorExit is
    not taken by Hypothesis as a test failure, so it neither shrinks nor retries."""


class _Disagreement(Exception):
    pass


def run_property(agent: Agent, prop: Property, *, seed: int, max_examples: int) -> Outcome:
    state: dict[str, Any] = {"examples": 0, "failure": None, "stop": None}

    def one(example: dict) -> None:
        state["examples"] += 1
        try:
            reply = prop.call(agent, example)
        except AgentLost as exc:
            state["stop"] = ("lost", example, str(exc))
            raise _Stop() from None
        except AgentError as exc:
            state["stop"] = ("refused", example, exc.reason)
            raise _Stop() from None
        try:
            message = prop.check(example, reply)
        except Exception as exc:   # a reply the check cannot read, or an oracle gap
            state["stop"] = ("unjudged", example, f"{type(exc).__name__}: {exc}")
            raise _Stop() from None
        if message is not None:
            state["failure"] = (example, message)
            raise _Disagreement(message)

    test = given(prop.strategy)(one)
    test = settings(max_examples=max_examples, database=None, deadline=None,
                    derandomize=False, suppress_health_check=list(HealthCheck),
                    phases=(Phase.generate, Phase.shrink), verbosity=Verbosity.quiet,
                    report_multiple_bugs=False, print_blob=False)(test)
    test = hypothesis.seed(seed)(test)

    common = {"id": prop.id, "seed": seed, "max_examples": max_examples}
    try:
        with _code_independent_examples():
            test()
    except _Stop:
        pass
    except Exception:
        # The disagreement itself, or Hypothesis' report of a flaky one: either way the last
        # failure recorded is the one to report.
        if state["failure"] is None:
            raise
    if state["stop"] is not None:
        kind, example, why = state["stop"]
        call = prop.show(example)
        reason = {"lost": f"agent lost during {call}: {why}",
                  "refused": f"agent refused {call}: {why}",
                  "unjudged": f"could not judge the reply to {call}: {why}"}[kind]
        return Outcome(verdict="UNRESOLVED", reason=reason, examples=state["examples"],
                       falsifying=None, lost=kind == "lost", **common)
    if state["failure"] is None:
        return Outcome(verdict="PASS", reason="", examples=state["examples"], falsifying=None,
                       **common)
    example, message = state["failure"]
    return Outcome(
        verdict="FAIL", reason=f"{prop.show(example)}: {message}", examples=state["examples"],
        falsifying={"input": jsonable(example), "got": getattr(message, "got", message),
                    "want": getattr(message, "want", ""), "reproducer": prop.reproducer(example)},
        **common)
