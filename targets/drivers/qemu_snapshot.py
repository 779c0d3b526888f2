"""QEMU machines that save a booted guest's state, and that start from a saved state.

A cold boot under TCG costs 2-3 s; restoring a saved state about 0.1 s. The state is saved
while the runtime waits for its run parameters (PCERT_PARAMS, docs/protocol.md), so each
restored copy then receives its own nonce and shard over the agent channel:

    saver = SavingQemuMachine(target, kernel, image, nonce="00112233aabbccdd", ram=dir / "ram")
    state = saver.save(dir / "state", timeout_s=60)        # targets/snapshot.py calls this
    machine = RestoringQemuMachine(target, kernel, image, {"PCERT_NONCE": ...}, snapshot=snap)
    outcome = machine.run(console.write, idle_timeout_s=60, run_timeout_s=600)

Both boots have the same devices (the agent channel and a QMP monitor are always there), which
is what restoring requires. A restore that fails for any reason falls back to a cold boot of
the same run parameters; `boot_method` says which happened and why.

The guest's RAM is a file. The saving QEMU maps it shared, so the guest's memory is in the
file when QEMU stops, and the saved state holds only the devices (QEMU's x-ignore-shared
capability leaves shared RAM out of it). A restoring QEMU maps the same file private:
the guest's writes are copied on write and never reach the file, pages are read only when
the guest touches them, and every worker shares the pages it has not written. Loading the
RAM from the migration stream instead took 0.3 s of every boot.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import re

from targets.definition import Target
from targets.drivers.base import Process
from targets.drivers.qemu import QemuMachine
from targets.drivers.qmp import Qmp
from targets.errors import TargetError
from targets.protocol import RecordParser, encode_params

RESTORE_TIMEOUT_S = 30.0   # load the state, resume, hand over the parameters
SAVE_TIMEOUT_S = 120.0     # write the device state (under 1 MB: the RAM is in its file)
SEND_TIMEOUT_S = 5.0       # one more PCERTP line to a running guest
STATE_FD_NAME = "pcert-state"
RAM_ID = "pcert-ram"
COLD = "cold"
SNAPSHOT = "snapshot"


def waiting_env(target: Target, nonce: str) -> dict[str, str]:
    """The saved boot's command line: its own nonce, and where the run's parameters come from."""
    return {"PCERT_NONCE": nonce, "PCERT_PARAMS": target.machine.agent_device}


def guest_ram_size(args: list[str]) -> str | None:
    """The guest's memory size in QEMU's notation, from the machine's `-m` argument (plain
    MiB, or with a K/M/G/T suffix, or size=...); None when `-m` asks for more than a size
    (memory hotplug slots) or cannot be read.

    >>> guest_ram_size(["-M", "pc", "-m", "512"]), guest_ram_size(["-m", "size=1G"])
    ('512M', '1G')
    """
    if "-m" not in args or args.index("-m") + 1 >= len(args):
        return None
    value = args[args.index("-m") + 1]
    if value.startswith("size="):
        value = value[len("size="):]
    match = re.fullmatch(r"(\d+)([KMGT]?)[Bb]?", value, flags=re.IGNORECASE)
    if match is None:
        return None
    return match.group(1) + (match.group(2).upper() or "M")


class _MonitoredQemuMachine(QemuMachine):
    """QEMU with the agent channel, a QMP monitor socket in the run's fresh directory, and the
    guest's RAM in the file `ram` (mapped shared when `SHARE_RAM`, else private)."""

    SHARE_RAM = False

    def __init__(self, target: Target, kernel: Path | None, image: Path | None, nonce: str,
                 ram: Path):
        if not target.machine.agent_args:
            raise TargetError(f"target {target.name} has no agent channel: no snapshot boot")
        size = guest_ram_size(list(target.machine.args))
        if size is None:
            raise TargetError(f"target {target.name}: machine.args give no plain guest memory "
                              "size ('-m', '512'): no snapshot boot")
        super().__init__(target, kernel, image, waiting_env(target, nonce), agent=True)
        # Only the waiting boot's two variables: a restored guest's environment is then what
        # its PCERTP line says, as a cold boot's would be (agent mode sends PCERT_AGENT there).
        self.guest_env.pop("PCERT_AGENT", None)
        self.ram, self.ram_size = ram, size

    def _monitor_path(self) -> Path:
        return self._workdir / "qmp.sock"

    def command(self) -> list[str]:
        monitor = str(self._monitor_path()) if self._workdir else "{monitor_socket}"
        share = "on" if self.SHARE_RAM else "off"
        mem_path = str(self.ram).replace(",", ",,")  # a comma separates QEMU's options
        return [*super().command(), "-chardev", f"socket,id=pcert-qmp,path={monitor},"
                "server=on,wait=off", "-mon", "chardev=pcert-qmp,mode=control",
                "-object", f"memory-backend-file,id={RAM_ID},size={self.ram_size},"
                f"mem-path={mem_path},share={share}", "-machine", f"memory-backend={RAM_ID}"]

    def _qmp(self, deadline: float) -> Qmp:
        """The monitor, set to leave shared RAM out of saved and loaded states."""
        qmp = Qmp.connect(self._monitor_path(), timeout_s=_left(deadline))
        try:
            qmp.command("migrate-set-capabilities",
                        capabilities=[{"capability": "x-ignore-shared", "state": True}])
        except BaseException:
            qmp.close()
            raise
        return qmp


class SavingQemuMachine(_MonitoredQemuMachine):
    """Cold-boots the image to its `ready` record, saves the VM state, and quits QEMU; the
    guest's RAM is then in `ram`."""

    SHARE_RAM = True

    def __init__(self, target: Target, kernel: Path | None, image: Path | None, nonce: str,
                 ram: Path):
        super().__init__(target, kernel, image, nonce, ram)
        self.nonce = nonce

    def save(self, state_path: Path, timeout_s: float) -> tuple[bytes, float]:
        """Boot, save the state into `state_path` (created, must not exist); the console up
        to and including the ready record, and the seconds from QEMU's start to it."""
        console = bytearray()
        parser = RecordParser(self.nonce)
        started = time.monotonic()
        ready_at: list[float] = []

        def on_output(data: bytes) -> None:
            if ready_at:
                return
            console.extend(data)
            ready = next((r for r in parser.feed(data) if r.kind == "ready"), None)
            if ready is not None:
                del console[ready.end:]
                ready_at.append(time.monotonic() - started)
                self._save_state(state_path)

        outcome = self.run(on_output, idle_timeout_s=timeout_s, run_timeout_s=timeout_s + SAVE_TIMEOUT_S)
        if not ready_at:
            tail = bytes(console[-400:]).decode("utf-8", "replace")
            raise TargetError(f"the snapshot boot ended ({outcome.reason}) before the runtime "
                              f"waited for its parameters; console tail: {tail!r}")
        return bytes(console), ready_at[0]

    def _save_state(self, state_path: Path) -> None:
        deadline = time.monotonic() + SAVE_TIMEOUT_S
        qmp = self._qmp(deadline)
        try:
            qmp.command("stop")
            fd = os.open(state_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                qmp.pass_fd(STATE_FD_NAME, fd)
            finally:
                os.close(fd)  # QEMU holds its own copy now
            qmp.command("migrate", uri=f"fd:{STATE_FD_NAME}")
            qmp.wait_migration(_left(deadline))
            qmp.command("quit")
        finally:
            qmp.close()


class RestoringQemuMachine(_MonitoredQemuMachine):
    """Starts from a saved state and hands the guest `guest_env` as its run parameters."""

    def __init__(self, target: Target, kernel: Path | None, image: Path | None,
                 guest_env: Mapping[str, str], *, snapshot, agent: bool = False,
                 on_restore_failed: Callable[[str], None] | None = None):
        super().__init__(target, kernel, image, snapshot.nonce, snapshot.ram_path)
        self.snapshot = snapshot
        self.run_env = dict(guest_env)
        if agent:
            self.run_env["PCERT_AGENT"] = target.machine.agent_device
        encode_params(self.run_env)  # refuse what the guest would refuse, before starting
        self.wants_agent = agent
        self.boot_method = SNAPSHOT
        self.on_restore_failed = on_restore_failed
        self._channel: socket.socket | None = None
        self._cold: QemuMachine | None = None

    def command(self) -> list[str]:
        if self._cold is not None:
            return self._cold.command()
        return [*super().command(), "-incoming", "defer"]

    def _start(self, cwd: Path | None = None) -> Process:
        if not self.ram.is_file():  # QEMU would map a new, empty one
            return self._restore_failed(f"{self.ram}: the snapshot's RAM file is missing")
        process = super()._start(cwd)
        try:
            self._restore()
            return process
        except (TargetError, OSError) as exc:
            why = str(exc)
        process.stop()
        process.reap()
        self._close_channel()
        return self._restore_failed(why)

    def _restore_failed(self, why: str) -> Process:
        if self.on_restore_failed is not None:
            self.on_restore_failed(why)
        return self._cold_start(why)

    def _restore(self) -> None:
        deadline = time.monotonic() + RESTORE_TIMEOUT_S
        qmp = self._qmp(deadline)
        try:
            with open(self.snapshot.path, "rb") as state:
                qmp.pass_fd(STATE_FD_NAME, state.fileno())
            qmp.command("migrate-incoming", uri=f"fd:{STATE_FD_NAME}")
            qmp.wait_migration(_left(deadline))
            qmp.command("cont")
        finally:
            qmp.close()
        channel = super().agent_connect(_left(deadline))
        channel.settimeout(_left(deadline))
        channel.sendall(encode_params(self.run_env))
        channel.settimeout(SEND_TIMEOUT_S)  # for send_params, later
        self._channel = channel

    def send_params(self, env: Mapping[str, str]) -> None:
        """One more PCERTP line to the running guest, on the channel its run parameters came
        through: a lower PCERT_END, while the runtime listens (docs/protocol.md)."""
        channel = self._channel
        if self._cold is not None or channel is None or self.wants_agent:
            raise TargetError(f"{self.target.name}: no parameter channel to a restored guest")
        channel.sendall(encode_params(dict(env)))

    def _cold_start(self, why: str) -> Process:
        """The same run parameters on a cold boot's command line, in a directory of its own."""
        self.boot_method = f"{COLD} (snapshot restore failed: {why})"
        env = {k: v for k, v in self.run_env.items() if k != "PCERT_AGENT"}
        self._cold = QemuMachine(self.target, self.kernel, self.image, env, agent=self.wants_agent)
        workdir = self._workdir / "cold"
        workdir.mkdir()
        self._cold._workdir = workdir
        return self._cold._start()

    def agent_connect(self, timeout_s: float) -> socket.socket:
        """The channel the parameters went through (the guest's agent uses the same device)."""
        if self._cold is not None:
            return self._cold.agent_connect(timeout_s)
        if not self.wants_agent or self._channel is None:
            raise TargetError(f"{self.target.name}: the machine is not running in agent mode")
        channel, self._channel = self._channel, None
        channel.settimeout(None)
        return channel

    def _close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def run(self, *args, **kwargs):
        try:
            return super().run(*args, **kwargs)
        finally:
            self._close_channel()


def _left(deadline: float) -> float:
    return max(0.1, deadline - time.monotonic())
