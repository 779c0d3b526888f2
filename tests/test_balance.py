"""Hand-over between workers (conformance/balance.py), end to end in QEMU: a spec whose plan
order deals every slow test case to worker 0 of two, so worker 1 runs out first and takes over
the rest of worker 0's shard. The verdicts are those of one worker, each result's console slice
lies in the log of the worker that ran it, and a run killed after a hand-over resumes with
ownership as it was left."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path

import pytest

from conformance import balance
from conformance.balance import Balancer, _seconds_per_case
from conformance.cli import main
from conformance.collect import Collector
from conformance.session import Session, Timeouts
from test_collect import NONCE, Guest
from test_robust import _wait_for, assert_gone, children, jsonl, pcert, ready, run_ok, verdicts

# Plan order is id order: even numbers (worker 0) sleep 0.3 s, odd ones (worker 1) 1 us.
PLAN = [f"TC-nanosleep-{n}" for n in range(950, 974)]
SPEC_HEAD = """\
unit: pcert-balance
title: pcert self-test of the hand-over between workers (tests/test_balance.py)
includes: [time.h]
requirements:
  - id: REQ-nanosleep-950
    interface: nanosleep
    source: {standard: pcert self-test, section: "docs/robust.md: Parallel workers"}
    text: >
      The verdicts of a run whose workers hand test cases over to one another are those of a
      run with one worker.
    method: test
test_cases:
"""
SPEC_CASE = """\
  - id: {id}
    title: sleeps {ns} ns
    verifies: [REQ-nanosleep-950]
    kind: normal
    call: "nanosleep(&(struct timespec){{0, {ns}L}}, 0)"
    ret_type: int
    expect:
      return: "0"
"""


@pytest.fixture(scope="module")
def common(tmp_path_factory) -> list[str]:
    specs = tmp_path_factory.mktemp("balance")
    (specs / "balance.yaml").write_text(SPEC_HEAD + "".join(
        SPEC_CASE.format(id=tc, ns=300_000_000 if i % 2 == 0 else 1000)
        for i, tc in enumerate(PLAN)))
    return ["--target", "linux-x86_64", "--checks", "behaviour", "--specs", str(specs),
            "--only", ",".join(PLAN)]


@pytest.fixture(scope="module")
def serial(common, tmp_path_factory) -> Path:
    ready("linux-x86_64")
    out = tmp_path_factory.mktemp("serial") / "b"
    run_ok("run", *common, "-j", "1", "--out", str(out))
    return out


def killed_after_a_hand_over(common: list[str], out: Path, taker_printed: bytes = b"") -> None:
    """A -j 2 run into `out`, SIGKILLed once a hand-over is sealed (before the taker runs what
    it took) and the taker's log holds `taker_printed`."""
    proc = pcert("run", *common, "-j", "2", "--out", str(out))
    _wait_for(out / "boots.jsonl", b'"handover":')
    _wait_for(out / "console.w1.log", taker_printed)
    machines = children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert_gone(machines)     # QEMU does not outlive a killed pcert


def offline_session(collector: Collector, shard: range, worker: int = 0) -> Session:
    """A session that never boots: for what balance.py decides from its state alone."""
    return Session(lambda env: None, collector, sink=None, shard=shard, timeouts=Timeouts(1, 1),
                   worker=worker, lock=threading.RLock(), clock0=0.0)


def handovers(bundle: Path) -> list[tuple[int, dict]]:
    """(taker, took) of each hand-over: at a boot's start, or to a guest waiting for more."""
    return [(b["worker"], t) for b in jsonl(bundle / "boots.jsonl")
            for t in ([b["took"]] if b.get("took") else []) + (b.get("took_live") or [])]


def begins(bundle: Path) -> dict[str, int]:
    """How often each test case began, over every worker's console."""
    count: dict[str, int] = {}
    for log in bundle.glob("console*.log"):
        for line in log.read_bytes().splitlines():
            if b" begin " in line and b"id=" in line:
                tc = line.split(b"id=")[1].split(b" ")[0].decode()
                count[tc] = count.get(tc, 0) + 1
    return count


@pytest.mark.qemu
def test_a_worker_that_runs_out_takes_over_the_rest_of_a_slower_one(common, serial, tmp_path):
    out = tmp_path / "b"
    run_ok("run", *common, "-j", "2", "--out", str(out))
    assert {k: v[0] for k, v in verdicts(out).items()} == {k: v[0] for k, v in verdicts(serial).items()}
    assert set(v for v, _ in verdicts(out).values()) == {"PASS"}
    took = handovers(out)
    assert took and took[0][0] == 1 and took[0][1]["worker"] == 0
    assert b" limit end=" in (out / "console.log").read_bytes()   # worker 0 agreed to stop
    # Worker 1's guest waited for more and ran them without a boot.
    first = jsonl(out / "boots.jsonl")[-1]
    assert first["worker"] == 1 and first["boot"] == 0 and first["took_live"]
    live = first["took_live"][0]
    assert (f" more first={live['first']} end={live['end']} step={live['step']} ".encode()
            in (out / "console.w1.log").read_bytes())
    assert (out / "anomalies.jsonl").read_text() == ""
    assert all(n == 1 for n in begins(out).values()) and len(begins(out)) == len(PLAN)
    for row in jsonl(out / "results.jsonl"):   # each slice is the test case in its own log
        span = row["console"]
        data = (out / span.get("file", "console.log")).read_bytes()[span["start"]:span["end"]]
        assert f"id={row['id']} ".encode() in data
    assert main(["verify", str(out)]) == 0


@pytest.mark.qemu
def test_a_run_killed_after_a_hand_over_resumes_to_the_same_verdicts(common, serial, tmp_path):
    cut = tmp_path / "cut"
    killed_after_a_hand_over(common, cut, b" begin idx=20 ")  # inside a slow test case
    assert json.loads((cut / "manifest.json").read_text())["status"] == "incomplete"
    assert main(["verify", str(cut)]) == 0

    run_ok("run", "--resume", str(cut))
    assert json.loads((cut / "manifest.json").read_text())["status"] == "complete"
    assert {k: v[0] for k, v in verdicts(cut).items()} == {k: v[0] for k, v in verdicts(serial).items()}
    # Nothing ran twice but the test case the kill cut short, and the resumed run did not
    # give the handed-over test cases back to the worker that gave them away.
    again = {tc for tc, n in begins(cut).items() if n > 1}
    assert len(again) <= 1 and len(begins(cut)) == len(PLAN)
    rows = {r["id"]: r for r in jsonl(cut / "results.jsonl")}
    assert rows["TC-nanosleep-972"]["console"]["file"] == "console.w1.log"
    assert main(["verify", str(cut)]) == 0


def test_a_resumed_run_replays_the_hand_overs_in_their_order():
    """Worker 1 took 5, 7, 9 from worker 0 (its guest waiting for more); then worker 0 took 9
    back in a boot of its own: 9 is worker 0's."""
    sessions = [offline_session(Collector([f"TC-{i}" for i in range(10)], "0" * 16),
                                range(w, 10, 2), worker=w) for w in (0, 1)]
    balancer = Balancer(sessions, threading.RLock(), "0" * 16)
    boots = [{"worker": 0, "boot": 1, "took": {"worker": 1, "first": 9, "end": 10, "step": 2,
                                               "handover": 1}},
             {"worker": 1, "boot": 0, "took": None,
              "took_live": [{"worker": 0, "first": 5, "end": 10, "step": 2, "handover": 0}]},
             {"worker": 0, "boot": 0, "took": None}]
    balancer.replay(boots)
    assert sorted(sessions[0].owned) == [0, 2, 4, 6, 8, 9]
    assert sorted(sessions[1].owned) == [1, 3, 5, 7]
    assert balancer.handovers == 2


def test_the_pace_is_that_of_the_latest_results_not_the_runs_average(monkeypatch):
    """A worker that slept through its first test cases and is now in quick ones: the split
    must count on the quick pace, or the worker that takes over gets too much."""
    ids = [f"TC-{i}" for i in range(100)]
    guest = Guest()
    collector = Collector(ids, NONCE)
    session = offline_session(collector, range(100))
    assert _seconds_per_case(session) is None   # nothing settled yet: ask again later
    now = 0.0
    for i in range(60):                          # 10 slow test cases, then 50 quick ones
        collector.feed(guest.emit("begin", idx=i, id=ids[i], clock=1), now=now)
        now += 1.0 if i < 10 else 0.01
        collector.feed(guest.emit("result", idx=i, id=ids[i], verdict="PASS", code=0, reason="",
                                  file="", line="", clock=2, dur_ns=1), now=now)
    monkeypatch.setattr(balance.time, "monotonic", lambda: now + 0.005)
    assert 0.009 < _seconds_per_case(session) < 0.011   # the run's average: 0.175 s
    # Idle since its last result (it powered off, sealed a checkpoint): that is not its pace.
    monkeypatch.setattr(balance.time, "monotonic", lambda: now + 0.3)
    assert _seconds_per_case(session, idle=True) == pytest.approx(0.01)
    assert _seconds_per_case(session) > 0.015           # a running one: the time it has taken


def test_a_malformed_took_stops_the_resume_with_a_clear_message(common, serial, tmp_path,
                                                                   capsys):
    """A corrupt boots.jsonl names the file and the boot; nothing is run or written."""
    cut = tmp_path / "cut"
    killed_after_a_hand_over(common, cut)
    boots = jsonl(cut / "boots.jsonl")
    for row in boots:
        for took in ([row["took"]] if row.get("took") else []) + (row.get("took_live") or []):
            took["worker"] = 0
            row["worker"] = 7                    # no such worker in a run of two
    (cut / "boots.jsonl").write_text("".join(json.dumps(b) + "\n" for b in boots))
    # What a kill during an atomic write leaves: the refusal comes before any clean-up.
    (cut / ".manifest.json.cut0ff.tmp").write_bytes(b'{"run_id": ')
    before = {p.name: p.read_bytes() for p in cut.iterdir() if p.is_file()}
    assert main(["run", "--resume", str(cut)]) == 2
    err = capsys.readouterr().err
    assert "boots.jsonl" in err and "worker 7" in err and "cannot be resumed" in err
    assert {p.name: p.read_bytes() for p in cut.iterdir() if p.is_file()} == before
