"""Validate bundle records against the JSON Schemas in ``evidence/schema/``.

(The schemas live in the sibling *directory* ``schema/``; this module is ``evidence.schema``.)

>>> validate("requirement", {"id": "REQ-open-001"}, where="requirements.json[0]")
Traceback (most recent call last):
...
evidence.errors.BundleError: requirements.json[0]: field 'interface' is missing (and 7 more problems); the record does not follow pcert-bundle/1: regenerate the bundle or correct the field
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cache
from importlib import resources

import jsonschema
from jsonschema.exceptions import best_match

from .errors import BundleError
from .fastschema import compile_schema

KINDS = ("manifest", "result", "testcase", "requirement")

HINT = "the record does not follow pcert-bundle/1: regenerate the bundle or correct the field"


@cache
def load_schema(kind: str) -> dict:
    """The parsed schema of one kind of record (manifest, result, testcase, requirement)."""
    if kind not in KINDS:
        raise ValueError(f"unknown schema kind {kind!r}; one of {', '.join(KINDS)}")
    text = resources.files(__package__).joinpath("schema", f"{kind}.schema.json").read_text(
        encoding="utf-8")
    return json.loads(text)


# The schemas are package data, checked against the JSON Schema meta-schema by the tests
# (tests/test_evidence.py), not in every process: that took 0.1 s of each run.
@cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema(kind))


@cache
def _fast_check(kind: str):
    return compile_schema(load_schema(kind))


# Record files found valid in this process, by (kind, sha256 of their bytes). A run writes,
# seals, reports on and indexes the same files: the same bytes can only validate the same way,
# and checking ~3,000 records again each time cost about a second of every run.
_VALID_FILES: set[tuple[str, str]] = set()


def remember_valid(kind: str, data: bytes) -> None:
    """Note that every record in the file `data` was validated as `kind`."""
    _VALID_FILES.add((kind, hashlib.sha256(data).hexdigest()))


def known_valid(kind: str, data: bytes) -> bool:
    """Whether exactly these bytes were validated as `kind` before in this process."""
    return (kind, hashlib.sha256(data).hexdigest()) in _VALID_FILES


def validate_file(kind: str, records: list, data: bytes, where) -> None:
    """Validate every record of one file (`data` its bytes, `where(i)` names record i), unless
    these very bytes were validated before in this process; then remember them."""
    if known_valid(kind, data):
        return
    for index, record in enumerate(records):
        validate(kind, record, where=where(index))
    remember_valid(kind, data)


def validate(kind: str, obj: object, *, where: str = "") -> None:
    """Raise :class:`BundleError` naming ``where`` (the file, maybe with an index) and the
    field path when ``obj`` does not match the schema of ``kind``."""
    if _fast_check(kind)(obj) is True:
        # Certainly valid (evidence/fastschema.py): skip jsonschema, ~100 times slower.
        if kind == "result":
            _check_ranges(obj, where or kind)
        return
    errors = list(_validator(kind).iter_errors(obj))
    if errors:
        error = best_match(errors)
        others = len(errors) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        raise BundleError(f"{where or kind}: {describe(error)}{more}; {HINT}")
    if kind == "result":
        _check_ranges(obj, where or kind)


def describe(error: jsonschema.ValidationError) -> str:
    """``field 'plan.test_cases': -1 is less than the minimum of 0`` and the like."""
    path = field_path(error.absolute_path)
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        name = field_path([*error.absolute_path, missing[0]]) if missing else path
        return f"field '{name}' is missing"
    where = f"field '{path}'" if path else "the record"
    return f"{where}: {error.message}"


def field_path(parts) -> str:
    """Readable path: ``files['console.log'].sha256``, ``guest.opt[3]``.

    >>> field_path(["files", "console.log", "sha256"])
    "files['console.log'].sha256"
    """
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


def _check_ranges(result: dict, where: str) -> None:
    # JSON Schema cannot compare two fields; a reversed range would slice nothing silently.
    for field in ("console", "host_time"):
        span = result.get(field)
        if span is not None and span["end"] is not None and span["end"] < span["start"]:
            raise BundleError(f"{where}: field '{field}': end {span['end']} is before start "
                              f"{span['start']}; {HINT}")
