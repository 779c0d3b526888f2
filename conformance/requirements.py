"""Requirement records: one checkable statement with a stable id and a fingerprint.

>>> r = Requirement.make("REQ-open-001", interface="open", unit="file-io",
...     text="On success  open() returns\\na descriptor.", source={"standard": "POSIX.1-2017",
...     "section": "open(): RETURN VALUE"}, method="test")
>>> r.fingerprint == fingerprint("On success open() returns a descriptor.")
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

METHODS = ("test", "compile", "link", "analysis")
STATUSES = ("active", "obsolete")


def normalise_wording(text: str) -> str:
    """Whitespace is layout, not meaning: folding it keeps re-wrapped text's fingerprint."""
    return " ".join(text.split())


def fingerprint(text: str) -> str:
    """sha256 of the normalised wording; a changed fingerprint makes trace links suspect."""
    return hashlib.sha256(normalise_wording(text).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Requirement:
    id: str
    interface: str
    unit: str
    text: str
    source: dict = field(hash=False, compare=True)
    method: str = "test"
    status: str = "active"
    fingerprint: str = ""
    profiles: tuple[str, ...] = ()

    @classmethod
    def make(cls, id: str, *, interface: str, unit: str, text: str, source: dict,
             method: str = "test", status: str = "active",
             profiles: tuple[str, ...] = ()) -> "Requirement":
        if method not in METHODS:
            raise ValueError(f"{id}: method {method!r} is not one of {', '.join(METHODS)}")
        if status not in STATUSES:
            raise ValueError(f"{id}: status {status!r} is not one of {', '.join(STATUSES)}")
        text = normalise_wording(text)
        return cls(id=id, interface=interface, unit=unit, text=text, source=dict(source),
                   method=method, status=status, fingerprint=fingerprint(text),
                   profiles=tuple(profiles))

    def to_json(self) -> dict:
        """The record as stored in a bundle's requirements.json."""
        return {
            "id": self.id,
            "interface": self.interface,
            "unit": self.unit,
            "text": self.text,
            "source": dict(sorted(self.source.items())),
            "method": self.method,
            "status": self.status,
            "fingerprint": self.fingerprint,
            "profiles": list(self.profiles),
        }
