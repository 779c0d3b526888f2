"""Which POSIX options a target's headers say it lacks: decides UNSUPPORTED where decidable.

`<unistd.h>` announces options with symbolic constants. A `_POSIX_*` option defined as -1 is
not supported (its interfaces need not exist); undefined or 0 means it may be supported at run
time, so its interfaces must still be declared. An X/Open option group (`_XOPEN_*`) is
supported only where its constant is defined (and not -1).

>>> macros = {"_POSIX_TRACE": "-1", "_POSIX_TIMERS": "200809L", "_XOPEN_REALTIME": "1"}
>>> [option_supported(g, macros) for g in ("_POSIX_TRACE and _POSIX_TRACE_LOG", "_POSIX_TIMERS",
...  "_XOPEN_CRYPT", "POSIX_TIMERS", "_POSIX_THREAD_PRIO_INHERIT or _POSIX_TIMERS")]
[False, True, False, None, True]
"""

from __future__ import annotations

import re

_OPTION = re.compile(r"(?<![A-Za-z0-9_])_(?:POSIX|POSIX2|XOPEN)_[A-Z0-9_]+")
_DEFINE = re.compile(r"^#define\s+(_(?:POSIX|POSIX2|XOPEN)_[A-Z0-9_]+|_POSIX_VERSION)\s*(.*)$")


def option_names(group: str) -> list[str]:
    """The option constants an option group names (none for subprofiling groups such as
    POSIX_TIMERS, which are not options a system may lack)."""
    return _OPTION.findall(group)


def parse_macros(preprocessed: str) -> dict[str, str]:
    """`cc -E -dM` output -> {option constant: value}."""
    found = {}
    for line in preprocessed.splitlines():
        m = _DEFINE.match(line.strip())
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def _is_minus_one(value: str) -> bool:
    return value.replace("(", "").replace(")", "").replace(" ", "") == "-1"


def _supported(name: str, macros: dict[str, str]) -> bool | None:
    value = macros.get(name)
    if value is not None and _is_minus_one(value):
        return False
    if name.startswith("_XOPEN_"):
        return value is not None
    return True if value not in (None, "0") else None


def option_supported(group: str, macros: dict[str, str] | None) -> bool | None:
    """True or False where the headers decide it, None where they cannot (no option named,
    no `<unistd.h>`, or support left to run time)."""
    names = option_names(group)
    if not names or macros is None:
        return None
    results = [_supported(n, macros) for n in names]
    if " or " in group:
        return True if True in results else (None if None in results else False)
    return False if False in results else (None if None in results else True)


def posix_version(macros: dict[str, str] | None) -> int | None:
    """The headers' _POSIX_VERSION (e.g. 200809), or None."""
    value = (macros or {}).get("_POSIX_VERSION", "")
    digits = re.match(r"\(?\s*(\d+)", value)
    return int(digits.group(1)) if digits else None
