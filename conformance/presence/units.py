"""Check one unit (a header under one level's macros): compile all its checks together, isolate
each failure, and say for each check which stage failed and with what diagnostic.

>>> f = Finding(ok=False, stage="type", diagnostic="u.c:9: error: x", line=9)
>>> Finding.from_json(f.to_json()) == f
True
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from .bisect import Attempt, isolate
from .compiler import Compiler, diagnostic, error_lines
from .namespace import Rules, intruders
from .snippets import Check, UnitSource

HEADER_STAGE = "header"
_UNKNOWN_TYPE = re.compile(r"error: unknown type name")


@dataclass(frozen=True)
class Finding:
    """What compiling one check showed."""

    ok: bool
    stage: str = ""          # the first failing stage; "header" when the header is missing
    diagnostic: str = ""     # the compiler's messages for the check compiled alone
    line: int | None = None  # first error line, in the unit file
    unresolved: bool = False  # nothing can be concluded: the expected type cannot be named
    #                           with the header alone, or not even the header compiles
    extension_only: bool = False  # declared only when extensions are enabled

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Finding":
        return cls(**data)


def check_unit(compiler: Compiler, source: UnitSource, *, recheck_extensions: bool = False,
               namespace_rules: Rules | None = None) -> tuple[dict[int, Finding], dict | None]:
    """(check index -> Finding for every check of `source`, namespace finding or None).

    The namespace finding, made when `namespace_rules` are given, is
    `{"available": bool, "diagnostic": str, "names": [names the header may not define]}`.
    """
    level = source.unit.level
    checks = {c.index: c for c in source.checks}

    def attempt(batch: list[int], *, extensions: bool = False) -> Attempt:
        text = source.subset([checks[i] for i in batch])
        outcome = compiler.syntax(source.file, text, level, extensions=extensions)
        if outcome.ok:
            return Attempt(True)
        blamed = {c.index for line in error_lines(outcome.stderr, source.file)
                  if (c := source.check_at(line)) is not None}
        return Attempt(False, outcome.stderr, frozenset(blamed))

    whole = compiler.syntax(source.file, source.text, level,
                            keep_preprocessed=namespace_rules is not None)
    blamed = frozenset(c.index for line in error_lines(whole.stderr, source.file)
                       if (c := source.check_at(line)) is not None)
    broken, unresolved = None, False
    if not whole.ok and source.include_line in error_lines(whole.stderr, source.file):
        broken = whole
    elif not whole.ok and not blamed:
        # Errors that name no check: if the header alone does not compile either, nothing in
        # it can be checked. The header's fault where the errors are in it; otherwise (flags
        # the compiler refuses, say) nothing can be concluded.
        alone = compiler.syntax(source.file, source.subset([]), level)
        if not alone.ok:
            broken, unresolved = alone, "In file included from" not in alone.stderr
    if broken is not None:
        message = diagnostic(broken.stderr)
        namespace = None if namespace_rules is None else {
            "available": False, "diagnostic": message, "names": []}
        return ({i: Finding(False, HEADER_STAGE, message, source.include_line,
                            unresolved=unresolved) for i in checks}, namespace)
    namespace = None
    if namespace_rules is not None:
        namespace = {"available": True, "diagnostic": "",
                     "names": sorted(_namespace_names(compiler, source, whole.stdout,
                                                      namespace_rules))}
    failed = isolate(checks, attempt, first=Attempt(whole.ok, whole.stderr, blamed))
    findings = {i: Finding(True) for i in checks}
    for index, outcome in failed.items():
        findings[index] = _classify(checks[index], outcome.message, source.file)
    _check_string_values(compiler, source, findings)
    if recheck_extensions:
        missing = [i for i, f in findings.items() if not f.ok and f.stage == "declared"]
        still = isolate(missing, lambda batch: attempt(batch, extensions=True))
        for index in missing:
            if index not in still:
                findings[index] = Finding(**{**findings[index].to_json(), "extension_only": True})
    return findings, namespace


def _namespace_names(compiler: Compiler, source: UnitSource, preprocessed: str,
                     rules: Rules) -> set[str]:
    """Names the header defines beyond `rules`, from the unit's own preprocessed output where
    the compiler kept it (the unit file's own lines are skipped), else from preprocessing the
    header alone."""
    if "#define" not in preprocessed:
        preprocessed = compiler.preprocess(source.file, f"#include <{source.unit.header}>\n",
                                           source.unit.level, ("-dD",)).stdout
    return intruders(preprocessed, rules, skip=(source.file,))


def _classify(check: Check, stderr: str, file: str) -> Finding:
    """The first stage with an error decides what is wrong."""
    lines = error_lines(stderr, file)
    stages = [(check.stage_at(line), line) for line in lines if check.stage_at(line)]
    if not stages:
        return Finding(False, "declared", diagnostic(stderr), lines[0] if lines else None)
    order = [name for name, _, _ in check.spans]
    stage, line = min(stages, key=lambda s: (order.index(s[0]), s[1]))
    unresolved = False
    if stage == "type":
        in_stage = [text for text in stderr.splitlines()
                    if any(text.startswith(f"{file}:{n}:") for n in _span_lines(check, "type"))
                    and "error:" in text]
        unresolved = any(_UNKNOWN_TYPE.search(t) for t in in_stage)
    return Finding(False, stage, diagnostic(stderr), line, unresolved=unresolved)


def _span_lines(check: Check, stage: str) -> range:
    for name, first, last in check.spans:
        if name == stage:
            return range(first, last + 1)
    return range(0)


def _check_string_values(compiler: Compiler, source: UnitSource,
                         findings: dict[int, Finding]) -> None:
    """macro-str values: preprocess the macro between two markers and compare the string."""
    probed = [c for c in source.checks if c.probes and findings[c.index].ok]
    if not probed:
        return
    text = source.head + "".join(f"{p}\n" for c in probed for p in c.probes)
    outcome = compiler.preprocess(source.file, text, source.unit.level, ("-P",))
    for c in probed:
        expected = _string_value(c.expectation.expected_value)
        match = re.search(rf"{c.tag}_begin (.*?) {c.tag}_end", outcome.stdout, re.S)
        found = _string_value(match.group(1)) if match else None
        if found != expected:
            shown = match.group(1).strip() if match else "(nothing)"
            findings[c.index] = Finding(False, "value", diagnostic(
                f"{c.expectation.name} expands to {shown}, not {c.expectation.expected_value}"
                + (f"\n{outcome.stderr}" if not outcome.ok else "")))


def _string_value(tokens: str) -> str | None:
    """The value of adjacent plain string literals, or None if `tokens` is anything else.

    >>> _string_value('"07" "0707"')
    '070707'
    """
    literal = r'"((?:[^"\\\n]|\\.)*)"'
    if not re.fullmatch(rf"(\s*{literal}\s*)+", tokens):
        return None
    return "".join(re.findall(literal, tokens))
