"""Read an evidence bundle: what a report needs, and nothing that needs the catalog or targets.

>>> bundle = Bundle.open("runs/20261126T160000Z-linux-x86_64-3fa9c1")   # doctest: +SKIP
>>> bundle.summary()                                                     # doctest: +SKIP
{'PASS': 40, 'FAIL': 1, 'UNRESOLVED': 0, 'UNSUPPORTED': 1, 'UNTESTED': 0, 'UNINITIATED': 0}
>>> for result in bundle.results:                                        # doctest: +SKIP
...     trace = bundle.console_slice(result)      # the raw bytes the guest printed for it

Opening reads and validates only the manifest; the other files are read, validated and cached
on first use. Any problem is a :class:`BundleError` naming the file (and line or field). Opening
does not check hashes: that is :func:`evidence.verify.verify_bundle`.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cached_property
from pathlib import Path

from . import format as fmt
from .errors import BundleError
from .schema import validate, validate_file

DAMAGED = "the bundle is damaged or incomplete: run `pcert verify` on it"


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or BundleError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing; {DAMAGED}") from None
    except OSError as error:
        raise BundleError(f"{path}: cannot be read ({error.strerror}); check its "
                          "permissions") from None


def _decode(path: Path, data: bytes, line: int | None = None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        at = f" line {line}" if line else ""
        raise BundleError(f"{path}:{at} byte {error.start} is not UTF-8; {DAMAGED}") from None


def read_json(path: Path) -> object:
    """Parse a JSON file, or BundleError with the line and column of the problem."""
    return parse_json(path, read_bytes(path))


def parse_json(path: Path, data: bytes) -> object:
    """`data`, the bytes of the JSON file `path`, parsed (errors name the file)."""
    text = _decode(path, data)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BundleError(f"{path}: line {error.lineno} column {error.colno}: invalid JSON "
                          f"({error.msg}); {DAMAGED}") from None


def read_jsonl(path: Path) -> list[dict]:
    """One JSON object per line. Lines are split at b"\\n" only: U+2028 or \\x85 inside a
    reason are text, not line ends (``str.splitlines`` would cut them)."""
    return parse_jsonl(path, read_bytes(path))


def parse_jsonl(path: Path, data: bytes) -> list[dict]:
    """`data`, the bytes of the JSON-lines file `path`, parsed (errors name the file)."""
    rows = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(_decode(path, raw, number))
        except json.JSONDecodeError as error:
            raise BundleError(f"{path}: line {number} column {error.colno}: invalid JSON "
                              f"({error.msg}); {DAMAGED}") from None
        if not isinstance(row, dict):
            raise BundleError(f"{path}: line {number}: expected a JSON object, found "
                              f"{type(row).__name__}; {DAMAGED}")
        rows.append(row)
    return rows


class Bundle:
    """A bundle on disk, opened with :meth:`Bundle.open`."""

    def __init__(self, path: Path, manifest: dict):
        self.path = path
        self.manifest = manifest

    @classmethod
    def open(cls, path: Path | str) -> "Bundle":
        """Open the bundle directory ``path`` (or its manifest.json); reads the manifest."""
        path = Path(path)
        if path.name == fmt.MANIFEST and path.is_file():
            path = path.parent
        manifest_path = path / fmt.MANIFEST
        if not path.is_dir():
            raise BundleError(f"{path}: not a directory; give the path of a run's bundle "
                              "directory (runs/<run-id>)")
        if not manifest_path.exists():
            raise BundleError(f"{manifest_path}: missing; the run was interrupted before it "
                              "finished, or this is not a bundle directory")
        manifest = read_json(manifest_path)
        if not isinstance(manifest, dict):
            raise BundleError(f"{manifest_path}: expected a JSON object; {DAMAGED}")
        if manifest.get("schema") != fmt.SCHEMA:
            raise BundleError(f"{manifest_path}: field 'schema' is {manifest.get('schema')!r}, "
                              f"this pcert reads {fmt.SCHEMA!r}; use the pcert version that "
                              "wrote the bundle")
        validate("manifest", manifest, where=str(manifest_path))
        return cls(path, manifest)

    @property
    def run_id(self) -> str:
        return self.manifest["run_id"]

    @property
    def status(self) -> str:
        """complete or incomplete."""
        return self.manifest["status"]

    @cached_property
    def requirements(self) -> list[dict]:
        """requirements.json: the requirements in scope, sorted by id."""
        return self._records(fmt.REQUIREMENTS)

    @cached_property
    def testcases(self) -> list[dict]:
        """testcases.json: the planned test cases, in plan order."""
        return self._records(fmt.TESTCASES)

    @cached_property
    def results(self) -> list[dict]:
        """results.jsonl: one result per planned test case, in plan order."""
        path = self.path / fmt.RESULTS
        data = read_bytes(path)
        rows = parse_jsonl(path, data)
        validate_file("result", rows, data, lambda index: f"{path}: line {index + 1}")
        return rows

    @cached_property
    def anomalies(self) -> list[dict]:
        """anomalies.jsonl: rejected console records and the like; [] when the run had none."""
        path = self.path / fmt.ANOMALIES
        if not path.exists() and fmt.ANOMALIES not in self.manifest["files"]:
            return []
        return read_jsonl(path)

    def console_bytes(self) -> bytes:
        """console.log exactly as received."""
        return self._console

    @cached_property
    def _console(self) -> bytes:
        return read_bytes(self.path / fmt.CONSOLE)

    def _read_console(self, name: str) -> bytes:
        if not fmt.is_console(name):
            raise BundleError(f"{self.path / fmt.RESULTS}: console file {name!r} is not a "
                              f"console log name; {DAMAGED}")
        if name not in self._other_consoles:
            self._other_consoles[name] = read_bytes(self.path / name)
        return self._other_consoles[name]

    @cached_property
    def _other_consoles(self) -> dict[str, bytes]:
        return {}

    def console_slice(self, result: dict) -> bytes:
        """The console bytes [start, end) of one result; b"" when it never began."""
        span = result.get("console")
        if span is None:
            return b""
        # A parallel worker's results point into its own log (console.wN.log).
        console = self._console if span.get("file", fmt.CONSOLE) == fmt.CONSOLE \
            else self._read_console(span["file"])
        if span["end"] > len(console):
            raise BundleError(f"{self.path / fmt.RESULTS}: result {result.get('id')!r}: field "
                              f"'console' ends at byte {span['end']}, but {span.get('file', fmt.CONSOLE)} has "
                              f"{len(console)} bytes; {DAMAGED}")
        return console[span["start"]:span["end"]]

    def procedure_source(self, testcase: dict) -> str:
        """Text of the C file holding the test case's procedure (the whole file)."""
        name = testcase["procedure"]["file"]
        path = self.path / name
        # The schema already refuses '..'; resolving again guards against symbolic links.
        if not path.resolve().is_relative_to(self.path.resolve()):
            raise BundleError(f"{self.path / fmt.TESTCASES}: test case {testcase.get('id')!r}: "
                              f"procedure file {name!r} is outside the bundle; {DAMAGED}")
        return _decode(path, read_bytes(path))

    def summary(self) -> dict[str, int]:
        """Number of results per verdict, every verdict present, in TET code order."""
        counts = Counter(result["verdict"] for result in self.results)
        return {verdict: counts.get(verdict, 0) for verdict in fmt.VERDICTS}

    def _records(self, name: str) -> list[dict]:
        path = self.path / name
        data = read_bytes(path)
        records = parse_json(path, data)
        if not isinstance(records, list):
            raise BundleError(f"{path}: expected a JSON list, found {type(records).__name__}; "
                              f"{DAMAGED}")
        kind = fmt.RECORD_KINDS[name]
        validate_file(kind, records, data, lambda index: f"{path}[{index}]")
        return records
