"""conformance.background: work started early and collected later."""

from __future__ import annotations

import doctest
import threading

import pytest

import conformance.background
from conformance.background import Background


def test_docstring_examples_hold():
    assert doctest.testmod(conformance.background).failed == 0


def test_the_work_runs_in_another_thread_from_the_start():
    started = threading.Event()
    work = Background(lambda: (started.set(), threading.get_ident())[1])
    assert started.wait(10)        # running before anyone asks for the result
    assert work.result() != threading.get_ident()


def test_an_error_is_raised_in_the_thread_that_asks():
    def fails():
        raise ValueError("target linux-x86_64 is not ready")

    work = Background(fails)
    with pytest.raises(ValueError, match="not ready"):
        work.result()


def test_the_thread_does_not_keep_pcert_alive():
    gate = threading.Event()
    work = Background(gate.wait)
    assert work._thread.daemon  # Ctrl-C during a kernel download must not wait for it
    gate.set()
    assert work.result() is True
