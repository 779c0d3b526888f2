"""The source text of one procedure (a C function) from the bundle's procedures/*.c.

The generator writes each procedure as a comment block, ``void <function>(void)`` at the start
of a line, its body, and a closing ``}`` alone at the start of a line (docs/specs.md). That is
all this relies on; a file it cannot read that way gives "" and the report says the source is
in the bundle.

>>> functions_in("/* TC-a-001: x */\\nvoid tc_a(void)\\n{\\n    f();\\n}\\n")["tc_a"]
'/* TC-a-001: x */\\nvoid tc_a(void)\\n{\\n    f();\\n}'
"""

from __future__ import annotations

import re
import weakref

from evidence.errors import BundleError

_DEFINITION = re.compile(r"^[A-Za-z_][A-Za-z0-9_ \t\*]*?\b([A-Za-z_][A-Za-z0-9_]*)\s*\([^;]*$")


def functions_in(text: str) -> dict[str, str]:
    """Function name -> its source, with the comment block just above it."""
    lines = text.split("\n")
    found: dict[str, str] = {}
    index = 0
    while index < len(lines):
        match = _DEFINITION.match(lines[index])
        if not match:
            index += 1
            continue
        start = index
        # Take the comment block that documents it (it names the test case).
        if start > 0 and lines[start - 1].rstrip().endswith("*/"):
            while start > 0 and not lines[start - 1].lstrip().startswith("/*"):
                start -= 1
            start -= 1
        end = index + 1
        while end < len(lines) and lines[end] != "}":
            end += 1
        if end == len(lines):
            break
        found.setdefault(match.group(1), "\n".join(lines[start:end + 1]))
        index = end + 1
    return found


class ProcedureSources:
    """Reads each procedures/*.c once; ``source(testcase)`` is its function's text or ""."""

    def __init__(self, bundle):
        self.bundle = bundle
        self._files: dict[str, dict[str, str]] = {}

    @classmethod
    def of(cls, bundle) -> "ProcedureSources":
        """The one of ``bundle``: the PDF's and the HTML's sections read the same files."""
        try:
            return _OF_BUNDLE[bundle]
        except TypeError:                   # a bundle that cannot be weakly referenced
            return cls(bundle)
        except KeyError:
            sources = _OF_BUNDLE[bundle] = cls(bundle)
            return sources

    def source(self, testcase: dict) -> str:
        procedure = testcase.get("procedure") or {}
        name = procedure.get("file")
        if not name:
            return ""
        if name not in self._files:
            try:
                self._files[name] = functions_in(self.bundle.procedure_source(testcase))
            except (BundleError, AttributeError):
                self._files[name] = {}
        return self._files[name].get(procedure.get("function") or "", "")


_OF_BUNDLE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
