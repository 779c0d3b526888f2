"""A content-addressed cache of presence results: an unchanged target and catalog cost nothing.

Each piece of work (a unit's checks, a namespace check, the link check, the option probe) is
keyed by the sha256 of everything that decides its outcome: the toolchain's identity (compiler
binary and version, C library), the exact flags, the generated source, the contents of any
include directory the target's flags name, and this package's format version. A hit returns
the stored JSON; a miss computes, stores atomically, and returns it.

>>> import tempfile
>>> cache = ResultCache(Path(tempfile.mkdtemp()))
>>> cache.get_or_compute({"source": "x"}, lambda: {"ok": True})
{'ok': True}
>>> cache.get_or_compute({"source": "x"}, lambda: 1 / 0)
{'ok': True}
>>> (cache.hits, cache.misses)
(1, 1)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from evidence.atomic import write_bytes_atomic

from ..errors import RunError

# Bump when the meaning of a stored result changes (generator, classification, record form).
FORMAT = "pcert-presence/1"
_INCLUDE_FLAGS = ("-I", "-isystem", "-idirafter", "-iquote")


def key_of(material: object) -> str:
    text = json.dumps([FORMAT, material], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def include_dirs_digest(flags: Sequence[str]) -> str:
    """sha256 over the files of the include directories that `flags` name (-I, -isystem, ...):
    headers outside the toolchain's installation (whose identity covers its own)."""
    dirs = []
    flags = list(flags)
    for i, flag in enumerate(flags):
        for option in _INCLUDE_FLAGS:
            if flag == option and i + 1 < len(flags):
                dirs.append(flags[i + 1])
            elif flag.startswith(option) and len(flag) > len(option):
                dirs.append(flag[len(option):])
    digest = hashlib.sha256()
    for directory in dirs:
        root = Path(directory)
        digest.update(f"dir:{directory}\0".encode())
        if not root.is_dir():
            continue
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class ResultCache:
    """JSON results under `directory/<2 hex>/<key>.json`; safe to share between threads and
    between concurrent runs (writes are atomic, and equal keys hold equal content)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def _path(self, material: object) -> Path:
        key = key_of(material)
        return self.directory / key[:2] / f"{key}.json"

    def get(self, material: object) -> object | None:
        """The stored value (counted as a hit), or None (not counted: see `put`)."""
        try:
            value = json.loads(self._path(material).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None     # absent or unreadable: to be computed again
        with self._lock:
            self.hits += 1
        return value

    def put(self, material: object, value: object) -> object:
        """Store a computed value (counted as a miss) and return it."""
        path = self._path(material)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, json.dumps(value, sort_keys=True).encode("utf-8"))
        except OSError as exc:
            raise RunError(f"{path.parent}: cannot write the presence cache ({exc.strerror}); "
                           "give a writable cache directory (PCERT_CACHE)") from None
        with self._lock:
            self.misses += 1
        return value

    def get_or_compute(self, material: object, compute: Callable[[], object]) -> object:
        value = self.get(material)
        return value if value is not None else self.put(material, compute())
