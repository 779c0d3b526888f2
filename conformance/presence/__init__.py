"""Presence checks: does a target's toolchain declare, type and link every interface a profile
requires? (docs/presence.md)

Expectations are data (the GNU C Library's conformance data, completed from the profile
table); each header becomes one translation unit compiled with the target's own compiler
under the edition's feature-test macros; a failing unit is bisected until every failing
expectation stands alone with the compiler's own diagnostic; then one program refers to every
required function and object and is linked with the target's libraries. Results are cached by
content, so an unchanged target and catalog cost nothing the second time.

    >>> from conformance.profiles import load_profile
    >>> from targets.definition import load_target
    >>> run = run_presence(load_profile("posix-2024"), load_target("linux-x86_64"),
    ...                    multi_process=True, cache_dir=Path("~/.cache/pcert"))  # doctest: +SKIP
    >>> run.verdict["provides_all"], run.verdict["missing"][0]["name"]           # doctest: +SKIP
    (False, 'O_TTY_INIT')
"""

from __future__ import annotations

from pathlib import Path

from targets.definition import Target
from targets.toolchain import Toolchain

from ..profiles import Profile
from .engine import check_scope
from .records import PresenceRun
from .scope import Scope, select

__all__ = ["PresenceRun", "Scope", "check_scope", "run_presence", "select"]


def run_presence(profile: Profile, target: Target, *, multi_process: bool, cache_dir: Path,
                 progress=None) -> PresenceRun:
    """The presence checks of `profile` on `target`, with the target's toolchain.

    `cache_dir` is pcert's cache directory; results are kept under `cache_dir/presence`.
    `progress` is a conformance.progress.Progress (or None for silence).
    """
    scope = select(profile, multi_process=multi_process)
    return check_scope(scope, Toolchain.for_target(target), cache_dir=Path(cache_dir),
                       progress=progress)
