"""The coverage count (conformance/coverage.py, `pcert catalog --coverage`): the counting on a
small hand-made suite whose figures are known, and the figures of the built-in suite."""

import doctest
import json
from pathlib import Path

import pytest

import conformance.coverage
from conformance.catalog import Catalog
from conformance.cli import main
from conformance.coverage import CLASSES, coverage_report, format_coverage
from conformance.profiles import Profile, load_profile
from conformance.specitems import load_spec_dirs

SPEC = """\
unit: demo
title: Demo
includes: [fcntl.h, unistd.h]
requirements:
  - {id: REQ-open-900, interface: open, method: test, text: opens., source: {standard: POSIX.1-2017, section: "open(): DESCRIPTION"}}
  - {id: REQ-open-901, interface: open, method: test, text: fails., source: {standard: POSIX.1-2017, section: "open(): ERRORS"}}
  - {id: REQ-close-900, interface: close, method: test, text: closes., source: {standard: POSIX.1-2017, section: "close(): DESCRIPTION"}}
  - {id: REQ-read-900, interface: read, method: test, text: fails., source: {standard: POSIX.1-2017, section: "read(): ERRORS"}}
  - {id: REQ-lseek-900, interface: lseek, method: test, text: obsolete., status: obsolete, source: {standard: POSIX.1-2017, section: "lseek(): ERRORS"}}
interfaces:
  open:
    errors: [ENOENT, EACCES, EIO, EINTR]
    untestable:
      EIO: needs a failing device
  INT8_C: {behaviour: none, reason: a constant expression}
tables:
  - id: t
    title: open
    call: open(${p}, O_RDONLY)
    pre:
      - name: p
        states:
          - {name: here, value: '"."'}
          - {name: gone, value: '"missing"'}
          - {name: odd, value: '"x"'}
    post:
      - name: r
        states:
          - {name: ok, return: ">= 0", cleanup: close(ret);}
          - {name: enoent, return: -1, errno: ENOENT}
    rows:
      - {pre: {p: here}, post: {r: ok}, verifies: [REQ-open-900], kind: normal}
      - {pre: {p: gone}, post: {r: enoent}, verifies: [REQ-open-901], kind: robustness}
      - {pre: {p: odd}, na: not needed}
test_cases:
  - {id: TC-close-900, title: close, verifies: [REQ-close-900], kind: normal, call: "close(dup(1))", expect: {return: 0}}
  - {id: TC-close-901, title: close again, verifies: [REQ-close-900], kind: normal, call: "close(dup(1))", expect: {return: 0}}
  - {id: TC-read-900, title: read, verifies: [REQ-read-900], kind: robustness, call: "read(-1, 0, 0)", expect: {return: -1, errno: EBADF}}
  - {id: TC-lseek-900, title: obsolete, verifies: [REQ-lseek-900], kind: robustness, call: "lseek(-1, 0, 0)", expect: {return: -1}}
"""

DEMO_PROFILE = Profile(name="demo", edition=None, title="Demo profile",
                       required=frozenset({"open", "close", "read", "write", "INT8_C", "lseek"}),
                       multi_process_only=frozenset({"write"}))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    d = tmp_path_factory.mktemp("specs")
    (d / "demo.yaml").write_text(SPEC, encoding="utf-8")
    catalog = Catalog(spec_set=load_spec_dirs([d]), spec_dirs=(d,))
    return coverage_report(catalog, DEMO_PROFILE)


def rows(report):
    return {r["interface"]: r for r in report["interfaces_detail"]}


def test_docstring_examples_hold():
    assert doctest.testmod(conformance.coverage).failed == 0


def test_every_interface_falls_in_exactly_one_class(demo):
    assert demo["interfaces"] == 6
    assert demo["summary"] == {"normal+robustness": 1, "normal-only": 1, "robustness-only": 1,
                               "presence-only": 2, "no-behaviour": 1}
    assert {i: r["status"] for i, r in rows(demo).items()} == {
        "open": "normal+robustness", "close": "normal-only", "read": "robustness-only",
        "write": "presence-only", "lseek": "presence-only", "INT8_C": "no-behaviour"}
    assert demo["without_behavioural_tests"] == ["lseek", "write"]
    assert demo["no_behaviour"] == {"INT8_C": "a constant expression"}


def test_cases_are_counted_by_kind_and_obsolete_requirements_do_not_count(demo):
    # lseek's only case verifies an obsolete requirement: not planned, not counted.
    assert demo["test_cases"] == 5
    assert demo["kinds"] == {"normal": 3, "robustness": 2}
    r = rows(demo)
    assert (r["open"]["normal"], r["open"]["robustness"]) == (1, 1)
    assert (r["close"]["normal"], r["close"]["robustness"]) == (2, 0)
    assert r["write"]["multi_process_only"] is True


def test_errno_values_are_classed_tested_untestable_untested(demo):
    open_row = rows(demo)["open"]
    assert open_row["errors_tested"] == ["ENOENT"]
    assert open_row["errors_untestable"] == {"EIO": "needs a failing device"}
    assert open_row["errors_untested"] == ["EACCES", "EINTR"]
    assert demo["errors"] == {"listed": 4, "tested": 1, "untestable": 1, "untested": 2}
    # read's EBADF is provoked but read has no note listing its errors: nothing to count.
    assert rows(demo)["read"]["errors_listed"] == []


def test_units_and_not_applicable_combinations_are_counted(demo):
    assert demo["not_applicable"] == 1
    unit = demo["units"]["demo"]
    assert (unit["interfaces"], unit["test_cases"]) == (5, 5)
    assert sum(u["interfaces"] for u in demo["units"].values()) == demo["interfaces"]
    assert set(unit) == {"interfaces", "test_cases", *CLASSES}


def test_text_report_names_the_gaps(demo):
    text = format_coverage(demo)
    assert text.splitlines()[0] == "Demo profile (demo)"
    assert "5 behavioural test cases (3 normal, 2 robustness)" in text
    assert "1 normal+robustness, 1 normal-only, 1 robustness-only, 2 presence-only, 1 no-behaviour" in text
    assert "listed in ERRORS sections: 4: 1 tested, 1 not provokable portably (with reasons), 2 untested" in text
    assert "    write                            presence-only" in text
    assert "    INT8_C                           a constant expression" in text
    assert "    open                             EACCES EINTR" in text


def test_cli_prints_the_report_and_its_json(capsys):
    assert main(["catalog", "--coverage", "--profile", "face-safety-base"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("FACE Technical Standard 3.2 OS profile Safety Base (face-safety-base@3.2)")
    assert main(["catalog", "--coverage", "--profile", "face-safety-base", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["profile"] == "face-safety-base@3.2"
    assert sum(report["summary"].values()) == report["interfaces"]


def test_cli_rejects_an_unknown_profile(capsys):
    assert main(["catalog", "--coverage", "--profile", "no-such-profile"]) == 2
    assert "unknown profile 'no-such-profile'" in capsys.readouterr().err


# --- the built-in suite against FACE Safety Extended ------------------------------------------


@pytest.fixture(scope="module")
def extended():
    return coverage_report(Catalog.load(), load_profile("face-safety-extended"))


def test_safety_extended_has_at_least_1500_behavioural_test_cases(extended):
    assert extended["interfaces"] == 361
    assert extended["test_cases"] >= 1500
    assert extended["kinds"]["robustness"] >= 600


def test_every_interface_with_behaviour_has_normal_and_robustness_cases(extended):
    r = rows(extended)
    gaps = {i: row["status"] for i, row in r.items()
            if row["status"] not in ("normal+robustness", "no-behaviour") and not row["reason"]}
    assert gaps == {}
    # The exceptions say why, in data.
    assert all(row["reason"] for row in r.values() if row["status"] != "normal+robustness")
    assert extended["summary"]["presence-only"] == 0


def test_differential_properties_are_counted_for_the_profile_only(extended):
    from conformance.agent.properties import PROPERTIES
    base = coverage_report(Catalog.load(), load_profile("face-safety-base"))
    assert extended["differential"]["properties"] == sum(
        1 for p in PROPERTIES if set(p.interfaces) & set(r["interface"] for r in extended["interfaces_detail"]))
    # fnmatch and qsort are not Safety Base interfaces: fewer properties there.
    assert "fnmatch" not in base["differential"]["interfaces"]
    assert base["differential"]["properties"] < len(PROPERTIES)
    assert {"strtol", "snprintf", "strlen"} <= set(base["differential"]["interfaces"])


def test_interfaces_without_behaviour_are_only_constant_macros(extended):
    assert sorted(extended["no_behaviour"]) == sorted(
        ["INT8_C", "INT16_C", "INT32_C", "INT64_C", "INTMAX_C", "INTN_C", "UINT8_C", "UINT16_C",
         "UINT32_C", "UINT64_C", "UINTMAX_C", "UINTN_C", "offsetof"])


def test_listed_errno_values_are_tested_or_explained(extended):
    e = extended["errors"]
    assert e["listed"] >= 400
    assert e["tested"] + e["untestable"] + e["untested"] == e["listed"]
    # A small remainder may wait for a test; it is printed by name, never hidden.
    assert e["untested"] <= e["listed"] // 10
