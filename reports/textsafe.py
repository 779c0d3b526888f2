"""Text from a bundle made safe for the PDF's built-in fonts and Paragraph markup.

Everything shown in a report may come from the guest (reasons, console bytes) or from a
catalog written years ago; none of it may change the document's structure or break rendering.

>>> pdf_text("ok \\x1b[0m \\u4e2d\\r\\n")
'ok \\\\x1b[0m ?\\n'
>>> markup("<b>&")
'&lt;b&gt;&amp;'
>>> clip("x" * 10, 4)
'xxxx [... 6 more characters not shown]'
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

# Bound on guest- or catalog-supplied text in one table cell: a runaway reason must not make
# the report unreadable (the bundle keeps the whole text).
CELL_MAX_CHARS = 1500

# C0/C1 controls other than TAB and LF, and the lone surrogates that surrogateescape uses for
# undecodable bytes: all shown as \xNN, the byte the guest sent.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\udc80-\udcff]")
# Anything the functions below change (CR is among the controls): most text has none, and
# one search costs less than replacements that change nothing.
_UNUSUAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _show_byte(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00 if code >= 0xDC00 else code:02x}"


def pdf_text(value: object) -> str:
    """Plain text the built-in (WinAnsi) fonts can draw, not yet markup-escaped.

    Control characters become a visible ``\\xNN`` (they are bytes the guest sent); characters
    the fonts lack become "?". TAB and LF are kept, CR LF becomes LF.
    """
    text = "" if value is None else str(value)
    if _UNUSUAL.search(text):
        text = _INVISIBLE.sub(_show_byte, text.replace("\r\n", "\n"))
    if text.isascii():                       # cp1252 holds ASCII as it is
        return text
    return text.encode("cp1252", errors="replace").decode("cp1252")


def clip(value: object, limit: int | None = CELL_MAX_CHARS) -> str:
    """``value`` as text, cut at ``limit`` characters with a note saying how much is not shown."""
    text = "" if value is None else str(value)
    if limit is not None and len(text) > limit:
        return text[:limit] + f" [... {len(text) - limit} more characters not shown]"
    return text


def cell_text(value: object, limit: int | None = CELL_MAX_CHARS) -> str:
    """Text for a grid cell: clipped, font-safe, tabs as spaces."""
    return pdf_text(clip(value, limit)).replace("\t", "    ")


def markup(value: object, limit: int | None = CELL_MAX_CHARS) -> str:
    """Paragraph markup that shows ``value`` literally: ``<b>&`` stays ``<b>&`` on the page.

    Text beyond ``limit`` characters is cut (and says so): a table row cannot outgrow a page.
    """
    return escape(pdf_text(clip(value, limit))).replace("\n", "<br/>").replace("\t", " ")


def visible_text(value: object) -> str:
    """Text with control characters and undecodable bytes shown as ``\\xNN`` (any Unicode kept):
    for HTML and CSV, which can hold every character but must not carry invisible ones."""
    text = "" if value is None else str(value)
    if not _UNUSUAL.search(text):
        return text
    return _OTHER_SURROGATES.sub("\ufffd", _INVISIBLE.sub(_show_byte, text.replace("\r\n", "\n")))


# Surrogates that are not undecodable bytes (a JSON "\ud800" escape): no UTF-8 for them.
_OTHER_SURROGATES = re.compile("[\ud800-\udfff\ufffe\uffff]")
