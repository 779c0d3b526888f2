"""The trace as CSV and as ReqIF (OMG Requirements Interchange Format 1.2, read by DOORS,
Polarion and StrictDoc), rendered from a bundle alone.

    >>> from evidence.reader import Bundle
    >>> csv_bytes = render_csv(Bundle.open("runs/x"))        # doctest: +SKIP
    >>> reqif_bytes = render_reqif(Bundle.open("runs/x"))    # doctest: +SKIP

CSV: one row per trace link (requirement, test case), plus a row for each requirement with no
test case (empty test case columns) and each test case that traces to no requirement of the
bundle (empty requirement columns); columns in :data:`CSV_COLUMNS`. A cell that a spreadsheet
would run as a formula (starting with = + - @) is prefixed with ' .

ReqIF: two specifications, "Requirements" and "Test cases"; each requirement and test case is a
SPEC-OBJECT whose ``ReqIF.ForeignID`` is its pcert id (``ReqIF.Name``, ``ReqIF.Text`` and pcert
attributes beside it), and each link a SPEC-RELATION "Verifies" from the test case to the
requirement. Identifiers are derived from the ids, and every LAST-CHANGE is the run's finish
time, so the same bundle gives the same bytes.
"""

from __future__ import annotations

import csv
import io
import re
from contextlib import contextmanager

from reports.junit import xml_safe
from reports.model import Evidence, analyse
from reports.textsafe import visible_text
from reports.xmltext import XML_DECLARATION, encoded, escape_attribute, escape_text

CSV_COLUMNS = ("requirement_id", "requirement_method", "requirement_status",
               "requirement_fingerprint", "requirement_text", "requirement_outcome",
               "requirement_gaps", "testcase_id", "testcase_kind", "testcase_title",
               "procedure_sha256", "verdict", "reason", "problem_report", "disposition",
               "suspect")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

REQIF_NS = "http://www.omg.org/spec/ReqIF/20110401/reqif.xsd"
REQUIREMENT_ATTRIBUTES = ("ReqIF.ForeignID", "ReqIF.Name", "ReqIF.Text", "Interface", "Unit",
                          "Method", "Status", "Source", "Fingerprint", "Outcome")
TESTCASE_ATTRIBUTES = ("ReqIF.ForeignID", "ReqIF.Name", "ReqIF.Text", "Kind", "Inputs",
                       "Procedure", "Procedure sha256", "Verdict", "Reason", "Problem report")


# --------------------------------------------------------------------------- CSV

def _csv_cell(value: object) -> str:
    text = visible_text("" if value is None else value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(bundle, evidence: Evidence | None = None) -> bytes:
    """The trace as CSV (UTF-8, header row, ``\\n`` line ends)."""
    evidence = evidence or analyse(bundle)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in evidence.requirements:
        r = row.requirement
        # The requirement's cells once, for each of its test cases' rows.
        requirement = [_csv_cell(v) for v in (row.id, r.get("method"), r.get("status"),
                                              r.get("fingerprint"), r.get("text"), row.outcome,
                                              "; ".join(row.gaps))]
        for case in row.cases or [None]:
            writer.writerow(requirement + [_csv_cell(v) for v in _case_columns(case, row.id)])
    for case in evidence.untraced:
        writer.writerow([_csv_cell(v) for v in [""] * 7 + _case_columns(case, None)])
    return out.getvalue().encode("utf-8")


def _case_columns(case, requirement_id: str | None) -> list:
    if case is None:
        return [""] * 9
    problem = case.problem
    testcase = case.testcase
    return [case.id, testcase.get("kind"), testcase.get("title"),
            (testcase.get("procedure") or {}).get("sha256") or case.result.get("procedure_sha256"),
            case.verdict, case.result.get("reason"), problem.id if problem else "",
            problem.disposition.id if problem and problem.disposition else "",
            "; ".join(case.suspect.get(requirement_id, [])) if requirement_id else ""]


# --------------------------------------------------------------------------- ReqIF

def _ncname(prefix: str, value: str) -> str:
    """An xsd:ID made from an id: letters, digits, . - _ kept, anything else as _XX."""
    return prefix + re.sub(r"[^A-Za-z0-9._-]", lambda m: "_%02X" % ord(m.group())
                           if ord(m.group()) < 256 else "_%04X" % ord(m.group()), value)


def _text(value: object) -> str:
    return xml_safe(visible_text("" if value is None else value))


# Any character that _text or escape_attribute would change: most values have none, and one
# search costs less than the functions finding nothing to do.
_NOT_PLAIN = re.compile('[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff&<>"]')


def _attribute_text(value: object) -> str:
    """``escape_attribute(_text(value))``."""
    text = value if type(value) is str else "" if value is None else str(value)
    return escape_attribute(_text(text)) if _NOT_PLAIN.search(text) else text


class _ReqIF:
    """The document as indented lines, written exactly as ElementTree's ``indent(space="  ")``
    and ``tostring`` wrote it (same escaping, ``<TAG />`` for an element with no text and no
    child). Text directly, the repeated parts from templates: building and serialising a tree
    of ~500,000 elements took a second for a 3,000-test-case bundle."""

    def __init__(self, when: str):
        self.when = when
        self.lines = [XML_DECLARATION]

    def start_tag(self, depth: int, tag: str, identifier: str | None = None,
                  **attributes) -> str:
        """``<TAG attributes`` indented, not closed; IDENTIFIER and LAST-CHANGE first."""
        if identifier is not None:
            attributes = {"IDENTIFIER": identifier, "LAST-CHANGE": self.when, **attributes}
        return "  " * depth + "<" + tag + "".join(
            f' {name}="{escape_attribute(value)}"' for name, value in attributes.items())

    def leaf(self, depth: int, tag: str, text: str = "", identifier: str | None = None,
             **attributes) -> None:
        start = self.start_tag(depth, tag, identifier, **attributes)
        self.lines.append(f"{start}>{escape_text(text)}</{tag}>" if text else start + " />")

    @contextmanager
    def element(self, depth: int, tag: str, identifier: str | None = None, **attributes):
        """An element whose children are written inside the ``with`` block."""
        start = self.start_tag(depth, tag, identifier, **attributes)
        self.lines.append(start + ">")
        children_from = len(self.lines)
        yield
        if len(self.lines) == children_from:
            self.lines[-1] = start + " />"
        else:
            self.lines.append("  " * depth + f"</{tag}>")

    def to_bytes(self) -> bytes:
        return encoded("\n".join(self.lines) + "\n")


def _at(depth: int, text: str) -> str:
    return "  " * depth + text


# Where an identifier goes in a start tag made once per tag (an identifier is an NCName: it
# never holds this character, nor anything to escape).
_SLOT = "\x00"


def _identified(doc: "_ReqIF", depth: int, tag: str) -> tuple[str, str]:
    """What comes before and after the identifier in ``<TAG IDENTIFIER=.. LAST-CHANGE=..>``."""
    # The identifier is the first attribute: the first slot is its place, whatever the time.
    before, _, after = doc.start_tag(depth, tag, _SLOT).partition(_SLOT)
    return before, after + ">"


def _ref(depth: int, wrapper: str, tag: str, target: str) -> str:
    """``<WRAPPER><TAG>target</TAG></WRAPPER>`` as indented lines (one string)."""
    indent = "  " * depth
    inner = f"<{tag}>{escape_text(target)}</{tag}>" if target else f"<{tag} />"
    return f"{indent}<{wrapper}>\n{indent}  {inner}\n{indent}</{wrapper}>"


def render_reqif(bundle, evidence: Evidence | None = None) -> bytes:
    """The requirements, test cases and their links as one ReqIF document (UTF-8 bytes)."""
    evidence = evidence or analyse(bundle)
    manifest = evidence.manifest
    when = str(manifest.get("finished_utc") or "1970-01-01T00:00:00Z")
    run_id = evidence.run_id
    doc = _ReqIF(when)
    with doc.element(0, "REQ-IF", xmlns=REQIF_NS):
        with doc.element(1, "THE-HEADER"):
            _reqif_header(doc, manifest, run_id)
        with doc.element(1, "CORE-CONTENT"), doc.element(2, "REQ-IF-CONTENT"):
            with doc.element(3, "DATATYPES"):
                doc.leaf(4, "DATATYPE-DEFINITION-STRING", identifier="DT-text",
                         **{"LONG-NAME": "Text", "MAX-LENGTH": "1000000"})
            definitions = _reqif_spec_types(doc)
            with doc.element(3, "SPEC-OBJECTS"):
                objects = _SpecObjects(doc, definitions)
                requirement_ids = _reqif_objects(objects, "SOT-requirement", "R-",
                                                 evidence.requirements, requirement_values)
                case_ids = _reqif_objects(objects, "SOT-testcase", "T-", evidence.cases,
                                          case_values)
            with doc.element(3, "SPEC-RELATIONS"):
                _reqif_relations(doc, evidence, case_ids, requirement_ids)
            with doc.element(3, "SPECIFICATIONS"):
                for spec_id, name, identifiers in (
                        ("S-requirements", "Requirements", list(requirement_ids.values())),
                        ("S-testcases", "Test cases", list(case_ids.values()))):
                    _reqif_specification(doc, spec_id, name, identifiers)
    return doc.to_bytes()


def _reqif_header(doc: _ReqIF, manifest: dict, run_id: str) -> None:
    version = (manifest.get("pcert") or {}).get("version") or ""
    with doc.element(2, "REQ-IF-HEADER", _ncname("header-", run_id)):
        for tag, value in (("COMMENT", f"Trace of pcert run {run_id}"),
                           ("CREATION-TIME", doc.when), ("REPOSITORY-ID", "pcert"),
                           ("REQ-IF-TOOL-ID", f"pcert {version}".strip()),
                           ("REQ-IF-VERSION", "1.0"), ("SOURCE-TOOL-ID", "pcert"),
                           ("TITLE", f"pcert trace {run_id}")):
            doc.leaf(3, tag, _text(value))


def _reqif_spec_types(doc: _ReqIF) -> dict[tuple[str, str], str]:
    """Write the object, relation and specification types; (type, attribute) -> the
    identifier of its attribute definition."""
    definitions = {}
    with doc.element(3, "SPEC-TYPES"):
        for type_id, name, attributes in (
                ("SOT-requirement", "Requirement", REQUIREMENT_ATTRIBUTES),
                ("SOT-testcase", "Test case", TESTCASE_ATTRIBUTES)):
            with doc.element(4, "SPEC-OBJECT-TYPE", type_id, **{"LONG-NAME": name}), \
                    doc.element(5, "SPEC-ATTRIBUTES"):
                for attribute in attributes:
                    identifier = _ncname(f"AD-{type_id[4:]}-", attribute)
                    with doc.element(6, "ATTRIBUTE-DEFINITION-STRING", identifier,
                                     **{"LONG-NAME": attribute}):
                        doc.lines.append(
                            _ref(7, "TYPE", "DATATYPE-DEFINITION-STRING-REF", "DT-text"))
                    definitions[(type_id, attribute)] = identifier
        doc.leaf(4, "SPEC-RELATION-TYPE", identifier="SRT-verifies",
                 **{"LONG-NAME": "Verifies"})
        doc.leaf(4, "SPECIFICATION-TYPE", identifier="ST-specification",
                 **{"LONG-NAME": "Specification"})
    return definitions


class _SpecObjects:
    """Writes SPEC-OBJECTs; what repeats in each (the start tag but the identifier, the type
    reference, an attribute value's lines but the value) is made once."""

    VALUE_START = _at(6, '<ATTRIBUTE-VALUE-STRING THE-VALUE="')

    def __init__(self, doc: _ReqIF, definitions: dict[tuple[str, str], str]):
        self.doc = doc
        self.start = _identified(doc, 4, "SPEC-OBJECT")
        self.type_refs: dict[str, str] = {}
        # After the value: its attribute definition, and the end of the element.
        self.value_ends = {key: '">\n' + _ref(7, "DEFINITION", "ATTRIBUTE-DEFINITION-STRING-REF",
                                               identifier)
                           + "\n" + _at(6, "</ATTRIBUTE-VALUE-STRING>")
                           for key, identifier in definitions.items()}

    def write(self, type_id: str, identifier: str, values: dict) -> None:
        if type_id not in self.type_refs:
            self.type_refs[type_id] = _ref(5, "TYPE", "SPEC-OBJECT-TYPE-REF", type_id)
        lines = self.doc.lines
        lines.append(self.start[0] + identifier + self.start[1])
        lines.append(self.type_refs[type_id])
        shown = [(attribute, value) for attribute, value in values.items()
                 if value not in (None, "")]
        if not shown:
            lines.append(_at(5, "<VALUES />"))
        else:
            lines.append(_at(5, "<VALUES>"))
            value_start, value_ends = self.VALUE_START, self.value_ends
            lines.extend(value_start + _attribute_text(value) + value_ends[(type_id, attribute)]
                         for attribute, value in shown)
            lines.append(_at(5, "</VALUES>"))
        lines.append(_at(4, "</SPEC-OBJECT>"))


def _reqif_objects(objects: _SpecObjects, type_id: str, prefix: str, items,
                   values) -> dict[str, str]:
    """Write a SPEC-OBJECT of `type_id` per item (a requirement row or a test case, each with
    an `id`), its attributes `values(item)`; item id -> its identifier."""
    identifiers = {}
    for item in items:
        identifier = identifiers[item.id] = _ncname(prefix, item.id)
        objects.write(type_id, identifier, values(item))
    return identifiers


def requirement_values(row) -> dict:
    """A requirement's ReqIF attribute values, by attribute name (REQUIREMENT_ATTRIBUTES)."""
    r = row.requirement
    source = r.get("source") or {}
    return {"ReqIF.ForeignID": row.id, "ReqIF.Name": r.get("interface"),
            "ReqIF.Text": r.get("text"), "Interface": r.get("interface"), "Unit": r.get("unit"),
            "Method": r.get("method"), "Status": r.get("status"),
            "Source": ", ".join(f"{k} {source[k]}" for k in sorted(source)),
            "Fingerprint": r.get("fingerprint"), "Outcome": row.outcome}


def case_values(case) -> dict:
    """A test case's ReqIF attribute values, by attribute name (TESTCASE_ATTRIBUTES)."""
    tc = case.testcase
    procedure = tc.get("procedure") or {}
    return {"ReqIF.ForeignID": case.id, "ReqIF.Name": tc.get("title"),
            "ReqIF.Text": tc.get("expected"), "Kind": tc.get("kind"), "Inputs": tc.get("inputs"),
            "Procedure": f"{procedure.get('file') or ''} {procedure.get('function') or ''}".strip(),
            "Procedure sha256": procedure.get("sha256") or case.result.get("procedure_sha256"),
            "Verdict": case.verdict, "Reason": case.result.get("reason"),
            "Problem report": case.problem.id if case.problem else ""}


def _reqif_relations(doc: _ReqIF, evidence: Evidence, case_ids: dict,
                     requirement_ids: dict) -> None:
    verifies = _ref(5, "TYPE", "SPEC-RELATION-TYPE-REF", "SRT-verifies")
    before, after = _identified(doc, 4, "SPEC-RELATION")
    end = _at(4, "</SPEC-RELATION>")
    targets: dict[str, str] = {}             # a requirement is the target of many links
    for case in evidence.cases:
        source = _ref(5, "SOURCE", "SPEC-OBJECT-REF", case_ids[case.id])
        for requirement_id in case.known_requirements:
            target = targets.get(requirement_id)
            if target is None:
                target = targets[requirement_id] = _ref(5, "TARGET", "SPEC-OBJECT-REF",
                                                        requirement_ids[requirement_id])
            doc.lines += [before + _ncname("L-", f"{case.id}--{requirement_id}") + after,
                          source, target, verifies, end]


def _reqif_specification(doc: _ReqIF, spec_id: str, name: str, identifiers: list[str]) -> None:
    with doc.element(4, "SPECIFICATION", spec_id, **{"LONG-NAME": name}):
        doc.lines.append(_ref(5, "TYPE", "SPECIFICATION-TYPE-REF", "ST-specification"))
        with doc.element(5, "CHILDREN"):
            before, after = _identified(doc, 6, "SPEC-HIERARCHY")
            end = _at(6, "</SPEC-HIERARCHY>")
            for identifier in identifiers:
                doc.lines += [before + "H-" + identifier + after,
                              _ref(7, "OBJECT", "SPEC-OBJECT-REF", identifier), end]
