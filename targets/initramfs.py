"""A deterministic cpio "newc" writer for Linux initramfs images, in pure Python.

>>> entries = [directory("dev"), chardev("dev/console", 5, 1),
...            regular("init", b"#!/bin/true\\n", mode=0o755)]
>>> sha = write_initramfs(entries, tmp / "initramfs.cpio")          # doctest: +SKIP

The same entries always give the same bytes: entries are sorted by path, every mtime is 0,
uid and gid are 0, inode numbers count up from 1 in that order. Missing parent directories are
added (mode 0755) because the kernel creates entries in archive order and needs the parent
first. The archive is not compressed: the kernel accepts plain cpio.

newc format (see the kernel's Documentation/driver-api/early-userspace/buffer-format.rst):
a 110-byte ASCII header "070701" + 13 eight-digit hex fields, the NUL-terminated name, padding
to 4 bytes, the data, padding to 4 bytes; the last entry is named TRAILER!!!.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from targets.errors import TargetError

TRAILER = "TRAILER!!!"
MAGIC = b"070701"
MAX_SIZE = 0xFFFFFFFF  # the header's filesize field is 8 hex digits


@dataclass(frozen=True)
class Entry:
    """One archive member: `kind` is "dir", "file" or "chardev"; `name` has no leading "/"."""

    name: str
    kind: str
    mode: int = 0o755
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def directory(name: str, mode: int = 0o755) -> Entry:
    return Entry(name, "dir", mode)


def regular(name: str, data: bytes, mode: int = 0o644) -> Entry:
    return Entry(name, "file", mode, data)


def chardev(name: str, major: int, minor: int, mode: int = 0o600) -> Entry:
    return Entry(name, "chardev", mode, rdev=(major, minor))


_TYPE_BITS = {"dir": stat.S_IFDIR, "file": stat.S_IFREG, "chardev": stat.S_IFCHR}


def _clean_name(name: str) -> str:
    """'/dev/console' and './dev/console' are 'dev/console'; '..', '' and NUL are refused."""
    if "\0" in name:
        raise TargetError(f"initramfs entry {name!r}: name contains a NUL byte")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise TargetError(f"initramfs entry {name!r}: name is not valid UTF-8") from None
    parts = [p for p in PurePosixPath(name).parts if p != "/"]
    if not parts or ".." in parts:
        raise TargetError(f"initramfs entry {name!r}: needs a plain relative path, "
                          "without '..'")
    if parts[0] == TRAILER:
        # The kernel would stop reading the archive at this entry (or at its parent).
        raise TargetError(f"initramfs entry {name!r}: the name marks the end of a newc archive")
    return "/".join(parts)


def _sort_key(name: str) -> list[str]:
    # By path components: a directory always comes right before its own contents.
    return name.split("/")


def normalise(entries: Iterable[Entry]) -> list[Entry]:
    """Entries with clean names, parent directories added, sorted; duplicates refused."""
    by_name: dict[str, Entry] = {}
    for entry in entries:
        if entry.kind not in _TYPE_BITS:
            raise TargetError(f"initramfs entry {entry.name!r}: unknown kind {entry.kind!r} "
                              "(dir, file or chardev)")
        if entry.mode & ~0o7777:
            raise TargetError(f"initramfs entry {entry.name!r}: mode {entry.mode:#o} has more "
                              "than permission bits")
        if len(entry.data) > MAX_SIZE:
            raise TargetError(f"initramfs entry {entry.name!r}: larger than 4 GiB")
        name = _clean_name(entry.name)
        if name in by_name:
            raise TargetError(f"initramfs entry {name!r}: given twice")
        by_name[name] = Entry(name, entry.kind, entry.mode, entry.data, entry.rdev)
    for name in list(by_name):
        parent = PurePosixPath(name).parent
        while str(parent) != ".":
            existing = by_name.setdefault(str(parent), directory(str(parent)))
            if existing.kind != "dir":
                raise TargetError(f"initramfs entry {name!r}: its parent {str(parent)!r} is "
                                  "not a directory")
            parent = parent.parent
    return [by_name[n] for n in sorted(by_name, key=_sort_key)]


def _header(name: str, ino: int, mode: int, nlink: int, size: int,
            rdev: tuple[int, int] = (0, 0)) -> bytes:
    name_bytes = name.encode("utf-8") + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(name_bytes), 0)
    #       ino  mode uid gid nlink mtime size devmaj devmin rdevmaj rdevmin namesize check
    head = MAGIC + b"".join(b"%08X" % f for f in fields) + name_bytes
    return head + _pad(len(head))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def archive_bytes(entries: Iterable[Entry]) -> Iterable[bytes]:
    """The archive as a sequence of byte chunks."""
    for ino, entry in enumerate(normalise(entries), start=1):
        nlink = 2 if entry.kind == "dir" else 1
        yield _header(entry.name, ino, _TYPE_BITS[entry.kind] | entry.mode, nlink,
                      len(entry.data), entry.rdev)
        if entry.data:
            yield entry.data + _pad(len(entry.data))
    yield _header(TRAILER, 0, 0, 1, 0)


def write_initramfs(entries: Iterable[Entry], out_path: Path) -> str:
    """Write the archive atomically to `out_path`; returns its sha256."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in archive_bytes(entries):
                digest.update(chunk)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest.hexdigest()


def build_initramfs(init_binary: Path, out: Path) -> str:
    """An initramfs whose /init is `init_binary`; returns its sha256.

    /dev/console must exist in the archive: the kernel opens it as /init's stdin, stdout and
    stderr before devtmpfs is mounted. The empty mount points are for the runtime, which mounts
    proc, sysfs and tmpfs itself.
    """
    try:
        init = Path(init_binary).read_bytes()
    except OSError as exc:
        raise TargetError(f"{init_binary}: cannot read the init binary: {exc.strerror}") from None
    entries = [
        regular("init", init, mode=0o755),
        directory("dev"),
        chardev("dev/console", 5, 1, mode=0o600),
        directory("dev/shm", mode=0o1777),
        directory("proc", mode=0o555),
        directory("sys", mode=0o555),
        directory("tmp", mode=0o1777),
    ]
    return write_initramfs(entries, out)
