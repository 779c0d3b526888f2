"""A started machine process whose console is one pipe: stdout and stderr merged, stdin
/dev/null, read through pexpect's file-descriptor spawn.

>>> process = PipeProcess(["qemu-system-x86_64", "-serial", "stdio", ...])   # doctest: +SKIP
>>> process.read(65536, timeout_s=0.2)                                      # doctest: +SKIP
b'PCERT1 ...'

Both drivers that run a local process use it: the host target's runtime binary and QEMU.
Why a pipe and not a pseudo-terminal: QEMU's 16550 passes the guest's console on one byte
per write(), and every write to a terminal queues kernel work to move the byte to the other
side. With two QEMUs on two cores that work competed with the guests (a -j 2 run of 1,320
test cases took about 10% longer on a terminal). QEMU's stdio chardev needs no terminal.

The process leads its own process group, so Ctrl-C at pcert's terminal does not reach it, and
stopping it also stops what it forked (the host runtime's test-case children). Being in a
session of its own, it would outlive a pcert killed with SIGKILL (a restored QEMU waiting for
its state was found waiting 1.5 h later); so it is started through util-linux's `setpriv
--pdeathsig KILL`, which execs it with a death signal: it is killed when the thread that
started it ends, and that thread waits for it (Machine._run) whenever pcert lives.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pexpect import EOF, TIMEOUT
from pexpect.fdpexpect import fdspawn

from targets.drivers.base import REAP_TIMEOUT_S, TERM_GRACE_S
from targets.errors import TargetError


class PipeProcess:
    """A child process group whose stdout and stderr are one pipe.

    `env` None inherits pcert's environment; `pass_fds` are inherited as they are."""

    def __init__(self, command: list[str], env: dict[str, str] | None = None,
                 cwd: Path | None = None, pass_fds: tuple[int, ...] = ()):
        try:
            self.proc = subprocess.Popen(_dying_with_pcert(command, env), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         env=env, cwd=cwd, start_new_session=True,
                                         pass_fds=pass_fds)
        except OSError as exc:
            raise TargetError(f"{command[0]}: cannot start: {exc.strerror}") from None
        self.console = fdspawn(self.proc.stdout, timeout=None, encoding=None)

    def _exited(self) -> bool:
        # WNOWAIT: learn that it ended without reaping it, so its pid (= the process group id)
        # stays reserved until reap() has cleaned up the group.
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def _read(self, max_bytes: int, timeout_s: float) -> bytes | None:
        """Bytes within timeout_s, None if none came; EOFError when the pipe has ended."""
        try:
            data = self.console.read_nonblocking(max_bytes, timeout=timeout_s)
        except TIMEOUT:
            return None
        except EOF:
            raise EOFError from None
        return data

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        data = self._read(max_bytes, timeout_s)
        if data is None and self._exited():
            # It may have written just before exiting; and a child it forked may hold the pipe
            # open after it ended: look once more, then call the output ended.
            data = self._read(max_bytes, 0)
            if data is None:
                raise EOFError
        return data or b""

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # the group is gone already

    def stop(self) -> None:
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE_S
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._signal_group(signal.SIGKILL)

    def reap(self) -> int | None:
        deadline = time.monotonic() + REAP_TIMEOUT_S
        while not self._exited() and time.monotonic() < deadline:
            time.sleep(0.02)
        # What it forked goes with it.
        self._signal_group(signal.SIGKILL)
        try:
            status = self.proc.wait(timeout=REAP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            status = None
        self.proc.stdout.close()  # the console's fd: the file object owns it
        return status


def _dying_with_pcert(command: list[str], env: dict[str, str] | None) -> list[str]:
    """`command` with a death signal where setpriv is there (the same process: setpriv execs
    it). A command that cannot be found is left as it is: Popen then says so, as before."""
    setpriv = _setpriv()
    path = (os.environ if env is None else env).get("PATH")
    if setpriv is None or shutil.which(command[0], path=path) is None:
        return command
    return [setpriv, "--pdeathsig", "KILL", "--", *command]


@functools.cache
def _setpriv() -> str | None:
    """Where setpriv is: looked up once, not at every boot."""
    return shutil.which("setpriv")
