"""Collect: turn the console stream of one or more boots into results, reconciled against the
plan.

The guest is untrusted. Only records that the protocol parser accepted count; a record that
names a test case out of place (unknown id, index that does not match the plan, a second
result) is kept as an anomaly and never becomes a verdict. Test cases the plan holds but the
guest never reported become UNINITIATED (never begun) or UNRESOLVED (begun, no result).

A boot that stops inside a test case (crash, hang, kernel panic, reset) leaves that test case
an *attempt* with the reason; the session boots again and may try it once more. Every attempt
stays in the evidence.

>>> from targets.protocol import frame
>>> c = Collector(["TC-a-001"], nonce="0" * 16)
>>> c.start_boot(0)
>>> c.feed(frame("0" * 16, 0, "start", [("ntests", "1")]), now=0.5)
>>> c.feed(frame("0" * 16, 1, "begin", [("idx", "0"), ("id", "TC-a-001")]), now=0.6)
>>> c.feed(frame("0" * 16, 2, "result", [("idx", "0"), ("id", "TC-a-001"), ("verdict", "PASS"),
...        ("code", "0")]), now=0.7)
>>> [r["verdict"] for r in c.results(stop_reason="powered off", console_size=0)]
['PASS']
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from evidence.format import VERDICTS
from targets.protocol import Record, RecordParser

TET_CODES = VERDICTS  # the bundle format's verdicts and their TET codes
PACE_WINDOW = 32  # results kept for the pace (balance.py)
GUEST_VERDICTS = ("PASS", "FAIL", "UNRESOLVED", "UNSUPPORTED", "UNTESTED")
MAX_ATTEMPTS = 2  # a test case that takes the OS down twice is not tried a third time


@dataclass
class _Case:
    begin: Record | None = None
    begin_time: float | None = None
    begin_boot: int | None = None
    result: Record | None = None
    result_time: float | None = None
    output: bytearray = field(default_factory=bytearray)
    attempts: list[dict] = field(default_factory=list)  # boots this case did not survive

    @property
    def in_flight(self) -> bool:
        return self.begin is not None and self.result is None


class Collector:
    """Feed console bytes as they arrive, boot after boot; ask for results at the end."""

    def __init__(self, planned_ids: list[str], nonce: str):
        self.planned_ids = list(planned_ids)
        self._cases = [_Case() for _ in self.planned_ids]
        self.nonce = nonce
        self._parser = RecordParser(nonce)
        self.boot = -1
        self.start: Record | None = None       # the first start record of the run
        self.boot_start: Record | None = None  # the current boot's start record
        self.end: Record | None = None         # the current boot's end record
        self.first_result_time: float | None = None
        self.first_begin_time: float | None = None  # when the first test case began
        # When the latest results came: the pace of the part of the plan the guest is in now.
        self.recent_result_times: deque[float] = deque(maxlen=PACE_WINDOW)
        self.anomalies: list[dict] = []
        self.on_progress = None  # callable(done, total, current_id) or None
        self.not_run: dict[int, str] = {}  # test cases the session gave up on, with the reason
        self._settled: set[int] = set()    # kept as it changes: progress asks for it often
        self._progress_in_boot = 0
        self._boundaries: list[int] = []  # offsets of accepted start, begin and end records
        self._last_boundary = -1
        # The plan index of each accepted begin and result record of the current boot, by
        # sequence number; and the test cases whose record a repeated number disputes.
        self._case_by_seq: dict[int, int] = {}
        self._parser_seen = 0
        self.disputed: dict[int, str] = {}
        # The current boot's latest record (`out` aside); each test case whose result a boot
        # stopped right after (no end record), with why.
        self._last_record: Record | None = None
        self.stopped_after: dict[int, str] = {}
        self.current: int | None = None
        self.asked: Collection[int] | None = None  # what the current range may report on
        self.limit: int | None = None  # the current range's confirmed lower end (limit record)
        self.on_limit = None  # callable(end) when a limit record is accepted, or None
        # An idle guest may get more ranges to run in the same boot (`more` records): each
        # (first, end, step), and the limit each range before the current one ended with.
        self.idles = 0        # idle records in the current boot
        self.more: list[tuple[int, int, int]] = []
        self.range_limits: list[int | None] = []

    # -- boots -------------------------------------------------------------------------------

    def start_boot(self, boot: int, asked: Collection[int] | None = None) -> None:
        """The image is booted (again): sequence numbers start over. `asked`: the plan indexes
        the boot was asked to run (:func:`asked_indexes`); a record for any other is an
        anomaly. None: not checked."""
        if self.boot >= 0:
            # A test case's anomaly window ends with its boot's last complete line: what a boot
            # cut short left half-written after a result is not that test case's.
            self._boundary(self._parser.line_offset)
            self._parser.new_boot()
        self.boot, self.boot_start, self.end = boot, None, None
        self.current = None  # index of the test case running now, if any
        self.asked, self.limit = asked, None
        self._case_by_seq, self._last_record = {}, None
        self.idles, self.more, self.range_limits = 0, [], []
        self._progress_in_boot = 0

    @property
    def ended(self) -> bool:
        """The current boot printed its end record."""
        return self.end is not None

    @property
    def waiting_for_more(self) -> bool:
        """The guest has run its range and waits for another (an `idle` no `more` followed)."""
        return self.idles > len(self.more)

    @property
    def made_progress(self) -> bool:
        """The current boot reported at least one begin or result record."""
        return self._progress_in_boot > 0

    def in_flight(self) -> int | None:
        """Index of the test case begun in the current boot without a result."""
        for index, case in enumerate(self._cases):
            if case.in_flight and case.begin_boot == self.boot:
                return index
        return None

    def stop_boot(self, reason: str, console_end: int) -> int | None:
        """The current boot is over without an end record: the test case in flight, if any,
        loses this attempt. Returns its index."""
        index = self.in_flight()
        last = self._last_record
        if index is None and last is not None and last.kind == "result":
            # Between a result and the runtime's next record there is only the runtime's own
            # bookkeeping: what stops the guest there is most likely what that test case left
            # behind (a process, a timer), or a forger that printed the result and stopped it.
            after = self._case_by_seq.get(last.seq)  # there when the result was accepted
            if after is not None:
                self.stopped_after[after] = reason
        if index is not None:
            case = self._cases[index]
            case.attempts.append({"boot": self.boot, "reason": reason,
                                  "console": {"start": case.begin.start, "end": console_end}})
            if len(case.attempts) >= MAX_ATTEMPTS:
                self._settled.add(index)
            case.begin = None  # a later boot may begin it again
        return index

    def abandon_boot(self) -> None:
        """The host stopped the current boot (Ctrl-C, a killed pcert): the test case in flight
        did nothing wrong and will simply be run again."""
        index = self.in_flight()
        if index is not None:
            self._cases[index].begin = None

    def attempts(self, index: int) -> int:
        return len(self._cases[index].attempts)

    def give_up(self, index: int, reason: str) -> None:
        """The session will not run this test case (again); `reason` says why."""
        self.not_run[index] = reason
        self._settled.add(index)

    def is_settled(self, index: int) -> bool:
        """Has a result, has taken the OS down as often as it may, or was given up."""
        case = self._cases[index]
        return (case.result is not None or len(case.attempts) >= MAX_ATTEMPTS
                or index in self.not_run)

    def unsettled(self) -> list[int]:
        return [i for i in range(len(self._cases)) if not self.is_settled(i)]

    def done_count(self) -> int:
        """How many test cases are settled (the same as counting is_settled, but O(1))."""
        return len(self._settled)

    # -- records -----------------------------------------------------------------------------

    def feed(self, data: bytes, now: float) -> None:
        for record in self._parser.feed(data):
            self._accept(record, now)
            if record.kind != "out":  # output relayed for a test case says nothing of the runtime
                self._last_record = record
        self._dispute_repeats()

    def _dispute_repeats(self) -> None:
        """A record with a sequence number this boot has used disputes the begin or result
        record accepted under it: a genuine record displaced by a forged one arrives with the
        forged one's number, and a forger who also printed the next test case's begin would
        otherwise have closed the window (_taint) before it came."""
        found = self._parser.anomalies[self._parser_seen:]
        self._parser_seen += len(found)
        for anomaly in found:
            index = self._case_by_seq.get(anomaly.repeats)
            if index is not None:
                self.disputed.setdefault(index, anomaly.reason)

    def _anomaly(self, record: Record, reason: str) -> None:
        self.anomalies.append({"offset": record.start, "end": record.end, "seq": record.seq,
                               "kind": record.kind, "boot": self.boot, "reason": reason})

    def _case_for(self, record: Record) -> _Case | None:
        tc_id, idx = record.fields.get("id"), record.fields.get("idx", "")
        if not idx.isdigit() or int(idx) >= len(self.planned_ids):
            self._anomaly(record, f"test case index {idx!r} is not in the plan")
            return None
        if tc_id is not None and self.planned_ids[int(idx)] != tc_id:
            self._anomaly(record, f"test case {tc_id!r} at index {idx} does not match the plan "
                                  f"({self.planned_ids[int(idx)]!r})")
            return None
        if self.asked is not None and int(idx) not in self.asked:
            # Another worker's, or an earlier range's beyond its limit: the guest was not
            # asked to run it here, so nothing it says of it counts.
            self._anomaly(record, f"test case index {idx} is not in the range this boot runs")
            return None
        if self.limit is not None and int(idx) >= self.limit:
            # Handed over to another worker: its result there is the one that counts.
            self._anomaly(record, f"test case index {idx} after the guest agreed to stop "
                                  f"before {self.limit}")
            return None
        return self._cases[int(idx)]

    def _progress(self, record: Record) -> None:
        self._progress_in_boot += 1
        if self.on_progress:
            self.on_progress(self.done_count(), len(self.planned_ids), record.fields.get("id", ""))

    def _accept(self, record: Record, now: float) -> None:
        kind = record.kind
        if kind == "start":
            if self.boot_start is not None:
                self._anomaly(record, "second start record in one boot")
                return
            self._boundary(record.start)
            self.boot_start = record
            if self.start is None:
                self.start = record
            ntests = record.fields.get("ntests")
            if ntests is not None and ntests != str(len(self.planned_ids)):
                self._anomaly(record, f"guest has {ntests} test cases, the plan {len(self.planned_ids)}")
        elif kind == "end":
            self._boundary(record.start)
            self.end = record
        elif kind == "begin":
            case = self._case_for(record)
            if case is None:
                return
            if case.begin is not None or case.result is not None:
                self._anomaly(record, "test case begun twice")
                return
            self._boundary(record.start)
            self._case_by_seq[record.seq] = int(record.fields["idx"])
            case.begin, case.begin_time, case.begin_boot = record, now, self.boot
            if self.first_begin_time is None:
                self.first_begin_time = now
            self.current = int(record.fields["idx"])
            self._progress(record)
        elif kind == "out":
            case = self._case_for(record)
            if case is not None:
                case.output += record.raw_fields.get("data", b"")
        elif kind == "result":
            self._accept_result(record, now)
        elif kind == "limit":
            self._accept_limit(record)
        elif kind == "idle":
            self.idles += 1
        elif kind == "more":
            self._accept_more(record)
        else:
            self._anomaly(record, f"unknown record kind {kind!r}")

    def _boundary(self, offset: int) -> None:
        """An accepted start, begin or end record (or a boot's last complete line) ends the
        anomaly window of the test case before it (_taint); a rejected record lies inside it."""
        self._boundaries.append(offset)
        self._last_boundary = max(self._last_boundary, offset)

    def _accept_result(self, record: Record, now: float) -> None:
        case = self._case_for(record)
        if case is None:
            return
        verdict, code = record.fields.get("verdict", ""), record.fields.get("code", "")
        if case.result is not None:
            self._anomaly(record, "second result for the test case")
        elif verdict not in GUEST_VERDICTS or code != str(TET_CODES[verdict]):
            self._anomaly(record, f"verdict {verdict!r} with code {code!r} is not a guest verdict")
        elif verdict != "PASS" and not record.fields.get("reason"):
            self._anomaly(record, f"{verdict} without a reason")
        elif case.begin is None:
            # The runtime begins every test case, even one its option check decides.
            self._anomaly(record, f"{verdict} for a test case that has not begun")
        else:
            self._case_by_seq[record.seq] = int(record.fields["idx"])
            case.result, case.result_time = record, now
            self.recent_result_times.append(now)
            self._settled.add(int(record.fields["idx"]))
            self.current = None
            if self.first_result_time is None:
                self.first_result_time = now
            self._progress(record)

    def _accept_limit(self, record: Record) -> None:
        """The guest stops before `end` in this boot; only ever lower."""
        end = record.fields.get("end", "")
        if not end.isdigit() or int(end) > len(self.planned_ids):
            self._anomaly(record, f"limit end {end!r} is not a plan index")
        elif self.limit is not None and int(end) > self.limit:
            self._anomaly(record, f"limit end {end} above the earlier {self.limit}")
        else:
            self.limit = int(end)
            if self.on_limit:
                self.on_limit(self.limit)

    def _accept_more(self, record: Record) -> None:
        """The idle guest runs another range in this boot; the current one's limit is over."""
        fields = [record.fields.get(k, "") for k in ("first", "end", "step")]
        first, end, step = (int(f) if f.isdigit() else -1 for f in fields)
        if not 0 <= first < end <= len(self.planned_ids) or step < 1:
            self._anomaly(record, f"more first={fields[0]!r} end={fields[1]!r} step={fields[2]!r} "
                                  "is not a range of the plan")
            return
        if not self.waiting_for_more:
            self._anomaly(record, "more record without an idle record before it")
            return
        self.more.append((first, end, step))
        self.range_limits.append(self.limit)
        self.asked, self.limit = range(first, end, step), None

    def ranges(self, env: dict[str, str]) -> list[range]:
        """What the current boot ran or was asked to run: its own range from `env` and each
        range it took in a `more` record, each cut at its confirmed limit."""
        asked = [_own_range(env)]
        limits = self.range_limits + [self.limit]
        return [range(first, end if limit is None else min(end, limit), step)
                for (first, end, step), limit in zip(asked + self.more, limits)]

    def finish(self) -> None:
        """The stream has ended: what the parser still holds is an anomaly."""
        self._parser.finish()
        for anomaly in self._parser.anomalies:
            self.anomalies.append({"offset": anomaly.offset, "end": None, "seq": None,
                                   "kind": None, "boot": None, "reason": anomaly.reason})
        self.anomalies.sort(key=lambda a: (a["offset"], a["reason"]))

    # -- results -----------------------------------------------------------------------------

    def results(self, stop_reason: str, console_size: int,
                indexes: Sequence[int] | None = None) -> list[dict]:
        """One result per planned test case (or per one of `indexes`), in that order;
        `stop_reason` explains the gaps.

        A test case in flight when the last boot stopped owns the console up to its end."""
        indexes = range(len(self._cases)) if indexes is None else indexes
        rows = [self._result(i, stop_reason, console_size) for i in indexes]
        self._taint(rows, [self._cases[i] for i in indexes])
        return rows

    def has_started(self, index: int) -> bool:
        """It has begun or reported in some boot (else its row is UNINITIATED)."""
        case = self._cases[index]
        return case.begin is not None or case.result is not None or bool(case.attempts)

    def is_final(self, index: int) -> bool:
        """Its result row can no longer change while records arrive: it has a result, and a
        later boundary record has closed its anomaly window (see _taint). Only finish() may
        still change it, with what the parser held back, and a repeated sequence number
        (`disputed`), which callers that keep final rows check."""
        case = self._cases[index]
        return index not in self.disputed and case.result is not None and (
            case.begin is None or self._last_boundary > case.begin.start)

    def _taint(self, rows: list[dict], cases: list[_Case]) -> None:
        """A PASS is not believed when an anomaly lies between its begin record and the next
        accepted start, begin or end record (or its boot's last complete line): a forged record
        displaces a genuine one, and the genuine one then arrives out of sequence, inside that
        window. Nor when a repeated sequence number disputes its begin or result record."""
        bounds = sorted(self._boundaries)
        for row, case in zip(rows, cases):
            if row["verdict"] != "PASS":
                continue
            why = self.disputed.get(row["index"])
            if why is None and case.begin is not None:
                after = bisect.bisect_right(bounds, case.begin.start)
                window_end = bounds[after] if after < len(bounds) else float("inf")
                why = next((a["reason"] for a in self.anomalies
                            if case.begin.start <= a["offset"] < window_end), None)
            if why is not None:
                row.update(verdict="UNRESOLVED", code=TET_CODES["UNRESOLVED"],
                           reason=f"protocol anomaly during the test case: {why}")

    def _result(self, index: int, stop_reason: str, console_size: int) -> dict:
        case = self._cases[index]
        row = {"id": self.planned_ids[index], "index": index, "file": "", "line": None,
               "guest_duration_s": None, "console": None, "host_time": None, "guest_time": None,
               "attempts": case.attempts}
        lost = "; ".join(f"boot {a['boot']}: {a['reason']}" for a in case.attempts)
        if case.result is not None:
            f = case.result.fields
            row.update(verdict=f["verdict"], reason=f.get("reason", ""), file=f.get("file", ""),
                       line=int(f["line"]) if f.get("line", "").isdigit() else None,
                       guest_duration_s=_ns_to_s(f.get("dur_ns")))
            begin = case.begin or case.result
            row["console"] = {"start": begin.start, "end": case.result.end}
            row["host_time"] = {"start": case.begin_time if case.begin else case.result_time,
                                "end": case.result_time}
            row["guest_time"] = {"start_ns": _int(begin.fields.get("clock")),
                                 "end_ns": _int(f.get("clock"))}
            if case.attempts:
                # It took the OS down before: a later PASS does not make that go away.
                earlier = f"{row['verdict']} on attempt {len(case.attempts) + 1}"
                row.update(verdict="UNRESOLVED" if row["verdict"] == "PASS" else row["verdict"],
                           reason=f"{row['reason'] or earlier} after {lost}")
            stopped = self.stopped_after.get(index)
            if stopped is not None and row["verdict"] == "PASS":
                row.update(verdict="UNRESOLVED", reason=f"the guest stopped right after this "
                           f"result, before the runtime's next record: {stopped}")
        elif case.attempts:
            last = case.attempts[-1]
            twice = len(case.attempts) >= MAX_ATTEMPTS
            row.update(verdict="UNRESOLVED",
                       reason=(f"{last['reason']} (took the OS down {len(case.attempts)} times; "
                               "not tried again)" if twice else last["reason"]))
            row["console"] = dict(last["console"])
        elif case.begin is not None:
            row.update(verdict="UNRESOLVED",
                       reason=f"no result: the guest stopped during the test case ({stop_reason})")
            row["console"] = {"start": case.begin.start, "end": console_size}
            row["host_time"] = {"start": case.begin_time, "end": None}
        else:
            row.update(verdict="UNINITIATED",
                       reason=f"never started: {self.not_run.get(index, stop_reason)}")
        row["code"] = TET_CODES[row["verdict"]]
        return row


def asked_indexes(env: Mapping[str, str], planned_ids: Sequence[str]) -> Collection[int] | None:
    """The plan indexes a boot with run parameters `env` runs: PCERT_FIRST to PCERT_END every
    PCERT_STEP-th, only those PCERT_ONLY names (docs/protocol.md). None without a range.

    >>> asked_indexes({"PCERT_FIRST": "1", "PCERT_END": "6", "PCERT_STEP": "2"}, ["a"] * 6)
    range(1, 6, 2)
    >>> sorted(asked_indexes({"PCERT_FIRST": "0", "PCERT_END": "3", "PCERT_ONLY": "c,a"},
    ...                      ["a", "b", "c"]))
    [0, 2]
    """
    if "PCERT_FIRST" not in env or "PCERT_END" not in env:
        return None
    span = range(*_own_range(env))
    if "PCERT_ONLY" not in env:
        return span
    only = set(env["PCERT_ONLY"].split(","))
    return frozenset(i for i in span if planned_ids[i] in only)


def _own_range(env: Mapping[str, str]) -> tuple[int, int, int]:
    """(first, end, step) of a boot's run parameters."""
    return int(env["PCERT_FIRST"]), int(env["PCERT_END"]), int(env.get("PCERT_STEP", "1"))


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _ns_to_s(value: str | None) -> float | None:
    v = _int(value)
    return None if v is None else v / 1e9
