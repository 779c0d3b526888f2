"""Record files are validated once per process for the same bytes (evidence/schema.py):
reopening an unchanged bundle checks nothing again, and any changed byte is checked afresh."""

from __future__ import annotations

import json

import pytest

import evidence.reader as reader
import evidence.schema as schema
from evidence.errors import BundleError
from evidence.reader import Bundle

from bundle_factory import make_bundle


def count_validations(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = schema.validate

    def counting(kind, obj, *, where=""):
        calls.append(kind)
        return real(kind, obj, where=where)

    monkeypatch.setattr(schema, "validate", counting)  # validate_file calls it
    monkeypatch.setattr(reader, "validate", counting)  # the manifest
    return calls


def test_the_same_bytes_are_not_validated_twice(tmp_path, monkeypatch):
    bundle = make_bundle(tmp_path)
    monkeypatch.setattr(schema, "_VALID_FILES", set())  # forget what the writer checked
    calls = count_validations(monkeypatch)
    first = Bundle.open(bundle)
    first.results, first.testcases, first.requirements
    assert {"result", "testcase", "requirement"} <= set(calls)
    calls.clear()
    again = Bundle.open(bundle)
    assert again.results == first.results and again.testcases == first.testcases
    again.requirements
    assert [k for k in calls if k != "manifest"] == []


def test_a_changed_byte_is_validated_again(tmp_path):
    bundle = make_bundle(tmp_path)
    Bundle.open(bundle).results  # valid, remembered
    path = bundle / "results.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["verdict"] = "MAYBE"
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    with pytest.raises(BundleError, match="verdict"):
        Bundle.open(bundle).results


def test_what_the_writer_validated_is_not_validated_again_by_the_reader(tmp_path, monkeypatch):
    bundle = make_bundle(tmp_path)
    calls = count_validations(monkeypatch)
    opened = Bundle.open(bundle)
    opened.results, opened.testcases, opened.requirements
    assert [k for k in calls if k != "manifest"] == []


def test_rows_the_caller_validated_are_skipped_and_the_others_still_checked(tmp_path, monkeypatch):
    """A run validates each final result row while it goes on (conformance/run.py) and passes
    their lines, so sealing it checks only the rest."""
    import evidence.writer as writer_module
    from evidence.atomic import encode_json_line
    from evidence.writer import BundleWriter

    rows = [json.loads(line) for line in
            (make_bundle(tmp_path / "a") / "results.jsonl").read_text().splitlines()]
    calls: list[str] = []
    real = writer_module.validate

    def counting(kind, obj, *, where=""):
        calls.append(where)
        return real(kind, obj, where=where)

    monkeypatch.setattr(writer_module, "validate", counting)
    writer = BundleWriter(tmp_path / "b")
    known = {encode_json_line(rows[0])}
    writer.write_jsonl("results.jsonl", rows, valid_lines=known)
    assert calls == [f"results.jsonl[{i}]" for i in range(1, len(rows))]
    rows[1]["verdict"] = "MAYBE"
    with pytest.raises(BundleError, match=r"results.jsonl\[1\]"):
        writer.write_jsonl("results.jsonl", rows, valid_lines=known)
