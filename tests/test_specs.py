"""Spec items (conformance/specitems.py), their schema, the generator (conformance/generate.py)
and the built-in behavioural suite (conformance/specs/*.yaml)."""

import doctest
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import yaml

import conformance.generate
import conformance.specitems
from conformance.generate import CASES_FILE, GenerateError, c_string, function_name, generate
from conformance.profiles import load_profile
from conformance.specitems import (
    SCHEMA_PATH,
    SpecError,
    builtin_spec_dir,
    load_spec_dirs,
    load_spec_file,
    schema,
)

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "targets" / "runtime"
CFLAGS = ["-std=c99", "-O2", "-D_POSIX_C_SOURCE=200809L", "-D_XOPEN_SOURCE=700",
          "-D_DEFAULT_SOURCE", "-Wall", "-pthread", f"-I{RUNTIME}"]
NONCE = "0123456789abcdef"
BUILTIN_FILES = sorted(builtin_spec_dir().glob("*.yaml"))

# A small valid file; the line numbers in the tests below refer to it.
DEMO = """\
unit: demo
title: Demo
includes: [fcntl.h]
requirements:
  - id: REQ-open-900
    interface: open
    source: {standard: POSIX.1-2017, section: "open(): ERRORS"}
    text: open() of a missing file fails with ENOENT.
    method: test
test_cases:
  - id: TC-open-900
    title: open a missing file
    verifies: [REQ-open-900]
    kind: robustness
    call: open("missing", O_RDONLY)
    expect: {return: -1, errno: ENOENT}
"""


@pytest.fixture(scope="module")
def builtin():
    return load_spec_dirs([builtin_spec_dir()])


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(*dirs: Path) -> list[str]:
    """The lines of the SpecError that loading `dirs` must raise."""
    with pytest.raises(SpecError) as raised:
        load_spec_dirs(list(dirs))
    assert str(raised.value) == "\n".join(raised.value.problems)
    return raised.value.problems


def test_docstring_examples_hold():
    for module in (conformance.specitems, conformance.generate):
        assert doctest.testmod(module).failed == 0, module.__name__


# --- the schema --------------------------------------------------------------------------------


def test_schema_is_valid_2020_12_and_documents_every_property():
    jsonschema.Draft202012Validator.check_schema(schema())
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object":
                # A record lists its fields; a map (name -> value) constrains its keys instead.
                is_map = "propertyNames" in node and isinstance(node.get("additionalProperties"), dict)
                assert node.get("additionalProperties") is False or is_map, where
            for name, prop in node.get("properties", {}).items():
                assert prop.get("description"), f"{where}.{name} has no description"
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(schema(), "schema")


@pytest.mark.parametrize("path", BUILTIN_FILES, ids=lambda p: p.name)
def test_builtin_file_matches_the_schema(path):
    """The item schema check CI runs: every built-in spec file, on its own."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(data)
    assert load_spec_file(path).unit == data["unit"]


def _mutations(data, rng: random.Random, count: int):
    """Copies of a spec file's data with one thing broken or changed at a random place."""
    def nodes(node, path=()):
        yield path, node
        children = node.items() if isinstance(node, dict) else \
            enumerate(node) if isinstance(node, list) else ()
        for key, value in children:
            yield from nodes(value, path + (key,))

    places = list(nodes(data))
    for _ in range(count):
        copy = json.loads(json.dumps(data))
        path, node = rng.choice(places)
        parent = copy
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1] if path else None
        change = rng.choice(["drop", "type", "dup", "empty", "extra"])
        if key is None:
            copy = [copy]
        elif change == "drop" and isinstance(parent, (dict, list)):
            del parent[key]
        elif change == "type":
            parent[key] = rng.choice([1, True, None, "x", [], {}, 2.5, -1, 99999])
        elif change == "dup" and isinstance(node, list) and node:
            parent[key] = node + node[:1]
        elif change == "empty":
            parent[key] = type(node)() if isinstance(node, (list, dict, str)) else node
        elif isinstance(node, dict):
            node = dict(node, zz_unknown=1)
            parent[key] = node
        yield copy


def test_fast_schema_check_never_accepts_what_jsonschema_rejects():
    """Spec files are checked by evidence.fastschema first (ten times faster); only its True is
    trusted, so it must never say True where jsonschema finds a problem."""
    fast = conformance.specitems._fast_check()
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))
    rng = random.Random(1)
    agreed = 0
    for path in BUILTIN_FILES:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert fast(data) is True, path
        for mutant in _mutations(data, rng, 40):
            valid = not any(True for _ in validator.iter_errors(mutant))
            answer = fast(mutant)
            assert answer is not True or valid, (path, mutant)
            agreed += answer is valid
    assert agreed > 0.9 * 40 * len(BUILTIN_FILES)  # and it is rarely unsure


def test_demo_file_is_valid(tmp_path):
    specs = load_spec_dirs([write(tmp_path, "demo.yaml", DEMO).parent])
    tc = specs.test_cases["TC-open-900"]
    assert (tc.interface, tc.unit, tc.kind, tc.ret_type) == ("open", "demo", "robustness", "long")
    assert tc.expected == "returns -1 and sets errno to ENOENT"
    assert (tc.source_file, tc.source_line, tc.timeout_s, tc.timeout_from_spec) == (
        "demo.yaml", 11, 10, False)
    assert specs.requirements["REQ-open-900"].unit == "demo"


# --- malformed files are rejected with file:line: field: problem ------------------------------


@pytest.mark.parametrize("old, new, expected", [
    ("    kind: robustness\n", "",
     "11: test_cases[0].kind: required field is missing"),
    ("kind: robustness", "kind: weird",
     "14: test_cases[0].kind: 'weird' is not one of normal, robustness"),
    ("    method: test\n", "    method: test\n    colour: red\n",
     "10: requirements[0].colour: unknown field (known: id, interface, method, source, status, text)"),
    ("- id: TC-open-900", "- id: TC-open-9",
     "11: test_cases[0].id: 'TC-open-9' does not match '^TC-[A-Za-z0-9_]+-[0-9]{3}$'"),
    ("    expect: {return: -1, errno: ENOENT}\n", "    options: [POSIX_TIMERS]\n    expected: x\n",
     "16: test_cases[0].options[0]: 'POSIX_TIMERS' does not match '^_(POSIX|XOPEN)[A-Z0-9_]*$'"),
    ('    call: open("missing", O_RDONLY)\n', "",
     "11: test_cases[0].body: required field is missing: a test case needs `call` or `body` "
     "(or both)"),
    ('    call: open("missing", O_RDONLY)\n', "    body: |\n      x();\n",
     "11: test_cases[0].call: required field is missing (needed with 'expect')"),
    ("    title: open a missing file\n", "    title: open a missing file\n    title: again\n",
     "13: test_cases[0].title: duplicate key (first at line 12)"),
    ("errno: ENOENT", "errno: enoent",
     "16: test_cases[0].expect.errno: 'enoent' does not match '^E[A-Z0-9]+$'"),
])
def test_schema_violation_is_reported_at_its_line(tmp_path, old, new, expected):
    assert old in DEMO
    path = write(tmp_path, "demo.yaml", DEMO.replace(old, new))
    assert f"{path}:{expected}" in problems(tmp_path)


def test_unknown_requirement_in_verifies_is_named(tmp_path):
    path = write(tmp_path, "demo.yaml",
                 DEMO.replace("verifies: [REQ-open-900]", "verifies: [REQ-open-900,\n    REQ-open-999]"))
    assert problems(tmp_path) == [
        f"{path}:14: test_cases[0].verifies: 'REQ-open-999' is not a known requirement"]


def test_duplicate_ids_across_files_name_both_places(tmp_path):
    first = write(tmp_path, "a.yaml", DEMO)
    second = write(tmp_path, "b.yaml", DEMO.replace("unit: demo", "unit: other"))
    assert problems(tmp_path) == [
        f"{second}:5: requirements[0].id: requirement 'REQ-open-900' is already defined at {first}:5",
        f"{second}:11: test_cases[0].id: test case 'TC-open-900' is already defined at {first}:11",
    ]


def test_user_directory_colliding_with_builtin_ids_or_units_is_an_error(tmp_path):
    clash = DEMO.replace("unit: demo", "unit: file-io").replace("TC-open-900", "TC-open-001")
    path = write(tmp_path, "mine.yaml", clash)
    found = problems(builtin_spec_dir(), tmp_path)
    assert [p.split(": ", 2)[:2] for p in found] == [
        [f"{path}:1", "unit"], [f"{path}:11", "test_cases[0].id"]]
    assert "file-io.yaml:" in found[1] and "'TC-open-001' is already defined at" in found[1]


@pytest.mark.parametrize("text, expected", [
    ("unit: demo\ntitle: Demo\nrequirements:\n  - id: REQ-open-900\n    interface: [open\n"
     "    method: test\n",
     "6: YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence at line 5)"),
    ("unit: demo\ntitle: Demo\n  bad: indent\n", "3: YAML syntax error: mapping values are not allowed here"),
    ("unit: demo\ntitle: \"unterminated\nrequirements: []\n",
     "4: YAML syntax error: found unexpected end of stream (while scanning a quoted scalar at line 2)"),
])
def test_yaml_syntax_error_names_the_line(tmp_path, text, expected):
    path = write(tmp_path, "bad.yaml", text)
    assert problems(tmp_path) == [f"{path}:{expected}"]


def test_every_broken_file_is_reported_not_just_the_first(tmp_path):
    write(tmp_path, "a.yaml", "unit: a\n")
    write(tmp_path, "b.yaml", "[1, 2\n")
    found = problems(tmp_path, tmp_path / "missing")
    assert [p.split(":")[0] for p in found] == [
        str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml"), str(tmp_path / "missing")]
    assert found[0].endswith("title: required field is missing")


def test_single_file_may_verify_requirements_of_other_files(tmp_path):
    text = DEMO.replace("verifies: [REQ-open-900]", "verifies: [REQ-open-001]")
    spec = load_spec_file(write(tmp_path, "demo.yaml", text))
    assert spec.test_cases[0].verifies == ("REQ-open-001",)
    # Loaded with the built-in suite, the reference resolves and names the interface.
    specs = load_spec_dirs([builtin_spec_dir(), tmp_path])
    assert specs.test_cases["TC-open-900"].interface == "open"


@pytest.mark.parametrize("expect, expected", [
    ("{return: -1, errno: ENOENT}", "returns -1 and sets errno to ENOENT"),
    ('{return: ">=0"}', "returns >= 0"),
    ("{return: 0}", "returns 0"),
    ('{return: "!= NULL"}', "returns != NULL"),
    ("{errno: EINTR}", "sets errno to EINTR"),
])
def test_expected_prose_is_derived_from_expect(tmp_path, expect, expected):
    write(tmp_path, "demo.yaml", DEMO.replace("{return: -1, errno: ENOENT}", expect))
    assert load_spec_dirs([tmp_path]).test_cases["TC-open-900"].expected == expected


# --- the built-in suite ------------------------------------------------------------------------


def test_builtin_suite_is_large_and_varied_enough(builtin):
    cases = list(builtin.test_cases.values())
    safety_base = load_profile("face-safety-base").required
    interfaces = {tc.interface for tc in cases}
    assert len(cases) >= 1500
    assert len(interfaces & safety_base) >= 12, sorted(interfaces - safety_base)
    assert len({tc.unit for tc in cases}) >= 5
    assert {tc.kind for tc in cases} == {"normal", "robustness"}
    robustness = [tc for tc in cases if tc.kind == "robustness"]
    assert len(robustness) >= len(cases) // 4


def test_every_builtin_requirement_is_verified_and_every_case_verifies(builtin):
    verified = {r for tc in builtin.test_cases.values() for r in tc.verifies}
    assert set(builtin.requirements) - verified == set()
    assert verified - set(builtin.requirements) == set()


def test_builtin_ids_follow_their_interface(builtin):
    for req in builtin.requirements.values():
        assert req.id.rsplit("-", 1)[0] == f"REQ-{req.interface}", req.id
    for tc in builtin.test_cases.values():
        assert tc.id.rsplit("-", 1)[0] == f"TC-{tc.interface}", tc.id


def test_builtin_requirements_cite_a_precise_section_in_our_words(builtin):
    section = re.compile(r"^(([A-Za-z_][A-Za-z0-9_]*\(\)|exec|errno): (DESCRIPTION|RETURN VALUE|ERRORS)"
                         r"|<[a-z/]+\.h>: .+|Base Definitions [0-9.]+: .+)$")
    for req in builtin.requirements.values():
        assert req.source["standard"] in ("POSIX.1-2017", "POSIX.1-2024"), req.id
        assert section.match(req.source["section"]), (req.id, req.source["section"])
        # The standard's normative voice; our wording states facts instead.
        assert not re.search(r"\bshall\b", req.text, re.I), req.id


def test_builtin_robustness_cases_check_an_outcome(builtin):
    """Robustness cases use abnormal or extreme inputs; each checks what comes out."""
    for tc in builtin.test_cases.values():
        if tc.kind == "robustness":
            assert tc.expect_errno or tc.expect_return or "CHECK" in tc.body or "PCERT_" in tc.body, tc.id


def test_builtin_suite_covers_the_units_of_the_issue(builtin):
    units = {tc.unit for tc in builtin.test_cases.values()}
    assert {"file-io", "files", "paths", "stdio", "strings", "stdlib", "math", "ctype", "time",
            "clocks", "threads", "pthreads", "mutex", "sync", "semaphores", "signals",
            "signals-more", "message-queues", "ipc", "sched-memory", "process",
            "network", "system"} <= units
    assert len(builtin.test_cases) >= 1500


def test_line_numbers_point_at_the_code_in_the_yaml(builtin):
    for spec in builtin.files:
        lines = spec.path.read_text(encoding="utf-8").splitlines()
        if spec.prelude:
            assert lines[spec.prelude_line - 1].strip() == spec.prelude.splitlines()[0].strip()
        for tc in spec.test_cases:
            if tc.table:  # condition tables: tests/test_conditions.py
                continue
            assert lines[tc.source_line - 1].strip() == f"- id: {tc.id}"
            for key in ("setup", "body", "cleanup"):
                if key in tc.lines:
                    first = getattr(tc, key).splitlines()[0]
                    assert lines[tc.lines[key] - 1].strip() == first.strip(), (tc.id, key)
            if tc.call:
                assert tc.call in lines[tc.lines["call"] - 1], tc.id
            if tc.expect_errno:
                assert tc.expect_errno in lines[tc.lines["expect.errno"] - 1], tc.id
            if tc.expect_return:
                assert "return" in lines[tc.lines["expect.return"] - 1], tc.id


# --- the generator -----------------------------------------------------------------------------


def test_generated_sources_have_the_documented_shape(builtin):
    plan = ["TC-open-005", "TC-clock_gettime-001", "TC-open-001"]
    out = generate(builtin, plan)
    assert list(out.files) == ["clocks.c", "file-io.c", CASES_FILE]
    assert list(out.procedures) == plan
    unit = out.files["file-io.c"].decode()
    assert unit.startswith("/* Generated by pcert")
    assert unit.index('#include "pcert.h"') < unit.index("#include <errno.h>") < unit.index(
        "#include <fcntl.h>") < unit.index("static int make_file")
    assert "\r" not in unit and unit.endswith("}\n")
    for number, line in enumerate(unit.splitlines(), 1):
        if line.startswith("#line") and line.endswith('"file-io.c"'):
            assert line == f'#line {number + 1} "file-io.c"'
    # Cases keep their spec-file order inside a unit, whatever the plan order.
    assert unit.index("tc_TC_open_001(void)") < unit.index("tc_TC_open_005(void)")
    proc = out.procedures["TC-open-005"]
    assert (proc.file, proc.function) == ("file-io.c", "tc_TC_open_005")
    assert proc.text in unit and proc.text.startswith("/* TC-open-005: ")
    code = "".join(x for x in proc.text.splitlines(True) if not x.startswith("#line "))
    assert "#line" in proc.text and proc.sha256 == hashlib.sha256(code.encode("utf-8")).hexdigest()
    assert 'PCERT_CHECK_RET_INT(ret, ==, -1, "open(\\"f\\", O_WRONLY | O_CREAT | O_EXCL, 0600)");' \
        in proc.text
    assert "PCERT_CHECK_ERRNO(pcert_saved_errno, EEXIST);" in proc.text
    table = out.files[CASES_FILE].decode()
    rows = re.findall(r'\{ "(TC-[^"]+)", (\w+), "([^"]*)", (\d+) \}', table)
    assert rows == [("TC-open-005", "tc_TC_open_005", "", "0"),
                    ("TC-clock_gettime-001", "tc_TC_clock_gettime_001", "_POSIX_TIMERS", "0"),
                    ("TC-open-001", "tc_TC_open_001", "", "0")]
    assert "const unsigned pcert_ncases = 3;" in table


def test_option_guard_and_timeout_reach_the_source(builtin):
    out = generate(builtin, ["TC-nanosleep-001", "TC-sem_post-002"])
    text = out.procedures["TC-nanosleep-001"].text
    assert "#if !(defined(_POSIX_TIMERS) && (_POSIX_TIMERS + 0) != -1)" in text
    assert "#elif !(defined(_POSIX_MONOTONIC_CLOCK) && (_POSIX_MONOTONIC_CLOCK + 0) != -1)" in text
    assert 'PCERT_UNSUPPORTED("option _POSIX_MONOTONIC_CLOCK not supported");' in text
    assert text.count("#else") == 1 and text.rstrip().endswith("#endif\n}")
    table = out.files[CASES_FILE].decode()
    assert '{ "TC-sem_post-002", tc_TC_sem_post_002, "_POSIX_SEMAPHORES,_POSIX_THREADS", 5 },' in table


def test_pointer_return_uses_the_pointer_check(builtin):
    text = generate(builtin, ["TC-pthread_getspecific-001"]).procedures[
        "TC-pthread_getspecific-001"].text
    assert "    void * ret = NULL;" in text
    assert 'PCERT_CHECK_RET_PTR(ret, ==, &second, "pthread_getspecific(shared_key)");' in text


def test_generation_is_deterministic_and_independent_of_the_checkout(builtin, tmp_path):
    plan = sorted(builtin.test_cases)
    first = generate(builtin, plan)
    assert generate(load_spec_dirs([builtin_spec_dir()]), plan) == first
    copy = shutil.copytree(builtin_spec_dir(), tmp_path / "elsewhere" / "specs")
    moved = generate(load_spec_dirs([copy]), plan)
    assert moved.files == first.files
    assert {k: v.sha256 for k, v in moved.procedures.items()} == {
        k: v.sha256 for k, v in first.procedures.items()}


def test_key_order_inside_a_line_does_not_change_the_sources(tmp_path):
    swapped = DEMO.replace("{return: -1, errno: ENOENT}", "{errno: ENOENT, return: -1}").replace(
        '{standard: POSIX.1-2017, section: "open(): ERRORS"}',
        '{section: "open(): ERRORS", standard: POSIX.1-2017}')
    a = generate(load_spec_dirs([write(tmp_path / "a", "demo.yaml", DEMO).parent]), ["TC-open-900"])
    b = generate(load_spec_dirs([write(tmp_path / "b", "demo.yaml", swapped).parent]), ["TC-open-900"])
    assert a == b


def test_plan_order_changes_only_the_table(builtin):
    plan = ["TC-open-001", "TC-close-001", "TC-read-001"]
    forward, backward = generate(builtin, plan), generate(builtin, plan[::-1])
    assert forward.files["file-io.c"] == backward.files["file-io.c"]
    assert forward.files[CASES_FILE] != backward.files[CASES_FILE]
    assert list(backward.procedures) == plan[::-1]


def test_bad_plans_are_refused(builtin):
    with pytest.raises(GenerateError, match="unknown test case id.*TC-nope-001"):
        generate(builtin, ["TC-open-001", "TC-nope-001"])
    with pytest.raises(GenerateError, match="planned twice: TC-open-001"):
        generate(builtin, ["TC-open-001", "TC-open-001"])


def test_empty_plan_still_yields_a_valid_table(builtin):
    out = generate(builtin, [])
    assert list(out.files) == [CASES_FILE] and out.procedures == {}
    assert "const unsigned pcert_ncases = 0;" in out.files[CASES_FILE].decode()


def test_function_names_are_c_identifiers(builtin):
    for tc_id in builtin.test_cases:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", function_name(tc_id))


# --- real compilers ----------------------------------------------------------------------------

needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc is not installed")


@needs_gcc
def test_c_string_literals_carry_the_exact_bytes(tmp_path):
    rng = random.Random(1234)
    alphabet = ['"', "\\", "?", "??=", "??/", "\n", "\t", "\r", "\0", "\x1b", "\x7f", "é", "€",
                "𝄞", "a", "0", " ", "*/", "%", "'", "\\x41"]
    texts = ["", *alphabet] + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
                               for _ in range(200)]
    program = ["#include <stdio.h>", "static const struct { const char *s; unsigned long n; } t[] = {"]
    program += [f"    {{ {c_string(t)}, sizeof {c_string(t)} - 1 }}," for t in texts]
    program += ["};", "int main(void) {", "    unsigned long i, j;",
                "    for (i = 0; i < sizeof t / sizeof t[0]; i++) {",
                "        for (j = 0; j < t[i].n; j++) printf(\"%02x\", (unsigned char)t[i].s[j]);",
                "        printf(\"\\n\");", "    }", "    return 0;", "}"]
    source = write(tmp_path, "strings.c", "\n".join(program) + "\n")
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Werror", "-o", str(tmp_path / "strings"),
                    str(source)], check=True)
    printed = subprocess.run([str(tmp_path / "strings")], check=True, capture_output=True,
                             text=True).stdout.splitlines()
    assert printed == [t.encode("utf-8").hex() for t in texts]


@pytest.fixture(scope="module")
def suite_binary(builtin, tmp_path_factory):
    """All built-in test cases compiled with the runtime (generated files with -Werror)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    if not (RUNTIME / "pcert.c").exists():
        pytest.skip("targets/runtime/pcert.c does not exist yet")
    out = tmp_path_factory.mktemp("suite")
    plan = sorted(builtin.test_cases)
    sources = generate(builtin, plan)
    objects = []
    for name, data in sources.files.items():
        write(out, name, data.decode("utf-8"))
        objects.append(out / (name[:-2] + ".o"))

    def compile_one(name: str, obj: Path) -> subprocess.CompletedProcess:
        return subprocess.run(["gcc", *CFLAGS, "-Werror", "-c", "-o", str(obj), str(out / name)],
                              capture_output=True, text=True)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # 1,600 cases: in parallel
        for compiled in pool.map(compile_one, sources.files, objects):
            assert compiled.returncode == 0, compiled.stderr
    binary = out / "suite"
    subprocess.run(["gcc", *CFLAGS, "-o", str(binary), *map(str, objects),
                    str(RUNTIME / "pcert.c"), "-lm"], check=True, capture_output=True)
    return binary, plan


def test_builtin_suite_compiles_runs_and_passes_on_this_host(suite_binary):
    protocol = pytest.importorskip("targets.protocol", reason="targets/protocol.py not there yet")
    binary, plan = suite_binary
    run = subprocess.run([str(binary)], capture_output=True, timeout=900, cwd=binary.parent,
                         env={**os.environ, "PCERT_NONCE": NONCE})
    parser = protocol.RecordParser(NONCE)
    records = parser.feed(run.stdout)
    parser.finish()
    assert parser.anomalies == []
    assert [r.kind for r in records][:1] == ["start"] and records[-1].kind == "end"
    assert records[-1].fields["ran"] == str(len(plan))
    results = [r.fields for r in records if r.kind == "result"]
    assert [r["id"] for r in results] == plan
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        # On the reference host every case passes except the deviations the specs record for
        # Linux and glibc: anything else is a new finding to explain (or a broken test).
        builtin = load_spec_dirs([builtin_spec_dir()])
        known = {i for i, tc in builtin.test_cases.items()
                 if {system for system, _ in tc.deviations} & {"linux", "glibc"}}
        failed = {r["id"]: f"{r['verdict']} {r['reason']} ({r['file']}:{r['line']})"
                  for r in results if r["verdict"] != "PASS"}
        assert {i: why for i, why in failed.items() if i not in known} == {}
        assert sorted(known - set(failed)) == []  # a fixed deviation: update the spec
    else:
        assert all(r["verdict"] in {"PASS", "FAIL", "UNRESOLVED", "UNSUPPORTED", "UNTESTED"}
                   for r in results)


def test_failures_point_at_the_yaml_line(tmp_path):
    """A failing expectation is reported with the spec file and the line of `expect.errno`."""
    if shutil.which("gcc") is None or not (RUNTIME / "pcert.c").exists():
        pytest.skip("needs gcc and targets/runtime/pcert.c")
    protocol = pytest.importorskip("targets.protocol", reason="targets/protocol.py not there yet")
    write(tmp_path / "specs", "demo.yaml", DEMO.replace("errno: ENOENT", "errno: EACCES"))
    sources = generate(load_spec_dirs([tmp_path / "specs"]), ["TC-open-900"])
    for name, data in sources.files.items():
        write(tmp_path, name, data.decode())
    subprocess.run(["gcc", *CFLAGS, "-o", str(tmp_path / "demo"), str(tmp_path / "demo.c"),
                    str(tmp_path / CASES_FILE), str(RUNTIME / "pcert.c")], check=True)
    run = subprocess.run([str(tmp_path / "demo")], capture_output=True, timeout=60,
                         env={**os.environ, "PCERT_NONCE": NONCE})
    result = next(r.fields for r in protocol.RecordParser(NONCE).feed(run.stdout)
                  if r.kind == "result")
    assert (result["verdict"], result["file"], result["line"]) == ("FAIL", "demo.yaml", "16")
    assert "got ENOENT" in result["reason"] and "want EACCES" in result["reason"]
