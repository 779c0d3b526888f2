"""The collector reconciles what the guest reported against the plan and never lets a
misplaced or forged record become a verdict."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from conformance.collect import TET_CODES, Collector, asked_indexes
from targets.protocol import frame

NONCE = "0123456789abcdef"
PLAN = ["TC-a-001", "TC-a-002", "TC-b-001"]


class Guest:
    """Writes a well-formed record stream, as the runtime would."""

    def __init__(self, nonce: str = NONCE):
        self.nonce, self.seq, self.stream = nonce, 0, bytearray()

    def emit(self, kind: str, **fields) -> bytes:
        data = frame(self.nonce, self.seq, kind, [(k, str(v)) for k, v in fields.items()])
        self.seq += 1
        self.stream += data
        return data

    def case(self, idx: int, tc_id: str, verdict: str = "PASS", code: int = 0, reason: str = ""):
        self.emit("begin", idx=idx, id=tc_id, clock=1)
        self.emit("result", idx=idx, id=tc_id, verdict=verdict, code=code, reason=reason,
                  file="f.c" if reason else "", line=7 if reason else "", clock=2, dur_ns=1500)


def collect(stream: bytes, plan=PLAN, stop="powered off",
            asked=None) -> tuple[list[dict], Collector]:
    """`asked`: the plan indexes the boot was asked to run (else not checked)."""
    collector = Collector(plan, NONCE)
    if asked is not None:
        collector.start_boot(0, asked)
    collector.feed(stream, now=1.0)
    collector.finish()
    return collector.results(stop_reason=stop, console_size=len(stream)), collector


def test_full_run_gives_every_verdict_with_console_ranges():
    g = Guest()
    g.emit("start", ntests=3, sysname="Linux")
    g.case(0, "TC-a-001")
    g.case(1, "TC-a-002", "FAIL", 1, "x: got 1, want 2")
    g.case(2, "TC-b-001", "UNSUPPORTED", 4, "option _POSIX_TIMERS not supported")
    g.emit("end", ran=3)
    results, collector = collect(bytes(g.stream))
    assert [r["verdict"] for r in results] == ["PASS", "FAIL", "UNSUPPORTED"]
    assert results[1]["reason"] == "x: got 1, want 2" and results[1]["line"] == 7
    assert [r["code"] for r in results] == [0, 1, 4]
    assert results[0]["guest_duration_s"] == 1.5e-6
    assert collector.ended and not collector.anomalies
    ranges = [(r["console"]["start"], r["console"]["end"]) for r in results]
    assert ranges == sorted(ranges) and ranges[-1][1] <= len(g.stream)


def test_missing_and_in_flight_cases_are_reconciled():
    g = Guest()
    g.emit("start", ntests=3)
    g.case(0, "TC-a-001")
    g.emit("begin", idx=1, id="TC-a-002", clock=1)
    results, collector = collect(bytes(g.stream), stop="idle timeout")
    assert [r["verdict"] for r in results] == ["PASS", "UNRESOLVED", "UNINITIATED"]
    assert "idle timeout" in results[1]["reason"] and "idle timeout" in results[2]["reason"]
    assert results[1]["console"]["end"] == len(g.stream)
    assert results[2]["console"] is None
    assert not collector.ended


def test_misplaced_duplicate_and_invalid_results_are_anomalies_not_verdicts():
    g = Guest()
    g.emit("start", ntests=3)
    g.case(0, "TC-a-001", "FAIL", 1, "real failure")
    g.emit("result", idx=0, id="TC-a-001", verdict="PASS", code=0)       # second result
    g.emit("result", idx=1, id="TC-b-001", verdict="PASS", code=0)       # id/index mismatch
    g.emit("result", idx=9, id="TC-z-001", verdict="PASS", code=0)       # not in the plan
    g.emit("result", idx=2, id="TC-b-001", verdict="PASS", code=4)       # wrong TET code
    g.emit("result", idx=2, id="TC-b-001", verdict="FAIL", code=1)       # FAIL without reason
    g.emit("result", idx=2, id="TC-b-001", verdict="GREAT", code=0)      # no such verdict
    results, collector = collect(bytes(g.stream))
    assert [r["verdict"] for r in results] == ["FAIL", "UNINITIATED", "UNINITIATED"]
    assert len(collector.anomalies) == 6


def test_a_result_for_a_test_case_that_never_began_is_an_anomaly_whatever_its_verdict():
    # Forged or out of order: the runtime begins every test case, even one its option check
    # decides, so no verdict (not even UNSUPPORTED) may skip the begin record.
    for verdict, code in (("PASS", 0), ("UNSUPPORTED", 4), ("FAIL", 1)):
        g = Guest()
        g.emit("start", ntests=3)
        g.case(0, "TC-a-001")
        g.emit("result", idx=1, id="TC-a-002", verdict=verdict, code=code, reason="forged",
               file="", line="", clock=2, dur_ns=1)
        results, collector = collect(bytes(g.stream), stop="idle timeout")
        # The forged record lies in the console slice of the test case before: that one can
        # no longer pass either.
        assert [r["verdict"] for r in results] == ["UNRESOLVED", "UNINITIATED", "UNINITIATED"]
        assert [a["reason"] for a in collector.anomalies] == [
            f"{verdict} for a test case that has not begun"]


def test_records_with_another_nonce_are_ignored():
    forged = Guest(nonce="f" * 16)
    forged.emit("start", ntests=3)
    forged.case(0, "TC-a-001")
    results, collector = collect(bytes(forged.stream))
    assert all(r["verdict"] == "UNINITIATED" for r in results)
    assert collector.start is None


@settings(max_examples=60, deadline=None)
@given(noise=st.lists(st.binary(max_size=80), min_size=4, max_size=4),
       cut=st.integers(min_value=1, max_value=400))
def test_noise_between_records_and_any_chunking_change_nothing(noise, cut):
    g = Guest()
    parts = [g.emit("start", ntests=3)]
    for idx, tc in enumerate(PLAN):
        before = len(g.stream)
        g.case(idx, tc)
        parts.append(bytes(g.stream[before:]))
    # Noise on its own lines, as kernel messages would arrive between records.
    stream = b"".join(b"\n" + n.replace(b"PCERT1", b"pcert1") + b"\n" + p for n, p in zip(noise, parts))
    collector = Collector(PLAN, NONCE)
    for i in range(0, len(stream), cut):
        collector.feed(stream[i:i + cut], now=float(i))
    collector.finish()
    results = collector.results(stop_reason="powered off", console_size=len(stream))
    assert [r["verdict"] for r in results] == ["PASS"] * 3
    for r in results:
        assert stream[r["console"]["start"]:r["console"]["start"] + 6] == b"PCERT1"


# Each step of a guest's stream: a whole test case, a case begun but never finished, or a
# forged record (a second result) that must taint the PASS whose window it falls in.
_STEPS = st.lists(st.sampled_from(["case", "fail", "forged", "begun"]), min_size=1, max_size=6)


@settings(max_examples=80, deadline=None)
@given(steps=_STEPS, cut=st.integers(min_value=1, max_value=300))
def test_a_row_called_final_mid_stream_is_the_row_at_the_end(steps, cut):
    """Checkpoints encode a final row once and reuse it (conformance/run.py): that is only
    right if nothing arriving later can change it."""
    plan = [f"TC-s-{i:03}" for i in range(len(steps))]
    g = Guest()
    g.emit("start", ntests=len(plan))
    for idx, step in enumerate(steps):
        if step == "begun":
            g.emit("begin", idx=idx, id=plan[idx], clock=1)
            continue
        g.case(idx, plan[idx], *(("FAIL", 1, "x: got 1, want 2") if step == "fail" else ()))
        if step == "forged":
            g.emit("result", idx=idx, id=plan[idx], verdict="PASS", code=0, clock=3)
    g.emit("end", ran=len(plan))
    stream = bytes(g.stream)
    collector = Collector(plan, NONCE)
    seen: dict[int, dict] = {}
    for i in range(0, len(stream), cut):
        collector.feed(stream[i:i + cut], now=1.0)
        for index, row in enumerate(collector.results("running", console_size=i + cut)):
            if collector.is_final(index):
                seen.setdefault(index, row)
    at_end = collector.results("powered off", console_size=len(stream))
    for index, row in seen.items():
        assert row == at_end[index]
    # The end record closes every window: each test case with a result became final.
    assert sorted(seen) == [i for i, s in enumerate(steps) if s != "begun"]
    assert all(at_end[i]["verdict"] == "UNRESOLVED" for i, s in enumerate(steps) if s == "forged")


def test_results_of_some_indexes_are_those_rows_of_all():
    g = Guest()
    g.emit("start", ntests=3)
    g.case(0, "TC-a-001")
    g.case(1, "TC-a-002", "FAIL", 1, "x: got 1, want 2")
    g.emit("result", idx=1, id="TC-a-002", verdict="PASS", code=0)  # forged, after a FAIL
    every, collector = collect(bytes(g.stream))
    assert collector.results("powered off", len(g.stream), indexes=[2, 0]) == [every[2], every[0]]


def test_a_limit_record_hands_the_rest_over_and_nothing_after_it_counts():
    """After `limit end=N` (a hand-over, conformance/balance.py) a record for N or later is
    an anomaly: that test case belongs to another worker now. A rejected record does not end
    the window of the test case before it, so that one's PASS is not believed either."""
    heard = []
    g = Guest()
    g.emit("start", ntests=3, limits=1)
    g.case(0, "TC-a-001")
    g.emit("limit", end=1, clock=3)
    g.case(1, "TC-a-002")                 # a guest that ignores its own limit
    g.emit("limit", end=2, clock=4)       # only ever lower
    g.emit("end", ran=2)
    collector = Collector(PLAN, NONCE)
    collector.on_limit = heard.append
    collector.start_boot(0)
    collector.feed(bytes(g.stream), now=1.0)
    collector.finish()
    rows = collector.results(stop_reason="powered off", console_size=len(g.stream))
    assert [r["verdict"] for r in rows] == ["UNRESOLVED", "UNINITIATED", "UNINITIATED"]
    assert rows[0]["reason"] == ("protocol anomaly during the test case: test case index 1 "
                                 "after the guest agreed to stop before 1")
    assert heard == [1] and collector.limit == 1
    assert [a["reason"] for a in collector.anomalies] == [
        "test case index 1 after the guest agreed to stop before 1",
        "test case index 1 after the guest agreed to stop before 1",
        "limit end 2 above the earlier 1"]
    collector.start_boot(1)               # a new boot listens afresh
    assert collector.limit is None


def test_a_guest_waiting_for_more_runs_another_range_in_the_same_boot():
    """`idle`, then `more first=.. end=.. step=..` (conformance/balance.py): the boot's ranges
    are its own, cut at its limit, and the one it took; the new range listens afresh."""
    g = Guest()
    g.emit("start", ntests=3, limits=1)
    g.case(0, "TC-a-001")
    g.emit("limit", end=1, clock=3)          # the rest of its own range went to another worker
    g.emit("idle", clock=4)
    g.emit("more", first=1, end=3, step=1, clock=5)
    g.case(1, "TC-a-002")                    # after the limit, but in the range it took: counts
    g.case(2, "TC-b-001")
    g.emit("idle", clock=6)
    g.emit("end", ran=3)
    rows, collector = collect(bytes(g.stream))
    assert [r["verdict"] for r in rows] == ["PASS", "PASS", "PASS"]
    assert collector.anomalies == [] and collector.idles == 2 and collector.limit is None
    assert collector.ranges({"PCERT_FIRST": "0", "PCERT_END": "3", "PCERT_STEP": "1"}) == [
        range(0, 1), range(1, 3)]


@pytest.mark.parametrize("fields, reason", [
    (dict(first=0, end=4, step=1), "more first='0' end='4' step='1' is not a range of the plan"),
    (dict(first=2, end=2, step=1), "more first='2' end='2' step='1' is not a range of the plan"),
    (dict(first=0, end=3, step=0), "more first='0' end='3' step='0' is not a range of the plan"),
    (dict(first="+1", end=3, step=1), "more first='+1' end='3' step='1' is not a range of the plan"),
    (dict(first=0, end=3), "more first='0' end='3' step='' is not a range of the plan"),
])
def test_a_more_record_outside_the_plan_is_an_anomaly(fields, reason):
    g = Guest()
    g.emit("start", ntests=3)
    g.emit("idle", clock=1)
    g.emit("more", **fields, clock=2)
    _, collector = collect(bytes(g.stream))
    assert collector.more == [] and [a["reason"] for a in collector.anomalies] == [reason]


def test_a_more_record_the_guest_was_not_idle_for_is_an_anomaly():
    g = Guest()
    g.emit("start", ntests=3)
    g.emit("more", first=0, end=3, step=1, clock=2)     # never idle: nobody gave it this
    g.emit("idle", clock=3)
    g.emit("more", first=1, end=3, step=1, clock=4)
    g.emit("more", first=2, end=3, step=1, clock=5)     # one idle, one more
    _, collector = collect(bytes(g.stream))
    assert collector.more == [(1, 3, 1)]
    assert [a["reason"] for a in collector.anomalies] == [
        "more record without an idle record before it"] * 2


def test_a_boot_cut_short_mid_line_spoils_neither_its_last_pass_nor_the_next_boot():
    """A run killed while the guest printed `begin` leaves half a line at the end of that boot
    (tests/test_balance.py hit it): the next boot's first record is still read, and the PASS
    before the half line stands; the half line is kept as an anomaly."""
    g = Guest()
    g.emit("start", ntests=3)
    g.case(0, "TC-a-001")
    whole = len(g.stream)
    g.emit("begin", idx=1, id="TC-a-002", clock=1)
    boot0 = bytes(g.stream[:whole + 30])          # killed 30 bytes into the begin record
    collector = Collector(PLAN, NONCE)
    collector.start_boot(0)
    collector.feed(boot0, now=1.0)
    collector.abandon_boot()
    collector.start_boot(1)
    g2 = Guest()
    g2.emit("start", ntests=3)
    g2.case(1, "TC-a-002")
    g2.case(2, "TC-b-001")
    g2.emit("end", ran=2)
    collector.feed(bytes(g2.stream), now=2.0)
    collector.finish()
    rows = collector.results(stop_reason="powered off", console_size=len(boot0) + len(g2.stream))
    assert [r["verdict"] for r in rows] == ["PASS", "PASS", "PASS"]
    assert collector.boot_start is not None and collector.ended
    assert [a["reason"] for a in collector.anomalies] == [
        "truncated record: the boot ended before its line end"]
    assert collector.anomalies[0]["offset"] == whole


def test_a_limit_outside_the_plan_is_an_anomaly():
    g = Guest()
    g.emit("start", ntests=3)
    g.emit("limit", end=4, clock=1)
    g.emit("limit", end="x", clock=1)
    _, collector = collect(bytes(g.stream))
    assert collector.limit is None
    assert [a["reason"] for a in collector.anomalies] == [
        "limit end '4' is not a plan index", "limit end 'x' is not a plan index"]


def test_a_record_for_a_test_case_the_boot_was_not_asked_to_run_is_an_anomaly():
    """A worker runs every second test case (PCERT_STEP=2): what its guest says of the other
    worker's test cases, or of one PCERT_ONLY leaves out, never counts here, and the forger's
    own PASS is not believed."""
    g = Guest()
    g.emit("start", ntests=3)
    g.emit("begin", idx=0, id="TC-a-001", clock=1)
    g.emit("begin", idx=1, id="TC-a-002", clock=1)     # the other worker's
    g.emit("result", idx=1, id="TC-a-002", verdict="PASS", code=0, clock=2)
    g.emit("result", idx=0, id="TC-a-001", verdict="PASS", code=0, clock=2, dur_ns=1)
    g.case(2, "TC-b-001")
    g.emit("end", ran=2)
    rows, collector = collect(bytes(g.stream), asked=asked_indexes(
        {"PCERT_FIRST": "0", "PCERT_END": "3", "PCERT_STEP": "2"}, PLAN))
    assert [r["verdict"] for r in rows] == ["UNRESOLVED", "UNINITIATED", "PASS"]
    assert [a["reason"] for a in collector.anomalies] == [
        "test case index 1 is not in the range this boot runs"] * 2

    g = Guest()
    g.emit("start", ntests=3)
    g.case(0, "TC-a-001")
    g.case(2, "TC-b-001")
    rows, retry = collect(bytes(g.stream), asked=asked_indexes(
        {"PCERT_FIRST": "0", "PCERT_END": "3", "PCERT_ONLY": "TC-b-001"}, PLAN))
    assert [r["verdict"] for r in rows] == ["UNINITIATED", "UNINITIATED", "PASS"]
    assert [a["reason"] for a in retry.anomalies] == [
        "test case index 0 is not in the range this boot runs"] * 2


def test_after_more_only_the_range_taken_counts():
    """An idle guest given another range (`more`) has finished its own: a record for a test
    case of its own range beyond that range's limit, which went to another worker, is an
    anomaly (inside the window of the test case before it, whose PASS is then not believed)."""
    g = Guest()
    g.emit("start", ntests=3, limits=1)
    g.case(0, "TC-a-001")
    g.emit("limit", end=1, clock=3)
    g.emit("idle", clock=4)
    g.emit("more", first=2, end=3, step=1, clock=5)
    g.case(1, "TC-a-002")                     # its own range, beyond the limit
    g.case(2, "TC-b-001")
    g.emit("end", ran=2)
    rows, collector = collect(bytes(g.stream), asked=range(0, 2))
    assert [r["verdict"] for r in rows] == ["UNRESOLVED", "UNINITIATED", "PASS"]
    assert [a["reason"] for a in collector.anomalies] == [
        "test case index 1 is not in the range this boot runs"] * 2
    assert collector.asked == range(2, 3)


def test_a_forger_that_also_begins_the_next_test_case_does_not_get_its_pass():
    """A guest that knows the nonce, the sequence and the CRC prints a PASS for the test case
    in flight and a begin for the next one before the runtime's genuine FAIL: the genuine
    records then repeat sequence numbers, which disputes the records accepted under them."""
    g = Guest()
    g.emit("start", ntests=3)
    g.emit("begin", idx=0, id="TC-a-001", clock=1)
    forger = Guest()
    forger.seq = g.seq
    forger.emit("result", idx=0, id="TC-a-001", verdict="PASS", code=0, clock=2)
    forger.emit("begin", idx=1, id="TC-a-002", clock=2)      # closes test case 0's window
    g.emit("result", idx=0, id="TC-a-001", verdict="FAIL", code=1, reason="got 1, want 2")
    g.case(1, "TC-a-002")
    g.case(2, "TC-b-001")
    g.emit("end", ran=3)
    genuine = bytes(g.stream)
    split = genuine.index(b"result")
    split = genuine.rindex(b"\n", 0, split) + 1           # after the genuine begin of case 0
    stream = genuine[:split] + bytes(forger.stream) + genuine[split:]
    collector = Collector(PLAN, NONCE)
    collector.start_boot(0)
    collector.feed(stream[:split + len(forger.stream)], now=1.0)
    assert collector.is_final(0) and not collector.disputed    # as a checkpoint would see it
    collector.feed(stream[split + len(forger.stream):], now=2.0)
    collector.finish()
    rows = collector.results(stop_reason="powered off", console_size=len(stream))
    assert [r["verdict"] for r in rows[:2]] == ["UNRESOLVED", "UNRESOLVED"]
    assert rows[0]["reason"] == ("protocol anomaly during the test case: duplicate or "
                                 "out-of-order sequence number 2 (expected 4)")
    assert sorted(collector.disputed) == [0, 1] and not collector.is_final(0)


def test_a_replayed_record_disputes_only_the_record_of_its_own_number():
    """Who wrote a number first is unknown, so the record accepted under it is not believed;
    the test cases around it keep their verdicts."""
    g = Guest()
    g.emit("start", ntests=3)
    g.case(0, "TC-a-001")
    g.case(1, "TC-a-002")
    replayed = bytes(g.stream).splitlines(keepends=True)[3]      # case 1's begin, seq 3
    g.stream += replayed
    g.case(2, "TC-b-001")
    g.emit("end", ran=3)
    rows, collector = collect(bytes(g.stream))
    assert [r["verdict"] for r in rows] == ["PASS", "UNRESOLVED", "PASS"]
    assert collector.disputed == {1: "duplicate or out-of-order sequence number 3 (expected 5)"}


def test_a_pass_the_guest_stopped_right_after_is_not_believed():
    """The runtime prints its next record right after a result: a boot that stops in between
    (a panic, a hang, a reset) was most likely stopped by what that test case left behind, or
    by a forger that printed the PASS and then killed the runtime. A FAIL stays a FAIL; a
    test case followed by the next one's begin keeps its PASS."""
    for last, verdicts in (("PASS", ["PASS", "UNRESOLVED", "UNINITIATED"]),
                           ("FAIL", ["PASS", "FAIL", "UNINITIATED"])):
        g = Guest()
        g.emit("start", ntests=3)
        g.case(0, "TC-a-001")
        g.case(1, "TC-a-002", last, TET_CODES[last], "" if last == "PASS" else "got 1, want 2")
        collector = Collector(PLAN, NONCE)
        collector.start_boot(0)
        collector.feed(bytes(g.stream), now=1.0)
        assert collector.stop_boot("kernel panic", len(g.stream)) is None   # none in flight
        rows = collector.results(stop_reason="kernel panic", console_size=len(g.stream))
        assert [r["verdict"] for r in rows] == verdicts
        assert collector.stopped_after == {1: "kernel panic"}
        if last == "PASS":
            assert rows[1]["reason"] == ("the guest stopped right after this result, before "
                                         "the runtime's next record: kernel panic")
    assert rows[1]["reason"] == "got 1, want 2"
    collector.start_boot(1)
    g = Guest()
    g.emit("start", ntests=3)
    g.case(2, "TC-b-001")
    g.emit("idle", clock=3)                  # the runtime went on after the result
    collector.feed(bytes(g.stream), now=2.0)
    collector.stop_boot("idle timeout", 0)
    assert collector.stopped_after == {1: "kernel panic"}
