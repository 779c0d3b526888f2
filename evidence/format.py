"""Names and rules of the bundle format ``pcert-bundle/1`` (see docs/bundle.md).

Everything that says what a bundle looks like on disk lives here, so the writer, the reader and
verify cannot disagree about it.

>>> from datetime import datetime, timezone
>>> make_run_id("linux-x86_64", datetime(2026, 11, 26, 16, 0, tzinfo=timezone.utc), b"\\x3f\\xa9\\xc1")
'20261126T160000Z-linux-x86_64-3fa9c1'
>>> VERDICTS["UNSUPPORTED"]
4
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = "pcert-bundle/1"

MANIFEST = "manifest.json"
REQUIREMENTS = "requirements.json"
TESTCASES = "testcases.json"
RESULTS = "results.jsonl"
ANOMALIES = "anomalies.jsonl"
CONSOLE = "console.log"
AGENT_LOG = "agent.log"  # the differential checks' requests and replies, as exchanged
_CONSOLE_NAME = re.compile(r"^(?:console(?:\.w[0-9]+)?|agent)\.log$")


_TEMPORARY = re.compile(r"(^|/)\.[^/]+\.tmp$")


def is_temporary(name: str) -> bool:
    """A temporary file of an atomic write (``.results.jsonl.abc123.tmp``) that a killed run
    left behind; never evidence."""
    return _TEMPORARY.search(name) is not None


def is_console(name: str) -> bool:
    """console.log, console.wN.log (parallel worker N) or agent.log (the agent channel): the
    logs appended to as bytes arrive."""
    return _CONSOLE_NAME.match(name) is not None
PROCEDURES_DIR = "procedures"
REPORTS_DIR = "reports"
REPORT_SUMS = "SHA256SUMS"
# Written by `pcert sign` after the manifest, over the manifest's bytes (evidence/signing.py).
SIGNATURE = "manifest.sig"

STATUSES = ("complete", "incomplete")

# A finalized bundle always has these (anomalies.jsonl is optional: a clean run may omit it).
REQUIRED_FILES = (REQUIREMENTS, TESTCASES, RESULTS, CONSOLE)

# TET / IEEE 1003.3 result codes; dict order is code order, which reports rely on.
VERDICTS = {"PASS": 0, "FAIL": 1, "UNRESOLVED": 2, "UNSUPPORTED": 4, "UNTESTED": 5,
            "UNINITIATED": 6}

# Most serious first: a requirement's outcome is the most serious verdict of its test cases.
SEVERITY = ("FAIL", "UNRESOLVED", "UNINITIATED", "UNTESTED", "UNSUPPORTED", "PASS")
# What a nightly diff calls failing: the verdicts JUnit reports as failure or error. UNSUPPORTED
# and UNTESTED are not: whether they are acceptable depends on the profile, not on the run.
FAILING = frozenset({"FAIL", "UNRESOLVED", "UNINITIATED"})
NO_TEST = "no test"      # the outcome of a requirement no test case verifies


def worst(verdicts) -> str:
    """The most serious of ``verdicts`` (an unknown verdict ranks above FAIL).

    >>> worst(["PASS", "UNSUPPORTED", "FAIL"])
    'FAIL'
    """
    rank = {verdict: position for position, verdict in enumerate(SEVERITY)}
    return min(verdicts, key=lambda verdict: rank.get(verdict, -1))


# Which list-of-records files hold which schema kind (see evidence/schema.py).
RECORD_KINDS = {REQUIREMENTS: "requirement", TESTCASES: "testcase", RESULTS: "result"}

TARGET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
RUN_ID = re.compile(r"(\d{8}T\d{6}Z)-([A-Za-z0-9][A-Za-z0-9._-]*)-([0-9a-f]{6})")


def make_run_id(target: str, now: datetime, entropy: bytes) -> str:
    """``<UTC yyyymmddThhmmssZ>-<target>-<6 hex>``; the caller passes the clock and the entropy
    (e.g. ``os.urandom(3)``) so that ids are reproducible in tests.

    >>> from datetime import timedelta
    >>> plus_one = timezone(timedelta(hours=1))
    >>> make_run_id("host", datetime(2026, 1, 1, 1, 30, tzinfo=plus_one), bytes(3))
    '20260101T003000Z-host-000000'
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("make_run_id: `now` must be timezone-aware (a naive time is ambiguous)")
    if not TARGET_NAME.fullmatch(target):
        raise ValueError(f"make_run_id: target {target!r} must match {TARGET_NAME.pattern} "
                         "(it becomes part of a directory name)")
    if len(entropy) < 3:
        raise ValueError("make_run_id: need at least 3 bytes of entropy")
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{target}-{entropy[:3].hex()}"


def is_listed(relpath: str) -> bool:
    """Whether a bundle file belongs in the manifest's ``files``: everything but the manifest
    itself, its signature (written after it) and the derived ``reports/``.

    >>> [is_listed(p) for p in ("console.log", "procedures/a.c", "manifest.json", "reports/x",
    ...                         "manifest.sig")]
    [True, True, False, False, False]
    """
    return relpath not in (MANIFEST, SIGNATURE) and relpath.split("/", 1)[0] != REPORTS_DIR


def walk_files(root: Path) -> list[str]:
    """Relative POSIX paths of everything under ``root`` that is not a directory, sorted, so
    nothing is missed. Symbolic links (even to directories) are listed, not followed: use
    :func:`is_regular` to tell evidence from things that do not belong in a bundle."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if Path(dirpath, name).is_symlink():
                filenames.append(name)
        found += [Path(dirpath, name).relative_to(root).as_posix() for name in filenames]
    return sorted(found)


def is_regular(path: Path) -> bool:
    """A real file: evidence must be self-contained, and the hash of a symbolic link or a
    special file would depend on something outside the bundle."""
    return not path.is_symlink() and path.is_file()


def check_name(name: str) -> str:
    """A file name a writer may create: relative, POSIX, inside the bundle, not the manifest
    and not under reports/ (those are written by finalize and by the report renderer).

    >>> check_name("procedures/file-io.c")
    'procedures/file-io.c'
    """
    parts = name.split("/")
    if (not name or name.startswith("/") or "\\" in name or "\n" in name
            or any(part in ("", ".", "..") for part in parts)):
        raise ValueError(f"bundle file name {name!r} must be a relative POSIX path inside "
                         "the bundle, without '.', '..' or empty parts")
    if not is_listed(name):
        raise ValueError(f"bundle file name {name!r} is reserved: manifest.json is written by "
                         "finalize(), manifest.sig by `pcert sign` and reports/ by the report "
                         "renderer")
    return name
