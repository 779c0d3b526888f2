"""A live progress line for build and run, quiet when stderr is not a terminal.

On a terminal one line is rewritten in place (`run 12/42 TC-open-003`); in CI logs each phase
gets one line and the run a line per tenth of the plan, so logs stay short.

>>> import io
>>> p = Progress(io.StringIO(), interactive=False)
>>> p.phase("build", "compiling 3 sources")
>>> p.stream.getvalue()
'pcert: build: compiling 3 sources\\n'
"""

from __future__ import annotations

import sys
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None = None, interactive: bool | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._last_tenth = -1
        self._dirty = False

    def _line(self, text: str) -> None:
        if self.interactive:
            self.stream.write("\r\x1b[2K" + text[:200])
            self._dirty = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def phase(self, name: str, detail: str = "") -> None:
        if self._dirty:
            self.stream.write("\n")
            self._dirty = False
        self._last_tenth = -1
        self._line(f"pcert: {name}: {detail}" if detail else f"pcert: {name}")
        if self.interactive:
            self.stream.write("\n")
            self._dirty = False

    def update(self, done: int, total: int, current: str = "") -> None:
        if self.interactive:
            self._line(f"pcert: run {done}/{total} {current}")
            return
        tenth = done * 10 // total if total else 10
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self._line(f"pcert: run {done}/{total} {current}".rstrip())

    def close(self) -> None:
        if self._dirty:
            self.stream.write("\n")
            self.stream.flush()
            self._dirty = False
