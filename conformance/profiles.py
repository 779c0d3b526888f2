"""Interfaces and profiles, from the FACE/POSIX profile table (RTEMS Project, CC-BY-SA-4.0).

A profile is a named set of required interfaces. FACE profiles come in editions; an interface
marked MP is required only where the OS supports multiple processes.

>>> p = load_profile("face-safety-base")
>>> (p.name, p.edition, "open" in p.required, len(p.required) > 200)
('face-safety-base', '3.2', True, True)
>>> load_profile("face-safety-extended@3.1").edition
'3.1'
>>> "fork" in load_profile("face-safety-extended").multi_process_only
True
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

DEFAULT_FACE_EDITION = "3.2"

# FACE profile names as printed in the by-edition table, keyed by our slug.
FACE_PROFILES = {
    "face-security": "Security",
    "face-safety-base": "Safety Base",
    "face-safety-extended": "Safety Extended",
    "face-general-purpose": "General Purpose",
    # Draft-only profiles of FACE 3.3.
    "face-arinc653-security": "ARINC 653 C >= SB Security",
    "face-arinc653-c-library": "ARINC 653 C Library Security",
    "face-general-purpose-c11-threads": "General Purpose C11 Threads",
}

# Non-FACE profiles: column of posix-face-profiles.csv and a title.
COLUMN_PROFILES = {
    "pse51": ("pse51", "IEEE Std 1003.13-2003 PSE51 (minimal realtime system)"),
    "pse52": ("pse52", "IEEE Std 1003.13-2003 PSE52 (realtime controller)"),
    "pse53": ("pse53", "IEEE Std 1003.13-2003 PSE53 (dedicated realtime system)"),
    "pse54": ("pse54", "IEEE Std 1003.13-2003 PSE54 (multi-purpose realtime system)"),
    "posix-2003": ("posix_2003", "IEEE Std 1003.1-2003 (POSIX.1-2003)"),
    "posix-2008": ("posix_2008", "IEEE Std 1003.1-2008 (POSIX.1-2008)"),
    "posix-2017": ("posix_2017", "IEEE Std 1003.1-2017 (POSIX.1-2017)"),
    "posix-2024": ("posix_2024", "IEEE Std 1003.1-2024 (POSIX.1-2024)"),
}

_DATA = resources.files("conformance") / "data"


class ProfileError(ValueError):
    """An unknown profile or edition; the message lists what exists."""


@dataclass(frozen=True)
class Interface:
    name: str
    header: str
    kind: str                 # callable | object
    option_group: str         # e.g. POSIX_TIMERS; "" for the base
    editions: tuple[str, ...]  # POSIX editions that include it, e.g. ("2008", "2017", "2024")

    @property
    def unit(self) -> str:
        """A coarse unit of functionality for interfaces without a spec file: the header."""
        return self.header.removesuffix(".h")


@dataclass(frozen=True)
class Profile:
    name: str                       # e.g. face-safety-base
    edition: str | None             # FACE edition, None for non-FACE profiles
    title: str
    required: frozenset[str]        # every interface the profile names (MP ones included)
    multi_process_only: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.name}@{self.edition}" if self.edition else self.name

    def required_for(self, multi_process: bool) -> frozenset[str]:
        """The interfaces a system must provide, given whether it supports multiple processes."""
        return self.required if multi_process else self.required - self.multi_process_only


def _read_csv(name: str) -> list[dict[str, str]]:
    with (_DATA / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@cache
def interfaces() -> dict[str, Interface]:
    """Every interface of the profile table, by name."""
    result = {}
    for row in _read_csv("posix-face-profiles.csv"):
        editions = tuple(e for e in ("2003", "2008", "2017", "2024") if row[f"posix_{e}"] == "1")
        result[row["function"]] = Interface(
            name=row["function"], header=row["header"], kind=row["kind"],
            option_group=row["posix_option_group"], editions=editions)
    return result


@cache
def _face_table() -> dict[tuple[str, str], dict[str, str]]:
    """(edition, FACE profile title) -> {interface: 'required' | 'multi_process'}."""
    table: dict[tuple[str, str], dict[str, str]] = {}
    for row in _read_csv("posix-face-profiles-by-edition.csv"):
        table.setdefault((row["face_edition"], row["face_profile"]), {})[row["function"]] = row["requirement"]
    return table


def face_editions() -> list[str]:
    return sorted({edition for edition, _ in _face_table()})


def profile_names() -> list[str]:
    """Every selectable profile name (FACE ones accept @EDITION)."""
    return sorted(FACE_PROFILES) + sorted(COLUMN_PROFILES)


_NAME = re.compile(r"^(?P<name>[a-z0-9-]+)(?:@(?P<edition>[0-9][0-9a-z.-]*))?$")


@cache
def load_profile(spec: str) -> Profile:
    """A profile by name, e.g. `face-safety-base`, `face-safety-base@3.1`, `pse52`, `posix-2024`."""
    match = _NAME.match(spec.strip())
    if not match:
        raise ProfileError(f"profile {spec!r} is not of the form NAME or NAME@EDITION; "
                           f"known profiles: {', '.join(profile_names())}")
    name, edition = match["name"], match["edition"]
    if name in COLUMN_PROFILES:
        if edition:
            raise ProfileError(f"profile {name!r} has no editions; drop '@{edition}'")
        column, title = COLUMN_PROFILES[name]
        required = frozenset(row["function"] for row in _read_csv("posix-face-profiles.csv")
                             if row[column] == "1")
        return Profile(name=name, edition=None, title=title, required=required,
                       multi_process_only=frozenset())
    if name not in FACE_PROFILES:
        raise ProfileError(f"unknown profile {name!r}; known profiles: {', '.join(profile_names())}")
    edition = edition or DEFAULT_FACE_EDITION
    members = _face_table().get((edition, FACE_PROFILES[name]))
    if members is None:
        available = sorted(e for e, title in _face_table() if title == FACE_PROFILES[name])
        raise ProfileError(f"profile {name!r} has no FACE edition {edition!r}; "
                           f"available: {', '.join(available)}")
    return Profile(
        name=name, edition=edition,
        title=f"FACE Technical Standard {edition} OS profile {FACE_PROFILES[name]}",
        required=frozenset(members),
        multi_process_only=frozenset(f for f, req in members.items() if req == "multi_process"))
