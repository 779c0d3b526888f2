"""Run a bare-metal ELF in QEMU with Arm semihosting: console, arguments and exit status.

>>> from targets.definition import load_target
>>> m = SemihostMachine(load_target("baremetal-aarch64-picolibc"), Path("/cache/pcert-runtime"),
...                     {"PCERT_NONCE": "0123456789abcdef", "PCERT_FIRST": "4"})
>>> m.command()[-4:]
['-kernel', 'image.elf', '-append', 'PCERT_FIRST=4 PCERT_NONCE=0123456789abcdef']
>>> outcome = m.run(console.write, idle_timeout_s=20, run_timeout_s=600)  # doctest: +SKIP
>>> outcome.reason, outcome.exit_status                                   # doctest: +SKIP
('exited', 0)

The image is one ELF: runtime, procedures and C library (a unikernel-shaped image). QEMU loads
it with -kernel; with semihosting enabled the guest's command line is the image's name and the
-append text, so the guest variables arrive as argv words NAME=value, which the runtime reads.
What the program writes through semihosting appears on QEMU's output, and its exit status
becomes QEMU's: outcome reason "exited" with `exit_status` = the program's status.

Semihosting also lets the program open, write and remove files of the machine running QEMU,
as QEMU's user. Each run therefore happens in a fresh empty directory (removed afterwards),
with the image copied in as `image.elf`: relative names stay there, and the command line
is the same on every machine. pcert's own procedures use relative names only.

Nothing catches a processor exception on bare metal: a crash or a hang leaves the image
silent, and the idle timeout ends it; the host boots it again at the next test case.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from targets.definition import Target
from targets.drivers.base import EXITED, KILLED, Process
from targets.drivers.qemu import QemuMachine
from targets.errors import TargetError

IMAGE_NAME = "image.elf"


class SemihostMachine(QemuMachine):
    """One QEMU run of a qemu-semihost target's ELF with the guest variables as arguments."""

    def __init__(self, target: Target, image: Path, guest_env: Mapping[str, str]):
        if target.kind != "qemu-semihost":
            raise TargetError(f"target {target.name} is of kind {target.kind}, not qemu-semihost")
        super().__init__(target, None, image, guest_env)
        self._workdir: Path | None = None

    def image_argument(self) -> str:
        return IMAGE_NAME

    @contextmanager
    def _prepared(self) -> Iterator[None]:
        """Each run starts in a fresh directory holding only the image: semihosting gives the
        program file access relative to it."""
        if self.image is None or not self.image.is_file():
            raise TargetError(f"{self.image}: image not found (build it first)")
        with self._fresh_workdir("pcert-semihost-") as workdir:
            _place(self.image, workdir / IMAGE_NAME)
            yield

    def _start(self, cwd: Path | None = None) -> Process:
        assert self._workdir is not None, "run() sets the working directory"
        return super()._start(cwd=self._workdir)

    def _reason_for_exit(self, status: int | None) -> str:
        # QEMU exits with the program's own status (SYS_EXIT): every exit is the program's.
        if status is None or status < 0:
            return KILLED
        return EXITED


def _place(image: Path, where: Path) -> None:
    """A hard link where possible (no copy of a large image), else a copy."""
    try:
        os.link(image, where)
    except OSError:
        shutil.copyfile(image, where)
