"""Hand-over: a worker that has run all it owns takes over the rest of a slower worker's.

Shards are dealt out before the run (every N-th test case), so a run lasts as long as its
slowest worker, and on a shared machine one worker's core is often slowed for a while. A
worker with nothing left asks the worker with the most left to stop early: a lower PCERT_END
on that guest's parameter channel (docs/protocol.md). The guest confirms the end it keeps in a
`limit` record, and the test cases from there on change owner when that record is read, in
the reader's thread and under the run's lock: no test case ever has two owners, and the slower
worker's next boot no longer counts them as its own. The idle worker's guest, waiting for more
after its range (an `idle` record), then runs them without a boot (`take_live`; its running
boot's record lists them in `took_live`); a worker whose guest has ended boots on them
(`take_over`; that boot's `took`). Those records are how a resumed run knows who owns what.

Only a guest that listens can be asked: one restored from a snapshot (the channel is there)
whose start record says `limits=1`. Cold and bare-metal boots keep their static shards.

    balancer = Balancer(sessions, lock, nonce)   # sets each session's take_over, take_live
    balancer.replay(boots)                       # a resumed run: ownership as it was left
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from targets.errors import TargetError

from .session import Session, progression

# What a restored boot costs before its first test case: QEMU's start, the restore, the
# runtime's start (0.3-0.35 s measured on the 2-core machines). The run gains half of what is
# left beyond one such boot, so less than about one and a half is not worth a request.
BOOT_COST_S = 0.35
WORTH_BOOTS = 1.5
# What handing test cases to a guest that waits for more costs: no boot, but the slower guest's
# `limit` (after its test case in flight), a checkpoint and the range on the channel: 60-180 ms
# from `idle` to `more` in the guest's clock, median about 80 ms, in twelve runs with -j 2.
LIVE_COST_S = 0.08
LIVE_WAIT_S = 2.0
MIN_CASES = 4          # never hand over fewer test cases than this
WAIT_POLL_S = 0.05     # how often an idle worker looks whether its request was answered
ASKS = 3               # requests an idle worker makes before it gives up
LATER = object()       # _ask: no pace known yet


@dataclass
class _Request:
    """An idle worker's request to `victim`'s boot `boot` to stop before `end`."""

    thief: Session
    victim: Session
    machine: object  # the victim's, for this boot
    boot: int
    end: int
    answered: threading.Event = field(default_factory=threading.Event)
    given: range | None = None
    took: dict | None = None  # what the idle worker took, as its boot records it


class Balancer:
    """The strategy the sessions of one run share to hand test cases over."""

    def __init__(self, sessions: list[Session], lock: threading.RLock, nonce: str):
        self.sessions = sessions
        self.lock = lock  # the run's: collectors, ownership, pending requests
        self.nonce = nonce
        self.handovers = 0  # numbers the hand-overs, so a resumed run replays them in order
        self._pending: dict[int, _Request] = {}  # by victim worker
        for session in sessions:
            session.take_over = self.take_over
            session.take_live = self.take_live
            session.collector.on_limit = lambda end, s=session: self._limited(s, end)

    def take_over(self, thief: Session, stop: threading.Event) -> bool:
        """Called by a session with nothing left: True once it owns test cases to boot on."""
        asks = 0
        while asks < ASKS and not stop.is_set():
            with self.lock:
                request = self._ask(thief, BOOT_COST_S)
            if request is None:
                return False
            if request is LATER:  # no pace known yet: look again soon
                stop.wait(WAIT_POLL_S)
                continue
            asks += 1
            if self._asked(request, stop, wait_s=None):
                thief.took = request.took
                return True
        return False

    def take_live(self, thief: Session, stop: threading.Event) -> dict | None:
        """Called by a session whose guest ran its range and waits for more: the `took` of
        test cases it now owns and its guest runs next, or None."""
        deadline = time.monotonic() + LIVE_WAIT_S
        while True:
            with self.lock:
                request = self._ask(thief, LIVE_COST_S)
            if request is not LATER:
                break
            if stop.wait(WAIT_POLL_S) or time.monotonic() > deadline:
                return None  # no pace known in time: the guest ends, take_over may boot
        if request is None:
            return None
        wait_s = max(0.0, deadline - time.monotonic())
        return request.took if self._asked(request, stop, wait_s=wait_s) else None

    def _asked(self, request: _Request, stop: threading.Event, wait_s: float | None) -> bool:
        """Send the request to the slower guest and wait for its answer: True when test cases
        changed hands."""
        try:
            request.machine.send_params({"PCERT_NONCE": self.nonce,
                                         "PCERT_END": str(request.end)})
        except (OSError, TargetError):
            pass  # the boot is ending: nothing will answer, and the wait ends with it
        self._wait(request, stop, wait_s)
        with self.lock:
            if self._pending.get(request.victim.worker) is request:
                del self._pending[request.victim.worker]
            return request.given is not None

    def _ask(self, thief: Session, boot_cost_s: float):
        """A request to the worker with the most left, splitting so both end together;
        LATER when its pace is not known yet, None when there is nothing worth taking."""
        best = None
        for victim in self.sessions:
            if victim is thief or not self._listening(victim):
                continue
            left = victim.fresh()
            if best is None or len(left) > len(best[1]):
                best = victim, left
        if best is None:
            return None
        victim, left = best
        rate_v = _seconds_per_case(victim)
        if rate_v is None:
            return LATER
        rate_t = _seconds_per_case(thief, idle=True) or rate_v  # dealt nothing: assume alike
        if len(left) * rate_v < WORTH_BOOTS * boot_cost_s:
            return None
        # Both should end together: the victim's part at its pace, the idle worker's at its
        # own after a boot (or after the round trip, for a guest that waits for more).
        give = int((len(left) * rate_v - boot_cost_s) / (rate_v + rate_t))
        if give < MIN_CASES:
            return None
        request = _Request(thief, victim, victim.machine, victim.collector.boot,
                           end=left[len(left) - give])
        self._pending[victim.worker] = request
        return request

    def _listening(self, session: Session) -> bool:
        """Its boot runs fresh test cases and its guest listens for a lower end."""
        c = session.collector
        return (hasattr(session.machine, "send_params") and c.boot_start is not None
                and c.boot_start.fields.get("limits") == "1" and "PCERT_ONLY" not in session.env
                and session.worker not in self._pending and not c.ended
                and not c.waiting_for_more)

    def _wait(self, request: _Request, stop: threading.Event, wait_s: float | None) -> None:
        """Until the guest answers, its boot ends, or its test case's time (or `wait_s`) is up."""
        victim = request.victim
        deadline = time.monotonic() + (wait_s if wait_s is not None
                                       else victim.timeouts.idle_for(victim.collector.current))
        while not request.answered.wait(WAIT_POLL_S):
            if (stop.is_set() or time.monotonic() > deadline or victim.machine is None
                    or victim.collector.boot != request.boot):
                return

    def _limited(self, victim: Session, end: int) -> None:
        """A `limit` record in `victim`'s console (reader thread, run lock held): hand over
        what it will not run. A limit nobody asked for only ends that boot early."""
        request = self._pending.pop(victim.worker, None)
        if request is None or request.boot != victim.collector.boot:
            return
        left = [i for i in victim.fresh() if i >= end]
        if left:
            given = progression(left, victim.step)
            moved = set(given)
            victim.owned -= moved
            request.thief.owned |= moved
            request.took = {"worker": victim.worker, "first": given.start, "end": given.stop,
                            "step": given.step, "handover": self.handovers}
            self.handovers += 1
            request.given = given
        request.answered.set()

    def replay(self, boots: list[dict]) -> None:
        """Ownership as an interrupted run left it: its hand-overs, in the order they
        happened (a test case handed over twice belongs to the last taker)."""
        for worker, t in sorted(_takes(boots), key=lambda take: take[1]["handover"]):
            moved = set(range(t["first"], t["end"], t["step"]))  # as check_handovers let it
            for session in self.sessions:
                session.owned -= moved
            self.sessions[worker].owned |= moved
            self.handovers = t["handover"] + 1


def _takes(boots: list[dict]):
    """(worker, took) of every hand-over the boots record: at a boot's start (`took`) and to
    its running guest (`took_live`)."""
    for row in boots:
        if row.get("took") is not None:
            yield row.get("worker"), row["took"]
        for t in row.get("took_live") or ():
            yield row.get("worker"), t


def check_handovers(boots: list[dict], workers: int) -> None:
    """ValueError naming the boot when a `took` of an interrupted run's boots cannot be
    replayed: checked before a resume touches the bundle."""
    for row in boots:
        live = row.get("took_live")
        if live is not None and not isinstance(live, list):
            raise ValueError(f"boot {row.get('boot')} of worker {row.get('worker')}: "
                             f"took_live {live!r}")
        for worker, t in _takes([row]):
            if (not isinstance(t, dict)
                    or not all(type(t.get(k)) is int for k in ("first", "end", "step", "handover"))
                    or t["step"] < 1 or type(worker) is not int or not 0 <= worker < workers):
                raise ValueError(f"boot {row.get('boot')} of worker {worker}: took {t!r}")


def _seconds_per_case(session: Session, *, idle: bool = False) -> float | None:
    """The session's pace: seconds per settled test case over its latest results, or since its
    first test case began while it has fewer. The run's average would count the few test
    cases that sleep for a second: it was twice the pace of the plan's end in one run, and the
    worker that took over ended 0.3 s after the one it relieved. An `idle` session's pace ends
    at its last result: the time since (its power-off, a checkpoint) is not its pace."""
    c = session.collector
    if c.first_begin_time is None or c.done_count() == 0:
        return None
    times = c.recent_result_times
    if idle and times:
        end, in_progress = times[-1], 0
    else:
        end, in_progress = time.monotonic() - session.clock0, 1
    if len(times) == times.maxlen:
        return max(1e-3, (end - times[0]) / (len(times) - 1 + in_progress))
    return max(1e-3, (end - c.first_begin_time) / c.done_count())
