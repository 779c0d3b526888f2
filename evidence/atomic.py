"""Atomic file writes and hashing.

A reader (or a killed run) sees either the old file or the new one, never half of one: the data
goes to a temporary file in the same directory (so the rename cannot cross file systems), is
fsynced, renamed over the target, and the directory is fsynced so the rename itself survives a
power loss.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> write_json_atomic(d / "m.json", {"b": 1, "a": "é"})
>>> (d / "m.json").read_text(encoding="utf-8")
'{\\n  "a": "é",\\n  "b": 1\\n}\\n'
>>> sha256_file(d / "m.json") == hashlib.sha256((d / "m.json").read_bytes()).hexdigest()
True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

CHUNK = 1 << 20


@contextmanager
def _replacing(path: Path):
    """Yield a temporary file beside ``path``; on normal exit it is synced and renamed over
    ``path``, on any failure removed, so ``path`` is always either old or new, never half."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_directory(path.parent)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically; on any failure the old file is untouched and
    no temporary file is left behind."""
    with _replacing(Path(path)) as out:
        out.write(data)


def copy_file_atomic(src: Path | str, path: Path | str) -> None:
    """Copy ``src`` to ``path`` with the same guarantees as :func:`write_bytes_atomic`,
    streaming, so a large image costs no memory."""
    with _replacing(Path(path)) as out, open(src, "rb") as source:
        shutil.copyfileobj(source, out, CHUNK)


def fsync_directory(directory: Path | str) -> None:
    """Make a rename or a new file in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encode_json(obj: object) -> bytes:
    """Deterministic JSON text: sorted keys, indent 2, UTF-8, trailing newline.

    Strings decoded from guest bytes may carry lone surrogates (``surrogateescape``); UTF-8
    cannot hold them, so they are written as the JSON escape ``\\udcXX`` (which is exactly what
    ``backslashreplace`` produces inside a JSON string) and read back unchanged.

    >>> encode_json({"s": "a\\udcff"})
    b'{\\n  "s": "a\\\\udcff"\\n}\\n'
    """
    text = json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


def encode_json_line(obj: object) -> bytes:
    """One compact JSONL line with sorted keys (same surrogate handling as :func:`encode_json`).

    >>> encode_json_line({"verdict": "PASS", "code": 0})
    b'{"code":0,"verdict":"PASS"}\\n'
    """
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


def write_json_atomic(path: Path | str, obj: object) -> None:
    """Write ``obj`` as deterministic JSON (see :func:`encode_json`), atomically."""
    write_bytes_atomic(path, encode_json(obj))


def sha256_file(path: Path | str) -> str:
    """Hex sha256 of a file, read in chunks so a large console.log costs no memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_prefix(path: Path | str, size: int) -> str:
    """sha256 of the first ``size`` bytes of a file that may still be growing (a console log)."""
    return prefix_digest(path, size).hexdigest()


def prefix_digest(path: Path | str, size: int):
    """A running sha256 of the first ``size`` bytes of a file, to be updated with the bytes
    appended after them (a console log continued by a resumed run).

    >>> d = Path(tempfile.mkdtemp()) / "console.log"
    >>> _ = d.write_bytes(b"boot 1\\n")
    >>> digest = prefix_digest(d, 7)
    >>> digest.update(b"boot 2\\n")
    >>> digest.hexdigest() == hashlib.sha256(b"boot 1\\nboot 2\\n").hexdigest()
    True
    """
    digest, left = hashlib.sha256(), size
    with open(path, "rb") as f:
        while left > 0:
            block = f.read(min(CHUNK, left))
            if not block:
                raise ValueError(f"{path}: shorter than {size} bytes")
            digest.update(block)
            left -= len(block)
    return digest
