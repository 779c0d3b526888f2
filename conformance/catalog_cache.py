"""A private cache of loaded spec sets, so an unchanged catalog loads in milliseconds.

Loading parses every YAML spec file and checks it against the schema: most of a second, paid by
every `pcert run` and most commands. What it builds depends only on the spec directories as
given (each SpecFile keeps its path), the bytes and names of their spec files, the schema, the
code that builds the SpecSet, and the Python and PyYAML that run it. A sha256 of all of these
names the cache file, so whatever changes the result also changes the name:

    spec_set = load_cached(dirs)      # equal to load_spec_dirs(dirs)

A cache never makes a load fail or answer differently: a cache directory that cannot be
written, or a cache file that cannot be read or unpickled, is ignored (and the file replaced).
Spec files with problems raise SpecError from load_spec_dirs, exactly as without a cache, and
nothing is stored for them.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
from functools import cache
from pathlib import Path

import yaml

from evidence import fastschema
from evidence.atomic import write_bytes_atomic
from evidence.gcpause import collection_paused
from targets.kernel import default_cache_dir as pcert_cache_dir

from . import conditions, requirements, specitems
from .specitems import SpecSet, load_spec_dirs

FORMAT = b"pcert-catalog-cache/1"
# The modules whose code builds a SpecSet (tests/test_catalog_cache.py keeps this complete).
BUILDERS = (specitems, conditions, requirements, fastschema, sys.modules[__name__])
KEEP = 8  # cache files kept, most recently used first: a few spec sets in use at once


def default_cache_dir() -> Path:
    """<pcert's cache directory>/catalog (targets.kernel.default_cache_dir: $PCERT_CACHE, else
    $XDG_CACHE_HOME/pcert, else ~/.cache/pcert)."""
    return pcert_cache_dir() / "catalog"


def load_cached(dirs: list[Path], cache_dir: Path | None = None) -> SpecSet:
    """``load_spec_dirs(dirs)``, from ``cache_dir`` (default: :func:`default_cache_dir`) when
    the same inputs were loaded before."""
    key = cache_key(dirs)
    if key is None:  # a directory or file cannot be read: the loader says what is wrong
        return load_spec_dirs(dirs)
    path = (cache_dir or default_cache_dir()) / f"{key}.pickle"
    spec_set = _read(path, key)
    if spec_set is None:
        spec_set = load_spec_dirs(dirs)
        if cache_key(dirs) == key:  # no spec file changed while it was being loaded
            _write(path, key, spec_set)
    return spec_set


def cache_key(dirs: list[Path]) -> str | None:
    """sha256 of everything a loaded SpecSet depends on; None when a spec directory or file
    cannot be read (such a load is never cached)."""
    environment = _environment_digest()
    if environment is None:
        return None
    digest = hashlib.sha256()
    _feed(digest, FORMAT, environment)
    try:
        for d in map(Path, dirs):
            if not d.is_dir():
                return None
            _feed(digest, b"directory", os.fsencode(str(d)))
            # The files load_spec_dirs reads, in its order.
            for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
                _feed(digest, os.fsencode(path.name), path.read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


@cache
def _environment_digest() -> bytes | None:
    """The code, schema and interpreter behind a load; None when some source cannot be read
    (an install without .py files: no cache). Read once per process, near its start: a module
    edited after it was imported must not lend its new text to the old code's result."""
    digest = hashlib.sha256()
    _feed(digest, sys.version.encode(), yaml.__version__.encode(),
          str(yaml.__with_libyaml__).encode())
    try:
        _feed(digest, specitems.SCHEMA_PATH.read_bytes())
        for module in BUILDERS:
            _feed(digest, module.__name__.encode(), Path(module.__file__ or "").read_bytes())
    except (OSError, AttributeError):
        return None
    return digest.digest()


def _feed(digest, *parts: bytes) -> None:
    """Add ``parts`` length-prefixed, so no two different inputs run together alike."""
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)


def _read(path: Path, key: str) -> SpecSet | None:
    """The spec set cached in ``path``; None when there is none or it cannot be trusted."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.geteuid():
                return None  # unpickling runs code: only ever our own files
            with collection_paused():
                entry = pickle.load(f)
    except Exception:  # missing, unreadable, truncated, garbage: load afresh and replace it
        return None
    if not (isinstance(entry, dict) and entry.get("key") == key
            and isinstance(entry.get("spec_set"), SpecSet)):
        return None
    _touch(path)
    return entry["spec_set"]


def _write(path: Path, key: str, spec_set: SpecSet) -> None:
    """Store ``spec_set`` atomically (a reader sees the old file or the new, never half)."""
    data = pickle.dumps({"key": key, "spec_set": spec_set}, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_bytes_atomic(path, data)
    except OSError:
        return  # a read-only or full cache: this load parsed the files, the next one will too
    _prune(path)


def _touch(path: Path) -> None:
    """Mark a cache file as used, so pruning keeps it."""
    try:
        os.utime(path)
    except OSError:
        pass


def _prune(fresh: Path) -> None:
    """Remove all but the KEEP most recently used cache files, ``fresh`` (just written) one
    of them whatever the clock's resolution."""
    others = [path for path in fresh.parent.glob("*.pickle") if path != fresh]
    for path in sorted(others, key=_last_used, reverse=True)[KEEP - 1:]:
        try:
            path.unlink()
        except OSError:
            pass  # another process pruned it first


def _last_used(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
