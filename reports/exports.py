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
import xml.etree.ElementTree as ET

from reports.junit import xml_safe
from reports.model import Evidence, analyse
from reports.textsafe import visible_text

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
        requirement = [row.id, r.get("method"), r.get("status"), r.get("fingerprint"),
                       r.get("text"), row.outcome, "; ".join(row.gaps)]
        for case in row.cases or [None]:
            writer.writerow([_csv_cell(v) for v in requirement + _case_columns(case, row.id)])
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


class _ReqIF:
    def __init__(self, when: str):
        self.when = when

    def element(self, parent, tag: str, identifier: str | None = None, **attributes):
        if identifier is not None:
            attributes = {"IDENTIFIER": identifier, "LAST-CHANGE": self.when, **attributes}
        return ET.SubElement(parent, tag, attributes)

    def ref(self, parent, wrapper: str, tag: str, target: str) -> None:
        ET.SubElement(ET.SubElement(parent, wrapper), tag).text = target


def render_reqif(bundle, evidence: Evidence | None = None) -> bytes:
    """The requirements, test cases and their links as one ReqIF document (UTF-8 bytes)."""
    evidence = evidence or analyse(bundle)
    manifest = evidence.manifest
    when = str(manifest.get("finished_utc") or "1970-01-01T00:00:00Z")
    run_id = evidence.run_id
    doc = _ReqIF(when)
    root = ET.Element("REQ-IF", {"xmlns": REQIF_NS})
    header = doc.element(ET.SubElement(root, "THE-HEADER"), "REQ-IF-HEADER",
                         _ncname("header-", run_id))
    version = (manifest.get("pcert") or {}).get("version") or ""
    for tag, value in (("COMMENT", f"Trace of pcert run {run_id}"), ("CREATION-TIME", when),
                       ("REPOSITORY-ID", "pcert"), ("REQ-IF-TOOL-ID", f"pcert {version}".strip()),
                       ("REQ-IF-VERSION", "1.0"), ("SOURCE-TOOL-ID", "pcert"),
                       ("TITLE", f"pcert trace {run_id}")):
        ET.SubElement(header, tag).text = _text(value)
    content = ET.SubElement(ET.SubElement(root, "CORE-CONTENT"), "REQ-IF-CONTENT")

    datatypes = ET.SubElement(content, "DATATYPES")
    doc.element(datatypes, "DATATYPE-DEFINITION-STRING", "DT-text", **{
        "LONG-NAME": "Text", "MAX-LENGTH": "1000000"})
    spec_types = ET.SubElement(content, "SPEC-TYPES")
    definitions = {}
    for type_id, name, attributes in (("SOT-requirement", "Requirement", REQUIREMENT_ATTRIBUTES),
                                      ("SOT-testcase", "Test case", TESTCASE_ATTRIBUTES)):
        spec_type = doc.element(spec_types, "SPEC-OBJECT-TYPE", type_id, **{"LONG-NAME": name})
        holder = ET.SubElement(spec_type, "SPEC-ATTRIBUTES")
        for attribute in attributes:
            identifier = _ncname(f"AD-{type_id[4:]}-", attribute)
            definition = doc.element(holder, "ATTRIBUTE-DEFINITION-STRING", identifier,
                                     **{"LONG-NAME": attribute})
            doc.ref(definition, "TYPE", "DATATYPE-DEFINITION-STRING-REF", "DT-text")
            definitions[(type_id, attribute)] = identifier
    doc.element(spec_types, "SPEC-RELATION-TYPE", "SRT-verifies", **{"LONG-NAME": "Verifies"})
    doc.element(spec_types, "SPECIFICATION-TYPE", "ST-specification",
                **{"LONG-NAME": "Specification"})

    objects = ET.SubElement(content, "SPEC-OBJECTS")

    def spec_object(type_id: str, identifier: str, values: dict) -> None:
        spec = doc.element(objects, "SPEC-OBJECT", identifier)
        doc.ref(spec, "TYPE", "SPEC-OBJECT-TYPE-REF", type_id)
        holder = ET.SubElement(spec, "VALUES")
        for attribute, value in values.items():
            if value in (None, ""):
                continue
            entry = ET.SubElement(holder, "ATTRIBUTE-VALUE-STRING", {"THE-VALUE": _text(value)})
            doc.ref(entry, "DEFINITION", "ATTRIBUTE-DEFINITION-STRING-REF",
                    definitions[(type_id, attribute)])

    requirement_ids = {}
    for row in evidence.requirements:
        r = row.requirement
        source = r.get("source") or {}
        identifier = requirement_ids[row.id] = _ncname("R-", row.id)
        spec_object("SOT-requirement", identifier, {
            "ReqIF.ForeignID": row.id, "ReqIF.Name": r.get("interface"),
            "ReqIF.Text": r.get("text"), "Interface": r.get("interface"), "Unit": r.get("unit"),
            "Method": r.get("method"), "Status": r.get("status"),
            "Source": ", ".join(f"{k} {source[k]}" for k in sorted(source)),
            "Fingerprint": r.get("fingerprint"), "Outcome": row.outcome})
    case_ids = {}
    for case in evidence.cases:
        tc = case.testcase
        procedure = tc.get("procedure") or {}
        identifier = case_ids[case.id] = _ncname("T-", case.id)
        spec_object("SOT-testcase", identifier, {
            "ReqIF.ForeignID": case.id, "ReqIF.Name": tc.get("title"),
            "ReqIF.Text": tc.get("expected"), "Kind": tc.get("kind"), "Inputs": tc.get("inputs"),
            "Procedure": f"{procedure.get('file') or ''} {procedure.get('function') or ''}".strip(),
            "Procedure sha256": procedure.get("sha256") or case.result.get("procedure_sha256"),
            "Verdict": case.verdict, "Reason": case.result.get("reason"),
            "Problem report": case.problem.id if case.problem else ""})

    relations = ET.SubElement(content, "SPEC-RELATIONS")
    for case in evidence.cases:
        for requirement_id in case.known_requirements:
            relation = doc.element(relations, "SPEC-RELATION",
                                   _ncname("L-", f"{case.id}--{requirement_id}"))
            doc.ref(relation, "SOURCE", "SPEC-OBJECT-REF", case_ids[case.id])
            doc.ref(relation, "TARGET", "SPEC-OBJECT-REF", requirement_ids[requirement_id])
            doc.ref(relation, "TYPE", "SPEC-RELATION-TYPE-REF", "SRT-verifies")

    specifications = ET.SubElement(content, "SPECIFICATIONS")
    for spec_id, name, identifiers in (("S-requirements", "Requirements",
                                        list(requirement_ids.values())),
                                       ("S-testcases", "Test cases", list(case_ids.values()))):
        spec = doc.element(specifications, "SPECIFICATION", spec_id, **{"LONG-NAME": name})
        doc.ref(spec, "TYPE", "SPECIFICATION-TYPE-REF", "ST-specification")
        children = ET.SubElement(spec, "CHILDREN")
        for identifier in identifiers:
            hierarchy = doc.element(children, "SPEC-HIERARCHY", "H-" + identifier)
            doc.ref(hierarchy, "OBJECT", "SPEC-OBJECT-REF", identifier)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"
