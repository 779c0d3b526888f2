"""The document set of real runs: the host target (natively) and linux-x86_64 in QEMU."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader

from evidence.reader import Bundle
from evidence.verify import verify_bundle
from test_documents import CHROMIUM, check_trace_against_results, open_in_chromium

PCERT = Path(sys.executable).parent / "pcert"


def _run(target: str, out: Path) -> Path:
    result = subprocess.run([str(PCERT), "run", "--target", target, "--out", str(out)],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode in (0, 1), result.stderr     # 1: the run found failures
    return out


def _check_documents(bundle_path: Path, tmp_path: Path) -> None:
    reports = bundle_path / "reports"
    for name in ("junit.xml", "report.pdf", "report.html", "trace.csv", "trace.reqif"):
        assert (reports / name).stat().st_size > 0
    assert verify_bundle(bundle_path).ok
    check_trace_against_results(bundle_path)
    bundle = Bundle.open(bundle_path)
    pdf = reports / "report.pdf"
    # Long ids wrap inside their cells: compare without white space.
    text = re.sub(r"\s", "", "".join(page.extract_text() for page in PdfReader(pdf).pages))
    for testcase in bundle.testcases:
        assert testcase["id"] in text
    subprocess.run(["pdftoppm", "-r", "30", "-png", "-f", "1", "-l", "3", str(pdf),
                    str(tmp_path / "page")], check=True, capture_output=True)
    assert len(list(tmp_path.glob("page-*.png"))) == 3
    if CHROMIUM:
        dom = open_in_chromium(reports / "report.html", tmp_path)
        assert all(f'id="{t["id"]}"' in dom for t in bundle.testcases)


def test_documents_of_a_host_run(tmp_path):
    _check_documents(_run("host", tmp_path / "host-run"), tmp_path)


@pytest.mark.qemu
def test_documents_of_a_qemu_run(tmp_path):
    _check_documents(_run("linux-x86_64", tmp_path / "qemu-run"), tmp_path)
