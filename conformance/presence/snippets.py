"""C snippets that check one expectation, in stages, and the translation unit of a header.

Each expectation becomes a few declarations that compile only when the header provides the
item as expected. They come in stages, so a failure says what is wrong: `declared` (the name
exists), `constant` (usable in a constant initializer), `if` (usable in `#if`), `type` (the
declared type is compatible with the expected one), `value` (a constant within its bound).
Types are compared by redeclaration: C makes two declarations of one name with incompatible
types a constraint violation, which every compiler reports as an error.

>>> from conformance.presence.expectations import Expectation
>>> e = Expectation("fcntl.h", "function", "open", "int", "(const char*, int, ...)",
...                 declaration="int (open) (const char*, int, ...)")
>>> for stage in stages(e, "pcert_c1"):
...     print(stage.name, "|", stage.text)
declared | extern __typeof__ ((open)) pcert_c1_declared;
type | extern int (open) (const char*, int, ...);
>>> c = Expectation("limits.h", "macro-int-constant", "CHAR_MAX", "", expected_value="== SCHAR_MAX")
>>> [s.name for s in stages(c, "pcert_c2")]
['declared', 'constant', 'if', 'value']
>>> value = stages(c, "pcert_c2")[-1].text      # plain char may be unsigned (aarch64)
>>> value.split("[")[0], "(((char) -1 < 0) ? SCHAR_MAX : UCHAR_MAX)" in value
('typedef char pcert_c2_CHAR_MAX_out_of_bounds', True)
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .expectations import Expectation
from .scope import Edition, Unit

# What a failing stage means for the verdict.
PROBLEMS = {"declared": "missing", "constant": "mistyped", "if": "mistyped", "type": "mistyped",
            "value": "out_of_bounds"}
# Lines before the first check in every unit; identical in the full unit and in every subset
# compiled while isolating a failure, so line numbers always refer to the full unit.
PRELUDE = ("#define pcert_int_width_(n) int##n##_t\n"
           "#define pcert_int_width(n) pcert_int_width_(n)\n")
# glibc-internal type names in the data, and a portable way to name the same type: the type of
# a wide character constant is wchar_t, which <inttypes.h> need not define.
GLIBC_SPELLINGS = {"__gwchar_t": "__typeof__ (L'\\0')"}
# The data were preprocessed without the compiler's own macros, so the branch for an unsigned
# plain char was lost: restore it where the bound is the signed-char one.
_CHAR_BOUNDS = {("CHAR_MIN", "SCHAR_MIN"): "((char) -1 < 0) ? SCHAR_MIN : 0",
                ("CHAR_MAX", "SCHAR_MAX"): "((char) -1 < 0) ? SCHAR_MAX : UCHAR_MAX"}


@dataclass(frozen=True)
class Stage:
    name: str            # declared | constant | if | type | value
    text: str            # C lines (no trailing newline); "" for a preprocessor probe only
    probe: str = ""      # macro-str: a line whose preprocessed form shows the macro's value


def stages(e: Expectation, tag: str) -> list[Stage]:
    """The checks of `e`, in order; `tag` makes the identifiers they declare unique."""
    return [Stage(s.name, _portable(s.text), s.probe) for s in _stages(e, tag)]


def _portable(text: str) -> str:
    for internal, portable in GLIBC_SPELLINGS.items():
        if internal in text:
            text = re.sub(rf"\b{internal}\b", portable, text)
    return text


def _stages(e: Expectation, tag: str) -> list[Stage]:
    kind = e.kind
    if kind in ("function", "variable"):
        return [Stage("declared", f"extern __typeof__ (({e.name})) {tag}_declared;"),
                Stage("type", f"extern {e.declaration};")]
    if kind == "macro-function":
        return [Stage(s.name, f"#ifndef {e.name}\n{s.text}\n#endif")
                for s in _stages(Expectation(e.header, "function", e.name,
                                            declaration=e.declaration), tag)]
    if kind in ("callable", "object"):
        names = e.checks or (e.name,)
        if e.declaration:   # a typed completion row
            return _stages(Expectation(e.header, "function", e.name,
                                      declaration=e.declaration), tag)
        return [Stage("declared", "\n".join(
            f"#ifndef {n}\nextern __typeof__ (({n})) {tag}_declared_{i};\n#endif"
            for i, n in enumerate(names)))]
    if kind == "type":
        if e.name.startswith(("struct ", "union ")):
            return [Stage("declared", f"typedef char {tag}_complete[sizeof ({e.name})];")]
        return [Stage("declared", f"typedef {e.name} *{tag}_declared;")]
    if kind == "tag":
        # In a prototype, an undeclared tag declares a new type local to that prototype, so the
        # second declaration conflicts with the first unless the header declared the tag.
        return [Stage("declared", f"void {tag}_tag ({e.name} *);\nvoid {tag}_tag ({e.name} *);")]
    if kind == "element":
        member = f"((({e.aggregate} *) 0)->{e.name})"
        return [Stage("declared", f"typedef __typeof__ ({member}) {tag}_member;"),
                Stage("type", f"extern {_rename(e.declaration, e.name, tag + '_type')};\n"
                              f"extern __typeof__ ({member}) {tag}_type;")]
    return _constant_stages(e, tag)


def _constant_stages(e: Expectation, tag: str) -> list[Stage]:
    kind, name = e.kind, e.name
    result = []
    if kind.startswith("macro"):
        result.append(Stage("declared",
                            f"#ifndef {name}\n#error \"{name} is not defined\"\n#endif"))
    if "constant" in kind:
        result.append(Stage("constant" if result else "declared",
                            f"const __typeof__ ({name}) {tag}_constant = ({name});"))
    if kind == "symbol":
        result.append(Stage("declared", f"static void {tag}_symbol (void)\n"
                                        f"{{ __typeof__ ({name}) v = ({name}); (void) v; }}"))
    if kind == "macro-int-constant":
        result.append(Stage("if", f"#if ({name}) < 0\n#define {tag}_negative 1\n#else\n"
                                  f"#define {tag}_negative 0\n#endif\n"
                                  f"typedef char {tag}_if"
                                  f"[((({name}) < 0) == {tag}_negative) ? 1 : -1];"))
    if e.c_type:
        result.append(Stage("type", f"extern {_type_of(e.c_type)} {tag}_type;\n"
                                    f"extern __typeof__ ({name}) {tag}_type;"))
    if e.operator:
        bound = _CHAR_BOUNDS.get((name, e.bound), e.bound) if e.header == "limits.h" else e.bound
        result.append(Stage("value", f"typedef char {tag}_{name}_out_of_bounds"
                                     f"[(({name}) {e.operator} ({bound})) ? 1 : -1];"))
    if kind == "macro-str":
        result.append(Stage("value", "", probe=f"{tag}_begin {name} {tag}_end"))
    return result


def _type_of(c_type: str) -> str:
    """`promoted:T` is T after the integer promotions; `size:N` is intN_t promoted."""
    if c_type.startswith("promoted:"):
        t = c_type.removeprefix("promoted:")
        return f"__typeof__ (({t}) 0 + ({t}) 0)"
    if c_type.startswith("size:"):
        t = f"pcert_int_width({c_type.removeprefix('size:')})"
        return f"__typeof__ (({t}) 0 + ({t}) 0)"
    return f"__typeof__ (({c_type}) 0)"   # also forms pointer-to-function types


def _rename(declaration: str, name: str, new: str) -> str:
    """The declaration with its declared name (the last whole-word occurrence) replaced."""
    matches = list(re.finditer(rf"\b{re.escape(name)}\b", declaration))
    if not matches:
        raise ValueError(f"declaration {declaration!r} does not name {name!r}")
    m = matches[-1]
    return declaration[:m.start()] + new + declaration[m.end():]


@dataclass(frozen=True)
class Check:
    """One expectation placed in its unit: its stages and the lines they occupy there."""

    index: int
    expectation: Expectation
    tag: str
    text: str                          # the snippet: every stage, in order
    first_line: int                    # line of the snippet's first line in the unit file
    spans: tuple[tuple[str, int, int], ...]   # (stage, first line, last line)
    probes: tuple[str, ...]            # macro-str value probes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def last_line(self) -> int:
        return self.first_line + self.text.count("\n")

    def stage_at(self, line: int) -> str | None:
        for name, first, last in self.spans:
            if first <= line <= last:
                return name
        return None


@dataclass(frozen=True)
class UnitSource:
    unit: Unit
    file: str                  # e.g. sys-stat-xsi.c
    head: str                  # the lines before the first check
    checks: tuple[Check, ...]

    @property
    def include_line(self) -> int:
        return 2

    @property
    def text(self) -> str:
        return self.head + "".join(f"\n{c.text}\n" for c in self.checks)

    def subset(self, checks) -> str:
        """A unit with only `checks`, each at its own line of the full unit."""
        return self.head + "".join(f'#line {c.first_line} "{self.file}"\n{c.text}\n'
                                   for c in checks)

    def check_at(self, line: int) -> Check | None:
        for c in self.checks:
            if c.first_line <= line <= c.last_line:
                return c
        return None


def unit_source(unit: Unit, expectations: list[Expectation], edition: Edition) -> UnitSource:
    """The translation unit that checks `expectations` of `unit.header`."""
    macros = " ".join(edition.macros(unit.level))
    head = (f"/* pcert presence checks of <{unit.header}>, {edition.standard} "
            f"{'XSI' if unit.level == 'xsi' else 'base'} ({macros}); generated */\n"
            f"#include <{unit.header}>\n{PRELUDE}")
    line = head.count("\n") + 1
    checks = []
    for index, e in enumerate(expectations):
        tag = f"pcert_c{index}"
        parts = [s for s in stages(e, tag)]
        line += 1          # the blank line before each snippet
        spans, texts, at = [], [], line
        for s in parts:
            if s.text:
                texts.append(s.text)
                spans.append((s.name, at, at + s.text.count("\n")))
                at += s.text.count("\n") + 1
        text = "\n".join(texts)
        checks.append(Check(index=index, expectation=e, tag=tag, text=text, first_line=line,
                            spans=tuple(spans), probes=tuple(s.probe for s in parts if s.probe)))
        line += text.count("\n") + 1
    return UnitSource(unit=unit, file=f"{unit.name}.c", head=head, checks=tuple(checks))
