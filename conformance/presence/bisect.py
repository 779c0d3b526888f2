"""Isolate the failing members of a batch, as glibc's conform tests do: everything is tried
together first, and only a failing batch is split, until every failure stands alone with its
own diagnostic.

The split follows the diagnostics where it can: a compiler names the lines it rejects and a
linker the function that refers to a missing symbol, so the batch splits into the members
blamed and the rest. Where nothing is blamed, it splits in halves. A member is reported failing
only when it fails alone.

>>> def attempt(batch):      # members 3 and 5 are broken; the compiler blames the first one
...     bad = [m for m in batch if m in (3, 5)]
...     return Attempt(not bad, f"errors at {bad}", frozenset(bad[:1]))
>>> found = isolate(range(8), attempt)
>>> {member: a.message for member, a in sorted(found.items())}
{3: 'errors at [3]', 5: 'errors at [5]'}
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Attempt:
    ok: bool
    message: str = ""                     # the diagnostic
    blamed: frozenset = field(default_factory=frozenset)   # members the diagnostic names


def isolate(members: Iterable[Hashable], attempt: Callable[[list], Attempt],
            first: Attempt | None = None) -> dict:
    """Failing members -> the Attempt of that member alone. `first` is the outcome of the whole
    batch when the caller has already tried it."""
    failures: dict = {}

    def solve(batch: list, known: Attempt | None = None) -> None:
        outcome = known if known is not None else attempt(batch)
        if outcome.ok:
            return
        if len(batch) == 1:
            failures[batch[0]] = outcome
            return
        blamed = [m for m in batch if m in outcome.blamed]
        if blamed:
            rest = [m for m in batch if m not in outcome.blamed]
            if rest:
                solve(rest)
            for member in blamed:
                solve([member])
            return
        middle = len(batch) // 2
        solve(batch[:middle])
        solve(batch[middle:])

    batch = list(members)
    if batch:
        solve(batch, first)
    return failures
