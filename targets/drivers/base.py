"""What every machine driver offers: start the image, stream its console, stop it, say why.

>>> chunks = []
>>> outcome = machine.run(chunks.append, idle_timeout_s=60, run_timeout_s=600,
...                       until=lambda: b"end" in b"".join(chunks))      # doctest: +SKIP
>>> outcome.reason, outcome.exit_status                                  # doctest: +SKIP
('powered off', 0)

`run` hands every byte to `on_output` within a few milliseconds (`GATHER_S`), and never waits
unboundedly: the machine is stopped (SIGTERM, then SIGKILL) when no byte arrives for
`idle_timeout_s`, when the whole run exceeds `run_timeout_s`, or when `until()` has been true
for `end_grace_s` without the machine ending by itself (the caller saw the end record;
power-off is only a formality). The process is always reaped, also when `on_output` raises.

Outcome reasons:

- "powered off": the emulator exited by itself with status 0 (guest power-off; under
  -no-reboot also a guest reset, e.g. a kernel panic with panic=-1: the console tells which).
- "exited": the process ended by itself otherwise (a host binary's exit; QEMU's error exit).
- "idle timeout", "run timeout": the driver stopped it for that reason.
- "killed": the driver stopped it after `until()` and the grace period, or a signal from
  elsewhere ended it.

`exit_status` is the exit code, or minus the signal number when a signal ended the process
(as subprocess does), or None when it could not be learned.
"""

from __future__ import annotations

import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field
from typing import Protocol

from targets.errors import TargetError

POWERED_OFF = "powered off"
EXITED = "exited"
IDLE_TIMEOUT = "idle timeout"
RUN_TIMEOUT = "run timeout"
KILLED = "killed"
REASONS = (POWERED_OFF, EXITED, IDLE_TIMEOUT, RUN_TIMEOUT, KILLED)

# Longest single wait, so until() and the deadlines are looked at a few times a second.
POLL_S = 0.2
READ_SIZE = 1 << 16
# QEMU's serial port passes the guest's console on a byte or a few at a time: a reader woken
# for each trickle spent about a core-second per thousand test cases. After a small chunk it
# lets GATHER_S of output collect first; a flood (a chunk of GATHER_BELOW or more) is read on
# at once. A result thus reaches the collector at most GATHER_S late; 20 ms rather than 5 ms
# halved the readers' CPU (0.36 -> 0.21 core-s per worker of a 1,320-case -j 2 run), which
# the two guests need when they share two cores.
GATHER_S = 0.02
GATHER_BELOW = 4096
# How long a stopped process gets between SIGTERM and SIGKILL, and to be reaped after.
TERM_GRACE_S = 2.0
REAP_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RunOutcome:
    """How a run ended; times are host monotonic seconds since the process started."""

    reason: str
    exit_status: int | None
    wall_s: float
    first_output_s: float | None
    command: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"reason": self.reason, "status": self.exit_status,
                "wall_s": round(self.wall_s, 3),
                "first_output_s": None if self.first_output_s is None
                else round(self.first_output_s, 3)}


class Process(Protocol):
    """A started machine as the run loop sees it; one adapter per driver."""

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Bytes that arrived within timeout_s (b"" if none); EOFError once output has ended."""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it is still alive after TERM_GRACE_S."""

    def reap(self) -> int | None:
        """Wait (bounded) for the end, killing if needed; exit status or minus the signal."""


class Machine(ABC):
    """A way to run an image. Subclasses give the command and start the process."""

    @abstractmethod
    def command(self) -> list[str]:
        """The command line that runs the image, one argument per element."""

    @abstractmethod
    def _start(self) -> Process:
        """Start the process of `command()`."""

    def agent_connect(self, timeout_s: float) -> socket.socket:
        """The host end of the running machine's agent channel (docs/agent.md), for a machine
        made with agent=True; waits at most timeout_s for it to be there."""
        raise TargetError(f"{type(self).__name__}: this machine has no agent channel")

    def tools_json(self) -> dict[str, dict[str, str]]:
        """The tools that run the image, for the bundle manifest's `tools` (none natively)."""
        return {}

    def _reason_for_exit(self, status: int | None) -> str:
        """Why the process ended by itself, from its exit status."""
        if status is None or status < 0:
            return KILLED
        return EXITED

    def run(self, on_output: Callable[[bytes], None], *,
            idle_timeout_s: float | Callable[[], float],
            run_timeout_s: float, until: Callable[[], bool] | None = None,
            end_grace_s: float = 3.0) -> RunOutcome:
        """Run the image to its end, streaming its console to `on_output`.

        `idle_timeout_s` may be a function, asked again at every wait: the caller knows which
        test case is running and how long it may stay silent."""
        with self._prepared():
            return self._run(on_output, idle_timeout_s=idle_timeout_s,
                             run_timeout_s=run_timeout_s, until=until, end_grace_s=end_grace_s)

    @contextmanager
    def _prepared(self) -> Iterator[None]:
        """What a driver sets up around one run (a fresh working directory); nothing here."""
        yield

    @contextmanager
    def _fresh_workdir(self, prefix: str) -> Iterator[Path]:
        """A temporary working directory for one run, as `self._workdir`, removed after it."""
        with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as workdir:
            self._workdir = Path(workdir)
            try:
                yield self._workdir
            finally:
                self._workdir = None

    def _run(self, on_output: Callable[[bytes], None], *,
             idle_timeout_s: float | Callable[[], float], run_timeout_s: float,
             until: Callable[[], bool] | None, end_grace_s: float) -> RunOutcome:
        idle_of = idle_timeout_s if callable(idle_timeout_s) else (lambda: idle_timeout_s)
        command = self.command()
        start = time.monotonic()
        process = self._start()
        first_output: float | None = None
        last_output = start
        done_at: float | None = None
        stopped_because: str | None = None
        status: int | None = None
        try:
            while True:
                now = time.monotonic()
                idle_timeout_s = idle_of()
                if done_at is None and until is not None and until():
                    done_at = now
                if now - start >= run_timeout_s:
                    stopped_because = RUN_TIMEOUT
                elif now - last_output >= idle_timeout_s:
                    stopped_because = IDLE_TIMEOUT
                elif done_at is not None and now - done_at >= end_grace_s:
                    stopped_because = KILLED
                if stopped_because is not None:
                    break
                deadlines = [start + run_timeout_s, last_output + idle_timeout_s]
                if done_at is not None:
                    deadlines.append(done_at + end_grace_s)
                wait = max(0.0, min(POLL_S, min(deadlines) - now))
                try:
                    chunk = process.read(READ_SIZE, wait)
                except EOFError:
                    break
                if chunk:
                    last_output = time.monotonic()
                    if first_output is None:
                        first_output = last_output - start
                    on_output(chunk)
                    # Let more of a small chunk's output gather, unless the guest has ended or
                    # waits for the host (until() tells, and answers it).
                    if len(chunk) < GATHER_BELOW and not (until is not None and until()):
                        time.sleep(GATHER_S)
        except BaseException:
            stopped_because = stopped_because or KILLED
            raise
        finally:
            if stopped_because is not None:
                process.stop()
            status = process.reap()
        reason = stopped_because or self._reason_for_exit(status)
        return RunOutcome(reason=reason, exit_status=status, wall_s=time.monotonic() - start,
                          first_output_s=first_output, command=command)
