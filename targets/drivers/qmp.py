"""A QEMU Machine Protocol client: just what saving and restoring a VM state needs.

    qmp = Qmp.connect(workdir / "qmp.sock", timeout_s=10)
    qmp.command("stop")
    qmp.pass_fd("state", fd)                  # the file travels over the socket, no shell
    qmp.command("migrate", uri="fd:state")
    qmp.wait_migration(timeout_s=60)
    qmp.close()

QEMU's `exec:` migration URIs run a shell command line; handing QEMU an open file descriptor
(`getfd` with SCM_RIGHTS, then `fd:NAME`) does the same without one. Every wait is bounded:
a QEMU that stops answering raises QmpError within the caller's timeout.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from targets.errors import TargetError

LINE_MAX = 1 << 20  # a QMP reply is one line; a longer one is not QEMU talking


class QmpError(TargetError):
    """QEMU refused a command, went away, or did not answer in time."""


class Qmp:
    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._buffer = b""

    @classmethod
    def connect(cls, path: Path, timeout_s: float) -> "Qmp":
        """Connect to the monitor socket QEMU creates as it starts; negotiate capabilities."""
        deadline = time.monotonic() + timeout_s
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(str(path))
                break
            except OSError as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise QmpError(f"QEMU monitor {path}: cannot connect: "
                                   f"{exc.strerror or exc}") from None
                time.sleep(0.01)
        qmp = cls(sock)
        try:
            greeting = qmp._reply(deadline)
            if "QMP" not in greeting:
                raise QmpError(f"QEMU monitor {path}: no QMP greeting: {greeting!r:.200}")
            qmp.command("qmp_capabilities", timeout_s=max(0.1, deadline - time.monotonic()))
        except BaseException:
            qmp.close()
            raise
        return qmp

    def command(self, name: str, *, timeout_s: float = 10.0, fd: int | None = None,
                **arguments) -> dict:
        """Run one command; its `return` value. `fd` goes along as SCM_RIGHTS (for getfd)."""
        message = {"execute": name, **({"arguments": arguments} if arguments else {})}
        data = json.dumps(message).encode() + b"\n"
        deadline = time.monotonic() + timeout_s
        try:
            self._sock.settimeout(timeout_s)
            if fd is None:
                self._sock.sendall(data)
            else:
                socket.send_fds(self._sock, [data], [fd])
        except OSError as exc:
            raise QmpError(f"QEMU monitor: {name}: {exc.strerror or exc}") from None
        reply = self._reply(deadline)
        if "error" in reply:
            error = reply["error"]
            raise QmpError(f"QEMU refused {name}: {error.get('desc', error)}")
        return reply.get("return", {})

    def pass_fd(self, name: str, fd: int) -> None:
        """Give QEMU an open file under `name`, for a `fd:NAME` URI."""
        self.command("getfd", fd=fd, fdname=name)

    def wait_migration(self, timeout_s: float) -> dict:
        """Poll until the migration (outgoing or incoming) completed; its final status."""
        deadline = time.monotonic() + timeout_s
        while True:
            status = self.command("query-migrate", timeout_s=max(0.1, deadline - time.monotonic()))
            state = status.get("status")
            if state == "completed":
                return status
            if state in ("failed", "cancelled"):
                raise QmpError(f"migration {state}: {status.get('error-desc', 'no reason given')}")
            if time.monotonic() >= deadline:
                raise QmpError(f"migration not completed after {timeout_s:.0f} s (status {state})")
            time.sleep(0.01)

    def close(self) -> None:
        self._sock.close()

    def _reply(self, deadline: float) -> dict:
        """The next message that is not an asynchronous event."""
        while True:
            line = self._line(deadline)
            try:
                message = json.loads(line)
            except ValueError:
                raise QmpError(f"QEMU monitor: not JSON: {line[:200]!r}") from None
            if not isinstance(message, dict):
                raise QmpError(f"QEMU monitor: unexpected message {line[:200]!r}")
            if "event" not in message:
                return message

    def _line(self, deadline: float) -> bytes:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QmpError("QEMU monitor: no answer in time")
            if len(self._buffer) > LINE_MAX:
                raise QmpError("QEMU monitor: a reply longer than 1 MiB")
            try:
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(65536)
            except socket.timeout:
                raise QmpError("QEMU monitor: no answer in time") from None
            except OSError as exc:
                raise QmpError(f"QEMU monitor: {exc.strerror or exc}") from None
            if not chunk:
                raise QmpError("QEMU monitor: connection closed (QEMU ended)")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line
