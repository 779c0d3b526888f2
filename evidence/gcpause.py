"""Cyclic garbage collection paused around work that builds many long-lived objects.

    with collection_paused():
        rows = pickle.loads(data)

Loading a cached catalog or rendering the reports makes hundreds of thousands of containers
that live until the work ends; the collector would walk them again and again (and, in a forked
child, copy their pages) to find almost nothing to free. What little cyclic garbage is left is
collected after, once the collector runs again.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collection_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
