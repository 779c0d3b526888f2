"""Machine drivers: one per target kind, chosen by `make_machine`.

>>> from targets.definition import load_target
>>> from targets.image import ImageInfo
>>> image = ImageInfo(path=Path("initramfs.cpio"), kind="initramfs", sha256="0" * 64, size=0)
>>> kernel = KernelInfo.from_path(Path("vmlinuz"))                     # doctest: +SKIP
>>> m = make_machine(load_target("linux-x86_64"), binary=Path("pcert-runtime"), image=image,
...                  kernel=kernel, guest_env={"PCERT_NONCE": "0123456789abcdef"})  # doctest: +SKIP
>>> type(m).__name__                                                 # doctest: +SKIP
'QemuMachine'

| kind | driver | runs |
| --- | --- | --- |
| host | HostMachine | the runtime binary natively |
| qemu-linux | QemuMachine | QEMU with the kernel and the initramfs |
| qemu-linux, snapshot | RestoringQemuMachine | the same, from a saved state (docs/snapshot.md) |
| qemu-generic | QemuMachine | QEMU with the target's own command line (kernel optional) |
| qemu-semihost | SemihostMachine | QEMU with the bare-metal ELF, through semihosting |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from targets.definition import Target
from targets.drivers.base import Machine
from targets.drivers.host import HostMachine
from targets.drivers.qemu import QemuMachine
from targets.drivers.qemu_snapshot import RestoringQemuMachine
from targets.drivers.semihost import SemihostMachine
from targets.errors import TargetError
from targets.image import ImageInfo
from targets.kernel import KernelInfo

__all__ = ["Machine", "make_machine"]


def make_machine(target: Target, *, binary: Path, image: ImageInfo, kernel: KernelInfo | None,
                 guest_env: Mapping[str, str], agent: bool = False, snapshot=None,
                 on_restore_failed: Callable[[str], None] | None = None) -> Machine:
    """The machine that runs `image` (built from `binary`) on `target` with `guest_env`.

    `kernel` is the one targets.kernel.ensure_kernel found (None where the target needs none).
    `agent`: with the agent channel of docs/agent.md (targets whose `agent_channel` is true).
    `snapshot` (targets.snapshot.Snapshot): start from that saved state instead of a cold boot
    (qemu-linux targets with `machine.snapshot`); `on_restore_failed(why)` hears when a restore
    failed and the machine booted cold instead.
    """
    if agent and not target.agent_channel:
        raise TargetError(f"target {target.name} has no agent channel (docs/agent.md)")
    if target.kind == "host":
        return HostMachine(binary, guest_env, agent=agent)
    if target.kind == "qemu-semihost":
        return SemihostMachine(target, image.path, guest_env)
    if target.kind in ("qemu-linux", "qemu-generic"):
        if target.needs_kernel and kernel is None:
            raise TargetError(f"target {target.name} boots a kernel: find it first "
                              "(targets.kernel.ensure_kernel)")
        kernel_path = None if kernel is None else kernel.path
        if snapshot is not None:
            return RestoringQemuMachine(target, kernel_path, image.path, guest_env,
                                        snapshot=snapshot, agent=agent,
                                        on_restore_failed=on_restore_failed)
        return QemuMachine(target, kernel_path, image.path, guest_env, agent=agent)
    raise TargetError(f"target {target.name}: no driver for kind {target.kind!r}")
