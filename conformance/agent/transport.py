"""The agent's request/reply framing over a byte channel (docs/agent.md).

Requests are `PCERTQ` lines; replies are ordinary framed records of kind `reply`, checked by
the console's own parser (targets/protocol.py): nonce, CRC, sequence number, field syntax. The
guest is untrusted, so everything that is not the one expected reply (a rejected record, a
reply to another request, a second reply, silence, the end of the channel) makes the channel
*lost*: `AgentLost` with the reason, now and for every later call.

>>> encode_request(0, "strtol", [b" -0x1f", 16])
b'PCERTQ 0 strtol =%20-0x1f =16 cc4d4b2e\\n'
"""

from __future__ import annotations

import re
import select
import socket
import time
import zlib
from collections.abc import Sequence

from targets.protocol import RecordParser, percent_encode

from . import AgentError, AgentLost, Arg

CALL_TIMEOUT_S = 10.0   # the longest wait for one reply
REQUEST_MAX = 16384     # the guest refuses longer request lines (without the \n)
_OP = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RESERVED = ("q", "op", "status")


def _arg_bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode("utf-8")
    if isinstance(arg, int):  # bool too: True is 1
        return b"%d" % int(arg)
    raise TypeError(f"agent argument {arg!r}: want bytes, str or int")


def encode_request(seq: int, op: str, args: Sequence[Arg]) -> bytes:
    """One request line: `PCERTQ <seq> <op> =<arg> ... <crc>\\n`."""
    if not isinstance(op, str) or _OP.fullmatch(op) is None:
        raise ValueError(f"agent op {op!r}: want a lower-case name")
    parts = [b"PCERTQ", b"%d" % seq, op.encode("ascii")]
    parts += [b"=" + percent_encode(_arg_bytes(a)).encode("ascii") for a in args]
    body = b" ".join(parts)
    line = body + b" %08x\n" % zlib.crc32(body)
    if len(line) - 1 > REQUEST_MAX:
        raise ValueError(f"agent request {op} is {len(line) - 1} bytes; the guest takes at most "
                         f"{REQUEST_MAX}")
    return line


class Transport:
    """One boot's agent channel, a connected socket (the host end of a socketpair, or QEMU's
    chardev socket). Implements the `Agent` protocol of conformance/agent/__init__.py."""

    def __init__(self, sock: socket.socket, nonce: str, *, timeout_s: float = CALL_TIMEOUT_S,
                 transcript=None):
        self.sock = sock
        # Every byte sent and received, in order (`.write(bytes)`): requests are PCERTQ lines,
        # replies PCERT1 records, so the transcript tells the directions apart by itself.
        self.transcript = transcript
        self.nonce = nonce
        self.timeout_s = timeout_s
        self.parser = RecordParser(nonce)
        self.seq = 0
        self.lost: str | None = None
        self.calls = 0
        self.busy_s = 0.0  # time spent waiting on calls, for calls per second
        sock.setblocking(False)

    def _lose(self, reason: str) -> AgentLost:
        self.lost = self.lost or reason
        return AgentLost(self.lost)

    def call(self, op: str, *args: Arg) -> dict[str, bytes]:
        if self.lost is not None:
            raise AgentLost(self.lost)
        line = encode_request(self.seq, op, args)
        seq, self.seq = self.seq, self.seq + 1
        t0 = time.monotonic()
        deadline = t0 + self.timeout_s
        try:
            self._send(line, deadline, op, seq)
            record = self._receive(deadline, op, seq)
        finally:
            self.calls += 1
            self.busy_s += time.monotonic() - t0
        fields = record.raw_fields
        q, got_op = record.fields.get("q"), record.fields.get("op")
        status = record.fields.get("status")
        reason = fields.get("reason", b"").decode("utf-8", "replace")
        if q == "-1" and status == "error":  # the guest could not take the request as sent
            raise self._lose(f"the guest refused request {seq} ({op}): {reason}")
        if q != str(seq) or got_op != op or status not in ("ok", "error"):
            raise self._lose(f"reply does not answer request {seq} ({op}): q={q!r} op={got_op!r} "
                             f"status={status!r}")
        if status == "error":
            raise AgentError(op, reason or "(no reason given)")
        return {k: v for k, v in fields.items() if k not in _RESERVED}

    def _send(self, data: bytes, deadline: float, op: str, seq: int) -> None:
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._lose(f"request {seq} ({op}) could not be sent within "
                                 f"{self.timeout_s:g} s")
            _, ready, _ = select.select([], [self.sock], [], left)
            if not ready:
                continue
            try:
                sent = self.sock.send(view)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise self._lose(f"channel failed sending request {seq} ({op}): "
                                 f"{exc.strerror or exc}") from None
            if self.transcript is not None:
                self.transcript.write(bytes(view[:sent]))
            view = view[sent:]

    def _receive(self, deadline: float, op: str, seq: int):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._lose(f"no reply to request {seq} ({op}) within {self.timeout_s:g} s")
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                continue
            try:
                data = self.sock.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                raise self._lose(f"channel failed waiting for reply {seq} ({op}): "
                                 f"{exc.strerror or exc}") from None
            if not data:
                raise self._lose(f"the guest closed the channel before replying to request "
                                 f"{seq} ({op})")
            if self.transcript is not None:
                self.transcript.write(data)
            before = len(self.parser.anomalies)
            records = self.parser.feed(data)
            if len(self.parser.anomalies) > before:
                raise self._lose(f"rejected reply: {self.parser.anomalies[before].reason}")
            if len(records) > 1:
                raise self._lose(f"{len(records)} replies to request {seq} ({op})")
            if records:
                if records[0].kind != "reply":
                    raise self._lose(f"record of kind {records[0].kind!r} on the agent channel")
                return records[0]

    def quit(self) -> bool:
        """Ask the guest to end the boot; True when it acknowledged."""
        try:
            self.call("quit")
            return True
        except (AgentLost, AgentError):
            return False

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
