"""Link check: one program that refers to every required function and object through its
header, linked with the target's toolchain and libraries.

Each interface is referred to from a function of its own (`pcert_l<N>`), so a linker that
reports an undefined symbol names the function that needs it, and with it the interface: the
batch splits there (conformance.presence.bisect) until each failure is linked alone.

>>> program = LinkProgram([LinkItem("open", "fcntl.h", ("open",), "function"),
...                        LinkItem("errno", "errno.h", ("errno",), "object")])
>>> print(program.items_text[1])
void pcert_l1 (void)
{
#ifndef errno
  pcert_object_sink = (const volatile void *) &(errno);
#endif
}
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .bisect import Attempt, isolate
from .compiler import Compiler, error_lines, linker_blame

FILE = "link.c"
PREFIX = "pcert_l"
# Kinds whose name may be only a macro: nothing to link then.
MAYBE_MACRO = frozenset({"macro-function", "callable", "object"})
OBJECT_KINDS = frozenset({"variable", "object"})
LINKABLE = frozenset({"function", "macro-function", "variable", "callable", "object"})
CANNOT_LINK = "the toolchain cannot link even a program that refers to nothing"


@dataclass(frozen=True)
class LinkItem:
    interface: str
    header: str
    names: tuple[str, ...]   # identifiers referred to (a family has several)
    kind: str


class LinkProgram:
    """The link check's source; `subset` keeps every function at its line of the whole."""

    def __init__(self, items: list[LinkItem]):
        self.items = list(items)
        self.items_text = [_function(i, item) for i, item in enumerate(self.items)]
        line = self._head(range(len(self.items))).count("\n") + 2
        self._first_lines = []
        for text in self.items_text:
            self._first_lines.append(line)
            line += text.count("\n") + 2

    def _head(self, indexes) -> str:
        headers = sorted({self.items[i].header for i in indexes})
        return ("/* pcert link check: every required function and object, referred to "
                "through its header; generated */\n"
                + "".join(f"#include <{h}>\n" for h in headers)
                + "void (*volatile pcert_function_sink) (void);\n"
                  "const volatile void *volatile pcert_object_sink;\n")

    @property
    def text(self) -> str:
        return self.subset(range(len(self.items)), line_directives=False)

    def first_line(self, index: int) -> int:
        """The line of `pcert_l<index>` in the whole program."""
        return self._first_lines[index]

    def subset(self, indexes, *, line_directives: bool = True) -> str:
        indexes = sorted(indexes)
        parts = [self._head(indexes)]
        for i in indexes:
            if line_directives:
                parts.append(f'#line {self.first_line(i)} "{FILE}"\n')
            else:
                parts.append("\n")
            parts.append(self.items_text[i] + "\n")
        if not indexes:
            parts.append("\nint main (void) { return 0; }\n")
            return "".join(parts)
        refs = ", ".join(f"{PREFIX}{i}" for i in indexes)
        parts.append(f"\nvoid (*const pcert_link_refs[]) (void) = {{ {refs} }};\n"
                     "volatile int pcert_which;\n"
                     "int main (void) { pcert_link_refs[pcert_which] (); return 0; }\n")
        return "".join(parts)

    def sha256(self, index: int) -> str:
        return hashlib.sha256(self.items_text[index].encode("utf-8")).hexdigest()

    def item_at(self, line: int) -> int | None:
        for i, text in enumerate(self.items_text):
            first = self.first_line(i)
            if first <= line <= first + text.count("\n"):
                return i
        return None


def _function(index: int, item: LinkItem) -> str:
    body = []
    for name in item.names:
        if item.kind in OBJECT_KINDS:
            ref = f"  pcert_object_sink = (const volatile void *) &({name});"
        else:
            ref = f"  pcert_function_sink = (void (*) (void)) &({name});"
        body.append(f"#ifndef {name}\n{ref}\n#endif" if item.kind in MAYBE_MACRO else ref)
    return f"void {PREFIX}{index} (void)\n{{\n" + "\n".join(body) + "\n}"


def check_links(compiler: Compiler, program: LinkProgram) -> dict[int, str]:
    """Item index -> the diagnostic of linking it alone, for every item that fails.

    Where the whole program fails without naming an item, a program that refers to nothing is
    linked first: if even that fails, the toolchain cannot link at all, and every item gets its
    diagnostic at once instead of being linked alone.
    """
    if not program.items:
        return {}

    def attempt(batch: list[int]) -> Attempt:
        outcome = compiler.link(FILE, program.subset(batch), "xsi")
        if outcome.ok:
            return Attempt(True)
        blamed = set(linker_blame(outcome.stderr, PREFIX))
        blamed |= {i for line in error_lines(outcome.stderr, FILE)
                   if (i := program.item_at(line)) is not None}
        return Attempt(False, outcome.stderr, frozenset(blamed))

    everything = list(range(len(program.items)))
    whole = attempt(everything)
    if not whole.ok and not whole.blamed:
        empty = compiler.link(FILE, program.subset([]), "xsi")
        if not empty.ok:
            return {i: f"{CANNOT_LINK}:\n{empty.stderr}" for i in everything}
    return {i: a.message for i, a in isolate(everything, attempt, first=whole).items()}
