"""Waivers and interpretations: approved dispositions of discrepancies, applied at report time.

A waivers file is YAML (JSON is YAML too), kept under configuration control beside the runs:

    schema: pcert-waivers/1
    waivers:
      - id: WVR-2026-001                 # unique in the file
        kind: waiver                     # waiver (default) | interpretation
        covers: [TC-read-002, REQ-open-001]   # test case ids and/or requirement ids
        justification: >
          The target's read() returns EINTR ... accepted because ...
        approver: J. Doe (DER)
        date: 2026-11-20                 # approved on
        expires: 2027-05-20              # or `never` (an interpretation that stands)

A waiver covering a requirement covers every test case that verifies it. Applying a waiver never
changes a verdict: a FAIL stays a FAIL, shown as dispositioned by the waiver (reports/model.py).

>>> import tempfile, pathlib, datetime
>>> path = pathlib.Path(tempfile.mkdtemp()) / "waivers.yaml"
>>> _ = path.write_text("schema: pcert-waivers/1\\nwaivers:\\n- {id: W-1, covers: [TC-a-001], "
...     "justification: ok, approver: me, date: 2026-01-01, expires: 2026-06-30}\\n")
>>> [waiver] = load_waivers(path)
>>> waiver.state(datetime.date(2026, 7, 1))
'expired'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import InputError

class _Loader(yaml.SafeLoader):
    """Safe YAML with dates left as text: they are checked here, naming the field."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

WAIVERS_SCHEMA = "pcert-waivers/1"
KINDS = ("waiver", "interpretation")
NEVER = "never"
REQUIRED = ("id", "covers", "justification", "approver", "date", "expires")
KNOWN = (*REQUIRED, "kind")


@dataclass(frozen=True)
class Waiver:
    id: str
    kind: str
    covers: tuple[str, ...]
    justification: str
    approver: str
    date: dt.date
    expires: dt.date | None        # None: never expires

    def state(self, as_of: dt.date) -> str:
        """``valid``, ``expired`` (after its expiry date) or ``not yet valid`` (before its
        approval date) on the day ``as_of``."""
        if as_of < self.date:
            return "not yet valid"
        if self.expires is not None and as_of > self.expires:
            return "expired"
        return "valid"

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "covers": list(self.covers),
                "justification": self.justification, "approver": self.approver,
                "date": self.date.isoformat(),
                "expires": self.expires.isoformat() if self.expires else NEVER}


def load_waivers(path: Path | str) -> list[Waiver]:
    """Read and check a waivers file; InputError names the file, the waiver and the field."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror}); give the path of a "
                         "waivers file (docs/evidence.md)") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: byte {error.start} is not UTF-8; save the file as UTF-8") \
            from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise InputError(f"{where}: not valid YAML ({getattr(error, 'problem', error)})") \
            from None
    return parse_waivers(data, str(path))


def parse_waivers(data: object, where: str = "waivers") -> list[Waiver]:
    """Waivers from the parsed YAML/JSON document ``data``."""
    if not isinstance(data, dict) or data.get("schema") != WAIVERS_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{where}: field 'schema' is {found!r}, expected {WAIVERS_SCHEMA!r} "
                         "(docs/evidence.md shows the format)")
    entries = data.get("waivers")
    if not isinstance(entries, list):
        raise InputError(f"{where}: field 'waivers' must be a list of waivers")
    waivers, seen = [], set()
    for index, entry in enumerate(entries):
        waiver = _parse_entry(entry, f"{where}: waivers[{index}]")
        if waiver.id in seen:
            raise InputError(f"{where}: waivers[{index}]: id {waiver.id!r} is used twice; "
                             "give each waiver its own id")
        seen.add(waiver.id)
        waivers.append(waiver)
    return waivers


def _parse_entry(entry: object, where: str) -> Waiver:
    if not isinstance(entry, dict):
        raise InputError(f"{where}: must be a mapping with {', '.join(REQUIRED)}")
    if isinstance(entry.get("id"), str):
        where = f"{where} ({entry['id']})"
    for name in REQUIRED:
        if name not in entry:
            raise InputError(f"{where}: field '{name}' is missing")
    unknown = sorted(set(entry) - set(KNOWN))
    if unknown:
        raise InputError(f"{where}: unknown field '{unknown[0]}'; the fields are "
                         f"{', '.join(KNOWN)}")
    for name in ("id", "justification", "approver"):
        if not isinstance(entry[name], str) or not entry[name].strip():
            raise InputError(f"{where}: field '{name}' must be non-empty text")
    covers = entry["covers"]
    if isinstance(covers, str):
        covers = [covers]
    if (not isinstance(covers, list) or not covers
            or not all(isinstance(c, str) and c.strip() for c in covers)):
        raise InputError(f"{where}: field 'covers' must be a non-empty list of requirement or "
                         "test case ids")
    kind = entry.get("kind", "waiver")
    if kind not in KINDS:
        raise InputError(f"{where}: field 'kind' is {kind!r}, one of {', '.join(KINDS)}")
    date = _date(entry["date"], f"{where}: field 'date'")
    expires = None if entry["expires"] in (None, NEVER) else \
        _date(entry["expires"], f"{where}: field 'expires'")
    if expires is not None and expires < date:
        raise InputError(f"{where}: field 'expires' ({expires}) is before 'date' ({date})")
    return Waiver(id=entry["id"].strip(), kind=kind, covers=tuple(c.strip() for c in covers),
                  justification=" ".join(entry["justification"].split()),
                  approver=entry["approver"].strip(), date=date, expires=expires)


def _date(value: object, where: str) -> dt.date:
    # parse_waivers may be given dates already (from YAML read elsewhere, or from code).
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise InputError(f"{where}: {value!r} is not a date yyyy-mm-dd"
                     + (" or 'never'" if "expires" in where else ""))
