"""render_reports on two cores (the PDF laid out in a forked child while this process wraps its
largest tables and renders the rest) writes the bytes a single process writes, also when the
child fails; and the spool that hands the tables over never makes the sender wait."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import threading
from pathlib import Path

import pytest

import reports.render
from evidence.verify import verify_bundle
from reports.pdf import render_pdf
from reports.spool import Spool
from test_reports import _hostile_bundle

pytestmark = pytest.mark.skipif(not reports.render._can_fork(),
                                reason="needs fork and two CPUs to render on two cores")

NAMES = ("junit.xml", "report.pdf", "report.html", "trace.csv", "trace.reqif", "SHA256SUMS")


def _rendered(path: Path) -> dict[str, bytes]:
    reports.render.render_reports(path)
    return {name: (path / "reports" / name).read_bytes() for name in NAMES}


@pytest.fixture
def two_bundles(tmp_path) -> tuple[Path, Path]:
    """The same hostile bundle twice: one to render on one core, one on two."""
    one = _hostile_bundle(tmp_path / "one")
    two = tmp_path / "two" / one.name
    shutil.copytree(one, two)
    return one, two


def _on_one_core(monkeypatch, path: Path) -> dict[str, bytes]:
    with monkeypatch.context() as patch:
        patch.setattr(reports.render, "_can_fork", lambda: False)
        return _rendered(path)


def test_two_cores_write_the_bytes_of_one(two_bundles, monkeypatch):
    one, two = two_bundles
    assert _rendered(two) == _on_one_core(monkeypatch, one)
    assert verify_bundle(two).ok


@pytest.mark.parametrize("failure", ["raises", "exits"])
def test_a_pdf_child_that_fails_is_rendered_here_the_same(two_bundles, monkeypatch, failure):
    one, two = two_bundles
    expected = _on_one_core(monkeypatch, one)
    parent = os.getpid()

    def failing_in_the_child(bundle, evidence=None, **made_elsewhere):
        if os.getpid() != parent:
            if failure == "exits":
                os._exit(3)               # killed: no bytes, no message
            raise RuntimeError("the child's PDF fails")
        return render_pdf(bundle, evidence, **made_elsewhere)

    monkeypatch.setattr(reports.render, "render_pdf", failing_in_the_child)
    assert _rendered(two) == expected


def test_a_failure_while_wrapping_keeps_the_old_reports(two_bundles, monkeypatch):
    _, path = two_bundles
    before = _rendered(path)
    made = reports.render.later_grids

    def failing_after_one(evidence):
        grids = made(evidence)
        yield next(grids)
        raise RuntimeError("wrapping fails")

    monkeypatch.setattr(reports.render, "later_grids", failing_after_one)
    with pytest.raises(RuntimeError, match="wrapping fails"):
        reports.render.render_reports(path)
    assert {name: (path / "reports" / name).read_bytes() for name in NAMES} == before
    assert verify_bundle(path).ok


# --------------------------------------------------------------------------- the spool

def _child_checks(spool: Spool, go, values: list) -> None:
    spool.reading()
    go.wait(30)
    received = [spool.receive() for _ in values]
    try:
        spool.receive()
        ended = False
    except EOFError:
        ended = True
    os._exit(0 if received == values and ended else 1)


def test_the_spool_hands_values_over_in_order_without_waiting_for_the_child():
    context = multiprocessing.get_context("fork")
    values = [os.urandom(3 << 20), {"grid": [("line", "Helvetica")] * 1000}, b"", "last"]
    spool, go = Spool(), context.Event()
    child = context.Process(target=_child_checks, args=(spool, go, values))
    child.start()
    spool.writing()
    # Megabytes sent while the child reads nothing: a pipe alone would stop the sender.
    sender = threading.Thread(target=lambda: [spool.send(value) for value in values])
    sender.start()
    sender.join(30)
    assert not sender.is_alive()
    spool.close()
    go.set()
    child.join(60)
    assert child.exitcode == 0


def test_sending_to_a_child_that_ended_says_so():
    context = multiprocessing.get_context("fork")
    spool = Spool()
    child = context.Process(target=os._exit, args=(0,))
    child.start()
    spool.writing()
    child.join(30)
    assert spool.send(b"x" * 100) is False
    spool.close()


def test_without_a_temporary_file_one_core_renders_the_same(two_bundles, monkeypatch):
    one, two = two_bundles
    expected = _on_one_core(monkeypatch, one)

    def no_spool():
        raise OSError("no temporary directory")

    monkeypatch.setattr(reports.render, "Spool", no_spool)
    assert _rendered(two) == expected
