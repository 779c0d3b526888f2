"""Host side of the guest console protocol (docs/protocol.md): frame and parse records.

The console carries kernel messages, boot noise and framed records. `RecordParser`
finds the records, checks them and returns them in order; everything it rejects is
kept as an `Anomaly` with its byte offset in the console stream.

>>> nonce = "0123456789abcdef"
>>> stream = b"[ 0.1] boot noise\\n" + frame(nonce, 0, "start", [("proto", "1")])
>>> parser = RecordParser(nonce)
>>> [(r.seq, r.kind, r.fields) for r in parser.feed(stream)]
[(0, 'start', {'proto': '1'})]
>>> parser.feed(frame(nonce, 0, "begin", [])) == [] and parser.anomalies[0].reason
'duplicate or out-of-order sequence number 0 (expected 1)'
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

MAGIC = b"PCERT1 "
KINDS = frozenset({"start", "begin", "out", "result", "end",
                   "reply",   # docs/agent.md
                   "ready",   # waiting for PCERT_PARAMS (docs/protocol.md)
                   "limit",   # stops before a lower PCERT_END the host sent (docs/protocol.md)
                   "idle",    # ran its range, waits for more (docs/protocol.md)
                   "more"})   # runs another range the host sent, without a boot
MAX_LINE = 64 * 1024  # a record is never longer; anything longer is cut off and reported
EXCERPT_MAX = 1024  # bytes of a rejected record kept as evidence

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._,:/+-@")
_HEX = b"0123456789ABCDEF"
_KEY = re.compile(rb"[A-Za-z0-9_.]+")
_VALUE = re.compile(rb"(?:[A-Za-z0-9._,:/+@-]|%[0-9A-F]{2})*")
_NONCE = re.compile(r"[0-9a-f]{16}")
_SEQ = re.compile(rb"0|[1-9][0-9]{0,18}")
_CRC = re.compile(rb"[0-9a-f]{8}")


def percent_encode(data: bytes) -> str:
    """Encode bytes as a record value: safe bytes stay, all others become %XX.

    >>> percent_encode(b"a b=%\\n")
    'a%20b%3D%25%0A'
    """
    out = bytearray()
    for byte in data:
        if byte in _SAFE:
            out.append(byte)
        else:
            out += b"%" + bytes((_HEX[byte >> 4], _HEX[byte & 15]))
    return out.decode("ascii")


def percent_decode(text: str) -> bytes:
    """Decode a record value; only what `percent_encode` produces is accepted.

    >>> percent_decode("a%20b")
    b'a b'
    >>> percent_decode("a b")
    Traceback (most recent call last):
    ValueError: malformed percent-encoded value 'a b'
    """
    raw = text.encode("utf-8", "surrogateescape")
    if _VALUE.fullmatch(raw) is None:
        raise ValueError(f"malformed percent-encoded value {text!r}")
    return _unescape(raw)


def _unescape(raw: bytes) -> bytes:
    """The bytes of a value already matched by _VALUE."""
    if b"%" not in raw:
        return raw
    parts = raw.split(b"%")
    return parts[0] + b"".join(bytes((int(p[:2], 16),)) + p[2:] for p in parts[1:])


def frame(nonce: str, seq: int, kind: str, fields: list[tuple[str, str | bytes]]) -> bytes:
    """Build one record line, as the guest runtime writes it.

    >>> frame("0123456789abcdef", 3, "out", [("idx", "0"), ("data", b"hi\\n")])
    b'PCERT1 0123456789abcdef 3 out idx=0 data=hi%0A 3f136476\\n'
    """
    for name, text in (("nonce", nonce), ("kind", kind)):
        if not text or any(c in text for c in " \r\n"):
            raise ValueError(f"frame: {name} {text!r} must be non-empty without spaces or line ends")
    parts = [b"PCERT1", nonce.encode(), b"%d" % seq, kind.encode()]
    for key, value in fields:
        if _KEY.fullmatch(key.encode()) is None:
            raise ValueError(f"frame: field key {key!r} must match [A-Za-z0-9_.]+")
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        parts.append(key.encode() + b"=" + percent_encode(raw).encode())
    body = b" ".join(parts)
    return body + b" %08x\n" % zlib.crc32(body)


_PARAM_NAME = re.compile(r"PCERT_[A-Za-z0-9_]*")
# A guest variable's value, on the kernel command line (targets/drivers/qemu.py) or in a PCERTP
# line: printable ASCII except space and the double quote.
ENV_VALUE = re.compile(r"[!#-~]*")


def encode_params(env: dict[str, str]) -> bytes:
    """The PCERTP line that hands a waiting runtime its run parameters (PCERT_PARAMS).

    >>> encode_params({"PCERT_NONCE": "0123456789abcdef", "PCERT_FIRST": "4"})
    b'PCERTP PCERT_FIRST=4 PCERT_NONCE=0123456789abcdef 546ea7de\\n'
    """
    parts = [b"PCERTP"]
    for name, value in sorted(env.items()):
        if _PARAM_NAME.fullmatch(name) is None or name == "PCERT_PARAMS":
            raise ValueError(f"run parameter {name!r}: must be PCERT_ and letters, digits, _")
        if ENV_VALUE.fullmatch(value) is None:
            raise ValueError(f"run parameter {name}={value!r}: printable ASCII without spaces "
                             "or double quotes")
        parts.append(f"{name}={value}".encode("ascii"))
    body = b" ".join(parts)
    return body + b" %08x\n" % zlib.crc32(body)


@dataclass(frozen=True)
class Record:
    """One accepted record; start/end are its byte range [start, end) in the console."""

    seq: int
    kind: str
    fields: dict[str, str]  # values decoded as UTF-8, errors replaced
    raw_fields: dict[str, bytes]  # values exactly as the guest sent them
    start: int
    end: int


@dataclass(frozen=True)
class Anomaly:
    """Something that looked like a record and was rejected."""

    offset: int  # where the rejected candidate starts in the console
    reason: str
    excerpt: bytes
    # An intact frame with a sequence number this boot has used: that number. One of its two
    # writers is a forger, and the record accepted under it may be the forged one.
    repeats: int | None = None


class _Broken(Exception):
    """The candidate is not an intact frame (bad CRC or shape): try a later one."""


class _Rejected(Exception):
    """An intact frame that must not be accepted (wrong nonce, sequence, fields)."""

    def __init__(self, reason: str, repeats: int | None = None):
        super().__init__(reason)
        self.repeats = repeats


class RecordParser:
    """Incremental console parser for one run (one nonce).

    `feed` accepts any chunking of the console bytes and returns the records completed
    by that chunk; `finish` reports a record left without its line end. Offsets count
    every byte fed. Memory stays bounded by MAX_LINE whatever the input.

    Call `new_boot()` when the same console continues with a fresh boot of the image
    (its start record begins again at sequence number 0).
    """

    def __init__(self, nonce: str):
        if not isinstance(nonce, str) or _NONCE.fullmatch(nonce) is None:
            raise ValueError(f"RecordParser: nonce must be 16 lower-case hex digits, got {nonce!r}")
        self.nonce = nonce
        self.anomalies: list[Anomaly] = []
        self._expected_seq = 0
        self._pending = bytearray()  # the current, unfinished line (from its first MAGIC)
        self._pending_offset = 0  # absolute offset of _pending[0]
        self._scanned = 0  # bytes of _pending already searched for a line end
        self._finished = False

    @property
    def line_offset(self) -> int:
        """Offset just past the last complete line fed."""
        return self._pending_offset

    def new_boot(self) -> None:
        """Expect sequence number 0 next (the image was booted again). What the last boot left
        without its line end (a boot cut short while it printed) is reported and dropped: glued
        to the next boot's first line, it would hide that line too."""
        at = self._pending.find(MAGIC)
        if at >= 0:
            self._anomaly(self._pending_offset + at, "truncated record: the boot ended before "
                          "its line end", self._pending[at:])
        self._pending_offset += len(self._pending)
        self._pending.clear()
        self._scanned = 0
        self._expected_seq = 0

    def feed(self, data: bytes) -> list[Record]:
        """Consume console bytes; return the records they complete, in order."""
        if self._finished:
            raise ValueError("RecordParser.feed() called after finish()")
        records: list[Record] = []
        self._pending += data
        while (nl := self._pending.find(b"\n", self._scanned)) >= 0:
            line = bytes(self._pending[:nl])
            line_start = self._pending_offset
            del self._pending[: nl + 1]
            self._pending_offset += nl + 1
            self._scanned = 0
            records += self._parse_line(line, line_start, line_start + nl + 1)
        self._scanned = len(self._pending)
        self._bound_pending()
        return records

    def finish(self) -> list[Anomaly]:
        """End of the console: report a trailing record without its line end.

        Returns the anomalies found by this call; `anomalies` holds all of them.
        """
        found: list[Anomaly] = []
        if not self._finished:
            self._finished = True
            at = self._pending.find(MAGIC)
            if at >= 0:
                found.append(self._anomaly(self._pending_offset + at, "truncated record: the console "
                                           "ended before its line end", self._pending[at:]))
            self._pending.clear()
        return found

    # -- internals --

    def _anomaly(self, offset: int, reason: str, excerpt: bytes,
                 repeats: int | None = None) -> Anomaly:
        anomaly = Anomaly(offset, reason, bytes(excerpt[:EXCERPT_MAX]), repeats)
        self.anomalies.append(anomaly)
        return anomaly

    def _bound_pending(self) -> None:
        """Drop bytes of the unfinished line that can no longer belong to a record."""
        at = self._pending.find(MAGIC)
        if at < 0:  # only noise so far: keep what could be the start of MAGIC
            at = max(0, len(self._pending) - (len(MAGIC) - 1))
        while len(self._pending) - at > MAX_LINE:
            later = self._pending.find(MAGIC, at + 1)
            cut = later if later >= 0 else len(self._pending) - (len(MAGIC) - 1)
            self._anomaly(self._pending_offset + at,
                          f"record longer than {MAX_LINE} bytes without a line end", self._pending[at:cut])
            at = cut
        del self._pending[:at]
        self._pending_offset += at
        self._scanned = len(self._pending)

    def _parse_line(self, line: bytes, line_start: int, line_end: int) -> list[Record]:
        """Try each MAGIC in the line: a value may end in 'PCERT1', and noise may hold a
        broken record in front of a good one. The first intact frame decides."""
        content = line.rstrip(b"\r")
        first = content.find(MAGIC)
        at = first
        broken_reason = ""
        while at >= 0:
            try:
                record = self._check(content[at:], line_start + at, line_end)
            except _Broken as why:
                broken_reason = broken_reason or str(why)
                at = content.find(MAGIC, at + 1)
                continue
            except _Rejected as why:
                record, rejected = None, why
            if at > first:  # a broken candidate came first
                self._anomaly(line_start + first, broken_reason, content[first:at])
            if record is None:
                self._anomaly(line_start + at, str(rejected), content[at:], rejected.repeats)
                return []
            return [record]
        if first >= 0:
            self._anomaly(line_start + first, broken_reason, content[first:])
        return []

    def _check(self, candidate: bytes, start: int, end: int) -> Record:
        tokens = candidate.split(b" ")
        if len(tokens) < 5:
            raise _Broken("malformed record: fewer than 5 space-separated parts")
        if _CRC.fullmatch(tokens[-1]) is None:
            raise _Broken("malformed record: no CRC at the end")
        body = candidate[: -len(tokens[-1]) - 1]
        if zlib.crc32(body) != int(tokens[-1], 16):
            raise _Broken("CRC mismatch")
        # From here the frame is intact: what it says is what the guest (or a forger) sent.
        nonce, seq_text, kind_raw, field_tokens = tokens[1], tokens[2], tokens[3], tokens[4:-1]
        if nonce != self.nonce.encode():
            raise _Rejected(f"wrong nonce {nonce.decode('ascii', 'replace')!r}")
        if _SEQ.fullmatch(seq_text) is None:
            raise _Rejected(f"malformed sequence number {seq_text.decode('ascii', 'replace')!r}")
        seq = int(seq_text)
        if seq < self._expected_seq:
            raise _Rejected(f"duplicate or out-of-order sequence number {seq} "
                            f"(expected {self._expected_seq})", repeats=seq)
        expected, self._expected_seq = self._expected_seq, seq + 1
        if seq > expected:  # rejected, but resynchronised so one loss does not lose the rest
            raise _Rejected(f"sequence gap: got {seq}, expected {expected}")
        kind = kind_raw.decode("ascii", "replace")
        if kind not in KINDS:
            raise _Rejected(f"unknown record kind {kind!r}")
        raw_fields: dict[str, bytes] = {}
        for token in field_tokens:
            key, eq, value = token.partition(b"=")
            if not eq or _KEY.fullmatch(key) is None or _VALUE.fullmatch(value) is None:
                raise _Rejected(f"malformed field {token[:80].decode('ascii', 'replace')!r}")
            name = key.decode("ascii")
            if name in raw_fields:
                raise _Rejected(f"duplicate field {name!r}")
            raw_fields[name] = _unescape(value)
        fields = {k: v.decode("utf-8", "replace") for k, v in raw_fields.items()}
        return Record(seq, kind, fields, raw_fields, start, end)
