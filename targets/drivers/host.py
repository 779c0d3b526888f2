"""Run the runtime binary as an ordinary process on this machine (the `host` target).

>>> m = HostMachine(Path("pcert-runtime"), {"PCERT_NONCE": "0123456789abcdef"})
>>> m.command()
['pcert-runtime']
>>> outcome = m.run(console.write, idle_timeout_s=60, run_timeout_s=600)  # doctest: +SKIP

The process gets a small fixed environment (PATH, LC_ALL=C, HOME = its working directory, plus
the guest variables), stdin from /dev/null, stdout and stderr merged into one pipe, and a fresh
empty working directory that is removed afterwards, so runs do not depend on who starts them.
It leads its own process group: stopping it also stops the test-case children it forked.
With agent=True the process also inherits one end of a socketpair as its agent channel
(PCERT_AGENT=fd:N, docs/agent.md); `agent_connect` gives the other end.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from targets.drivers.base import Machine, Process
from targets.drivers.pipe import PipeProcess
from targets.errors import TargetError

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"


class HostMachine(Machine):
    """The runtime binary run natively; `guest_env` is added to its environment."""

    def __init__(self, binary: Path, guest_env: Mapping[str, str], *, agent: bool = False):
        for name, value in guest_env.items():
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise TargetError(f"guest environment {name!r}={value!r}: a name needs no '=' "
                                  "and neither may hold a NUL byte")
        self.binary = Path(binary)
        self.guest_env = dict(sorted(guest_env.items()))
        self._workdir: Path | None = None
        self.agent = agent
        self._agent_end: socket.socket | None = None

    def command(self) -> list[str]:
        return [str(self.binary)]

    def environment(self, workdir: Path) -> dict[str, str]:
        return {"PATH": DEFAULT_PATH, "LC_ALL": "C", "HOME": str(workdir), **self.guest_env}

    @contextmanager
    def _prepared(self) -> Iterator[None]:
        """Each run starts in a fresh, empty working directory."""
        with self._fresh_workdir("pcert-host-"):
            yield

    def _start(self) -> Process:
        if not self.binary.is_file():
            raise TargetError(f"{self.binary}: runtime binary not found (build it first)")
        if not os.access(self.binary, os.X_OK):
            raise TargetError(f"{self.binary}: not executable (chmod +x, or rebuild it)")
        assert self._workdir is not None
        env = self.environment(self._workdir)
        if not self.agent:
            return PipeProcess([str(self.binary.resolve())], env, self._workdir)
        mine, theirs = socket.socketpair()
        try:
            env["PCERT_AGENT"] = f"fd:{theirs.fileno()}"
            process = PipeProcess([str(self.binary.resolve())], env, self._workdir,
                                  pass_fds=(theirs.fileno(),))
        except BaseException:
            mine.close()
            raise
        finally:
            theirs.close()  # the child's copy only: its end of the channel ends with it
        self._agent_end = mine
        return process

    def agent_connect(self, timeout_s: float) -> socket.socket:
        deadline = time.monotonic() + timeout_s
        while self._agent_end is None:
            if not self.agent or time.monotonic() >= deadline:
                raise TargetError("host: the agent channel was not set up (agent=True, and "
                                  "the process started?)")
            time.sleep(0.01)
        end, self._agent_end = self._agent_end, None
        return end
