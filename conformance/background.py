"""Work started now, in a daemon thread, and collected later: the waits of a run's preparation
(the compiler's probes, QEMU's version, hashing the kernel and the tools) overlap with the
catalog, the plan and the generated sources instead of following them, and the tools'
versions and hashes while the bundle's static files are written.

>>> ready = Background(sum, [1, 2, 3])
>>> ready.result()
6

A daemon thread rather than a thread pool: after Ctrl-C, pcert exits without waiting for a
kernel download still in flight (whose file is written atomically, so nothing half-written
stays). `result()` re-raises the work's exception in the caller's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """`function(*args, **kwargs)`, running from now on."""

    def __init__(self, function: Callable[..., T], *args, **kwargs):
        self._value: T | None = None
        self._error: BaseException | None = None

        def work() -> None:
            try:
                self._value = function(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - re-raised by result()
                self._error = error

        self._thread = threading.Thread(target=work, name=getattr(function, "__name__", "work"),
                                        daemon=True)
        self._thread.start()

    def result(self) -> T:
        """Wait for the work; its value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
