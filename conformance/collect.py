"""Collect: turn the console stream of one boot into results, reconciled against the plan.

The guest is untrusted. Only records that the protocol parser accepted count; a record that
names a test case out of place (unknown id, index that does not match the plan, a second
result) is kept as an anomaly and never becomes a verdict. Test cases the plan holds but the
guest never reported become UNINITIATED (never begun) or UNRESOLVED (begun, no result).

>>> from targets.protocol import frame
>>> c = Collector(["TC-a-001"], nonce="0" * 16)
>>> c.feed(frame("0" * 16, 0, "start", [("ntests", "1")]), now=0.5)
>>> c.feed(frame("0" * 16, 1, "begin", [("idx", "0"), ("id", "TC-a-001")]), now=0.6)
>>> c.feed(frame("0" * 16, 2, "result", [("idx", "0"), ("id", "TC-a-001"), ("verdict", "PASS"),
...        ("code", "0")]), now=0.7)
>>> [r["verdict"] for r in c.results(stop_reason="powered off", console_size=0)]
['PASS']
"""

from __future__ import annotations

from dataclasses import dataclass, field

from targets.protocol import Record, RecordParser

TET_CODES = {"PASS": 0, "FAIL": 1, "UNRESOLVED": 2, "UNSUPPORTED": 4, "UNTESTED": 5,
             "UNINITIATED": 6}
GUEST_VERDICTS = ("PASS", "FAIL", "UNRESOLVED", "UNSUPPORTED", "UNTESTED")


@dataclass
class _Case:
    begin: Record | None = None
    begin_time: float | None = None
    result: Record | None = None
    result_time: float | None = None
    output: bytearray = field(default_factory=bytearray)


class Collector:
    """Feed console bytes as they arrive; ask for results when the machine has stopped."""

    def __init__(self, planned_ids: list[str], nonce: str):
        self.planned_ids = list(planned_ids)
        self._index = {tc: i for i, tc in enumerate(self.planned_ids)}
        self._cases = [_Case() for _ in self.planned_ids]
        self._parser = RecordParser(nonce)
        self.start: Record | None = None
        self.start_time: float | None = None
        self.end: Record | None = None
        self.first_result_time: float | None = None
        self.anomalies: list[dict] = []
        self.on_progress = None  # callable(done, total, current_id) or None

    @property
    def ended(self) -> bool:
        return self.end is not None

    def done_count(self) -> int:
        return sum(1 for c in self._cases if c.result is not None)

    def feed(self, data: bytes, now: float) -> None:
        for record in self._parser.feed(data):
            self._accept(record, now)

    def _anomaly(self, record: Record, reason: str) -> None:
        self.anomalies.append({"offset": record.start, "end": record.end, "seq": record.seq,
                               "kind": record.kind, "reason": reason})

    def _case_for(self, record: Record) -> _Case | None:
        tc_id, idx = record.fields.get("id"), record.fields.get("idx", "")
        if not idx.isdigit() or int(idx) >= len(self.planned_ids):
            self._anomaly(record, f"test case index {idx!r} is not in the plan")
            return None
        if tc_id is not None and self.planned_ids[int(idx)] != tc_id:
            self._anomaly(record, f"test case {tc_id!r} at index {idx} does not match the plan "
                                  f"({self.planned_ids[int(idx)]!r})")
            return None
        return self._cases[int(idx)]

    def _accept(self, record: Record, now: float) -> None:
        kind = record.kind
        if kind == "start":
            if self.start is not None:
                self._anomaly(record, "second start record")
                return
            self.start, self.start_time = record, now
            ntests = record.fields.get("ntests")
            if ntests is not None and ntests != str(len(self.planned_ids)):
                self._anomaly(record, f"guest has {ntests} test cases, the plan {len(self.planned_ids)}")
        elif kind == "end":
            self.end = record
        elif kind == "begin":
            case = self._case_for(record)
            if case is None:
                return
            if case.begin is not None:
                self._anomaly(record, "test case begun twice")
                return
            case.begin, case.begin_time = record, now
            if self.on_progress:
                self.on_progress(self.done_count(), len(self.planned_ids), record.fields.get("id", ""))
        elif kind == "out":
            case = self._case_for(record)
            if case is not None:
                case.output += record.raw_fields.get("data", b"")
        elif kind == "result":
            self._accept_result(record, now)
        else:
            self._anomaly(record, f"unknown record kind {kind!r}")

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
        else:
            case.result, case.result_time = record, now
            if self.first_result_time is None:
                self.first_result_time = now
            if self.on_progress:
                self.on_progress(self.done_count(), len(self.planned_ids), record.fields.get("id", ""))

    def finish(self) -> None:
        """The stream has ended: what the parser still holds is an anomaly."""
        for anomaly in self._parser.finish():
            self.anomalies.append({"offset": anomaly.offset, "end": None, "seq": None,
                                   "kind": None, "reason": anomaly.reason})
        for anomaly in self._parser.anomalies:
            entry = {"offset": anomaly.offset, "end": None, "seq": None, "kind": None,
                     "reason": anomaly.reason}
            if entry not in self.anomalies:
                self.anomalies.append(entry)
        self.anomalies.sort(key=lambda a: (a["offset"], a["reason"]))

    def results(self, stop_reason: str, console_size: int) -> list[dict]:
        """One result per planned test case, in plan order; `stop_reason` explains the gaps.

        A test case in flight when the guest stopped owns the console up to its end."""
        rows = []
        for index, (tc_id, case) in enumerate(zip(self.planned_ids, self._cases)):
            row = {"id": tc_id, "index": index, "file": "", "line": None,
                   "guest_duration_s": None, "console": None, "host_time": None}
            if case.result is not None:
                f = case.result.fields
                row.update(verdict=f["verdict"], reason=f.get("reason", ""), file=f.get("file", ""),
                           line=int(f["line"]) if f.get("line", "").isdigit() else None,
                           guest_duration_s=_ns_to_s(f.get("dur_ns")))
                start = case.begin.start if case.begin is not None else case.result.start
                row["console"] = {"start": start, "end": case.result.end}
                row["host_time"] = {"start": case.begin_time if case.begin_time is not None
                                    else case.result_time, "end": case.result_time}
            elif case.begin is not None:
                row.update(verdict="UNRESOLVED",
                           reason=f"no result: the guest stopped during the test case ({stop_reason})")
                row["console"] = {"start": case.begin.start, "end": console_size}
                row["host_time"] = {"start": case.begin_time, "end": None}
            else:
                row.update(verdict="UNINITIATED", reason=f"never started: {stop_reason}")
            row["code"] = TET_CODES[row["verdict"]]
            rows.append(row)
        return rows


def _ns_to_s(value: str | None) -> float | None:
    if value is None or not value.isdigit():
        return None
    return int(value) / 1e9
