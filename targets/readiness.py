"""Can this machine build and run a target? What `pcert targets` shows.

>>> check_ready(load_target("linux-x86_64"))                  # doctest: +SKIP
[]
>>> check_ready(load_target("linux-x86_64"))                  # doctest: +SKIP
['qemu-system-x86_64 not found: apt-get install qemu-system-x86']
>>> describe(load_target("linux-x86_64"))                     # doctest: +SKIP
['compiler: gcc (Debian 12.2.0-14+deb12u1) 12.2.0', 'qemu: QEMU emulator version 7.2.22 ...',
 'kernel linux-image-6.1.0-56-cloud-amd64 not cached yet: apt-get download will fetch it ...']

The toolchain is ready when it links a trivial program with the target's own flags (so a
missing static C library, picolibc or sysroot shows here, not in the middle of a run). A kernel
that is not downloaded yet is not a problem when apt can fetch it on first use; it is one only
when it is neither cached nor resolvable through apt.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from targets.definition import Target
from targets.errors import TargetError
from targets.kernel import kernel_status
from targets.toolchain import Toolchain


def check_ready(target: Target, cache_dir: Path | None = None, *,
                toolchain: Toolchain | None = None) -> list[str]:
    """Problems that stop the target from running here, each with what to do; [] when ready.

    `cache_dir` is the kernel directory (default: kernels/ in the pcert cache). `toolchain`:
    the target's, when the caller goes on to build with it (its probes then run once).
    """
    problems = []
    toolchain = toolchain or Toolchain.for_target(target)
    sysroot = target.toolchain.sysroot
    try:
        toolchain.version()
        if sysroot is not None and not sysroot.is_dir():
            problems.append(f"toolchain sysroot {sysroot} not found: apt-get install "
                            f"{' '.join(target.toolchain.packages)}")
        else:
            failed, _ = toolchain.probe_link()
            if failed:
                problems.append(f"{failed}: apt-get install "
                                f"{' '.join(target.toolchain.packages)}")
    except TargetError as problem:
        problems.append(str(problem))
    machine = target.machine
    if machine.qemu is not None and shutil.which(machine.qemu) is None:
        install = " ".join(machine.packages) or machine.qemu
        problems.append(f"{machine.qemu} not found: apt-get install {install}")
    usable, line = kernel_status(target, cache_dir)
    if not usable:
        problems.append(line)
    return problems


def describe(target: Target, cache_dir: Path | None = None) -> list[str]:
    """One line per tool the target uses: its version, or what is wrong with it."""
    lines = []
    try:
        lines.append(f"compiler: {Toolchain.for_target(target).version()}")
    except TargetError as problem:
        lines.append(f"compiler: {problem}")
    if target.machine.qemu is not None:
        lines.append(f"qemu: {_qemu_version(target)}")
    lines.append(kernel_status(target, cache_dir)[1])
    return lines


def _qemu_version(target: Target) -> str:
    found = shutil.which(target.machine.qemu)
    if found is None:
        return f"{target.machine.qemu} not found"
    result = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    return lines[0].strip() if lines else f"{target.machine.qemu} --version printed nothing"
