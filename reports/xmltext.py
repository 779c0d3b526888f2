"""XML text written exactly as ElementTree writes it (the same escaping, ``<TAG />`` for an
element with neither text nor children), without its cost: the JUnit and ReqIF reports run to
megabytes, and serialising with ``ElementTree.tostring`` was most of their time.

    >>> root = ET.fromstring('<a x="1 &amp; 2"><b>&lt;i&gt;</b><c/></a>')
    >>> tree_bytes(root) == ET.tostring(root, encoding="utf-8", xml_declaration=True)
    True
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

XML_DECLARATION = "<?xml version='1.0' encoding='utf-8'?>"


def escape_text(text: str) -> str:
    """Escaped for element content."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def escape_attribute(text: str) -> str:
    """Escaped for an attribute value in double quotes (line ends and tabs as character
    references, so a reader keeps them)."""
    text = escape_text(text)
    for raw, reference in (('"', "&quot;"), ("\r", "&#13;"), ("\n", "&#10;"), ("\t", "&#09;")):
        if raw in text:
            text = text.replace(raw, reference)
    return text


def encoded(text: str) -> bytes:
    # ElementTree writes the characters UTF-8 cannot hold as character references.
    return text.encode("utf-8", "xmlcharrefreplace")


class _NotPlain(Exception):
    """A tree with a namespace, a comment or a value that is not a string."""


def tree_bytes(root: ET.Element) -> bytes:
    """``ET.tostring(root, encoding="utf-8", xml_declaration=True)``, the same bytes: written
    here for a tree of plain elements (names, values and text all strings, no namespace),
    by ElementTree for anything else."""
    parts = [XML_DECLARATION, "\n"]
    try:
        _write(root, parts)
    except _NotPlain:
        return ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return encoded("".join(parts))


def _write(element: ET.Element, parts: list[str]) -> None:
    tag = element.tag
    if type(tag) is not str or tag[:1] == "{":
        raise _NotPlain
    parts.append("<" + tag)
    for name, value in element.items():
        if type(name) is not str or name[:1] == "{" or type(value) is not str:
            raise _NotPlain
        parts.append(f' {name}="{escape_attribute(value)}"')
    text, tail = element.text, element.tail
    if not (text is None or type(text) is str) or not (tail is None or type(tail) is str):
        raise _NotPlain
    if text or len(element):
        parts.append(">")
        if text:
            parts.append(escape_text(text))
        for child in element:
            _write(child, parts)
        parts.append(f"</{tag}>")
    else:
        parts.append(" />")
    if tail:
        parts.append(escape_text(tail))
