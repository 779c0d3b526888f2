"""What a presence check covers: the edition's feature-test macros, and the expectations of a
profile, grouped into compile units (one header under one conformance level).

>>> from conformance.profiles import load_profile
>>> s = select(load_profile("posix-2024"), multi_process=True)
>>> s.edition.macros("xsi")
['-D_XOPEN_SOURCE=800']
>>> any(u.header == "tgmath.h" for u in s.units)
True
>>> face = select(load_profile("face-safety-base"), multi_process=True)
>>> (face.edition.standard, any(u.header == "tgmath.h" for u in face.units))
('POSIX.1-2008', False)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..profiles import Profile, interfaces
from .expectations import Expectation, load_expectations


@dataclass(frozen=True)
class Edition:
    """The POSIX edition a profile is judged against, and how an application asks for it."""

    key: str               # 2003 | 2008 | 2017 | 2024
    standard: str          # e.g. POSIX.1-2008
    posix_c_source: str    # _POSIX_C_SOURCE value, e.g. 200809L
    xopen_source: str      # _XOPEN_SOURCE value, e.g. 700
    c_standard: str        # the ISO C edition the POSIX edition builds on (-std=)
    posix_version: int     # the _POSIX_VERSION of headers that implement the edition
    # Whether the expectation data describes this edition. It describes POSIX.1-2008 (and so
    # 2017, and 2024 but for its additions). For an older edition only the profile's
    # interfaces are checked, all in the broadest environment (XSI): which types and constants
    # a 2003 header had, and which interfaces were XSI then, the data cannot say.
    data_applies: bool = True

    def macros(self, level: str) -> list[str]:
        """Feature-test macros for a level: `base` (POSIX only) or `xsi` (X/Open System
        Interfaces, which imply the POSIX level of the same edition)."""
        if level == "xsi":
            return [f"-D_XOPEN_SOURCE={self.xopen_source}"]
        return [f"-D_POSIX_C_SOURCE={self.posix_c_source}"]


EDITIONS = {
    "2003": Edition("2003", "POSIX.1-2003", "200112L", "600", "c99", 200112, data_applies=False),
    "2008": Edition("2008", "POSIX.1-2008", "200809L", "700", "c99", 200809),
    "2017": Edition("2017", "POSIX.1-2017", "200809L", "700", "c99", 200809),
    "2024": Edition("2024", "POSIX.1-2024", "202405L", "800", "c17", 202405),
}
# Every FACE edition (2.1 to 3.3) references POSIX.1-2008; IEEE Std 1003.13-2003 (PSE51-54)
# builds on POSIX.1-2003.
_PROFILE_EDITIONS = {"posix-2003": "2003", "posix-2008": "2008", "posix-2017": "2017",
                     "posix-2024": "2024", "pse51": "2003", "pse52": "2003", "pse53": "2003",
                     "pse54": "2003"}
# Headers of the C language support every profile needs, though the profile table lists no
# function of theirs (limits, types, booleans).
LANGUAGE_HEADERS = frozenset({"float.h", "limits.h", "stdbool.h", "stddef.h", "stdint.h",
                              "sys/types.h"})
LEVELS = ("base", "xsi")


def edition_for(profile: Profile) -> Edition:
    return EDITIONS[_PROFILE_EDITIONS.get(profile.name, "2008")]


def header_slug(header: str) -> str:
    """`sys/stat.h` -> `sys-stat`: for ids and file names."""
    return header.removesuffix(".h").replace("/", "-")


@dataclass(frozen=True, order=True)
class Unit:
    """One header checked under one level's feature-test macros: one translation unit."""

    header: str
    level: str   # base | xsi

    @property
    def name(self) -> str:
        """`sys-stat`, `sys-stat-xsi`: the unit's file stem in the bundle."""
        return header_slug(self.header) + ("-xsi" if self.level == "xsi" else "")

    @property
    def standard(self) -> str:
        """The namespace rule set of the glibc data for this level."""
        return "XOPEN2K8" if self.level == "xsi" else "POSIX2008"


@dataclass
class Scope:
    profile: Profile
    edition: Edition
    multi_process: bool
    required: frozenset[str]                       # interfaces required on this target
    units: dict[Unit, list[Expectation]] = field(default_factory=dict)
    _primary: dict[str, list[Expectation]] | None = field(default=None, repr=False)

    @property
    def expectations(self) -> list[Expectation]:
        return [e for unit in sorted(self.units) for e in self.units[unit]]

    def primary_rows(self, interface: str) -> list[Expectation]:
        """The rows that decide whether `interface` is declared: those in the header the profile
        table names, or, where that header has none (a misplaced name), all of them."""
        if self._primary is None:
            by_name: dict[str, list[Expectation]] = {}
            for e in self.expectations:
                if e.interface:
                    by_name.setdefault(e.interface, []).append(e)
            table = interfaces()
            self._primary = {}
            for name, rows in by_name.items():
                header = table[name].header if name in table else None
                self._primary[name] = [e for e in rows if e.header == header] or rows
        return self._primary.get(interface, [])


def _primary_headers() -> dict[str, set[str]]:
    """interface -> headers whose rows decide it (see Scope.primary_rows)."""
    by_interface: dict[str, set[str]] = {}
    for e in load_expectations():
        if e.interface:
            by_interface.setdefault(e.interface, set()).add(e.header)
    table = interfaces()
    return {name: ({table[name].header} & headers) or headers
            for name, headers in by_interface.items()}


def select(profile: Profile, *, multi_process: bool) -> Scope:
    """The expectations in scope for `profile` on a target with or without processes.

    Headers: those that declare a required interface, plus, for POSIX edition profiles, every
    header of the data that declares no interface of the table at all (limits.h, tgmath.h, ...),
    and for other profiles the C language headers. Within them: every supporting row (types,
    constants, members; not for POSIX.1-2003, which the data does not describe), and the
    interface rows of required interfaces only.
    """
    required = profile.required_for(multi_process)
    primary = _primary_headers()
    headers: set[str] = set()
    for name in required:
        headers |= primary.get(name, set())
    primary_anywhere = {h for hs in primary.values() for h in hs}
    interface_less = {e.header for e in load_expectations()} - primary_anywhere
    headers |= interface_less if profile.name.startswith("posix-") \
        else interface_less & LANGUAGE_HEADERS
    scope = Scope(profile=profile, edition=edition_for(profile), multi_process=multi_process,
                  required=required)
    for e in load_expectations():
        if e.editions and scope.edition.key not in e.editions:
            continue
        if not e.interface and not scope.edition.data_applies:
            continue
        if e.header in headers and (not e.interface or e.interface in required):
            level = "xsi" if e.xsi or not scope.edition.data_applies else "base"
            scope.units.setdefault(Unit(e.header, level), []).append(e)
    scope.units = dict(sorted(scope.units.items()))
    return scope
