"""Condition tables: an interface's pre-conditions and post-conditions as data, enumerated into
test cases (docs/specs.md, "Condition tables").

A table has pre-condition axes (each a list of named states with the C code that sets the state
up), post-condition axes (each a list of named states with the C code or expectation that checks
it), and rows that map every combination of pre-condition states either to post-condition
states, the requirements verified and the kind (normal or robustness), or to "not applicable"
with a reason. Every combination is covered by exactly one row.

>>> table = {"id": "demo", "title": "close()", "call": "close(${fd})",
...     "pre": [{"name": "fd", "states": [{"name": "open", "value": "fd", "setup": "int fd = dup(1);"},
...                                       {"name": "neg", "value": "-1"},
...                                       {"name": "huge", "value": "INT_MAX"}]}],
...     "post": [{"name": "status", "states": [{"name": "ok", "return": 0},
...                                            {"name": "ebadf", "return": -1, "errno": "EBADF"}]}],
...     "rows": [{"pre": {"fd": "open"}, "post": {"status": "ok"}, "verifies": ["REQ-close-001"],
...               "kind": "normal"},
...              {"pre": {"fd": ["neg"]}, "post": {"status": "ebadf"}, "verifies": ["REQ-close-002"],
...               "kind": "robustness"},
...              {"pre": {"fd": "huge"}, "na": "a descriptor that large may be open"}]}
>>> cases, not_applicable, problems = expand(table, lambda path: 1)
>>> [(c.suffix, c.call.text, c.expect_return, c.expect_errno) for c in cases]
[('open', 'close(fd)', '0', None), ('neg', 'close(-1)', '-1', 'EBADF')]
>>> [(n.suffix, n.reason) for n in not_applicable], problems
([('huge', 'a descriptor that large may be open')], [])
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Callable

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
ALL = "all"
MAX_NESTING = 4

# (field path relative to the table) -> YAML line where that text starts
LineOf = Callable[[tuple], int]


@dataclass(frozen=True)
class Piece:
    """A piece of C code and the YAML line its text starts at (for #line directives)."""

    text: str
    line: int


@dataclass(frozen=True)
class Expanded:
    """One combination of pre-condition states that a row maps to a test case."""

    table: str
    suffix: str                     # state names joined by '.', in axis order
    states: tuple[tuple[str, str], ...]  # (axis, state) in axis order
    title: str
    kind: str
    verifies: tuple[str, ...]
    options: tuple[str, ...]
    timeout: int | None
    setup: tuple[Piece, ...]
    call: Piece | None
    ret_type: str | None
    expect_return: str | None
    expect_errno: str | None
    errors: tuple[str, ...]
    body: tuple[Piece, ...]
    cleanup: tuple[Piece, ...]
    expected: str
    row: int
    line: int                       # line of the row
    deviations: tuple[tuple[str, str], ...] = ()  # (system, what it does instead)


@dataclass(frozen=True)
class NotApplicable:
    """A combination that cannot be set up, and why; it yields no test case."""

    table: str
    suffix: str
    states: tuple[tuple[str, str], ...]
    reason: str
    row: int
    line: int


Problem = tuple[tuple, str]  # (field path relative to the table, message)


def substitute(text: str, bindings: dict[str, str]) -> tuple[str, list[str]]:
    """Replace every ${name} in `text`; also returns the names that are not bound.

    >>> substitute("open(${path}, ${flags})", {"path": '"f"', "flags": "O_RDONLY"})
    ('open("f", O_RDONLY)', [])
    >>> substitute("f(${x})", {})
    ('f(${x})', ['x'])
    >>> substitute("abs(${x})", {"x": "-${max}", "max": "INT_MAX"})
    ('abs(-INT_MAX)', [])
    """
    missing: list[str] = []

    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in bindings:
            missing.append(name)
            return match.group(0)
        return bindings[name]

    # A bound value may itself name placeholders (a state's value using a row's let); a few
    # rounds resolve any sensible nesting and stop a binding that names itself.
    for _ in range(MAX_NESTING):
        replaced = _PLACEHOLDER.sub(one, text)
        if replaced == text or missing:
            break
        text = replaced
    return text, sorted(set(missing))


def expand(table: dict, line_of: LineOf) -> tuple[list[Expanded], list[NotApplicable], list[Problem]]:
    """Enumerate a table (already checked against the schema) into test cases.

    `line_of(path)` gives the YAML line of a field inside the table, for #line directives.
    Problems name a field path relative to the table; when there are any, the other two lists
    are incomplete and must not be used.
    """
    problems: list[Problem] = []
    pre = table["pre"]
    post = table["post"]
    pre_states = {axis["name"]: {s["name"]: (i, s) for i, s in enumerate(axis["states"])}
                  for axis in pre}
    post_states = {axis["name"]: {s["name"]: (i, s) for i, s in enumerate(axis["states"])}
                   for axis in post}
    problems += _duplicates(pre, "pre") + _duplicates(post, "post")
    if problems:
        return [], [], problems

    owner: dict[tuple[str, ...], int] = {}   # combination (state names) -> row index
    cases: list[Expanded] = []
    not_applicable: list[NotApplicable] = []
    for r, row in enumerate(table["rows"]):
        chosen = _chosen_states(row, r, pre, pre_states, problems)
        if chosen is None:
            continue
        if "na" in row:
            extra = [k for k in ("post", "verifies", "kind", "let", "options", "timeout",
                                 "deviations") if k in row]
            if extra:
                problems.append((("rows", r, extra[0]),
                                 "a not-applicable row (na) has no post, verifies, kind, let, "
                                 "options, timeout or deviations"))
                continue
        elif not _post_ok(row, r, post, post_states, problems):
            continue
        for combo in itertools.product(*chosen):
            if combo in owner:
                problems.append((("rows", r, "pre"),
                                 f"combination {_describe(pre, combo)} is also covered by "
                                 f"rows[{owner[combo]}] (line {line_of(('rows', owner[combo]))})"))
                continue
            owner[combo] = r
            states = tuple(zip((a["name"] for a in pre), combo))
            if "na" in row:
                not_applicable.append(NotApplicable(
                    table=table["id"], suffix=".".join(combo), states=states,
                    reason=" ".join(row["na"].split()), row=r, line=line_of(("rows", r))))
            else:
                case = _case(table, row, r, combo, pre_states, post_states, line_of, problems)
                if case is not None:
                    cases.append(case)
    for combo in itertools.product(*(list(pre_states[a["name"]]) for a in pre)):
        if combo not in owner:
            problems.append((("rows",), f"combination {_describe(pre, combo)} is covered by no "
                                        f"row (add one, or an na row saying why it cannot be set up)"))
    return cases, not_applicable, problems


def _duplicates(axes: list[dict], where: str) -> list[Problem]:
    problems: list[Problem] = []
    seen_axes: set[str] = set()
    for a, axis in enumerate(axes):
        if axis["name"] in seen_axes:
            problems.append(((where, a, "name"), f"axis {axis['name']!r} is defined twice"))
        seen_axes.add(axis["name"])
        seen: set[str] = set()
        for s, state in enumerate(axis["states"]):
            if state["name"] in seen:
                problems.append(((where, a, "states", s, "name"),
                                 f"state {state['name']!r} is defined twice in axis {axis['name']!r}"))
            seen.add(state["name"])
    return problems


def _chosen_states(row: dict, r: int, pre: list[dict], pre_states: dict,
                   problems: list[Problem]) -> list[list[str]] | None:
    """Per pre-condition axis, the state names the row selects; None after a problem."""
    chosen = []
    ok = True
    unknown_axes = sorted(set(row["pre"]) - set(pre_states))
    for name in unknown_axes:
        problems.append((("rows", r, "pre", name),
                         f"no pre-condition axis {name!r} (axes: {', '.join(pre_states)})"))
        ok = False
    for axis in pre:
        name = axis["name"]
        if name not in row["pre"]:
            problems.append((("rows", r, "pre"), f"axis {name!r} has no state (name one, a list, "
                                                  f"or '{ALL}')"))
            ok = False
            continue
        value = row["pre"][name]
        names = list(pre_states[name]) if value == ALL else ([value] if isinstance(value, str) else value)
        for state in names:
            if state not in pre_states[name]:
                problems.append((("rows", r, "pre", name),
                                 f"{state!r} is not a state of axis {name!r} "
                                 f"(states: {', '.join(pre_states[name])})"))
                ok = False
        chosen.append(names)
    return chosen if ok else None


def _post_ok(row: dict, r: int, post: list[dict], post_states: dict, problems: list[Problem]) -> bool:
    ok = True
    for name in sorted(set(row["post"]) - set(post_states)):
        problems.append((("rows", r, "post", name),
                         f"no post-condition axis {name!r} (axes: {', '.join(post_states)})"))
        ok = False
    for axis in post:
        name = axis["name"]
        if name not in row["post"]:
            problems.append((("rows", r, "post"), f"axis {name!r} has no state"))
            ok = False
        elif row["post"][name] not in post_states[name]:
            problems.append((("rows", r, "post", name),
                             f"{row['post'][name]!r} is not a state of axis {name!r} "
                             f"(states: {', '.join(post_states[name])})"))
            ok = False
    return ok


def _describe(pre: list[dict], combo: tuple[str, ...]) -> str:
    return ", ".join(f"{a['name']}={s}" for a, s in zip(pre, combo))


def _case(table: dict, row: dict, r: int, combo: tuple[str, ...], pre_states: dict,
          post_states: dict, line_of: LineOf, problems: list[Problem]) -> Expanded | None:
    """The test case of one combination, or None (with problems) when it cannot be built."""
    where = _describe(table["pre"], combo)
    picked_pre = [(a, pre_states[a["name"]][s]) for a, s in zip(table["pre"], combo)]
    picked_post = [(a, post_states[a["name"]][row["post"][a["name"]]]) for a in table["post"]]

    bindings: dict[str, str] = {}
    bound_at: dict[str, tuple] = {}
    before = len(problems)

    def bind(name: str, value, path: tuple) -> None:
        if name in bindings:
            problems.append((path, f"${{{name}}} is bound twice for {where} "
                                   f"(also at {_path_text(bound_at[name])})"))
            return
        bindings[name], bound_at[name] = str(value), path

    for a, (i, state) in picked_pre:
        path = ("pre", table["pre"].index(a), "states", i)
        if "value" in state:
            bind(a["name"], state["value"], path + ("value",))
        for name, value in state.get("let", {}).items():
            bind(name, value, path + ("let", name))
    for name, value in row.get("let", {}).items():
        bind(name, value, ("rows", r, "let", name))
    if len(problems) > before:
        return None

    def text(value, path: tuple) -> str:
        result, missing = substitute(str(value), bindings)
        for name in missing:
            problems.append((path, f"${{{name}}} is not bound for {where}"))
        return result

    def piece(holder: dict, key: str, path: tuple) -> list[Piece]:
        if not str(holder.get(key, "")).strip():
            return []
        return [Piece(text(holder[key], path + (key,)), line_of(path + (key,)))]

    setup = piece(table, "setup", ())
    cleanup_pre: list[Piece] = []
    options = list(table.get("options", []))
    for a, (i, state) in picked_pre:
        path = ("pre", table["pre"].index(a), "states", i)
        setup += piece(state, "setup", path)
        cleanup_pre = piece(state, "cleanup", path) + cleanup_pre  # undo in reverse order
        options += state.get("options", [])
    call = piece(table, "call", ())
    expect_return = expect_errno = None
    errors: list[str] = []
    body: list[Piece] = []
    cleanup: list[Piece] = []
    expected: list[str] = []
    for a, (i, state) in picked_post:
        path = ("post", table["post"].index(a), "states", i)
        if "return" in state or "errno" in state:
            if expect_return is not None or expect_errno is not None:
                problems.append((path, f"two post-condition states of {where} give the expected "
                                       f"return value or errno; only one may"))
            if "return" in state:
                expect_return = text(state["return"], path + ("return",))
            if "errno" in state:
                expect_errno = text(state["errno"], path + ("errno",))
        errors += state.get("errors", [])
        body += piece(state, "check", path)
        cleanup += piece(state, "cleanup", path)
        prose = state.get("text")
        if prose is None:
            prose = describe_expectation(
                None if "return" not in state else _op_form(text(state["return"], path + ("return",))),
                text(state["errno"], path + ("errno",)) if "errno" in state else None) or state["name"]
        expected.append(" ".join(text(prose, path + ("text",)).split()))
    if (expect_return is not None or expect_errno is not None) and not call:
        problems.append((("call",), f"the post-conditions of {where} expect a return value or "
                                    f"errno, but the table has no call"))
    body += piece(table, "body", ())
    cleanup += cleanup_pre + piece(table, "cleanup", ())
    options += row.get("options", [])
    if expect_errno is not None and not re.fullmatch(r"E[A-Z0-9]+", expect_errno):
        problems.append((("rows", r), f"errno {expect_errno!r} of {where} is not an E... name"))
    if len(problems) > before:
        return None
    labels = [f"{a['name']}={_state_text(s)}" for a, (i, s) in picked_pre]
    return Expanded(
        table=table["id"], suffix=".".join(combo),
        states=tuple(zip((a["name"] for a in table["pre"]), combo)),
        title=f"{' '.join(table['title'].split())} [{'; '.join(labels)}]",
        kind=row["kind"], verifies=tuple(row["verifies"]),
        options=tuple(dict.fromkeys(options)),
        timeout=row.get("timeout", table.get("timeout")),
        setup=tuple(setup), call=call[0] if call else None, ret_type=table.get("ret_type"),
        expect_return=expect_return, expect_errno=expect_errno,
        errors=tuple(dict.fromkeys(errors + ([expect_errno] if expect_errno else []))),
        body=tuple(body), cleanup=tuple(cleanup), expected="; ".join(e for e in expected if e),
        row=r, line=line_of(("rows", r)),
        deviations=tuple(sorted((k, " ".join(v.split())) for k, v in row.get("deviations", {}).items())))


def _split_return(value: str) -> tuple[str, str]:
    match = re.match(r"^\s*(==|!=|<=|>=|<|>)?\s*(.*?)\s*$", value, re.S)
    return match.group(1) or "==", match.group(2)


def _op_form(value: str) -> str:
    return " ".join(_split_return(value))


def describe_expectation(expect_return: str | None, expect_errno: str | None) -> str:
    """Prose for an `expect` mapping, used when a test case has no `expected`.

    >>> describe_expectation("== -1", "ENOENT")
    'returns -1 and sets errno to ENOENT'
    >>> describe_expectation(">= 0", None)
    'returns >= 0'
    >>> describe_expectation(None, "EINTR")
    'sets errno to EINTR'
    """
    parts = []
    if expect_return is not None:
        op, expr = _split_return(expect_return)
        parts.append(f"returns {expr}" if op == "==" else f"returns {op} {expr}")
    if expect_errno is not None:
        parts.append(f"sets errno to {expect_errno}")
    return " and ".join(parts)


def _state_text(state: dict) -> str:
    """How a pre-condition state is named in a title: its text, else its value, else its name."""
    return " ".join(str(state.get("text", state.get("value", state["name"]))).split())


def _path_text(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
