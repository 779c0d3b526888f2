"""Derive posix-header-completion.csv: an expectation for every interface of the profile table
that the GNU C Library's conformance data leaves out.

    python -m conformance.presence.complete          # rewrite data/posix-header-completion.csv
    python -m conformance.presence.complete --check  # exit 1 when the committed file is stale

The glibc data (posix-header-expectations.csv) has no rows for `<trace.h>`, `<stropts.h>`, the
C11 headers, POSIX.1-2024 additions and a few names glibc dropped. For each such interface the
profile table gives only its header and whether it is callable or an object, so the derived
row asks for presence only: the name is declared by the header (or defined as a macro). The
rows are mechanical, from the table's `header`, `kind` and `posix_option_group` columns, with
the few corrections below, each explained in the row's `note` (our own wording).

>>> rows = completion_rows()
>>> [r["checks"] for r in rows if r["interface"] == "atomic_fetch_key"]
['atomic_fetch_add atomic_fetch_sub atomic_fetch_or atomic_fetch_xor atomic_fetch_and']
>>> next(r for r in rows if r["interface"] == "ntohs")["c_declaration"]
'uint16_t (ntohs) (uint16_t)'
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from importlib import resources

DATA = resources.files("conformance") / "data"
EXPECTATIONS = "posix-header-expectations.csv"
COMPLETION = "posix-header-completion.csv"
COLUMNS = ("interface", "header", "kind", "checks", "xsi_only", "option_group", "editions",
           "c_type", "signature", "c_declaration", "note")

_FETCH_OPS = ("add", "sub", "or", "xor", "and")
# Names in the profile table that stand for a family of identifiers or are misspelt there:
# interface -> (identifiers checked instead, why).
CORRECTIONS = {
    "atomic_fetch_key": (tuple(f"atomic_fetch_{op}" for op in _FETCH_OPS),
                         "the profile table names the generic family atomic_fetch_<key>; "
                         "each member is checked"),
    "atomic_fetch_key_explicit": (tuple(f"atomic_fetch_{op}_explicit" for op in _FETCH_OPS),
                                  "the profile table names the generic family "
                                  "atomic_fetch_<key>_explicit; each member is checked"),
    "INTN_C": (("INT8_C", "INT16_C", "INT32_C", "INT64_C"),
               "the profile table names the family INTN_C; the widths every implementation "
               "has (8, 16, 32, 64) are checked"),
    "UINTN_C": (("UINT8_C", "UINT16_C", "UINT32_C", "UINT64_C"),
                "the profile table names the family UINTN_C; the widths every implementation "
                "has (8, 16, 32, 64) are checked"),
    "wcsncasemcp_l": (("wcsncasecmp_l",),
                      "the profile table misspells wcsncasecmp_l; the correct name is checked"),
}
# Typed rows the glibc data lost by a slip: (header, interface) -> (header whose row to copy, why).
TYPED_FIXES = {
    ("arpa/inet.h", "ntohs"): ("netinet/in.h",
                               "arpa/inet.h-data lists htons twice and omits ntohs; the type "
                               "is the one the same data gives ntohs in netinet/in.h"),
}
# Interfaces a header must declare only from some edition on: interface -> (editions, why).
EDITION_LIMITS = {
    "environ": (("2024",), "POSIX.1-2024 has <unistd.h> declare environ; before, an application "
                          "declared it itself, so earlier editions check no header for it"),
}
PRESENCE_NOTE = ("no row in the GNU C Library conformance data; presence only, from the "
                 "profile table's header and kind")


def _read(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _is_xsi(option_group: str) -> bool:
    return option_group.startswith(("XSI_", "_XOPEN_"))


def completion_rows() -> list[dict[str, str]]:
    """The completion rows, sorted by header then interface."""
    expectations = _read(EXPECTATIONS)
    named = {row["name"] for row in expectations if row["kind"] not in ("element", "type", "tag")}
    rows = []
    for iface in _read("posix-face-profiles.csv"):
        name, group = iface["function"], iface["posix_option_group"]
        base = {"interface": name, "header": iface["header"], "option_group": group,
                "xsi_only": "1" if _is_xsi(group) else "0", "editions": "",
                "c_type": "", "signature": "", "c_declaration": ""}
        fix = TYPED_FIXES.get((iface["header"], name))
        if fix:
            source_header, note = fix
            typed = next(r for r in expectations
                         if r["header"] == source_header and r["name"] == name)
            rows.append({**base, "kind": typed["kind"], "checks": name, "note": note,
                         "c_type": typed["c_type"], "signature": typed["signature"],
                         "c_declaration": typed["c_declaration"]})
            continue
        if name in named:
            continue
        checks, note = CORRECTIONS.get(name, ((name,), PRESENCE_NOTE))
        editions, limit = EDITION_LIMITS.get(name, ((), ""))
        rows.append({**base, "kind": iface["kind"], "checks": " ".join(checks),
                     "editions": " ".join(editions), "note": f"{note}; {limit}" if limit else note})
    rows.sort(key=lambda r: (r["header"], r["interface"]))
    return rows


def render(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the committed file instead of writing it")
    args = parser.parse_args(argv)
    data = render(completion_rows())
    target = DATA / COMPLETION
    if args.check:
        current = target.read_bytes() if target.is_file() else b""
        if current != data:
            print(f"{target}: stale; run python -m conformance.presence.complete", file=sys.stderr)
            return 1
        return 0
    from evidence.atomic import write_bytes_atomic
    write_bytes_atomic(target, data)
    print(f"{target}: {len(data.splitlines()) - 1} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
