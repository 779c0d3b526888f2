"""Catalog snapshots: the current requirement fingerprints and procedure hashes, as a file.

A bundle records what its results were obtained against. To find which of its trace links a
later catalog has made suspect, the reports compare it with a snapshot of that catalog, made by
``pcert catalog-snapshot`` (or any tool that writes this format):

    {
      "schema": "pcert-catalog-snapshot/1",
      "source": "pcert 0.2.0 at 1a2b3c4 (face-safety-base)",      # optional, free text
      "requirements": {"REQ-open-001": "<fingerprint>", ...},      # id -> sha256 of the wording
      "procedures": {"TC-open-001": "<procedure sha256>", ...}     # test case id -> sha256
    }

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "catalog.json"
>>> write_snapshot(path, {"REQ-a-001": "a" * 64}, {"TC-a-001": "b" * 64}, source="test")
>>> load_snapshot(path).requirements
{'REQ-a-001': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .atomic import write_json_atomic
from .errors import InputError

SNAPSHOT_SCHEMA = "pcert-catalog-snapshot/1"
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class CatalogSnapshot:
    """Requirement id -> fingerprint and test case id -> procedure sha256 of one catalog."""

    requirements: dict[str, str]
    procedures: dict[str, str]
    source: str = ""


def write_snapshot(path: Path | str, requirements: dict[str, str], procedures: dict[str, str],
                   source: str = "") -> None:
    """Write a snapshot file atomically (deterministic JSON)."""
    snapshot = {"schema": SNAPSHOT_SCHEMA, "source": source,
                "requirements": dict(sorted(requirements.items())),
                "procedures": dict(sorted(procedures.items()))}
    _check(snapshot, str(path))
    write_json_atomic(path, snapshot)


def load_snapshot(path: Path | str) -> CatalogSnapshot:
    """Read and check a snapshot file; InputError names the file and the entry at fault."""
    try:
        data = json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror}); make a snapshot with "
                         "`pcert catalog-snapshot --out FILE`") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: not a JSON catalog snapshot ({error})") from None
    _check(data, str(path))
    return CatalogSnapshot(requirements=dict(data["requirements"]),
                           procedures=dict(data["procedures"]), source=data.get("source") or "")


def _check(data: object, where: str) -> None:
    if not isinstance(data, dict) or data.get("schema") != SNAPSHOT_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{where}: field 'schema' is {found!r}, expected {SNAPSHOT_SCHEMA!r}; "
                         "make a snapshot with `pcert catalog-snapshot --out FILE`")
    for section in ("requirements", "procedures"):
        table = data.get(section)
        if not isinstance(table, dict):
            raise InputError(f"{where}: field '{section}' must be an object of id -> sha256")
        for key, value in table.items():
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                raise InputError(f"{where}: {section}[{key!r}]: {value!r} is not 64 lower-case "
                                 "hex digits")
    if not isinstance(data.get("source", ""), str):
        raise InputError(f"{where}: field 'source' must be text")
