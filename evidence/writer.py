"""Write one run's evidence bundle.

Every file is written atomically and recorded with its sha256; ``finalize`` walks the directory
(so nothing is missed), checks the summary against the results, validates the manifest and
writes ``manifest.json`` last. A directory without a manifest is therefore an interrupted run.

>>> import tempfile, pathlib
>>> bundle = BundleWriter(pathlib.Path(tempfile.mkdtemp()) / "run")
>>> bundle.write_bytes("procedures/file-io.c", b"int tc(void) { return 0; }\\n")
>>> with bundle.open_console() as console:
...     _ = console.write(b"boot \\xff noise\\n")
>>> console.size
13
>>> sorted(bundle.written)
['console.log', 'procedures/file-io.c']
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from collections import Counter
from pathlib import Path
from typing import Container, Iterable

from . import format as fmt
from .atomic import copy_file_atomic, encode_json, encode_json_line, fsync_directory, \
    prefix_digest, sha256_file, write_bytes_atomic
from .errors import BundleError
from .reader import parse_json, parse_jsonl, read_bytes
from .schema import remember_valid, validate, validate_file


def resumable_manifest(directory: Path | str) -> dict:
    """The manifest of an interrupted run's bundle (its last checkpoint), or BundleError."""
    manifest_path = Path(directory) / fmt.MANIFEST
    try:
        manifest = json.loads(manifest_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: cannot be read ({exc}); only a bundle with a "
                          "checkpoint manifest can be resumed") from None
    if manifest.get("status") != "incomplete":
        raise BundleError(f"{manifest_path}: status is {manifest.get('status')!r}; only an "
                          "incomplete run can be resumed")
    return manifest


class BundleWriter:
    """Creates ``directory`` (which must not exist or be empty) and writes evidence into it."""

    def __init__(self, directory: Path | str, *, resume: bool = False):
        self.path = Path(directory)
        self.written: dict[str, str] = {}  # name -> sha256 at write time
        # name -> (identity, sha256) of what this writer wrote: a checkpoint trusts the sha256
        # while the file's identity (inode, size, times) is unchanged; finalize re-hashes.
        self._digests: dict[str, tuple[tuple, str]] = {}
        self.consoles: dict[str, ConsoleSink] = {}
        self.finalized = False
        if resume:
            self._reopen()
            return
        if self.path.exists() and (not self.path.is_dir() or any(self.path.iterdir())):
            raise BundleError(f"{self.path}: already exists and is not an empty directory; "
                              "choose a new run directory, or resume an interrupted run "
                              "with --resume")
        self.path.mkdir(parents=True, exist_ok=True)

    def _reopen(self) -> None:
        """Continue an interrupted run: its last checkpoint says what was written."""
        manifest = resumable_manifest(self.path)
        for name, entry in manifest.get("files", {}).items():
            if not fmt.is_console(name):
                self.written[name] = entry["sha256"]
        for name in fmt.walk_files(self.path):
            if fmt.is_temporary(name):  # debris of a write the interruption cut short
                (self.path / name).unlink()

    @property
    def console(self) -> "ConsoleSink | None":
        """The main console sink (console.log), if open."""
        return self.consoles.get(fmt.CONSOLE)

    # -- evidence files ---------------------------------------------------------------------

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write one file atomically, e.g. ``write_bytes("procedures/runtime.c", src)``."""
        target = self._target(name)
        write_bytes_atomic(target, data)
        self._remember(name, hashlib.sha256(data).hexdigest())

    def write_json(self, name: str, obj: object) -> None:
        """Write deterministic JSON; requirements.json and testcases.json are validated first."""
        self._validate_records(name, obj)
        data = encode_json(obj)
        self._remember_valid(name, data)
        self.write_bytes(name, data)

    def write_jsonl(self, name: str, rows: Iterable[dict], *, validate: bool = True,
                    valid_lines: Container[bytes] = ()) -> None:
        """Write one compact, key-sorted JSON object per line; results.jsonl is validated
        (unless ``validate`` is false: a checkpoint, which finalize() validates later). A row
        whose encoded line is in ``valid_lines`` was validated as this kind by the caller."""
        rows = list(rows)
        lines = [encode_json_line(row) for row in rows]
        if validate:
            self._validate_records(name, rows, skip=[line in valid_lines for line in lines])
        data = b"".join(lines)
        if validate:
            self._remember_valid(name, data)
        self.write_bytes(name, data)

    def add_file(self, name: str, src_path: Path | str) -> None:
        """Copy a file into the bundle (atomically, like every other write)."""
        target = self._target(name)
        copy_file_atomic(src_path, target)
        self._remember(name, sha256_file(target))

    def open_console(self, name: str = fmt.CONSOLE, *, append: bool = False) -> "ConsoleSink":
        """Start a console log (console.log, or console.wN.log for parallel worker N); append
        raw bytes to the returned sink as they arrive. ``append`` continues an existing log."""
        if not fmt.is_console(name):
            raise ValueError(f"{name!r} is not a console log name (console.log, console.wN.log, "
                             "agent.log)")
        if name in self.consoles or name in self.written:
            raise ValueError(f"{self.path}: {name} was already opened")
        self._check_open()
        sink = ConsoleSink(self.path / name, append=append,
                           on_close=lambda sha256: self._remember(name, sha256))
        self.consoles[name] = sink
        return sink

    def checkpoint(self, manifest: dict) -> dict:
        """Seal what has been obtained so far as an incomplete bundle, and stay open.

        Console logs keep growing after a checkpoint; the manifest holds their size and
        sha256 at this moment, and verify accepts bytes appended after it in an incomplete
        bundle (a killed run loses nothing and lies about nothing).

        It is cheap: console logs are hashed as they are written and files written through
        the writer were hashed then, so only a file changed behind the writer's back (or
        written by an interrupted run before a resume) is read again."""
        growing = {name: sink.received() for name, sink in self.consoles.items()
                   if not sink.closed}
        for sink in self.consoles.values():
            sink.sync()  # every byte the manifest names is on disk before the manifest
        return self._seal(manifest, "incomplete", growing=growing)

    # -- the manifest ------------------------------------------------------------------------

    def finalize(self, manifest: dict, status: str = "complete") -> dict:
        """Complete ``manifest`` (schema, status, files; summary when absent), check it against
        the results (summary, one result per planned test case in plan order), validate it
        and write manifest.json last. Returns the manifest as written."""
        open_sinks = [n for n, sink in self.consoles.items() if not sink.closed]
        if open_sinks:
            raise ValueError(f"{self.path}: close the console sink(s) {open_sinks} before finalize()")
        manifest = self._seal(manifest, status)
        self.finalized = True
        return manifest

    def _seal(self, manifest: dict, status: str, growing: dict | None = None) -> dict:
        """Write manifest.json. ``growing`` is a checkpoint's (size, sha256) of each console
        log still being written; without it every file is re-hashed and checked."""
        self._check_open()
        if status not in fmt.STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(fmt.STATUSES)}")
        missing = [name for name in fmt.REQUIRED_FILES if not (self.path / name).exists()]
        if missing:
            raise BundleError(f"{self.path}: {', '.join(missing)} not written; a bundle needs "
                              "them even when nothing ran (write [] or one UNINITIATED result "
                              "per planned test case)")
        manifest = dict(manifest, schema=fmt.SCHEMA, status=status,
                        files=self._hash_files(growing))
        if growing is None:  # a checkpoint, written every second, is checked when sealed
            self._check_against_results(manifest)
        validate("manifest", manifest, where=str(self.path / fmt.MANIFEST))
        write_bytes_atomic(self.path / fmt.MANIFEST, encode_json(manifest))
        return manifest

    def _hash_files(self, growing: dict | None = None) -> dict:
        """{name: {sha256, size}} of every listed file; see :meth:`_seal` for ``growing``."""
        files = {}
        for name in fmt.walk_files(self.path):
            if not fmt.is_listed(name):
                continue
            full = self.path / name
            info = _regular_file(full)
            if info is None:
                raise BundleError(f"{full}: is a symbolic link or special file; a bundle holds "
                                  "only real files (replace it with a copy of the file)")
            if growing is None:
                files[name] = self._sealed_entry(name, full)
            elif name in growing:
                # Still growing: seal exactly the bytes received so far.
                size, sha256 = growing[name]
                files[name] = {"sha256": sha256, "size": size}
            else:
                files[name] = self._checkpoint_entry(name, full, info)
        return files

    def _sealed_entry(self, name: str, full: Path) -> dict:
        """Hash the file from its first byte; refuse evidence changed since it was written."""
        sha256 = sha256_file(full)
        # A console log's sha256 is of the bytes its sink received, so this holds for it too.
        if name in self.written and self.written[name] != sha256:
            raise BundleError(f"{full}: changed after it was written to the bundle; "
                              "find what modified it and re-run")
        return {"sha256": sha256, "size": full.stat().st_size}

    def _checkpoint_entry(self, name: str, full: Path, info: os.stat_result) -> dict:
        """The sha256 known from writing the file, when its identity says it is untouched."""
        known = self._digests.get(name)
        if known is not None and known[0] == _identity(info):
            return {"sha256": known[1], "size": info.st_size}
        return {"sha256": sha256_file(full), "size": info.st_size}

    def _remember(self, name: str, sha256: str) -> None:
        """Record the sha256 of a file just written, with its identity for checkpoints."""
        self.written[name] = sha256
        self._digests[name] = (_identity((self.path / name).stat()), sha256)

    def _check_against_results(self, manifest: dict) -> None:
        """Fill in ``summary`` when absent; refuse a manifest the results contradict."""
        # Written with write_bytes, they escaped validation: check before relying on fields
        # (unless these very bytes were checked already, see evidence/schema.py).
        results = self._read_valid(fmt.RESULTS, parse_jsonl)
        testcases = self._read_valid(fmt.TESTCASES, parse_json)
        self._reconcile(manifest, [case["id"] for case in testcases], results)
        counts = Counter(row["verdict"] for row in results)
        summary = {verdict: counts.get(verdict, 0) for verdict in fmt.VERDICTS}
        given = manifest.setdefault("summary", summary)
        if given != summary:
            raise BundleError(f"{self.path / fmt.MANIFEST}: field 'summary' {given} does not "
                              f"match results.jsonl {summary}; pass the counts of the results "
                              "written, or leave 'summary' out to have it computed")

    def _reconcile(self, manifest: dict, planned_ids: list[str], results: list[dict]) -> None:
        # One result per planned test case, in plan order (TET-style reconciliation: a planned
        # case that never reported must appear as UNINITIATED, never silently vanish).
        where = self.path / fmt.RESULTS
        plan = manifest.get("plan")
        planned = plan.get("test_cases") if isinstance(plan, dict) else None
        if isinstance(planned, int) and planned != len(results):
            raise BundleError(f"{where}: {len(results)} lines, but the manifest's "
                              f"plan.test_cases is {planned}; write one result per planned "
                              "test case (UNINITIATED for those that never reported)")
        result_ids = [row["id"] for row in results]
        if planned_ids != result_ids:
            raise BundleError(f"{where}: ids do not follow testcases.json in plan order "
                              f"(first difference: {_first_difference(planned_ids, result_ids)}"
                              "); write one result per planned test case, in plan order")

    # -- helpers -----------------------------------------------------------------------------

    def _target(self, name: str) -> Path:
        self._check_open()
        fmt.check_name(name)
        if name in self.consoles:
            raise ValueError(f"{self.path}: {name} is written by its console sink")
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _check_open(self) -> None:
        if self.finalized:
            raise ValueError(f"{self.path}: the bundle is finalized; it can no longer change")

    def _read_valid(self, name: str, parse) -> object:
        """A record file of the bundle, parsed and validated (once for the same bytes)."""
        path = self.path / name
        data = read_bytes(path)
        records = parse(path, data)
        if not isinstance(records, list):
            self._validate_records(name, records)  # words the error
        validate_file(fmt.RECORD_KINDS[name], records, data, lambda index: f"{name}[{index}]")
        return records

    @staticmethod
    def _remember_valid(name: str, data: bytes) -> None:
        kind = fmt.RECORD_KINDS.get(name)
        if kind is not None:
            remember_valid(kind, data)

    @staticmethod
    def _validate_records(name: str, obj: object, skip: list[bool] | None = None) -> None:
        kind = fmt.RECORD_KINDS.get(name)
        if kind is None:
            return
        if not isinstance(obj, list):
            raise BundleError(f"{name}: must be a JSON list of {kind} records, not "
                              f"{type(obj).__name__}")
        for index, record in enumerate(obj):
            if not (skip and skip[index]):
                validate(kind, record, where=f"{name}[{index}]")


class ConsoleSink:
    """Appends the console's raw bytes to console.log as they arrive.

    Each write goes straight to the OS (no user-space buffer), so a killed run keeps every byte
    received; ``close`` fsyncs and returns the total byte count. ``size`` is the offset the next
    byte will have, which is what a console parser records as a result's byte range.

    A running sha256 follows the writes, so a checkpoint learns the digest of everything
    received without reading the log again (``append`` hashes the existing bytes once):

    >>> import tempfile
    >>> sink = ConsoleSink(Path(tempfile.mkdtemp()) / "console.log")
    >>> _ = sink.write(b"boot\\n")
    >>> sink.received() == (5, hashlib.sha256(b"boot\\n").hexdigest())
    True
    """

    def __init__(self, path: Path, on_close=None, append: bool = False):
        self.path = path
        self.closed = False
        self._on_close = on_close
        # write() and received() may run on different threads (reader and checkpoint): the
        # size and the digest must always describe the same bytes.
        self._lock = threading.Lock()
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT if append else os.O_CREAT | os.O_EXCL)
        self._fd = os.open(path, flags, 0o644)
        self.size = os.fstat(self._fd).st_size
        self._digest = prefix_digest(path, self.size) if self.size else hashlib.sha256()
        fsync_directory(path.parent)

    def received(self) -> tuple[int, str]:
        """(size, sha256) of every byte in the log so far, without reading it again."""
        with self._lock:
            return self.size, self._digest.copy().hexdigest()

    def sync(self) -> None:
        """Make every byte received so far durable (a checkpoint)."""
        with self._lock:
            if not self.closed:
                os.fsync(self._fd)

    def write(self, data: bytes) -> int:
        """Append ``data`` untouched; returns ``len(data)`` like a file (``size`` is the total)."""
        with self._lock:
            if self.closed:
                raise ValueError(f"{self.path}: console sink is closed")
            view = memoryview(data)
            while view:
                done = os.write(self._fd, view)
                self._digest.update(view[:done])  # what is in the file, even if a write fails
                self.size += done
                view = view[done:]
        return len(data)

    def close(self) -> int:
        """Make the console durable; returns the total byte count. Closing twice is harmless."""
        with self._lock:
            if self.closed:
                return self.size
            try:
                os.fsync(self._fd)
            finally:
                os.close(self._fd)
                self.closed = True
        if self._on_close is not None:
            self._on_close(self._digest.hexdigest())
        return self.size

    def __enter__(self) -> "ConsoleSink":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _first_difference(left: list[str], right: list[str]) -> str:
    for index in range(max(len(left), len(right))):
        a = left[index] if index < len(left) else "nothing"
        b = right[index] if index < len(right) else "nothing"
        if a != b:
            return f"position {index}: planned {a}, result {b}"
    return "none"


def _regular_file(path: Path) -> os.stat_result | None:
    """The status of a real file (what fmt.is_regular accepts) in one system call; None for a
    symbolic link, a special file or a file gone since the directory was listed."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def _identity(info: os.stat_result) -> tuple:
    """What changes when a file is replaced or modified: an atomic rewrite makes a new inode,
    a write in place moves the modification and change times (nanoseconds)."""
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
