"""A session boots the image as often as needed to give every test case of its shard a verdict.

LTP's kirk reboots and reschedules only the tests without a result; so does this. After a boot
that stops inside a test case (crash, hang, kernel panic, reset) that test case keeps the reason
as a lost attempt, and the next boot starts at the next test case without a result. Test cases
that lost an attempt are tried once more at the end, each in a boot of its own batch; one that
takes the OS down twice is not tried a third time.

A session owns the test cases of its shard at first. With a `take_over` hook (balance.py) a
session that has nothing left takes over the rest of a slower one's; which session owns a test
case changes only at the guest's `limit` record, so no test case ever has two owners. A guest
that has run its range waits for more (`idle`): what the session takes then, the same guest
runs (`take_live`).

States of one boot, explicitly:

    boot ──▶ running ──▶ ended (end record)          → next fresh test case, or done
             │  ▲   └──▶ stopped (no end record)     → attempt lost by the test case in flight
             │  │        └─ no progress twice        → the rest is given up: UNINITIATED
             ▼  │ more: a range taken from a slower worker, in the same boot
             idle (idle record) ── nothing more ──▶ ended

    session = Session(factory, collector, sink, shard=range(0, n), timeouts=...)
    boots = session.run()
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

from targets.drivers.base import Machine
from targets.errors import TargetError

from .collect import Collector, asked_indexes
from .watchdog import stop_reason

ONLY_MARGIN = 200  # room on the command line for the rest of it (console=, nonce, ...)
MAX_IDLE_BOOTS = 2    # boots in a row that report nothing before the session gives up
HOST_STOP = "interrupted by the host"
TAIL_BYTES = 1 << 20  # of each boot's console, kept to find a panic message (it comes last)


@dataclass
class BootRecord:
    """One boot of the image, as kept in the evidence (boots.jsonl)."""

    worker: int
    boot: int
    env: dict
    reason: str            # powered off | idle timeout | ... (the driver's word)
    stop: str              # "" when the boot printed its end record, else why it stopped
    exit_status: int | None
    console: dict          # {"file", "start", "end"}
    first_output_s: float | None
    wall_s: float
    in_flight: str | None  # the test case that lost an attempt in this boot
    method: str = "cold"   # cold | snapshot | cold (snapshot restore failed: why)
    took: dict | None = None  # test cases taken over from another worker (balance.py)
    took_live: list | None = None  # taken later by the running guest, each as `took`

    def to_json(self) -> dict:
        return asdict(self)


_BOOT_FIELDS = frozenset(BootRecord.__dataclass_fields__)
_RANGE_PARAMS = ("PCERT_FIRST", "PCERT_END", "PCERT_STEP")


def check_boot_row(row: object) -> None:
    """ValueError saying what a resume could not replay in one row of boots.jsonl (its hand-
    overs are balance.check_handovers'): the fields a boot record has, of their types."""
    if not isinstance(row, dict):
        raise ValueError(f"not a JSON object: {row!r:.80}")
    unknown = sorted(set(row) - _BOOT_FIELDS)
    missing = sorted(k for k in ("worker", "boot", "env", "reason", "stop", "console")
                     if k not in row)
    if unknown or missing:
        raise ValueError(f"unknown field {unknown[0]!r}" if unknown else f"no {missing[0]!r}")
    for name, kind in (("worker", int), ("boot", int), ("reason", str), ("stop", str)):
        if type(row[name]) is not kind or (kind is int and row[name] < 0):
            raise ValueError(f"{name} {row[name]!r}")
    env, console = row["env"], row["console"]
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ValueError(f"env {env!r:.80}")
    for name in _RANGE_PARAMS:
        if name in env and not (env[name].isascii() and env[name].isdigit()):
            raise ValueError(f"env {name} {env[name]!r} is not a number")
    if (not isinstance(console, dict)
            or not all(type(console.get(k)) is int for k in ("start", "end"))
            or not 0 <= console["start"] <= console["end"]):
        raise ValueError(f"console {console!r:.80}")


@dataclass
class Timeouts:
    idle_s: float          # silence allowed outside a test case (booting, between cases)
    run_s: float
    case_s: tuple[float, ...] = ()  # per planned test case: silence allowed while it runs

    def idle_for(self, index: int | None) -> float:
        """A hang costs its own test case's timeout, not the longest of the plan."""
        if index is None or index >= len(self.case_s):
            return self.idle_s
        return max(self.idle_s, self.case_s[index])


class Session:
    def __init__(self, machine_for: Callable[[dict[str, str]], Machine], collector: Collector,
                 sink, *, shard: range, timeouts: Timeouts, worker: int = 0,
                 console_name: str = "console.log", clock0: float | None = None,
                 lock: threading.RLock | None = None, append_max: int = 2047):
        self.machine_for = machine_for
        self.collector = collector
        self.sink = sink
        self.shard = shard  # the plan indexes dealt to this worker: every step-th from its start
        self.owned = set(shard)  # the plan indexes this worker gives a verdict (balance.py)
        self.step = shard.step
        self.take_over = None  # callable(session, stop) -> bool: took test cases to run
        self.take_live = None  # callable(session, stop) -> dict | None: `took`, for the idle guest
        self.took: dict | None = None  # what the next boot runs of another worker's (balance.py)
        self.machine: Machine | None = None  # the machine of the boot running now
        self.env: dict[str, str] = {}        # and its run parameters
        self.timeouts = timeouts
        self.worker = worker
        self.console_name = console_name
        self.clock0 = time.monotonic() if clock0 is None else clock0
        self.boots: list[BootRecord] = []
        self.last_stop = "not started"
        self.on_boot = None  # callable(BootRecord, running: bool): checkpoints
        self.lock = lock or threading.RLock()  # shared with whoever reads the collector
        self._boot_bytes = bytearray()
        self._idle_boots = 0
        self._running: BootRecord | None = None  # the boot running now, as checkpointed
        self._idles_answered = 0
        # PCERT_ONLY must fit on the target's command line (kernel or semihosting).
        self.max_only_chars = max(64, append_max - ONLY_MARGIN)

    def _mine(self, indexes: list[int]) -> list[int]:
        return [i for i in indexes if i in self.owned]

    def fresh(self) -> list[int]:
        """Owned test cases no boot has begun yet, in plan order."""
        c = self.collector
        return sorted(i for i in self.owned if not c.has_started(i) and not c.is_settled(i))

    def _next_env(self) -> dict[str, str] | None:
        todo = self._mine(self.collector.unsettled())
        if not todo:
            return None
        fresh = self.fresh()
        if fresh:
            run = progression(fresh, self.step)
            return {"PCERT_FIRST": str(run.start), "PCERT_END": str(run.stop),
                    **self._step_env()}
        ids, length = [], 0
        for i in todo:  # retries: a batch that fits on the command line
            tc = self.collector.planned_ids[i]
            if ids and length + len(tc) + 1 > self.max_only_chars:
                break
            ids.append(tc)
            length += len(tc) + 1
        return {"PCERT_FIRST": str(todo[0]), "PCERT_END": str(todo[-1] + 1),
                "PCERT_ONLY": ",".join(ids)}

    def _step_env(self) -> dict[str, str]:
        return {"PCERT_STEP": str(self.step)} if self.step > 1 else {}

    def _asked(self, env: dict[str, str]) -> list[int]:
        """The test cases a boot with `env` was asked to run (and did not hand over)."""
        asked = [i for run in self.collector.ranges(env) for i in run if i in self.owned]
        if "PCERT_ONLY" in env:
            only = asked_indexes(env, self.collector.planned_ids)
            return [i for i in asked if i in only]
        return [i for i in asked if self.collector.attempts(i) == 0]

    def run(self, stop: threading.Event | None = None) -> list[BootRecord]:
        """Boot until every test case the session owns is settled (or `stop` is set); then,
        with a `take_over` hook, take over test cases of another session and go on."""
        stop = stop or threading.Event()
        while not stop.is_set():
            env = self._next_env()
            if env is None:
                if self.take_over is not None and self.take_over(self, stop):
                    continue
                break
            record = self._boot(env, stop)
            if record.stop == HOST_STOP:
                # The boot proves nothing about the guest; keep its record, and stop.
                record.reason = "interrupted"
                self.boots.append(record)
                if self.on_boot:
                    self.on_boot(record, False)
                break
            self._after_boot(env, record)
        return self.boots

    def replay(self, boots: list[dict], console: bytes) -> None:
        """Rebuild the collector from an interrupted run: its recorded boots, then whatever the
        boot running at the interruption printed (that boot loses nothing: the host stopped
        it, not the guest)."""
        c = self.collector
        for row in sorted(boots, key=lambda b: b["boot"]):
            span = row["console"]
            # "running": the boot the interruption cut short owns the rest of the log.
            end = len(console) if row["reason"] == "running" else span["end"]
            c.start_boot(row["boot"], asked_indexes(row["env"], c.planned_ids))
            c.feed(console[span["start"]:end], now=0.0)
            record = BootRecord(**row)
            if row["reason"] in ("running", "interrupted"):
                c.abandon_boot()
                record.reason, record.stop = "interrupted", HOST_STOP
                record.console = dict(span, end=end)
                self.boots.append(record)
                continue
            if row["stop"]:
                c.stop_boot(row["stop"], span["end"])
            self._after_boot(row["env"], record)

    def _after_boot(self, env: dict[str, str], record: BootRecord) -> None:
        self.boots.append(record)
        if self.on_boot:
            self.on_boot(record, False)
        if record.stop and not self.collector.made_progress:
            self._idle_boots += 1
        else:
            self._idle_boots = 0
        if record.stop == "":
            # The guest ended normally: what it was asked to run and did not report, it will
            # not report if asked again.
            for i in self._asked(env):
                if not self.collector.is_settled(i):
                    self.collector.give_up(i, "the guest ended without reporting it")
        if self._idle_boots >= MAX_IDLE_BOOTS:
            for i in self._mine(self.collector.unsettled()):
                self.collector.give_up(i, f"the machine stopped before running it "
                                          f"({MAX_IDLE_BOOTS} boots in a row: {record.stop})")

    def _boot(self, env: dict[str, str], stop: threading.Event) -> BootRecord:
        collector, sink = self.collector, self.sink
        boot = len(self.boots)
        collector.start_boot(boot, asked_indexes(env, collector.planned_ids))
        start = sink.size
        self._boot_bytes.clear()
        took, self.took = self.took, None
        self._idles_answered = 0
        self._running = BootRecord(worker=self.worker, boot=boot, env=dict(env), reason="running",
                                   stop="", exit_status=None,
                                   console={"file": self.console_name, "start": start, "end": start},
                                   first_output_s=None, wall_s=0.0, in_flight=None, took=took)
        if self.on_boot:  # a checkpoint naming this boot, so a killed run can be resumed
            self.on_boot(self._running, True)
        machine = self.machine_for(env)
        with self.lock:
            self.machine, self.env = machine, dict(env)

        def on_output(data: bytes) -> None:
            with self.lock:
                sink.write(data)
                collector.feed(data, now=time.monotonic() - self.clock0)
            self._boot_bytes += data
            if len(self._boot_bytes) > 2 * TAIL_BYTES:  # trimmed now and then, not every chunk
                del self._boot_bytes[:-TAIL_BYTES]

        outcome = machine.run(on_output,
                              idle_timeout_s=lambda: self.timeouts.idle_for(collector.current),
                              run_timeout_s=self.timeouts.run_s,
                              until=lambda: self._over(stop))
        with self.lock:
            self.machine = None
            return self._stopped(env, boot, start, outcome, stop,
                                 method=getattr(machine, "boot_method", "cold"), took=took)

    def _over(self, stop: threading.Event) -> bool:
        """Whether the boot is over (the machine's question, between reads). A guest that has
        run its range and waits for more (an `idle` record) is answered first."""
        if self.collector.ended or stop.is_set():
            return True
        if self.collector.idles > self._idles_answered:
            self._idles_answered = self.collector.idles
            self._answer_idle(stop)
        return False

    def _answer_idle(self, stop: threading.Event) -> None:
        """More test cases for the idle guest (balance.py), sealed in a checkpoint that names
        them before the guest is told; or nothing more, and the guest ends its run."""
        send = getattr(self.machine, "send_params", None)
        if send is None:
            return  # no channel to answer on: the guest ends after its wait
        with self.lock:  # another worker's reader may hand test cases over meanwhile
            wants = self.take_live is not None and not self.fresh()
        took = self.take_live(self, stop) if wants else None
        params = {"PCERT_NONCE": self.collector.nonce}
        if took is not None:
            self._running.took_live = [*(self._running.took_live or []), took]
            if self.on_boot:
                self.on_boot(self._running, True)
            params.update(PCERT_FIRST=str(took["first"]), PCERT_END=str(took["end"]),
                          PCERT_STEP=str(took["step"]))
        try:
            send(params)
        except (OSError, TargetError):
            pass  # the guest ends after its wait; what it took, a later boot runs

    def _stopped(self, env, boot, start, outcome, stop, method: str,
                 took: dict | None) -> BootRecord:
        collector, sink = self.collector, self.sink
        why, in_flight = "", None
        if stop.is_set() and not collector.ended:
            collector.abandon_boot()
            why = HOST_STOP
        elif not collector.ended:
            why = stop_reason(outcome, bytes(self._boot_bytes),
                              idle_timeout_s=self.timeouts.idle_for(collector.current),
                              run_timeout_s=self.timeouts.run_s)
            index = collector.stop_boot(why, sink.size)
            in_flight = collector.planned_ids[index] if index is not None else None
        self.last_stop = why or outcome.reason
        return BootRecord(worker=self.worker, boot=boot, env=dict(env),
                          reason=outcome.reason, stop=why, exit_status=outcome.exit_status,
                          console={"file": self.console_name, "start": start, "end": sink.size},
                          first_output_s=outcome.first_output_s, wall_s=round(outcome.wall_s, 3),
                          in_flight=in_flight, method=method, took=took,
                          took_live=self._running.took_live)


def progression(indexes: list[int], step: int) -> range:
    """The longest run at the start of `indexes` (ascending) that is every step-th index: what
    one boot with PCERT_FIRST, PCERT_END and PCERT_STEP runs.

    >>> progression([3, 5, 7, 10], 2)
    range(3, 8, 2)
    """
    end = 1
    while end < len(indexes) and indexes[end] == indexes[0] + end * step:
        end += 1
    return range(indexes[0], indexes[end - 1] + 1, step)
