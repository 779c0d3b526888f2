"""Check a bundle's integrity: every listed file unchanged, nothing missing, nothing added.

The manifest lists every evidence file with its sha256; ``reports/`` is derived and checked
against ``reports/SHA256SUMS`` instead, which the report renderer rewrites last (with
:func:`write_report_sums`), so a re-rendering never breaks verification while a tampered
report is still named.

>>> report = verify_bundle("runs/20261126T160000Z-linux-x86_64-3fa9c1")  # doctest: +SKIP
>>> report.ok, report.changed                                            # doctest: +SKIP
(False, ['console.log'])

A signed bundle (``manifest.sig``, see :mod:`evidence.signing`) has its signature checked too;
with ``trusted`` keys, the bundle must be signed by one of them:

>>> verify_bundle("runs/x", trusted=[load_public_key("release.key.pub")]).signature  # doctest: +SKIP
'signature valid (ed25519 key 3f0c9a1e5b7d2c44)'

An unreadable or schema-invalid manifest raises :class:`BundleError` (``pcert verify`` exit 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import format as fmt
from .atomic import sha256_file, sha256_prefix, write_bytes_atomic
from .reader import Bundle

SUMS_LINE = re.compile(r"([0-9a-f]{64})  (.+)")


@dataclass
class VerifyReport:
    """What verify found. ``changed``, ``missing`` and ``extra`` are bundle-relative paths
    (``console.log``, ``reports/junit.xml``); ``problems`` has one human-readable line for each
    of them and for anything else wrong (a missing reports/SHA256SUMS, a symbolic link).

    ``ok`` is about integrity only; ``status`` says whether the run itself completed.
    """

    path: Path
    status: str
    changed: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    signature: str = "not checked"
    notes: list[str] = field(default_factory=list)  # worth saying, not a failure

    @property
    def ok(self) -> bool:
        return not (self.changed or self.missing or self.extra or self.problems)


def verify_bundle(path: Path | str, trusted=None, *, check_signature: bool = True) -> VerifyReport:
    """Recompute every hash of the bundle at ``path`` and name what differs; check its
    signature when it has one (``trusted``: Ed25519 public keys, one of which must have
    signed it)."""
    bundle = Bundle.open(path)
    report = VerifyReport(path=bundle.path, status=bundle.status)
    if check_signature:
        from .signing import check_signature as check   # needs cryptography: only when used
        found = check(bundle.path, trusted)
        report.signature = found.describe()
        report.problems += found.problems
    on_disk = [name for name in fmt.walk_files(bundle.path) if fmt.is_listed(name)]
    _compare(bundle.path, bundle.manifest["files"], on_disk, "", "the manifest", report,
             growing_ok=bundle.status == "incomplete")
    _verify_reports(bundle.path / fmt.REPORTS_DIR, report)
    return report


def _compare(root: Path, listed: dict[str, dict | str], on_disk: list[str], prefix: str,
             source: str, report: VerifyReport, growing_ok: bool = False) -> None:
    """Compare the files under ``root`` with ``listed`` (name -> {"sha256", "size"} or a
    sha256); ``prefix`` makes names bundle-relative, ``source`` names the list in messages."""
    for name in sorted(set(listed) | set(on_disk)):
        full, shown = root / name, prefix + name
        if name not in listed and growing_ok and fmt.is_temporary(name):
            report.notes.append(f"{shown}: a temporary file of a write the interruption cut "
                                "short (pcert run --resume removes it)")
        elif name not in listed:
            report.extra.append(shown)
            report.problems.append(f"{shown}: present but not listed in {source}; remove it "
                                   "or find out who added it")
        elif not full.exists() and not full.is_symlink():
            report.missing.append(shown)
            report.problems.append(f"{shown}: missing (listed in {source})")
        elif not fmt.is_regular(full):
            report.changed.append(shown)
            report.problems.append(f"{shown}: is not a regular file (a symbolic link, "
                                   f"directory or special file), not the file listed in {source}")
        elif growing_ok and fmt.is_console(name) and _grew(full, listed[name]):
            extra = full.stat().st_size - listed[name]["size"]
            report.notes.append(f"{shown}: {extra} bytes received after the last checkpoint "
                                "(kept, not covered by the manifest until the run is resumed)")
        elif growing_ok and name in JOURNALS and not _matches(full, listed[name]):
            # Killed while sealing a checkpoint: the journal is newer than the manifest. It is
            # derived again from the console logs when the run is resumed.
            report.notes.append(f"{shown}: newer than the last checkpoint's manifest (the run "
                                "was stopped while sealing it; pcert run --resume rewrites it)")
        elif not _matches(full, listed[name]):
            report.changed.append(shown)
            report.problems.append(f"{shown}: changed (its sha256 differs from {source})")


# Files an interrupted run rewrites at every checkpoint, derived from the console logs.
JOURNALS = frozenset({fmt.RESULTS, fmt.ANOMALIES, "boots.jsonl"})


def _grew(full: Path, expected: dict) -> bool:
    """An interrupted run's console log: what the checkpoint sealed, followed by more bytes."""
    return (isinstance(expected, dict) and full.stat().st_size > expected["size"]
            and sha256_prefix(full, expected["size"]) == expected["sha256"])


def _matches(full: Path, expected: dict | str) -> bool:
    if isinstance(expected, dict):
        # The size is free to check and catches a truncation without hashing.
        if full.stat().st_size != expected["size"]:
            return False
        expected = expected["sha256"]
    return sha256_file(full) == expected


def _verify_reports(reports: Path, report: VerifyReport) -> None:
    if not reports.exists() and not reports.is_symlink():
        return  # reports were never rendered: fine
    if not reports.is_dir() or reports.is_symlink():
        report.problems.append(f"{fmt.REPORTS_DIR}: is not a directory; remove it and "
                               "re-render the reports")
        return
    on_disk = [name for name in fmt.walk_files(reports) if name != fmt.REPORT_SUMS]
    sums_path = reports / fmt.REPORT_SUMS
    if not sums_path.exists():
        if on_disk:
            report.problems.append(f"{fmt.REPORTS_DIR}/{fmt.REPORT_SUMS}: missing while "
                                   f"{fmt.REPORTS_DIR}/ holds reports ({', '.join(on_disk)}); "
                                   "re-render the reports (the renderer writes it last)")
        return
    listed = _read_sums(sums_path, report)
    _compare(reports, listed, on_disk, f"{fmt.REPORTS_DIR}/",
             f"{fmt.REPORTS_DIR}/{fmt.REPORT_SUMS}", report)


def _read_sums(sums_path: Path, report: VerifyReport) -> dict[str, str]:
    where = f"{fmt.REPORTS_DIR}/{fmt.REPORT_SUMS}"
    try:
        text = sums_path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        report.problems.append(f"{where}: unreadable ({error}); re-render the reports")
        return {}
    listed = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line:
            continue
        match = SUMS_LINE.fullmatch(line)
        if not match or not _safe_name(match.group(2)):
            report.problems.append(f"{where}: line {number} is not '<sha256>  <name>'; "
                                   "re-render the reports")
            continue
        listed[match.group(2)] = match.group(1)
    return listed


def _safe_name(name: str) -> bool:
    parts = name.split("/")
    return not name.startswith("/") and all(part not in ("", ".", "..") for part in parts)


def write_report_sums(reports_dir: Path | str) -> Path:
    """Write ``reports_dir/SHA256SUMS`` (``<sha256>  <name>`` lines, sorted by name, as
    ``sha256sum -c`` reads them). The report renderer calls this last, after every report is
    written. Returns the path written.

    >>> import tempfile, pathlib
    >>> reports = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (reports / "junit.xml").write_text("<testsuites/>")
    >>> print(write_report_sums(reports).read_text(), end="")
    14971007a6c99471a0dd7d408b2769fa55dfa8534c3d21e761a2d9f6f1ef7467  junit.xml
    """
    reports_dir = Path(reports_dir)
    lines = []
    for name in fmt.walk_files(reports_dir):
        if name == fmt.REPORT_SUMS:
            continue
        full = reports_dir / name
        if "\n" in name or "\\" in name or not fmt.is_regular(full):
            raise ValueError(f"{full}: cannot be listed in {fmt.REPORT_SUMS} (a symbolic link, "
                             "special file, or a name with a newline or backslash)")
        lines.append(f"{sha256_file(full)}  {name}\n")
    path = reports_dir / fmt.REPORT_SUMS
    write_bytes_atomic(path, "".join(lines).encode("utf-8"))
    return path
