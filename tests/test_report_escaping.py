"""The faster text paths of the reports give exactly what the plain ones gave, for any text:
ReqIF written as text against the same document built and serialised with ElementTree, XML
trees serialised as ElementTree does, the PDF string escape against its byte table, the
shortcuts for text with nothing to change, the remembered HTML escapes and wrapping. Reports
are evidence: the same bundle must give the same bytes."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html import escape

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundle_factory import make_bundle
from evidence.reader import Bundle
from reports import html, pdf_layout, textsafe
from reports.exports import (REQIF_NS, REQUIREMENT_ATTRIBUTES, TESTCASE_ATTRIBUTES, _ncname,
                             _text, render_reqif, requirement_values, case_values)
from reports.model import analyse
from reports.xmltext import tree_bytes

_ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=60)   # surrogates too
_AWKWARD = st.lists(st.sampled_from(list("ab (){}\\<>&\"'\t\n\r\x00\x1b\x7f\x85\xa0é€中😀")
                                    + ["\ud800", "\udc80", "\udcff", "\ufffe", "\uffff", "\r\n"]),
                    max_size=40).map("".join)
_TEXT = st.one_of(_ANY_TEXT, _AWKWARD)


# --------------------------------------------------------------------------- ReqIF

def _element_tree_reqif(evidence) -> bytes:
    """The ReqIF document as reports/exports.py built it before it wrote text directly."""
    manifest = evidence.manifest
    when = str(manifest.get("finished_utc") or "1970-01-01T00:00:00Z")
    run_id = evidence.run_id

    def element(parent, tag, identifier=None, **attributes):
        if identifier is not None:
            attributes = {"IDENTIFIER": identifier, "LAST-CHANGE": when, **attributes}
        return ET.SubElement(parent, tag, attributes)

    def ref(parent, wrapper, tag, target):
        ET.SubElement(ET.SubElement(parent, wrapper), tag).text = target

    root = ET.Element("REQ-IF", {"xmlns": REQIF_NS})
    header = element(ET.SubElement(root, "THE-HEADER"), "REQ-IF-HEADER",
                     _ncname("header-", run_id))
    version = (manifest.get("pcert") or {}).get("version") or ""
    for tag, value in (("COMMENT", f"Trace of pcert run {run_id}"), ("CREATION-TIME", when),
                       ("REPOSITORY-ID", "pcert"), ("REQ-IF-TOOL-ID", f"pcert {version}".strip()),
                       ("REQ-IF-VERSION", "1.0"), ("SOURCE-TOOL-ID", "pcert"),
                       ("TITLE", f"pcert trace {run_id}")):
        ET.SubElement(header, tag).text = _text(value)
    content = ET.SubElement(ET.SubElement(root, "CORE-CONTENT"), "REQ-IF-CONTENT")
    element(ET.SubElement(content, "DATATYPES"), "DATATYPE-DEFINITION-STRING", "DT-text",
            **{"LONG-NAME": "Text", "MAX-LENGTH": "1000000"})
    spec_types = ET.SubElement(content, "SPEC-TYPES")
    definitions = {}
    for type_id, name, attributes in (("SOT-requirement", "Requirement", REQUIREMENT_ATTRIBUTES),
                                      ("SOT-testcase", "Test case", TESTCASE_ATTRIBUTES)):
        spec_type = element(spec_types, "SPEC-OBJECT-TYPE", type_id, **{"LONG-NAME": name})
        holder = ET.SubElement(spec_type, "SPEC-ATTRIBUTES")
        for attribute in attributes:
            identifier = _ncname(f"AD-{type_id[4:]}-", attribute)
            definition = element(holder, "ATTRIBUTE-DEFINITION-STRING", identifier,
                                 **{"LONG-NAME": attribute})
            ref(definition, "TYPE", "DATATYPE-DEFINITION-STRING-REF", "DT-text")
            definitions[(type_id, attribute)] = identifier
    element(spec_types, "SPEC-RELATION-TYPE", "SRT-verifies", **{"LONG-NAME": "Verifies"})
    element(spec_types, "SPECIFICATION-TYPE", "ST-specification",
            **{"LONG-NAME": "Specification"})
    objects = ET.SubElement(content, "SPEC-OBJECTS")

    def spec_object(type_id, identifier, values):
        spec = element(objects, "SPEC-OBJECT", identifier)
        ref(spec, "TYPE", "SPEC-OBJECT-TYPE-REF", type_id)
        holder = ET.SubElement(spec, "VALUES")
        for attribute, value in values.items():
            if value in (None, ""):
                continue
            entry = ET.SubElement(holder, "ATTRIBUTE-VALUE-STRING", {"THE-VALUE": _text(value)})
            ref(entry, "DEFINITION", "ATTRIBUTE-DEFINITION-STRING-REF",
                definitions[(type_id, attribute)])

    requirement_ids = {}
    for row in evidence.requirements:
        identifier = requirement_ids[row.id] = _ncname("R-", row.id)
        spec_object("SOT-requirement", identifier, requirement_values(row))
    case_ids = {}
    for case in evidence.cases:
        identifier = case_ids[case.id] = _ncname("T-", case.id)
        spec_object("SOT-testcase", identifier, case_values(case))
    relations = ET.SubElement(content, "SPEC-RELATIONS")
    for case in evidence.cases:
        for requirement_id in case.known_requirements:
            relation = element(relations, "SPEC-RELATION",
                               _ncname("L-", f"{case.id}--{requirement_id}"))
            ref(relation, "SOURCE", "SPEC-OBJECT-REF", case_ids[case.id])
            ref(relation, "TARGET", "SPEC-OBJECT-REF", requirement_ids[requirement_id])
            ref(relation, "TYPE", "SPEC-RELATION-TYPE-REF", "SRT-verifies")
    specifications = ET.SubElement(content, "SPECIFICATIONS")
    for spec_id, name, identifiers in (("S-requirements", "Requirements",
                                        list(requirement_ids.values())),
                                       ("S-testcases", "Test cases", list(case_ids.values()))):
        spec = element(specifications, "SPECIFICATION", spec_id, **{"LONG-NAME": name})
        ref(spec, "TYPE", "SPECIFICATION-TYPE-REF", "ST-specification")
        children = ET.SubElement(spec, "CHILDREN")
        for identifier in identifiers:
            hierarchy = element(children, "SPEC-HIERARCHY", "H-" + identifier)
            ref(hierarchy, "OBJECT", "SPEC-OBJECT-REF", identifier)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


@pytest.fixture(scope="module")
def factory_bundle(tmp_path_factory) -> Bundle:
    return Bundle.open(make_bundle(tmp_path_factory.mktemp("escaping")))


def test_reqif_text_is_what_element_tree_wrote(factory_bundle):
    evidence = analyse(factory_bundle)
    assert render_reqif(factory_bundle, evidence) == _element_tree_reqif(evidence)


@settings(max_examples=150, deadline=None)
@given(text=_TEXT, reason=_TEXT, title=_TEXT, when=_TEXT, empty=st.booleans())
def test_reqif_text_is_what_element_tree_wrote_for_any_text(factory_bundle, text, reason,
                                                           title, when, empty):
    evidence = analyse(factory_bundle)
    evidence.bundle = _WithManifest(factory_bundle, dict(factory_bundle.manifest,
                                                         finished_utc=when))
    for row in evidence.requirements:
        row.requirement = dict(row.requirement, text=text, interface=title)
    for case in evidence.cases:
        case.result = dict(case.result, reason=reason)
        case.testcase = dict(case.testcase, title=title, expected=text, inputs=reason)
        if empty:                       # no relation, nothing but empty values: empty elements
            case.known_requirements = []
            case.testcase = {"id": case.testcase["id"]}
    data = render_reqif(factory_bundle, evidence)
    assert data == _element_tree_reqif(evidence)
    if "\x00" not in when and not re.search("[\x01-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]",
                                            when):
        ET.fromstring(data)              # well-formed (the run's own time is not sanitised)


class _WithManifest:
    def __init__(self, bundle: Bundle, manifest: dict):
        self.path, self.manifest = bundle.path, manifest


# --------------------------------------------------------------------------- PDF and HTML text

@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_pdf_string_escapes_as_its_byte_table(text):
    encoded = text.encode("cp1252", "replace")
    assert pdf_layout.pdf_string(text) == "".join(pdf_layout._PDF_BYTES[b] for b in encoded)


@settings(max_examples=400, deadline=None)
@given(text=_TEXT)
def test_text_shortcuts_change_nothing(text):
    shown = textsafe._INVISIBLE.sub(textsafe._show_byte, text.replace("\r\n", "\n"))
    assert textsafe.visible_text(text) == textsafe._OTHER_SURROGATES.sub("\ufffd", shown)
    assert textsafe.pdf_text(text) == shown.encode("cp1252", "replace").decode("cp1252")


@settings(max_examples=200, deadline=None)
@given(text=_TEXT)
def test_remembered_html_escapes_are_the_escapes(text):
    for _ in range(2):                  # computed, then remembered
        assert html._e(text) == escape(textsafe.visible_text(textsafe.clip(text)), quote=True)
        assert html._e(text, None) == escape(textsafe.visible_text(text), quote=True)


def test_html_escapes_are_remembered_by_text_not_by_equal_value():
    assert (html._e(1), html._e(True), html._e(1.0), html._e("1")) == ("1", "True", "1.0", "1")


@settings(max_examples=200, deadline=None)
@given(text=st.text(st.sampled_from(list("abc Wi()\\é€") + ["\u4e2d", "\n"]), max_size=120),
       width=st.sampled_from([3.0, 20.0, 55.5, 140.0]),
       font=st.sampled_from([pdf_layout.FONT, pdf_layout.BOLD, pdf_layout.MONO]))
def test_remembered_wrapping_is_the_wrapping_escaped(text, width, font):
    lines = pdf_layout.wrap_text(text, font, 7.5, width)
    for _ in range(2):
        assert pdf_layout._wrapped(text, font, 7.5, width) == tuple(map(pdf_layout.pdf_string,
                                                                        lines))


# --------------------------------------------------------------------------- XML as ElementTree

_NAMES = st.sampled_from(["a", "testcase", "system-out", "x}y", "{urn:x}ns"])


@st.composite
def _trees(draw, depth: int = 0) -> ET.Element:
    element = ET.Element(draw(_NAMES), {draw(_NAMES): draw(_TEXT)
                                        for _ in range(draw(st.integers(0, 3)))})
    element.text = draw(st.one_of(st.none(), _TEXT))
    element.tail = draw(st.one_of(st.none(), _TEXT))
    for _ in range(draw(st.integers(0, 3 if depth < 3 else 0))):
        element.append(draw(_trees(depth + 1)))
    if draw(st.integers(0, 9)) == 0:
        element.append(ET.Comment("a comment"))       # ElementTree writes these itself
    return element


@settings(max_examples=300, deadline=None)
@given(root=_trees(), indent=st.booleans())
def test_tree_bytes_are_what_element_tree_writes(root, indent):
    if indent:
        ET.indent(root, space="  ")
    try:
        expected = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    except (TypeError, ValueError):
        return
    assert tree_bytes(root) == expected
