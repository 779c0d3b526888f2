"""Differential checks: the guest runtime in agent mode answers calls sent by the host, and
Hypothesis-generated inputs are checked against Python oracles.

    with boot_agent(prepared) as agent:                 # conformance/agent/session.py
        reply = agent.call("strtol", b"  -0x1f", 16)    # {'ret': b'-31', 'end': b'7', 'errno': b'0'}
        outcome = run_property(agent, PROPERTIES[0], seed=0, max_examples=100)

The modules, in pipeline order:

- `transport.py`: the request/reply framing over a byte channel (docs/protocol.md, "Agent mode").
- `session.py`: boots the image in agent mode on a target and hands out an `Agent`.
- `properties.py`: the differential properties as a table: strategy, call, oracle, reproducer.
- `oracles.py`: the Python oracles (our reading of the standard, not the host's C library).
- `hypo.py`: runs one property with Hypothesis from a seed; shrinks a falsifying example.
- `bundle.py`: turns outcomes into test cases, results and reproducer files of the bundle.

This file holds only what they share: the `Agent` interface and its errors.
"""

from __future__ import annotations

from typing import Protocol

Arg = bytes | str | int


class AgentError(Exception):
    """The guest answered the request with status=error (unknown op, malformed argument);
    `reason` is the guest's reason, already decoded."""

    def __init__(self, op: str, reason: str):
        super().__init__(f"{op}: {reason}")
        self.op, self.reason = op, reason


class AgentLost(Exception):
    """The channel failed: no reply within the timeout, EOF, or a reply that did not parse
    (wrong nonce, CRC, sequence). The guest is to be treated as down and booted again."""


class Agent(Protocol):
    """A live guest in agent mode."""

    def call(self, op: str, *args: Arg) -> dict[str, bytes]:
        """Send one request and wait (bounded) for its reply.

        Arguments are sent percent-encoded: bytes as they are, str as UTF-8, int in decimal.
        Returns the reply's fields, percent-decoded, without q/op/status. Raises AgentError for
        status=error and AgentLost when the channel fails."""
