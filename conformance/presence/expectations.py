"""Typed header expectations, loaded from package data.

Two files feed them: posix-header-expectations.csv (the GNU C Library's conformance data for
POSIX.1-2008 base and XSI, LGPL-2.1-or-later, see data/ATTRIBUTION.md) and
posix-header-completion.csv (our rows for the interfaces that data leaves out, derived by
`conformance/presence/complete.py`).

>>> rows = load_expectations()
>>> fopen = next(e for e in rows if e.header == "stdio.h" and e.name == "fopen")
>>> (fopen.kind, fopen.interface, fopen.declaration)
('function', 'fopen', 'FILE* (fopen) (const char*, const char*)')
>>> mode = next(e for e in rows if e.label == "struct stat.st_mode")
>>> (mode.kind, mode.aggregate, mode.c_type)
('element', 'struct stat', 'mode_t')
>>> next(e for e in rows if e.interface == "thrd_create").kind
'callable'
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .. import profiles

DATA = resources.files("conformance") / "data"
GLIBC_FILE = "posix-header-expectations.csv"
COMPLETION_FILE = "posix-header-completion.csv"
NAMESPACE_FILE = "posix-header-namespace.csv"

# conformtest kinds, plus the two presence-only kinds of the completion rows.
KINDS = ("function", "macro-function", "variable", "type", "tag", "element", "constant",
         "macro", "macro-constant", "macro-int-constant", "symbol", "macro-str",
         "callable", "object")
# Kinds whose name is a thing an application calls or refers to (may be a profile interface).
NAMED_KINDS = frozenset(KINDS) - {"type", "tag", "element"}


@dataclass(frozen=True)
class Expectation:
    """One thing a header must provide."""

    header: str              # e.g. sys/stat.h
    kind: str                # one of KINDS
    name: str                # identifier; full type name for type/tag; member name for element
    c_type: str = ""         # return, object, member or constant type ("" when none given)
    signature: str = ""      # function parameters "(int, ...)"; element "struct stat.st_mode"
    expected_value: str = ""  # constants: "<op> <value>"; macro-str: the string literal
    declaration: str = ""    # a C declaration of the name (functions: name in parentheses)
    optional: bool = False   # may be omitted (an option, or an indeterminate limit)
    xsi: bool = False        # required only of XSI-conformant systems
    xfail: str = ""          # where glibc itself is known not to conform ("*" everywhere)
    interface: str = ""      # the profile-table interface this row is about ("" for others)
    checks: tuple[str, ...] = ()   # callable/object rows: identifiers that stand for it
    option_group: str = ""   # the interface's option group in the profile table
    editions: tuple[str, ...] = ()   # POSIX editions the row applies to; () for every one
    source: str = ""         # where the row comes from: data file and line, or our note

    @property
    def label(self) -> str:
        """How reports name the item: `fopen`, `struct stat`, `struct stat.st_mode`."""
        return self.signature if self.kind == "element" else self.name

    @property
    def from_glibc(self) -> bool:
        return self.source.startswith("conform/")

    @property
    def aggregate(self) -> str:
        """For elements, the struct or union type: `struct stat`."""
        return self.signature.rsplit(".", 1)[0] if self.kind == "element" else ""

    @property
    def operator(self) -> str:
        return self.expected_value.split(" ", 1)[0] if self._has_bound else ""

    @property
    def bound(self) -> str:
        return self.expected_value.split(" ", 1)[1] if self._has_bound else ""

    @property
    def _has_bound(self) -> bool:
        return self.kind != "macro-str" and " " in self.expected_value.strip()


def _read(name: str) -> list[tuple[int, dict[str, str]]]:
    with (DATA / name).open(newline="", encoding="utf-8") as f:
        return [(line, row) for line, row in enumerate(csv.DictReader(f), start=2)]


@cache
def load_expectations() -> tuple[Expectation, ...]:
    """Every expectation: the glibc rows, then the completion rows, in file order."""
    table = profiles.interfaces()
    rows = []
    for _, row in _read(GLIBC_FILE):
        kind, name = row["kind"], row["name"]
        iface = name if kind in NAMED_KINDS and name in table else ""
        rows.append(Expectation(
            header=row["header"], kind=kind, name=name, c_type=row["c_type"],
            signature=row["signature"], expected_value=row["expected_value"],
            declaration=row["c_declaration"], optional=row["optional"] == "1",
            xsi=row["in_posix2008"] != "1", xfail=row["xfail"], interface=iface,
            option_group=table[iface].option_group if iface else "",
            source=f"{row['source_path']}:{row['source_line']}"))
    for line, row in _read(COMPLETION_FILE):
        rows.append(Expectation(
            header=row["header"], kind=row["kind"], name=row["interface"],
            c_type=row["c_type"], signature=row["signature"],
            declaration=row["c_declaration"], xsi=row["xsi_only"] == "1",
            interface=row["interface"], checks=tuple(row["checks"].split()),
            option_group=row["option_group"], editions=tuple(row["editions"].split()),
            source=f"conformance/data/{COMPLETION_FILE}:{line} ({row['note']})"))
    return tuple(rows)


@dataclass(frozen=True)
class Allowance:
    """A namespace row: `allow` an identifier or fnmatch pattern, or `allow-header` another's."""

    header: str
    kind: str        # allow | allow-header
    pattern: str
    standard: str    # POSIX2008 | XOPEN2K8


@cache
def load_allowances() -> tuple[Allowance, ...]:
    return tuple(Allowance(row["header"], row["kind"], row["pattern"], row["standard"])
                 for _, row in _read(NAMESPACE_FILE))


@cache
def data_headers() -> frozenset[str]:
    """Headers the glibc data has expectations for (and so namespace rules)."""
    return frozenset(e.header for e in load_expectations() if e.from_glibc)
