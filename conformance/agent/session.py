"""Boot the prepared image in agent mode and hand out an `Agent` (docs/agent.md).

    session = AgentSession(machine_for, nonce, console_sink, timeouts=AgentTimeouts(...))
    agent = session.boot()              # waits for the start record, connects the channel
    agent.call("strlen", b"abc")        # {'ret': b'3'}
    boot = session.shutdown()           # quit, wait for the power-off; one AgentBoot record

The machine runs in a thread through the driver's ordinary `run` loop, so the console streams
into the bundle's sink as it arrives and the driver's watchdogs apply: a boot ends when no
progress was made for `idle_s` (console output *or* an agent reply counts), after `run_s`, or
when QEMU exits (a kernel panic under panic=-1). Every wait is bounded. When the channel is
lost during a call, the AgentLost the caller gets names why the machine stopped, if it did
(`kernel panic: ...`), read from the console as for the behavioural boots.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from conformance.session import TAIL_BYTES  # the console tail kept to find a panic
from conformance.watchdog import stop_reason
from targets.drivers.base import Machine, RunOutcome
from targets.errors import TargetError
from targets.protocol import RecordParser

from . import AgentError, AgentLost, Arg
from .transport import CALL_TIMEOUT_S, Transport

STOP_WAIT_S = 3.0      # how long a lost call waits for the machine to show why it stopped
END_GRACE_S = 3.0      # after the end record (or a lost channel): power off, or be stopped
END_WAIT_S = 30.0      # the longest shutdown() waits for the machine's thread


@dataclass
class AgentTimeouts:
    boot_s: float                       # machine start to start record
    idle_s: float                       # no console output and no reply for this long: hung
    run_s: float                        # one boot at most
    call_s: float = CALL_TIMEOUT_S      # one reply at most


@dataclass
class AgentBoot:
    """One agent-mode boot, as kept in the manifest's `differential.boots`."""

    boot: int
    reason: str                  # the driver's word (powered off, killed, idle timeout, ...)
    stop: str                    # "" when the guest printed its end record, else why not
    exit_status: int | None
    console: dict                # {"file", "start", "end"} in the bundle
    ready_s: float | None        # machine start to the channel being usable
    wall_s: float
    calls: int
    busy_s: float                # time spent in calls
    method: str = "cold"         # cold | snapshot | cold (snapshot restore failed: why)

    def to_json(self) -> dict:
        return asdict(self)


class _Booted:
    """The `Agent` for one boot: the transport, with the machine's stop reason added to a loss."""

    def __init__(self, session: "AgentSession", transport: Transport):
        self._session, self.transport = session, transport

    def call(self, op: str, *args: Arg) -> dict[str, bytes]:
        try:
            reply = self.transport.call(op, *args)
        except AgentLost as exc:
            raise AgentLost(self._session.explain(str(exc))) from None
        self._session.last_reply = time.monotonic()
        return reply


class AgentSession:
    """Boots one machine at a time; `machine_for(env)` makes it (with agent=True)."""

    def __init__(self, machine_for: Callable[[dict[str, str]], Machine], nonce: str, sink, *,
                 timeouts: AgentTimeouts, console_name: str = "console.log",
                 clock0: float | None = None, transcript=None):
        self.machine_for = machine_for
        self.nonce = nonce
        self.sink = sink                  # .write(bytes), .size
        self.transcript = transcript      # the agent channel's bytes (agent.log), or None
        self.timeouts = timeouts
        self.console_name = console_name
        self.clock0 = time.monotonic() if clock0 is None else clock0
        self.boots: list[AgentBoot] = []
        self.last_reply = 0.0
        self._parser = RecordParser(nonce)
        self._reset()

    def _reset(self) -> None:
        self._machine: Machine | None = None
        self._thread: threading.Thread | None = None
        self._outcome: RunOutcome | None = None
        self._error: BaseException | None = None
        self._transport: Transport | None = None
        self._start = None
        self._end = None
        self._done = threading.Event()    # tells the run loop to stop the machine
        self._ended = threading.Event()   # the run loop has returned
        self._tail = bytearray()
        self._console_start = 0
        self._last_output = 0.0
        self._t0 = 0.0
        self._ready_s: float | None = None

    # -- the machine's thread ------------------------------------------------------------------

    def _on_output(self, data: bytes) -> None:
        self.sink.write(data)
        self._last_output = time.monotonic()
        self._tail += data
        if len(self._tail) > 2 * TAIL_BYTES:
            del self._tail[:-TAIL_BYTES]
        for record in self._parser.feed(data):
            if record.kind == "start" and self._start is None:
                self._start = record
            elif record.kind == "end":
                self._end = record

    def _idle_limit(self) -> float:
        # The driver measures silence on the console; a reply is progress too.
        return self.timeouts.idle_s + max(0.0, self.last_reply - self._last_output)

    def _run(self, machine: Machine) -> None:
        try:
            self._outcome = machine.run(self._on_output, idle_timeout_s=self._idle_limit,
                                        run_timeout_s=self.timeouts.run_s,
                                        until=lambda: self._done.is_set() or self._end is not None,
                                        end_grace_s=END_GRACE_S)
        except BaseException as exc:  # noqa: BLE001 - reported by boot()/shutdown()
            self._error = exc
        finally:
            self._ended.set()

    # -- boots -----------------------------------------------------------------------------------

    def boot(self) -> _Booted:
        """Start a boot; return its Agent once the guest's start record says mode=agent and the
        channel is connected. AgentLost (after shutting the boot down) when that fails."""
        if self._thread is not None:
            raise RuntimeError("AgentSession.boot(): the previous boot is still running")
        self._reset()
        if self.boots:
            self._parser.new_boot()
        self._console_start = self.sink.size
        self._machine = machine = self.machine_for({"PCERT_MODE": "agent"})
        self._t0 = self._last_output = self.last_reply = time.monotonic()
        self._thread = threading.Thread(target=self._run, args=(machine,), daemon=True,
                                        name="pcert-agent-machine")
        self._thread.start()
        deadline = self._t0 + self.timeouts.boot_s
        while self._start is None and not self._ended.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        problem = None
        if self._start is None:
            problem = (f"no start record within {self.timeouts.boot_s:g} s" if not self._ended.is_set()
                       else "the machine stopped before its start record")
        elif self._start.fields.get("mode") != "agent":
            problem = "the image's runtime has no agent mode (its start record has no mode=agent)"
        else:
            try:
                sock = machine.agent_connect(max(0.1, deadline - time.monotonic()))
                self._transport = Transport(sock, self.nonce, timeout_s=self.timeouts.call_s,
                                            transcript=self.transcript)
            except TargetError as exc:
                problem = str(exc)
        if problem is not None:
            self.shutdown(quit=False)
            raise AgentLost(self.explain(f"agent boot failed: {problem}", wait=False))
        self._ready_s = round(time.monotonic() - self._t0, 3)
        return _Booted(self, self._transport)

    def explain(self, reason: str, *, wait: bool = True) -> str:
        """`reason`, with why the machine stopped if it did (waiting a moment for it)."""
        if wait:
            self._ended.wait(STOP_WAIT_S)
        why = self._stop_reason()
        tail = bytes(self._tail[-600:]).decode("ascii", "replace")
        if "pcert: " in tail:  # the runtime's own complaint (bad PCERT_AGENT, ...) says more
            why = tail[tail.rindex("pcert: "):].splitlines()[0].strip()
        return f"{reason}; {why}" if why else reason

    def _stop_reason(self) -> str:
        if not self._ended.is_set() or self._outcome is None or self._end is not None:
            return ""
        return stop_reason(self._outcome, bytes(self._tail), idle_timeout_s=self.timeouts.idle_s,
                           run_timeout_s=self.timeouts.run_s)

    def shutdown(self, *, quit: bool = True) -> AgentBoot:
        """End the boot: `quit` asks the guest to power off, otherwise (a lost channel) the
        machine is stopped. Waits (bounded) for the machine; returns the boot's record."""
        transport = self._transport
        if transport is not None:
            if quit and transport.lost is None:
                transport.quit()
            transport.close()
        self._done.set()  # the run loop gives the machine END_GRACE_S to power off, then stops it
        if self._thread is not None:
            self._thread.join(END_WAIT_S)
        outcome = self._outcome
        stop = "" if self._end is not None else (self._stop_reason() or "stopped by the host")
        record = AgentBoot(
            boot=len(self.boots),
            reason=outcome.reason if outcome else "not started",
            stop=stop, exit_status=outcome.exit_status if outcome else None,
            console={"file": self.console_name, "start": self._console_start, "end": self.sink.size},
            ready_s=self._ready_s, wall_s=round(time.monotonic() - self._t0, 3),
            calls=transport.calls if transport else 0,
            busy_s=round(transport.busy_s, 3) if transport else 0.0,
            method=getattr(self._machine, "boot_method", "cold"))
        self.boots.append(record)
        error = self._error
        self._thread = None
        if error is not None and not isinstance(error, Exception):
            raise error  # KeyboardInterrupt and the like, from the machine's thread
        return record


__all__ = ["AgentBoot", "AgentError", "AgentLost", "AgentSession", "AgentTimeouts"]
