"""Saved VM states, cached per (QEMU, target machine, kernel, image): boot once, restore often.

    snap = ensure_snapshot(target, kernel, image, cache / "snapshots", qemu_sha256=...)
    snap.to_json()["sha256"]        # recorded in the run's manifest, with the boot's console

A snapshot is identified by the sha256 of everything that shapes the guest up to the moment it
waits for its run parameters: the QEMU binary, the target's machine definition, the kernel and
the image. Its directory holds the devices' state, the guest's RAM (a sparse file of the guest's
memory size), the console of the cold boot that made it, and a small JSON description. A
snapshot whose files no longer have their recorded sha256 is made again; the RAM file, hashed
when it is made, is hashed again only when its size, inode or modification time changed. Only
the newest `KEEP` snapshots are kept: each takes about 85 MB of disk.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
import shutil
from dataclasses import dataclass, fields
from pathlib import Path

from targets.definition import Target
from targets.drivers.qemu_snapshot import SavingQemuMachine
from targets.errors import TargetError
from targets.hashing import file_sha256, write_atomic

KEEP = 6
STATE = "state"
RAM = "ram"
CONSOLE = "console.log"
META = "snapshot.json"
FORMAT = 2  # 2: the guest's RAM in its own file, beside the devices' state


class SnapshotError(TargetError):
    """No snapshot could be made; the run boots cold and records why."""


@dataclass(frozen=True)
class Snapshot:
    directory: Path
    key: str
    nonce: str           # the saving boot's nonce: it framed that boot's ready record
    sha256: str          # of the devices' state file
    size: int
    made_utc: str
    boot_s: float        # the cold boot that made it: QEMU's start to the ready record
    console_sha256: str  # of what that boot printed (console.log beside the state)
    ram_sha256: str      # of the guest's RAM file
    ram_size: int

    @property
    def path(self) -> Path:
        return self.directory / STATE

    @property
    def ram_path(self) -> Path:
        return self.directory / RAM

    def console(self) -> bytes:
        """What the cold boot printed, up to and including its ready record."""
        return (self.directory / CONSOLE).read_bytes()

    def to_json(self) -> dict:
        return {"key": self.key, "sha256": self.sha256, "size": self.size,
                "made_utc": self.made_utc, "boot_s": self.boot_s, "nonce": self.nonce,
                "console_sha256": self.console_sha256, "ram_sha256": self.ram_sha256,
                "ram_size": self.ram_size}


def snapshot_key(target: Target, kernel_sha256: str | None, image_sha256: str,
                 qemu_sha256: str) -> str:
    """sha256 over what the saved guest depends on (canonical JSON)."""
    m = target.machine
    identity = {"format": FORMAT, "qemu": qemu_sha256, "kernel": kernel_sha256,
                "image": image_sha256, "args": list(m.args), "append": m.append,
                "agent_args": list(m.agent_args), "agent_device": m.agent_device,
                "pvh": bool(target.kernel and target.kernel.pvh)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def ensure_snapshot(target: Target, kernel, image, cache_dir: Path, *,
                    qemu_sha256: str) -> Snapshot:
    """The cached snapshot for this target, kernel (KernelInfo or None) and image (ImageInfo),
    made by one cold boot if there is none yet. Raises SnapshotError when it cannot be made."""
    key = snapshot_key(target, kernel.sha256 if kernel else None, image.sha256, qemu_sha256)
    directory = cache_dir / key
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two runs of one image make it once
        snapshot = _load(directory, key)
        if snapshot is None:
            snapshot = _make(target, kernel, image, directory, key)
            _prune(cache_dir, keep=directory)
        os.utime(directory / META)  # the most recently used are the ones kept
    return snapshot


def _load(directory: Path, key: str) -> Snapshot | None:
    """The snapshot in `directory` if it is whole and its files have their recorded sha256."""
    try:
        meta = json.loads((directory / META).read_text())
        snapshot = Snapshot(directory=directory, key=key, **{
            name: meta[name] for name in _FIELDS})
        if file_sha256(directory / CONSOLE) == snapshot.console_sha256 \
                and snapshot.path.stat().st_size == snapshot.size \
                and file_sha256(snapshot.path) == snapshot.sha256 \
                and _ram_intact(snapshot, meta):
            return snapshot
    except (OSError, ValueError, KeyError, TypeError):
        pass
    shutil.rmtree(directory, ignore_errors=True)  # broken or stale: made again
    return None


# What snapshot.json keeps of a Snapshot: all but where it lies.
_FIELDS = tuple(f.name for f in fields(Snapshot) if f.name not in ("directory", "key"))


def _identity(path: Path) -> list[int]:
    """What changes when a file is written or replaced (hashing 512 MB at every run is not
    cheap; git's index trusts the same)."""
    info = path.stat()
    return [info.st_ino, info.st_size, info.st_mtime_ns]


def _ram_intact(snapshot: Snapshot, meta: dict) -> bool:
    """The RAM file has its recorded sha256 (trusted while its identity is unchanged; after a
    copy or a touch that keeps the bytes, the new identity is recorded)."""
    identity = _identity(snapshot.ram_path)
    if identity == meta["ram_identity"]:
        return True
    if snapshot.ram_path.stat().st_size != snapshot.ram_size \
            or file_sha256(snapshot.ram_path) != snapshot.ram_sha256:
        return False
    write_atomic(snapshot.directory / META,
                 json.dumps(dict(meta, ram_identity=identity), sort_keys=True).encode())
    return True


def _make(target: Target, kernel, image, directory: Path, key: str) -> Snapshot:
    nonce = secrets.token_hex(8)
    building = directory.with_name(f".{key}.{secrets.token_hex(4)}.tmp")
    building.mkdir()
    try:
        ram, state = building / RAM, building / STATE
        saver = SavingQemuMachine(target, kernel.path if kernel else None, image.path, nonce,
                                  ram=ram)
        console, boot_s = saver.save(state, timeout_s=target.machine.boot_timeout_s)
        for path in (state, ram):  # durable before the directory is renamed into place
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        write_atomic(building / CONSOLE, console)
        snapshot = Snapshot(directory=directory, key=key, nonce=nonce,
                            sha256=file_sha256(state), size=state.stat().st_size,
                            made_utc=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                            boot_s=round(boot_s, 3),
                            console_sha256=hashlib.sha256(console).hexdigest(),
                            ram_sha256=file_sha256(ram), ram_size=ram.stat().st_size)
        meta = {name: getattr(snapshot, name) for name in _FIELDS}
        meta["ram_identity"] = _identity(ram)  # a rename keeps the inode and the times
        write_atomic(building / META, json.dumps(meta, sort_keys=True).encode())
        os.rename(building, directory)
    except TargetError as exc:
        raise SnapshotError(f"no snapshot of {target.name}: {exc}") from None
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return snapshot


def _prune(cache_dir: Path, keep: Path) -> None:
    """Remove all but the KEEP most recently used snapshots (never `keep`)."""
    entries = []
    for entry in cache_dir.iterdir():
        if entry.is_dir() and not entry.name.startswith("."):
            meta = entry / META
            entries.append((meta.stat().st_mtime if meta.exists() else 0.0, entry))
    entries.sort(reverse=True)
    for _, entry in entries[KEEP:]:
        if entry != keep:
            shutil.rmtree(entry, ignore_errors=True)
