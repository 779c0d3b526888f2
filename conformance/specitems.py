"""Spec items: behavioural requirements and test cases loaded from YAML (docs/specs.md).

Every problem is reported as `<file>:<line>: <field>: <what is wrong>`, so a spec author can
jump straight to it:

>>> import tempfile
>>> d = Path(tempfile.mkdtemp())
>>> _ = (d / "bad.yaml").write_text("unit: demo\\ntitle: Demo\\nrequirements:\\n  - id: REQ-x\\n")
>>> try:
...     load_spec_dirs([d])
... except SpecError as e:
...     print(str(e).replace(str(d) + "/", ""))
bad.yaml:4: requirements[0].id: 'REQ-x' does not match '^REQ-[A-Za-z0-9_]+-[0-9]{3}$'
bad.yaml:4: requirements[0].interface: required field is missing
bad.yaml:4: requirements[0].method: required field is missing
bad.yaml:4: requirements[0].source: required field is missing
bad.yaml:4: requirements[0].text: required field is missing

Condition tables (`tables:`) are enumerated into test cases by conformance/conditions.py when
the files are linked; `interfaces:` notes feed the coverage count (conformance/coverage.py).

The built-in suite loads cleanly:

>>> specs = load_spec_dirs([builtin_spec_dir()])
>>> specs.test_cases["TC-open-001"].interface
'open'
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from evidence.fastschema import compile_schema

from . import conditions
from .conditions import describe_expectation
from .requirements import Requirement

if TYPE_CHECKING:
    import jsonschema

SCHEMA_PATH = Path(__file__).with_name("spec.schema.json")
DEFAULT_RET_TYPE = "long"
DEFAULT_TIMEOUT_S = 10  # the runtime's default when neither the spec nor PCERT_TIMEOUT sets one
_RETURN = re.compile(r"^\s*(==|!=|<=|>=|<|>)?\s*(.*?)\s*$", re.S)


class SpecError(ValueError):
    """Spec files that cannot be used; one `<file>:<line>: <field>: <problem>` line each.

    >>> str(SpecError(["a.yaml:3: unit: bad", "a.yaml:9: title: bad"]))
    'a.yaml:3: unit: bad\\na.yaml:9: title: bad'
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class TestCase:
    """One test case, as written in its spec file, with the interface it is filed under.

    `expect_return` is normalised to "<op> <expr>" (`return_check` splits it); `timeout_s` is
    the spec's timeout or the runtime default (`timeout_from_spec` tells which); `source_file`
    is relative to its spec directory, so it does not depend on where the checkout lives;
    `lines` maps setup, call, expect.return, expect.errno, body and cleanup to the YAML line
    where their text starts (for #line directives).
    """

    __test__ = False  # not a pytest class, despite the name

    id: str
    title: str
    unit: str
    interface: str
    kind: str
    verifies: tuple[str, ...]
    options: tuple[str, ...]
    timeout_s: int
    setup: str
    call: str | None
    ret_type: str
    expect_return: str | None
    expect_errno: str | None
    body: str
    cleanup: str
    expected: str
    source_file: str
    source_line: int
    timeout_from_spec: bool = False
    lines: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    errors: tuple[str, ...] = ()    # errno values the case provokes (expect.errno, errors)
    table: str = ""                 # the condition table it comes from, "" when hand-written
    deviations: tuple[tuple[str, str], ...] = ()  # known deviations: (system, what it does)
    pieces: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def return_check(self) -> tuple[str, str] | None:
        """(op, C expression) of the expected return value, e.g. ('>=', '0')."""
        return None if self.expect_return is None else _split_return(self.expect_return)

    def code(self, part: str) -> list[tuple[str, int]]:
        """(C text, YAML line) pieces of 'setup', 'body' or 'cleanup', in order.

        A hand-written case has at most one piece per part; a case from a condition table has
        one per pre- or post-condition state that contributes code.
        """
        if part in self.pieces:
            return list(self.pieces[part])
        text = getattr(self, part)
        return [(text, self.lines[part])] if text.strip() else []

    @property
    def inputs(self) -> str:
        """Setup and call as C, for the evidence's description of the test inputs."""
        parts = [self.setup.strip(), f"ret = {self.call};" if self.call else ""]
        return "\n".join(p for p in parts if p)


@dataclass(frozen=True)
class SpecFile:
    """One parsed spec file; `name` is its path relative to the spec directory it came from."""

    path: Path
    unit: str
    title: str
    includes: tuple[str, ...]
    prelude: str
    requirements: list[Requirement]
    test_cases: list[TestCase]
    name: str = ""
    prelude_line: int = 0
    not_applicable: list[conditions.NotApplicable] = field(default_factory=list)
    interfaces: dict[str, "InterfaceNote"] = field(default_factory=dict)


@dataclass(frozen=True)
class InterfaceNote:
    """What a spec file says about an interface beyond its requirements: the errno values its
    ERRORS section lists, why some cannot be provoked portably, or that it has no run-time
    behaviour at all (a macro expanding to a constant), with the reason."""

    name: str
    unit: str
    behaviour: bool
    reason: str
    no_normal: str
    errors: tuple[str, ...]
    untestable: dict[str, str]
    source_file: str
    source_line: int


@dataclass(frozen=True)
class SpecSet:
    """All loaded spec files, with their requirements and test cases by id (in file order)."""

    files: list[SpecFile]
    requirements: dict[str, Requirement]
    test_cases: dict[str, TestCase]
    interfaces: dict[str, InterfaceNote] = field(default_factory=dict)

    @property
    def not_applicable(self) -> list[conditions.NotApplicable]:
        """Combinations of condition tables that cannot be set up, with the reason."""
        return [na for f in self.files for na in f.not_applicable]


def builtin_spec_dir() -> Path:
    """The directory of the built-in behavioural suite (conformance/specs)."""
    return Path(str(resources.files("conformance") / "specs"))


def load_spec_dirs(dirs: list[Path]) -> SpecSet:
    """Load every *.yaml file of `dirs` (in that order, files sorted by name) and cross-check.

    Ids and units must be unique across all files, and every `verifies` entry must name a
    requirement of some loaded file.
    """
    problems: list[str] = []
    parsed: list[_Parsed] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            problems.append(f"{_shown(d)}: not a directory")
            continue
        for path in sorted([*d.glob("*.yaml"), *d.glob("*.yml")]):
            try:
                parsed.append(_parse(path, root=d))
            except SpecError as e:
                problems.extend(e.problems)
    if problems:
        raise SpecError(problems)
    return _link(parsed)


def load_spec_file(path: Path) -> SpecFile:
    """Load and check one file on its own; `verifies` may name requirements of other files."""
    path = Path(path)
    return _link([_parse(path, root=path.parent)], check_references=False).files[0]


# --- parsing one file ------------------------------------------------------------------------


@dataclass
class _Parsed:
    path: Path
    name: str
    data: dict
    where: "_Positions"


class _Positions:
    """Lines of the YAML nodes, by field path such as ('test_cases', 3, 'verifies')."""

    def __init__(self, root: yaml.Node | None, shown: str):
        self.shown = shown
        self._line: dict[tuple, int] = {(): 1}
        self._code_line: dict[tuple, int] = {}
        self.duplicates: list[tuple[int, str, str]] = []  # (line, field, message)
        if root is not None:
            self._walk(root, (), root.start_mark.line + 1)

    def line(self, path: tuple) -> int:
        """Line of the field (its key) or list item; the nearest enclosing one if unknown."""
        path = tuple(path)
        while path not in self._line:
            path = path[:-1]
        return self._line[path]

    def code_line(self, path: tuple) -> int:
        """Line of the first character of a scalar's content (block scalars start below)."""
        return self._code_line.get(tuple(path), self.line(path))

    def _walk(self, node: yaml.Node, path: tuple, line: int) -> None:
        self._line[path] = line
        if isinstance(node, yaml.ScalarNode):
            below = node.style in ("|", ">")
            self._code_line[path] = node.start_mark.line + 1 + (1 if below else 0)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, path + (i,), item.start_mark.line + 1)
        elif isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
                key_line = key.start_mark.line + 1
                if name in seen:
                    # PyYAML keeps the last one silently; a lost field is a hidden bug.
                    self.duplicates.append((key_line, format_path(path + (name,)),
                                            f"duplicate key (first at line {seen[name]})"))
                    continue
                seen[name] = key_line
                self._walk(value, path + (name,), key_line)


# libyaml's loader builds the same nodes, with their marks, about ten times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(path: Path, root: Path) -> _Parsed:
    shown = _shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([f"{shown}:1: cannot read: {e}"]) from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        raise SpecError([f"{shown}:{_syntax_error(_python_loader_error(text) or e)}"]) from None
    except yaml.YAMLError as e:
        raise SpecError([f"{shown}:1: YAML error: {e}"]) from None
    finally:
        loader.dispose()
    where = _Positions(node, shown)
    found = sorted(set(where.duplicates) | _schema_problems(data, where))
    if found:
        raise SpecError([f"{shown}:{line}: {field}: {message}" for line, field, message in found])
    return _Parsed(path=path, name=path.relative_to(root).as_posix(), data=data, where=where)


def _python_loader_error(text: str) -> yaml.MarkedYAMLError | None:
    """PyYAML's own error for a file libyaml refused: its wording names the problem better."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        return e
    return None


def _syntax_error(e: yaml.MarkedYAMLError) -> str:
    """'<line>: YAML syntax error: <problem> (<context> at line <n>)' for a PyYAML error."""
    mark = e.problem_mark or e.context_mark
    text = f"{mark.line + 1 if mark else 1}: YAML syntax error: {e.problem or e.context}"
    if e.context and e.problem:
        text += f" ({e.context}"
        text += f" at line {e.context_mark.line + 1})" if e.context_mark else ")"
    return text


@cache
def schema() -> dict:
    """The spec file schema (conformance/spec.schema.json)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _fast_check():
    return compile_schema(schema())


def _schema_problems(data, where: _Positions) -> set[tuple[int, str, str]]:
    """(line, field, message) of every schema violation."""
    if _fast_check()(data) is True:  # jsonschema would agree; it words the problems otherwise
        return set()
    import jsonschema  # here, not above: a valid catalog (or a cached one) never pays its import
    validator = jsonschema.Draft202012Validator(schema())
    return {(where.line(path), format_path(path), message)
            for error in validator.iter_errors(data) for path, message in _explain(error)}


def _explain(error: jsonschema.ValidationError) -> list[tuple[tuple, str]]:
    """(field path, message) pairs that name the offending field itself."""
    path = tuple(error.absolute_path)
    if error.validator in ("required", "dependentRequired"):
        missing = re.match(r"^'(.*?)' is ", error.message)
        name = missing.group(1) if missing else "?"
        why = ""
        if error.validator == "dependentRequired":
            trigger = next(k for k, v in error.validator_value.items()
                           if name in v and k in error.instance)
            why = f" (needed with '{trigger}')"
        elif "then" in error.schema_path:
            why = _then_reason(error)
        return [(path + (name,), f"required field is missing{why}")]
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known), key=str)  # YAML keys need not be strings
        return [(path + (str(k),), f"unknown field (known: {', '.join(known)})") for k in extra]
    message = error.message
    unusual = isinstance(error.instance, bool) or not isinstance(
        error.instance, (str, int, float, list, dict))
    if error.validator == "type" and unusual:
        message += (" (YAML reads null, yes, no, on, off, true, false and dates such as 2024-03-05 "
                    "as such: quote it)")
    if error.validator == "enum":
        message = f"{error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if len(message) > 200:
        message = message[:197] + "..."
    return [(path, message)]


def _then_reason(error: jsonschema.ValidationError) -> str:
    """The description of the if/then rule a `required` error came from."""
    rule = schema()
    for step in list(error.schema_path)[:-2]:  # up to the rule, before "then", "required"
        while isinstance(rule, dict) and step not in rule and "$ref" in rule:
            rule = _local_ref(rule["$ref"])  # schema_path steps through $ref silently
        rule = rule[step]
    reason = rule.get("description", "") if isinstance(rule, dict) else ""
    return f": {reason[:1].lower()}{reason[1:].rstrip('.')}" if reason else ""


def _local_ref(ref: str) -> dict:
    """The subschema a local reference such as '#/$defs/test_case' names."""
    node = schema()
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def format_path(path: tuple) -> str:
    """('test_cases', 3, 'verifies') -> 'test_cases[3].verifies'.

    >>> format_path(('test_cases', 3, 'verifies', 0))
    'test_cases[3].verifies[0]'
    >>> format_path(())
    '(file)'
    """
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter messages)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(path)


# --- building records and cross-checking files -----------------------------------------------


def _link(parsed: list[_Parsed], check_references: bool = True) -> SpecSet:
    """Build the records of parsed files, checking that units and ids are unique across them
    and (with `check_references`) that every `verifies` entry names a loaded requirement."""
    problems: list[str] = []
    first_seen: dict[tuple[str, str], str] = {}  # (what, name) -> "<file>:<line>"

    def claim(what: str, name: str, p: _Parsed, path: tuple) -> None:
        here = f"{p.where.shown}:{p.where.line(path)}"
        there = first_seen.setdefault((what, name), here)
        if there != here:
            problems.append(f"{here}: {format_path(path)}: {what} {name!r} "
                            f"is already defined at {there}")

    requirements: dict[str, Requirement] = {}
    for p in parsed:
        claim("unit", p.data["unit"], p, ("unit",))
        for i, r in enumerate(p.data.get("requirements", [])):
            claim("requirement", r["id"], p, ("requirements", i, "id"))
            requirements.setdefault(r["id"], _requirement(r, p.data["unit"]))

    files, test_cases, notes = [], {}, {}
    functions: dict[str, tuple[str, str]] = {}  # C function name -> (test case id, place)

    def check_verifies(p: _Parsed, path: tuple, verifies: list[str]) -> None:
        for j, req_id in enumerate(verifies):
            if check_references and req_id not in requirements:
                problems.append(f"{p.where.shown}:{p.where.line(path + (j,))}: "
                                f"{format_path(path)}: {req_id!r} is not a known requirement")

    def add_case(tc: TestCase, p: _Parsed, path: tuple) -> None:
        claim("test case", tc.id, p, path)
        here = f"{p.where.shown}:{p.where.line(path)}"
        fn = function_name(tc.id)
        other, there = functions.setdefault(fn, (tc.id, here))
        if other != tc.id:
            problems.append(f"{here}: {format_path(path)}: test case {tc.id!r} would have the C "
                            f"function {fn} of test case {other!r} at {there}")
        test_cases.setdefault(tc.id, tc)

    for p in parsed:
        cases = []
        for i, raw in enumerate(p.data.get("test_cases", [])):
            check_verifies(p, ("test_cases", i, "verifies"), raw["verifies"])
            cases.append(_test_case(raw, p, ("test_cases", i), requirements))
            add_case(cases[-1], p, ("test_cases", i, "id"))
        not_applicable = []
        for t, table in enumerate(p.data.get("tables", [])):
            base = ("tables", t)
            expanded, na, found = conditions.expand(
                table, lambda sub, base=base, p=p: p.where.code_line(base + sub))
            problems.extend(f"{p.where.shown}:{p.where.line(base + sub)}: "
                            f"{format_path(base + sub)}: {message}" for sub, message in found)
            if found:
                continue
            for r, row in enumerate(table["rows"]):
                if "verifies" in row:
                    check_verifies(p, base + ("rows", r, "verifies"), row["verifies"])
            not_applicable += na
            for case in expanded:
                cases.append(_table_case(case, p, requirements))
                add_case(cases[-1], p, base + ("rows", case.row))
        file_notes = {}
        for name, raw in sorted(p.data.get("interfaces", {}).items()):
            claim("interface note", name, p, ("interfaces", name))
            file_notes[name] = notes.setdefault(name, _interface_note(name, raw, p))
        files.append(SpecFile(
            path=p.path, unit=p.data["unit"], title=p.data["title"],
            includes=tuple(p.data.get("includes", [])), prelude=p.data.get("prelude", ""),
            requirements=[requirements[r["id"]] for r in p.data.get("requirements", [])],
            test_cases=cases, name=p.name,
            prelude_line=p.where.code_line(("prelude",)) if "prelude" in p.data else 0,
            not_applicable=not_applicable, interfaces=file_notes))
    if problems:
        raise SpecError(problems)
    return SpecSet(files=files, requirements=requirements, test_cases=test_cases,
                   interfaces=dict(sorted(notes.items())))


def function_name(test_case_id: str) -> str:
    """The C function of a test case: its id with every character outside [A-Za-z0-9_] as '_'.

    Two ids that would share a function are refused when the spec files are loaded.

    >>> function_name("TC-clock_gettime-002"), function_name("TC-open-path.missing.rdonly")
    ('tc_TC_clock_gettime_002', 'tc_TC_open_path_missing_rdonly')
    """
    return "tc_" + re.sub(r"[^A-Za-z0-9_]", "_", test_case_id)


def _interface_of(req_id: str, known: dict[str, Requirement]) -> str:
    """The interface a requirement constrains; from its id when it is not loaded."""
    if req_id in known:
        return known[req_id].interface
    match = re.match(r"^REQ-([A-Za-z0-9_]+)-[0-9]{3}$", req_id)
    return match.group(1) if match else ""


def _table_case(case: conditions.Expanded, p: _Parsed, known: dict[str, Requirement]) -> TestCase:
    """The test case of one combination of a condition table."""
    interface = _interface_of(case.verifies[0], known)
    pieces = {part: tuple((piece.text, piece.line) for piece in getattr(case, part))
              for part in ("setup", "body", "cleanup")}
    joined = {part: "\n".join(text.rstrip("\n") for text, _ in pieces[part])
              for part in pieces}
    expect_return = _normalise_return(case.expect_return) if case.expect_return is not None else None
    errors = list(case.errors)
    if expect_return is not None and re.fullmatch(r"== E[A-Z0-9]+", expect_return):
        errors.append(expect_return[3:])   # pthread_* functions return the error number
    lines = {"call": case.call.line} if case.call else {}
    if expect_return is not None or case.expect_errno is not None:
        lines["expect.return"] = lines["expect.errno"] = case.line
    return TestCase(
        id=f"TC-{interface}-{case.table}.{case.suffix}", title=case.title, unit=p.data["unit"],
        interface=interface, kind=case.kind, verifies=case.verifies, options=case.options,
        timeout_s=case.timeout or DEFAULT_TIMEOUT_S, timeout_from_spec=case.timeout is not None,
        setup=joined["setup"], call=case.call.text if case.call else None,
        ret_type=" ".join((case.ret_type or DEFAULT_RET_TYPE).split()),
        expect_return=expect_return, expect_errno=case.expect_errno,
        body=joined["body"], cleanup=joined["cleanup"], expected=case.expected,
        source_file=p.name, source_line=case.line, lines=lines, errors=tuple(dict.fromkeys(errors)),
        table=case.table, pieces=pieces, deviations=case.deviations)


def _interface_note(name: str, raw: dict, p: _Parsed) -> InterfaceNote:
    return InterfaceNote(
        name=name, unit=p.data["unit"], behaviour=raw.get("behaviour", "test") != "none",
        reason=" ".join(raw.get("reason", "").split()),
        no_normal=" ".join(raw.get("no_normal", "").split()),
        errors=tuple(raw.get("errors", [])),
        untestable={k: " ".join(v.split()) for k, v in raw.get("untestable", {}).items()},
        source_file=p.name, source_line=p.where.line(("interfaces", name)))


def _requirement(raw: dict, unit: str) -> Requirement:
    return Requirement.make(
        raw["id"], interface=raw["interface"], unit=unit, text=raw["text"],
        source=raw["source"], method=raw["method"], status=raw.get("status", "active"))


def _test_case(raw: dict, p: _Parsed, path: tuple, known: dict[str, Requirement]) -> TestCase:
    expect = raw.get("expect", {})
    expect_return = _normalise_return(expect["return"]) if "return" in expect else None
    errors = [*([expect["errno"]] if "errno" in expect else []), *raw.get("errors", [])]
    if expect_return is not None and re.fullmatch(r"== E[A-Z0-9]+", expect_return):
        errors.append(expect_return[3:])   # pthread_* functions return the error number
    return TestCase(
        id=raw["id"], title=raw["title"], unit=p.data["unit"],
        interface=known[raw["verifies"][0]].interface if raw["verifies"][0] in known else "",
        errors=tuple(dict.fromkeys(errors)),
        deviations=tuple(sorted((k, " ".join(v.split())) for k, v in raw.get("deviations", {}).items())),
        kind=raw["kind"], verifies=tuple(raw["verifies"]), options=tuple(raw.get("options", [])),
        timeout_s=raw.get("timeout", DEFAULT_TIMEOUT_S), timeout_from_spec="timeout" in raw,
        setup=raw.get("setup", ""), call=raw.get("call"),
        ret_type=" ".join(raw.get("ret_type", DEFAULT_RET_TYPE).split()),
        expect_return=expect_return, expect_errno=expect.get("errno"),
        body=raw.get("body", ""), cleanup=raw.get("cleanup", ""),
        expected=" ".join(raw["expected"].split()) if "expected" in raw
        else describe_expectation(expect_return, expect.get("errno")),
        source_file=p.name, source_line=p.where.line(path),
        lines=_code_lines(raw, p.where, path))


def _code_lines(raw: dict, where: _Positions, path: tuple) -> dict[str, int]:
    """YAML line of each piece of code a procedure is made of, keyed like 'expect.errno'."""
    parts = {k: (k,) for k in ("setup", "call", "body", "cleanup") if k in raw}
    parts.update({f"expect.{k}": ("expect", k) for k in ("return", "errno")
                  if k in raw.get("expect", {})})
    return {name: where.code_line(path + sub) for name, sub in parts.items()}


def _split_return(text: str) -> tuple[str, str]:
    match = _RETURN.match(text)
    return (match.group(1) or "==", match.group(2))


def _normalise_return(value) -> str:
    """'>=0' -> '>= 0'; a bare value means equality: -1 -> '== -1'.

    >>> [_normalise_return(v) for v in (">=0", -1, "NULL", " != SEM_FAILED ")]
    ['>= 0', '== -1', '== NULL', '!= SEM_FAILED']
    """
    op, expr = _split_return(str(value))
    return f"{op} {expr}"
