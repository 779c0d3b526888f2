"""Boot a kernel and image in QEMU and stream its serial console (a pipe: drivers/pipe.py).

>>> from targets.definition import load_target
>>> m = QemuMachine(load_target("linux-x86_64"), Path("vmlinuz"), Path("initramfs.cpio"),
...                 {"PCERT_NONCE": "0123456789abcdef"})
>>> m.command()[-1]
'console=ttyS0 quiet panic=-1 cryptomgr.notests PCERT_NONCE=0123456789abcdef'
>>> outcome = m.run(console.write, idle_timeout_s=60, run_timeout_s=600)  # doctest: +SKIP

The command line comes from the target's `machine.args` template: placeholders are replaced
inside each element, never joined into a shell line. Guest environment variables go into the
guest's command line (`{append}`) as NAME=value: a Linux kernel hands them to /init as its
environment; under semihosting they are the program's arguments. This driver serves the
"qemu-linux" and "qemu-generic" kinds (the kernel is optional for the latter);
targets/drivers/semihost.py derives the "qemu-semihost" one.

With agent=True the target's `agent_args` add the agent channel (docs/agent.md): a guest device
(`agent_device`, handed to the guest as PCERT_AGENT) whose host end is a Unix socket QEMU serves
in a fresh directory of each run; `agent_connect` connects to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from targets.definition import Target
from targets.drivers.base import POWERED_OFF, Machine, Process
from targets.drivers.pipe import PipeProcess
from targets.errors import TargetError
from targets.protocol import ENV_VALUE

# No dot in the name (the kernel would take it for a module parameter), nothing that needs
# quoting in the value (the kernel splits its command line at spaces).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class QemuMachine(Machine):
    """One QEMU invocation of a target with a kernel (or None), an image and guest env vars."""

    def __init__(self, target: Target, kernel: Path | None, image: Path | None,
                 guest_env: Mapping[str, str], *, agent: bool = False):
        if target.machine.qemu is None:
            raise TargetError(f"target {target.name} has no QEMU machine (kind {target.kind})")
        if agent:
            if not target.machine.agent_args:
                raise TargetError(f"target {target.name} has no agent channel (machine."
                                  "agent_args, docs/agent.md)")
            guest_env = {**guest_env, "PCERT_AGENT": target.machine.agent_device}
        self.agent = agent
        self._workdir: Path | None = None
        for name, value in guest_env.items():
            if not _ENV_NAME.fullmatch(name):
                raise TargetError(f"guest environment name {name!r}: use letters, digits and _ "
                                  "(no dots: the kernel would take it for a module parameter)")
            if not ENV_VALUE.fullmatch(value):
                raise TargetError(f"guest environment {name}={value!r}: the value must be "
                                  "printable ASCII without spaces or double quotes")
        self.target = target
        self.kernel = None if kernel is None else Path(kernel)
        self.image = None if image is None else Path(image)
        self.guest_env = dict(sorted(guest_env.items()))

    def append_line(self) -> str:
        """The guest command line: the target's `append` with the guest env filled in."""
        env = " ".join(f"{k}={v}" for k, v in self.guest_env.items())
        line = " ".join(self.target.machine.append.replace("{guest_env}", env).split())
        limit = self.target.machine.append_max
        if len(line) > limit:
            raise TargetError(f"guest command line is {len(line)} bytes, the limit of target "
                              f"{self.target.name} is {limit}: pass fewer or shorter guest "
                              "variables (PCERT_ONLY?)")
        return line

    def image_argument(self) -> str:
        """What {image} becomes on the command line."""
        return "" if self.image is None else str(self.image)

    def command(self) -> list[str]:
        """QEMU's argv: `machine.qemu` then `machine.args` with placeholders replaced."""
        values = {"{kernel}": "" if self.kernel is None else str(self.kernel),
                  "{append}": self.append_line(), "{image}": self.image_argument()}
        args = []
        for template in self.target.machine.args:
            for placeholder, path in (("{image}", self.image), ("{kernel}", self.kernel)):
                if placeholder in template and path is None:
                    raise TargetError(f"target {self.target.name} needs a "
                                      f"{placeholder.strip('{}')}: {template!r}")
            for placeholder, value in values.items():
                template = template.replace(placeholder, value)
            args.append(template)
        if self.agent:  # the socket's directory exists only while running: a placeholder before
            socket_path = str(self._workdir / "agent.sock") if self._workdir else "{agent_socket}"
            args += [a.replace("{agent_socket}", socket_path) for a in self.target.machine.agent_args]
        return [self.target.machine.qemu, *args]

    @contextmanager
    def _prepared(self) -> Iterator[None]:
        """An agent run gets a fresh directory for its channel's socket (short: /tmp)."""
        if not self.agent:
            yield
            return
        with self._fresh_workdir("pcert-agent-"):
            yield

    def agent_connect(self, timeout_s: float) -> socket.socket:
        """Connect to QEMU's agent socket, which it creates as it starts."""
        deadline = time.monotonic() + timeout_s
        while True:
            workdir = self._workdir
            if self.agent and workdir is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(str(workdir / "agent.sock"))
                    return sock
                except OSError as exc:
                    sock.close()
                    why = exc.strerror or str(exc)
            else:
                why = "the machine is not running"
            if time.monotonic() >= deadline:
                raise TargetError(f"{self.target.name}: cannot connect to the agent channel: {why}")
            time.sleep(0.05)

    def _executable(self) -> str:
        found = shutil.which(self.target.machine.qemu)
        if found is None:
            packages = " ".join(self.target.machine.packages) or self.target.machine.qemu
            raise TargetError(f"{self.target.machine.qemu} not found: apt-get install {packages}")
        return found

    def version(self) -> str:
        """First line of `qemu-system-... --version`."""
        result = subprocess.run([self._executable(), "--version"], capture_output=True,
                                text=True, timeout=60)
        lines = result.stdout.splitlines()
        if result.returncode != 0 or not lines:
            raise TargetError(f"{self.target.machine.qemu} --version failed: "
                              f"{result.stderr.strip()}")
        return lines[0].strip()

    def sha256(self) -> str:
        """sha256 of the QEMU binary, symlinks resolved."""
        digest = hashlib.sha256()
        with open(os.path.realpath(self._executable()), "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        return digest.hexdigest()

    def to_json(self) -> dict[str, str]:
        """For the bundle manifest's tools.qemu."""
        return {"command": self.target.machine.qemu, "version": self.version(),
                "sha256": self.sha256()}

    def tools_json(self) -> dict[str, dict[str, str]]:
        return {"qemu": self.to_json()}

    def _start(self, cwd: Path | None = None) -> Process:
        executable = self._executable()
        for what, path in (("kernel", self.kernel), ("image", self.image)):
            if path is not None and not path.is_file():
                raise TargetError(f"{path}: {what} not found")
        return PipeProcess([executable, *self.command()[1:]], cwd=cwd)

    def _reason_for_exit(self, status: int | None) -> str:
        # QEMU ends by itself with 0 when the guest powers off (or resets, under -no-reboot).
        if status == 0:
            return POWERED_OFF
        return super()._reason_for_exit(status)
