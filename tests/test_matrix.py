"""The target matrix: reports/matrix.py renders bundles side by side (terminal, CSV, PDF) and
conformance/matrix.py runs one `pcert run` per target; the end-to-end test runs real targets."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
import time
from pathlib import Path

import pytest
from pypdf import PdfReader

from bundle_factory import make_bundle
from conformance import cli
from conformance.errors import RunError
from conformance.matrix import bundle_name, run_matrix
from reports.matrix import (Column, Matrix, Row, interface_cells, load_matrix, render_csv,
                            render_pdf, render_terminal, terminal_text, write_matrix)
from targets.errors import TargetError

EVIL = "got \x1b[31mred\x1b[0m\u202e evil\r\nsecond line"


def column(label: str, **summary) -> Column:
    counts = {v: 0 for v in ("PASS", "FAIL", "UNRESOLVED", "UNSUPPORTED", "UNTESTED",
                             "UNINITIATED")}
    counts.update(summary)
    return Column(label=label, target=label, run_id=f"run-{label}", status="complete",
                  system="Linux 6.1 x86_64", ncpu="2", summary=counts)


def small_matrix() -> Matrix:
    return Matrix(profile="face-safety-base", columns=[column("linux"), column("bare")], rows=[
        Row("TC-open-001", "open", ("REQ-open-001",), (("PASS", ""), ("PASS", ""))),
        Row("TC-open-005", "open", ("REQ-open-005",),
            (("PASS", ""), ("FAIL", 'open("f", O_EXCL): got 4, want == -1'))),
        Row("TC-pthread_create-001", "pthread_create", ("REQ-pthread_create-001",),
            (("PASS", ""), ("UNSUPPORTED", "not built for this target: pthread.h missing"))),
        Row("TC-fork-001", "fork", ("REQ-fork-001",), (("PASS", ""), None)),
        Row("TC-evil-001", "=cmd|' /C calc'!A0", ("REQ-x",), (("FAIL", EVIL), ("FAIL", EVIL))),
    ])


def test_rows_that_differ_and_interface_cells():
    m = small_matrix()
    assert [r.test_case for r in m.differing()] == ["TC-open-005", "TC-pthread_create-001",
                                                    "TC-fork-001"]
    cells = dict(interface_cells(m))
    assert cells["open"] == [("PASS", 2, 2), ("FAIL", 1, 2)]
    assert cells["fork"] == [("PASS", 1, 1), (None, 0, 0)]


def test_terminal_shows_the_differences_with_their_reasons():
    text = render_terminal(small_matrix())
    assert "5 test cases, 3 with different verdicts between the targets:" in text
    assert "[1]  linux" in text and "[2]  bare" in text
    line = next(l for l in text.splitlines() if "TC-open-005" in l and "e.g." not in l)
    assert line.split()[-2:] == ["PASS", "FAIL"]
    assert " n/a" in next(l for l in text.splitlines() if "TC-fork-001" in l)
    assert '[2]  FAIL x1    open("f", O_EXCL): got 4, want == -1' in text
    assert "[2] UNSUP x1    not built for this target: pthread.h missing" in text
    assert "[2]   n/a x1    not in this target's plan" in text
    assert "TC-evil-001" not in text           # alike on both targets: not a difference


def test_guest_text_cannot_drive_the_terminal():
    shown = terminal_text(EVIL)
    assert "\x1b" not in shown and "\u202e" not in shown and "\n" not in shown
    assert shown == "got \\x1b[31mred\\x1b[0m\\u202e evil\\nsecond line"
    m = small_matrix()
    rows = [Row("TC-x", "x", (), (("PASS", ""), ("FAIL", EVIL)))]
    text = render_terminal(Matrix(m.profile, m.columns, rows))
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text


def test_csv_has_every_row_and_is_safe_in_a_spreadsheet():
    rows = list(csv.reader(io.StringIO(render_csv(small_matrix()).decode())))
    assert rows[0] == ["interface", "requirements", "test_case", "differs", "linux verdict",
                       "linux reason", "bare verdict", "bare reason"]
    assert len(rows) == 6
    fork = next(r for r in rows if r[2] == "TC-fork-001")
    assert fork[3:] == ["yes", "PASS", "", "n/a", "not in this target's plan"]
    evil = next(r for r in rows if r[2] == "TC-evil-001")
    assert evil[0] == "'=cmd|' /C calc'!A0"        # not a formula
    assert "\x1b" not in evil[5] and evil[5].startswith("got \\x1b[31m")


def test_pdf_shows_verdicts_with_reasons(tmp_path):
    written = write_matrix(small_matrix(), tmp_path)
    assert [p.name for p in written] == ["matrix.txt", "matrix.csv", "matrix.pdf"]
    text = "".join(page.extract_text() for page in PdfReader(tmp_path / "matrix.pdf").pages)
    text = " ".join(text.split())
    for expected in ("Target matrix: profile face-safety-base", "Interfaces by target",
                     "FAIL 1/2", "UNSUPPORTED: not built for this target: pthread.h missing",
                     "n/a: not in this target's plan", "TC-pthread_create-001"):
        assert expected in text, expected
    assert render_pdf(small_matrix()) == (tmp_path / "matrix.pdf").read_bytes()  # same bytes


def test_load_matrix_reads_bundles_alone(tmp_path):
    a = make_bundle(tmp_path / "a", n_cases=6, verdicts=["PASS"])
    b = make_bundle(tmp_path / "b", n_cases=4, verdicts=["PASS", "FAIL"])
    m = load_matrix([a, b])
    assert [c.label for c in m.columns] == ["linux-x86_64", f"linux-x86_64 ({m.columns[1].run_id})"]
    assert m.columns[0].summary["PASS"] == 6 and m.columns[1].summary["FAIL"] == 2
    assert len(m.rows) == 6
    fail = ("FAIL", "read(fd, buf, 1): got -1 (errno EBADF), want 0")
    assert [(r.test_case, r.cells[1]) for r in m.differing()] == [
        ("TC-close-001", None), ("TC-pthread_create-001", fail), ("TC-read-001", fail),
        ("TC-timer_create-001", None)]


# --- conformance/matrix.py: one `pcert run` per target ------------------------------------

def fake_run(verdicts_of: dict[str, list[str]], seen: list | None = None):
    """A run_one writing a factory bundle per target (the runs themselves are tested end to end
    below); records how many ran at once."""
    lock, running = threading.Lock(), [0]

    def run_one(target, profile, bundle_dir, only, workers, log):
        with lock:
            running[0] += 1
            if seen is not None:
                seen.append((target, running[0], workers, only))
        time.sleep(0.2)
        log.write_text(f"running {target}\n")
        if target in verdicts_of:
            made = make_bundle(bundle_dir.parent / f".{target}", n_cases=4,
                               verdicts=verdicts_of[target])
            shutil.move(made, bundle_dir)
            shutil.rmtree(bundle_dir.parent / f".{target}")
        else:
            log.write_text("pcert: error: target not ready: \x1b[31mqemu missing\n")
        with lock:
            running[0] -= 1
        return 1 if target in verdicts_of else 2
    return run_one


def test_run_matrix_runs_targets_in_parallel_into_one_folder(tmp_path):
    seen, said = [], []
    bundles = run_matrix(["host", "linux-x86_64"], "face-safety-base", tmp_path / "m", 2,
                         only="TC-open-001", say=said.append,
                         run_one=fake_run({"host": ["PASS"], "linux-x86_64": ["FAIL"]}, seen))
    assert bundles == [tmp_path / "m" / "host", tmp_path / "m" / "linux-x86_64"]
    assert max(n for _, n, _, _ in seen) == 2                  # both at once
    assert {only for *_, only in seen} == {"TC-open-001"}
    assert (tmp_path / "m" / "host.log").read_text() == "running host\n"
    assert any("host: finished with exit status 1" in line for line in said)


def test_a_target_without_bundle_is_named_with_its_log(tmp_path):
    said = []
    bundles = run_matrix(["host", "linux-aarch64"], "pse51", tmp_path / "m", 1,
                         say=said.append, run_one=fake_run({"host": ["PASS"]}))
    assert bundles == [tmp_path / "m" / "host"]
    assert "matrix: linux-aarch64: no bundle (exit status 2); the end of its log:" in said
    assert "    pcert: error: target not ready: \\x1b[31mqemu missing" in said


def test_bad_arguments_stop_before_anything_runs(tmp_path):
    never = fake_run({})
    with pytest.raises(TargetError, match="unknown target 'vax'"):
        run_matrix(["host", "vax"], "face-safety-base", tmp_path / "m", 2, run_one=never)
    with pytest.raises(RunError, match="named twice"):
        run_matrix(["host", "host"], "face-safety-base", tmp_path / "m", 2, run_one=never)
    (tmp_path / "m" / "host").mkdir(parents=True)
    (tmp_path / "m" / "host" / "manifest.json").write_text("{}")
    with pytest.raises(RunError, match="already exists and is not empty"):
        run_matrix(["host"], "face-safety-base", tmp_path / "m", 2, run_one=never)
    assert not (tmp_path / "m" / "host.log").exists()
    assert bundle_name("vendor/my-os.toml") == "my-os"


@pytest.mark.qemu
def test_pcert_matrix_end_to_end(tmp_path, capsys):
    """Real runs: host (glibc, native) and linux-x86_64-musl (QEMU), a reduced plan."""
    only = "TC-open-001,TC-close-001,TC-tzname-names.long"
    status = cli.main(["matrix", "--targets", "host,linux-x86_64-musl", "--only", only,
                       "--out", str(tmp_path / "m")])
    out = capsys.readouterr().out
    assert status in (0, 1), out
    assert "pcert matrix: profile face-safety-base on 2 targets" in out
    for name in ("host", "linux-x86_64-musl"):
        manifest = json.loads((tmp_path / "m" / name / "manifest.json").read_text())
        assert manifest["target"]["name"] == name
    rows = {r["test_case"]: r for r in
            csv.DictReader(io.StringIO((tmp_path / "m" / "matrix.csv").read_text()))}
    assert set(only.split(",")) <= set(rows)   # (and whatever else a run plans besides)
    for row in rows.values():
        for name in ("host", "linux-x86_64-musl"):
            verdict, reason = row[f"{name} verdict"], row[f"{name} reason"]
            assert verdict in ("PASS", "FAIL", "UNRESOLVED", "UNSUPPORTED", "UNTESTED")
            assert (verdict == "PASS") == (reason == "")       # every other verdict explains
    assert (tmp_path / "m" / "matrix.pdf").read_bytes().startswith(b"%PDF")
