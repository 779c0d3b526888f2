"""Cyclic garbage collection paused around work that builds many long-lived objects.

    with collection_paused():
        rows = pickle.loads(data)

Loading a cached catalog or rendering the reports makes hundreds of thousands of containers
that live until the work ends; the collector would walk them again and again (and, in a forked
child, copy their pages) to find almost nothing to free. What little cyclic garbage is left is
collected after, once the collector runs again.

A run first builds what it keeps to its end (catalog, plan, generated sources), then works for
seconds while its threads make short-lived records:

    with long_lived() as keep:
        plan = prepare()      # no collection while the plan is built
        keep()                # what exists now is left out of collection until the block ends
        run(plan)             # collections walk only what the run makes

A full collection of the prepared objects took 0.1 s, in the serial part of every run.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
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


@contextmanager
def long_lived() -> Iterator[Callable[[], None]]:
    """Collection paused until ``keep()``; then every object that exists is frozen (never
    walked, never freed by the collector; reference counting still frees it) until the block
    ends, when they are unfrozen and collection is as before."""
    enabled = gc.isenabled()
    gc.disable()
    frozen = False

    def keep() -> None:
        nonlocal frozen
        if not frozen:
            gc.freeze()
            frozen = True
            if enabled:
                gc.enable()

    try:
        yield keep
    finally:
        if frozen:
            gc.unfreeze()
        elif enabled:
            gc.enable()
