"""What pcert is: its version and, when run from a git checkout, the commit.

>>> sorted(identity())
['dirty', 'git_commit', 'version']
"""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def pcert_version() -> str:
    try:
        return metadata.version("pcert")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def identity() -> dict:
    """Version and git commit; `dirty` says the checkout had uncommitted changes."""
    commit, dirty = None, None
    if (_ROOT / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(_ROOT), "rev-parse", "HEAD"],
                                    capture_output=True, text=True, timeout=10).stdout.strip() or None
            status = subprocess.run(["git", "-C", str(_ROOT), "status", "--porcelain",
                                     "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10).stdout
            dirty = bool(status.strip()) if commit else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"version": pcert_version(), "git_commit": commit, "dirty": dirty}
