"""Condition tables (conformance/conditions.py and their loading in conformance/specitems.py):
enumeration, completeness, placeholders, stable ids, not-applicable combinations, #line."""

import copy
import doctest
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import conformance.conditions
from conformance.conditions import expand, substitute
from conformance.generate import CASES_FILE, generate
from conformance.specitems import SpecError, function_name, load_spec_dirs

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "targets" / "runtime"
NONCE = "0123456789abcdef"

# A small file with one table: 3 path states x 2 calls, one combination not applicable.
TABLE = """\
unit: demo
title: Demo
includes: [fcntl.h, sys/stat.h, unistd.h]
requirements:
  - {id: REQ-access-900, interface: access, method: test, text: access of an existing file returns 0.,
     source: {standard: POSIX.1-2017, section: "access(): RETURN VALUE"}}
  - {id: REQ-access-901, interface: access, method: test, text: access of a missing file fails with ENOENT.,
     source: {standard: POSIX.1-2017, section: "access(): ERRORS"}}
  - {id: REQ-rmdir-900, interface: rmdir, method: test, text: rmdir of an empty directory returns 0.,
     source: {standard: POSIX.1-2017, section: "rmdir(): DESCRIPTION"}}
  - {id: REQ-rmdir-901, interface: rmdir, method: test, text: rmdir of a file fails with ENOTDIR.,
     source: {standard: POSIX.1-2017, section: "rmdir(): ERRORS"}}
tables:
  - id: path
    title: path states
    setup: |
      ${make}
    call: ${call}
    ret_type: int
    pre:
      - name: fn
        states:
          - {name: access, let: {call: 'access("p", F_OK)'}}
          - {name: rmdir, let: {call: 'rmdir("p")'}}
      - name: path
        states:
          - name: file
            text: a regular file
            let: {make: 'PCERT_REQUIRE(close(open("p", O_WRONLY | O_CREAT, 0600)) == 0);'}
          - name: dir
            text: a directory
            let: {make: 'PCERT_REQUIRE(mkdir("p", 0700) == 0);'}
          - name: missing
            let: {make: ""}
    post:
      - name: result
        states:
          - {name: ok, text: returns 0, return: 0}
          - {name: enoent, return: -1, errno: ENOENT}
          - {name: enotdir, return: -1, errno: ENOTDIR}
    rows:
      - {pre: {fn: access, path: [file, dir]}, post: {result: ok}, verifies: [REQ-access-900], kind: normal}
      - {pre: {fn: access, path: missing}, post: {result: enoent}, verifies: [REQ-access-901], kind: robustness}
      - {pre: {fn: rmdir, path: dir}, post: {result: ok}, verifies: [REQ-rmdir-900], kind: normal}
      - {pre: {fn: rmdir, path: file}, post: {result: enotdir}, verifies: [REQ-rmdir-901], kind: robustness}
      - {pre: {fn: rmdir, path: missing}, na: "covered elsewhere"}
"""

EXPECTED_IDS = ["TC-access-path.access.file", "TC-access-path.access.dir",
                "TC-access-path.access.missing", "TC-rmdir-path.rmdir.dir",
                "TC-rmdir-path.rmdir.file"]


def write(directory: Path, text: str, name: str = "demo.yaml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(text, encoding="utf-8")
    return directory


def problems(directory: Path) -> list[str]:
    with pytest.raises(SpecError) as raised:
        load_spec_dirs([directory])
    return [p.split(": ", 1)[1] for p in raised.value.problems]


def test_docstring_examples_hold():
    assert doctest.testmod(conformance.conditions).failed == 0


def test_table_expands_into_one_case_per_applicable_combination(tmp_path):
    specs = load_spec_dirs([write(tmp_path, TABLE)])
    cases = specs.files[0].test_cases
    assert [tc.id for tc in cases] == EXPECTED_IDS
    tc = specs.test_cases["TC-rmdir-path.rmdir.file"]
    assert (tc.interface, tc.kind, tc.verifies, tc.table) == (
        "rmdir", "robustness", ("REQ-rmdir-901",), "path")
    assert (tc.call, tc.expect_return, tc.expect_errno, tc.errors) == (
        'rmdir("p")', "== -1", "ENOTDIR", ("ENOTDIR",))
    assert tc.title == "path states [fn=access; path=a regular file]".replace(
        "access; path=a regular file", "rmdir; path=a regular file")
    assert tc.expected == "returns -1 and sets errno to ENOTDIR"
    assert "mkdir" not in tc.setup and "open(\"p\"" in tc.setup
    (na,) = specs.not_applicable
    assert (na.table, na.suffix, na.reason) == ("path", "rmdir.missing", "covered elsewhere")


def test_ids_do_not_depend_on_the_order_of_rows_or_states(tmp_path):
    data = yaml.safe_load(TABLE)
    table = data["tables"][0]
    table["rows"].reverse()
    table["pre"][1]["states"].reverse()
    table["pre"][0]["states"].reverse()
    shuffled = load_spec_dirs([write(tmp_path, yaml.safe_dump(data))])
    assert sorted(shuffled.test_cases) == sorted(EXPECTED_IDS)


def test_procedures_do_not_change_when_rows_are_reordered(tmp_path):
    data = yaml.safe_load(TABLE)
    first = load_spec_dirs([write(tmp_path / "a", yaml.safe_dump(data))])
    data["tables"][0]["rows"].reverse()
    second = load_spec_dirs([write(tmp_path / "b", yaml.safe_dump(data))])
    a, b = generate(first, EXPECTED_IDS), generate(second, EXPECTED_IDS)
    assert {i: p.sha256 for i, p in a.procedures.items()} == {
        i: p.sha256 for i, p in b.procedures.items()}


@pytest.mark.parametrize("old, new, expected", [
    ("      - {pre: {fn: rmdir, path: missing}, na: \"covered elsewhere\"}\n", "",
     "tables[0].rows: combination fn=rmdir, path=missing is covered by no row (add one, "
     "or an na row saying why it cannot be set up)"),
    ("{pre: {fn: rmdir, path: dir}", "{pre: {fn: rmdir, path: [dir, file]}",
     "tables[0].rows[3].pre: combination fn=rmdir, path=file is also covered by rows[2]"),
    ("{pre: {fn: rmdir, path: dir}", "{pre: {fn: rmdir, path: attic}",
     "tables[0].rows[2].pre.path: 'attic' is not a state of axis 'path' (states: file, dir, missing)"),
    ("{pre: {fn: rmdir, path: dir}", "{pre: {fn: rmdir}",
     "tables[0].rows[2].pre: axis 'path' has no state (name one, a list, or 'all')"),
    ("post: {result: enotdir}", "post: {result: eperm}",
     "tables[0].rows[3].post.result: 'eperm' is not a state of axis 'result' (states: ok, enoent, enotdir)"),
    ("na: \"covered elsewhere\"}", "na: \"covered elsewhere\", kind: normal}",
     "tables[0].rows[4].kind: a not-applicable row (na) has no post, verifies, kind, let, "
     "options, timeout or deviations"),
    ("call: ${call}", "call: ${cal}", "tables[0].call: ${cal} is not bound for fn=access, path=file"),
    ("{name: rmdir, let: {call: 'rmdir(\"p\")'}}", "{name: rmdir, value: x, let: {fn: y, call: 'rmdir(\"p\")'}}",
     "tables[0].pre[0].states[1].let.fn: ${fn} is bound twice for fn=rmdir, path=file "
     "(also at pre[0].states[1].value)"),
    ("          - name: missing\n            let: {make: \"\"}\n",
     "          - name: missing\n            let: {make: \"\"}\n          - {name: file}\n",
     "tables[0].pre[1].states[3].name: state 'file' is defined twice in axis 'path'"),
    ("      - name: path\n", "      - name: fn\n", "tables[0].pre[1].name: axis 'fn' is defined twice"),
    ("{name: ok, text: returns 0, return: 0}", "{name: all, text: returns 0, return: 0}",
     "tables[0].post[0].states[0].name: 'all' does not match '^(?!all$)[a-z0-9]+$'"),
    ("{name: ok, text: returns 0, return: 0}", "{name: no, text: returns 0, return: 0}",
     "tables[0].post[0].states[0].name: False is not of type 'string' (YAML reads null, yes, no, "
     "on, off, true, false and dates such as 2024-03-05 as such: quote it)"),
])
def test_table_mistakes_are_reported_with_their_field(tmp_path, old, new, expected):
    assert old in TABLE
    found = problems(write(tmp_path, TABLE.replace(old, new)))
    assert any(p.startswith(expected) for p in found), found


def test_generated_ids_that_collide_are_refused(tmp_path):
    """Two tables with the same id in one file generate the same ids: refused, both places named."""
    data = yaml.safe_load(TABLE)
    data["tables"].append(copy.deepcopy(data["tables"][0]))  # not a YAML alias: two places
    found = problems(write(tmp_path, yaml.safe_dump(data)))
    assert any("test case 'TC-access-path.access.file' is already defined at" in p for p in found)


def test_function_name_collisions_are_refused(tmp_path):
    """An id differing only in punctuation from another would share its C function."""
    extra = TABLE + """\
test_cases:
  - id: TC-access-900
    title: hand-written
    verifies: [REQ-access-900]
    kind: normal
    call: access(".", F_OK)
    expect: {return: 0}
"""
    data = yaml.safe_load(extra)
    data["tables"][0]["id"] = "x"
    data["tables"][0]["pre"] = [data["tables"][0]["pre"][0]]
    data["tables"][0]["pre"][0]["states"] = [{"name": "900", "let": {"call": "0", "make": ""}}]
    data["tables"][0]["rows"] = [{"pre": {"fn": "900"}, "post": {"result": "ok"},
                                  "verifies": ["REQ-access-900"], "kind": "normal"}]
    # TC-access-x.900 -> tc_TC_access_x_900; make the hand-written id collide with it.
    data["test_cases"][0]["id"] = "TC-access_x-900"
    data["requirements"].append({**data["requirements"][0], "id": "REQ-access_x-900",
                                 "interface": "access_x"})
    data["test_cases"][0]["verifies"] = ["REQ-access_x-900"]
    assert function_name("TC-access-x.900") == function_name("TC-access_x-900")
    found = problems(write(tmp_path, yaml.safe_dump(data)))
    assert any("would have the C function tc_TC_access_x_900" in p for p in found), found


@given(st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                       st.from_regex(r"[a-zA-Z0-9 ()*+-]{0,8}", fullmatch=True), max_size=6),
       st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), max_size=6))
@settings(max_examples=200, deadline=None)
def test_substitution_replaces_bound_names_and_reports_the_rest(bindings, names):
    text = " ".join(f"${{{n}}}" for n in names)
    result, missing = substitute(text, bindings)
    assert missing == sorted({n for n in names if n not in bindings})
    if not missing:
        assert result == " ".join(bindings[n] for n in names)


@given(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3), st.randoms())
@settings(max_examples=100, deadline=None)
def test_every_combination_is_enumerated_once_whatever_the_row_split(sizes, rng):
    """Rows that partition the product in any way yield exactly the product's combinations."""
    axes = [{"name": f"a{i}", "states": [{"name": f"s{j}"} for j in range(n)]}
            for i, n in enumerate(sizes)]
    combos = [()]
    for axis in axes:
        combos = [c + (s["name"],) for c in combos for s in axis["states"]]
    rng.shuffle(combos)
    rows, i = [], 0
    while i < len(combos):  # rows of one combination each, some turned not applicable
        combo = combos[i]
        row = {"pre": {a["name"]: s for a, s in zip(axes, combo)}}
        row.update({"na": "because"} if rng.random() < 0.3 else
                   {"post": {"r": "ok"}, "verifies": ["REQ-x-001"], "kind": "normal"})
        rows.append(row)
        i += 1
    table = {"id": "t", "title": "t", "pre": axes,
             "post": [{"name": "r", "states": [{"name": "ok", "return": 0}]}],
             "call": "f()", "rows": rows}
    cases, nas, found = expand(table, lambda path: 1)
    assert found == []
    produced = sorted([c.suffix for c in cases] + [n.suffix for n in nas])
    assert produced == sorted(".".join(c) for c in combos)


# --- generated C ------------------------------------------------------------------------------


def test_line_directives_point_at_each_state(tmp_path):
    specs = load_spec_dirs([write(tmp_path, TABLE)])
    text = generate(specs, ["TC-rmdir-path.rmdir.file"]).procedures["TC-rmdir-path.rmdir.file"].text
    lines = TABLE.splitlines()
    directives = [int(line.split()[1]) for line in text.splitlines() if line.startswith("#line")
                  and "demo.yaml" in line]
    sources = [lines[n - 1] for n in directives]
    assert any("${make}" in s for s in sources)              # the table's setup
    assert any("call: ${call}" in s for s in sources)        # the call
    assert "rmdir(\"p\")" in text and "PCERT_CHECK_ERRNO(pcert_saved_errno, ENOTDIR);" in text


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")
def test_table_cases_compile_run_and_fail_where_they_should(tmp_path):
    protocol = pytest.importorskip("targets.protocol")
    broken = TABLE.replace("post: {result: enotdir}", "post: {result: enoent}")
    specs = load_spec_dirs([write(tmp_path / "specs", broken)])
    sources = generate(specs, EXPECTED_IDS)
    for name, data in sources.files.items():
        (tmp_path / name).write_bytes(data)
    binary = tmp_path / "suite"
    subprocess.run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-D_DEFAULT_SOURCE",
                    f"-I{RUNTIME}", "-o", str(binary), *(str(tmp_path / n) for n in sources.files),
                    str(RUNTIME / "pcert.c")], check=True)
    run = subprocess.run([str(binary)], capture_output=True, timeout=120, cwd=tmp_path,
                         env={**os.environ, "PCERT_NONCE": NONCE})
    results = {r.fields["id"]: r.fields for r in protocol.RecordParser(NONCE).feed(run.stdout)
               if r.kind == "result"}
    assert sorted(results) == sorted(EXPECTED_IDS)
    wrong = results["TC-rmdir-path.rmdir.file"]
    assert wrong["verdict"] == "FAIL" and "want ENOENT" in wrong["reason"]
    assert wrong["file"] == "demo.yaml"
    assert "result: enoent" in broken.splitlines()[int(wrong["line"]) - 1]
    assert {i: r["verdict"] for i, r in results.items() if i != "TC-rmdir-path.rmdir.file"} == {
        i: "PASS" for i in EXPECTED_IDS if i != "TC-rmdir-path.rmdir.file"}
    assert b"TC-rmdir-path.rmdir.file" in sources.files[CASES_FILE]
