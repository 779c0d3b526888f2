"""Namespace check: names a header defines that the standard does not allow it to.

A conforming header may define only its own names, the names of the headers it may expose
(`allow-header` rows), the patterns the standard reserves for it (`allow` rows, e.g. `*_t`),
keywords, and identifiers that begin with an underscore. Everything else it declares or
defines as a macro intrudes on the application's namespace. The rules are those of the glibc
data (posix-header-namespace.csv) for POSIX.1-2008 base (`POSIX2008`) and XSI (`XOPEN2K8`).

A finding is advisory: it never decides the profile verdict (docs/presence.md).

>>> rules = Rules.for_header("sys/stat.h", "POSIX2008")
>>> [rules.allows(n) for n in ("stat", "st_mode", "S_IFMT", "blkcnt_t", "_private", "foo")]
[True, True, True, True, True, False]
>>> sorted(intruders('# 1 "t.c"\\n# 1 "/usr/include/x.h" 1 3 4\\n#define BAD 1\\nint foo(void);\\n'
...                  'double d = 0x1p3;\\n#define _OK 2\\n', rules))
['BAD', 'd', 'foo']
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from functools import cache

from ..profiles import interfaces
from .expectations import load_allowances, load_expectations

C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if "
    "inline int long register restrict return short signed sizeof static struct switch typedef "
    "union unsigned void volatile while".split())
MAX_NAMES_SHOWN = 40
# POSIX.1-2024 builds on C17, whose headers gained these names since C99 (the glibc data
# describes POSIX.1-2008 on C99). Other headers reach them through allow-header rows.
C17_ADDITIONS = {
    "assert.h": ("static_assert",),
    "complex.h": ("CMPLX", "CMPLXF", "CMPLXL"),
    "float.h": tuple(f"{p}_{s}" for p in ("FLT", "DBL", "LDBL")
                     for s in ("DECIMAL_DIG", "HAS_SUBNORM", "TRUE_MIN")),
    "stddef.h": ("max_align_t",),
    "stdlib.h": ("aligned_alloc", "at_quick_exit", "quick_exit"),
    "time.h": ("TIME_UTC", "timespec_get"),
    "tgmath.h": ("CMPLX", "CMPLXF", "CMPLXL"),   # its data takes in complex.h's rows
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Left to right, a preprocessing number swallows letters (0x1p3), an identifier digits (expm1).
_TOKEN = re.compile(r"(\.?[0-9](?:[eEpP][+-]|[A-Za-z0-9_.])*)|([A-Za-z_][A-Za-z0-9_]*)")
_LITERAL = re.compile(r"""(?:[LuU]|u8)?(?:"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')""")
_LINEMARKER = re.compile(r'^#\s*(?:line\s+)?\d+\s+"((?:[^"\\]|\\.)*)"')
_DIRECTIVE = re.compile(r"^#\s*(define|undef)\s+([A-Za-z_][A-Za-z0-9_]*)")


def _names_of(header: str, standard: str, edition: str) -> set[str]:
    """The names the expectations of `header` under `standard` give it in `edition`."""
    names = set(C17_ADDITIONS.get(header, ())) if edition == "2024" else set()
    table = interfaces()
    for e in load_expectations():
        if e.header != header or (e.xsi and standard == "POSIX2008"):
            continue
        if not e.from_glibc and edition not in table[e.interface].editions:
            continue     # a completion row of another edition
        if e.kind in ("type", "tag"):
            names.add(e.name.split()[-1])
        else:
            names.add(e.name)
        names.update(e.checks)
    return names


@dataclass(frozen=True)
class Rules:
    names: frozenset[str]
    patterns: tuple[str, ...]

    @classmethod
    @cache
    def for_header(cls, header: str, standard: str, edition: str = "2008") -> "Rules":
        names: set[str] = set()
        patterns: set[str] = set()
        seen: set[str] = set()
        pending = [header]
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            names |= _names_of(current, standard, edition)
            for row in load_allowances():
                if row.header != current or row.standard != standard:
                    continue
                if row.kind == "allow-header":
                    pending.append(row.pattern)
                elif _IDENTIFIER.fullmatch(row.pattern):
                    names.add(row.pattern)
                else:
                    patterns.add(row.pattern)
        return cls(frozenset(names), tuple(sorted(patterns)))

    def allows(self, name: str) -> bool:
        return (name.startswith("_") or name in C_KEYWORDS or name in self.names
                or any(fnmatch.fnmatchcase(name, p) for p in self.patterns))


def intruders(preprocessed: str, rules: Rules, skip: tuple[str, ...] = ()) -> set[str]:
    """Names in `preprocessed` (`cc -E -dD` output) that `rules` do not allow.

    Only what comes from the headers counts: the compiler's predefined macros, the command
    line's and the lines of the files in `skip` (the checking unit itself) are skipped, as is
    everything a later `#undef` takes back.
    """
    ignored = {"<built-in>", "<command-line>", *skip}
    bad: set[str] = set()
    source = ""
    for line in preprocessed.splitlines():
        stripped = line.strip()
        marker = _LINEMARKER.match(stripped)
        if marker:
            source = marker.group(1)
            continue
        if source in ignored or not stripped:
            continue
        directive = _DIRECTIVE.match(stripped)
        if directive:
            kind, name = directive.groups()
            if kind == "undef":
                bad.discard(name)
            elif not rules.allows(name):
                bad.add(name)
            continue
        if stripped.startswith("#"):
            continue      # #pragma and the like
        code = _LITERAL.sub(" ", stripped)
        bad.update(m.group(2) for m in _TOKEN.finditer(code)
                   if m.group(2) and not rules.allows(m.group(2)))
    return bad


def describe(names: set[str]) -> str:
    """A bounded, sorted list for a result's reason."""
    shown = sorted(names)[:MAX_NAMES_SHOWN]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")
