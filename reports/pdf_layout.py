"""Fast PDF layout for large documents: a grid of pre-wrapped text, headings that feed the
outline and the table of contents, and a canvas that numbers pages and fills the contents'
page numbers when the document is saved (one pass, no multiBuild).

Why not reportlab's Table of Paragraphs: a bundle of 10,000 test cases makes ~100,000 cells,
and a Paragraph costs ~100 µs to wrap and draw; :class:`Grid` wraps text with the fonts' width
tables and draws every line of a page with one text object, ~20 times faster.

>>> grid = Grid([60, 120], [[cell("TC-open-001", bold=True), cell("PASS")]],
...             header=[cell("Test case"), cell("Verdict")])
>>> grid.wrap(180, 500)
(180, 26.0)
>>> wrap_text("one two three", "Helvetica", 10, 40)
['one two', 'three']

All text must already be in the fonts' encoding (cp1252; reports/pdf.py ``pdf_text`` makes
it so); anything else is drawn as "?".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from itertools import groupby
from operator import itemgetter

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import Flowable, Paragraph, Preformatted

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 18 * mm
BODY_WIDTH = PAGE_WIDTH - 2 * MARGIN
HEADER_Y = PAGE_HEIGHT - MARGIN      # the body starts 6 mm below the running header
FOOTER_Y = MARGIN - 8 * mm

FONT = "Helvetica"
BOLD = "Helvetica-Bold"
ITALIC = "Helvetica-Oblique"
MONO = "Courier"
SIZE = 7.5
LEADING = 9.0
PAD = 2.0
GRID_COLOUR = colors.grey
HEADER_BACKGROUND = colors.HexColor("#d9d9d9")

_WIDTHS: dict[str, list[int]] = {}


def _widths(font: str) -> list[int]:
    if font not in _WIDTHS:
        _WIDTHS[font] = pdfmetrics.getFont(font).widths
    return _WIDTHS[font]


class _WordUnits(dict):
    """Width of each word in a font, in 1/1000 em (an exact integer, so the sums and the line
    breaks are the same as measuring each time), measured once: the same words recur in every
    grid."""

    LIMIT = 200_000               # a long-lived process renders many reports: stay bounded

    def __init__(self, widths: list[int]):
        super().__init__()
        self.widths = widths

    def __missing__(self, word: str) -> int:
        if len(self) >= self.LIMIT:
            self.clear()
        units = self[word] = sum(map(self.widths.__getitem__, word.encode("cp1252", "replace")))
        return units


_WORD_UNITS: dict[str, _WordUnits] = {}


def _word_units(font: str) -> _WordUnits:
    if font not in _WORD_UNITS:
        _WORD_UNITS[font] = _WordUnits(_widths(font))
    return _WORD_UNITS[font]


def text_width(text: str, font: str, size: float) -> float:
    """Width in points of ``text`` drawn in a built-in font (summed from its width table)."""
    widths = _widths(font)
    return sum(map(widths.__getitem__, text.encode("cp1252", "replace"))) * size / 1000.0


def wrap_text(text: str, font: str, size: float, width: float) -> list[str]:
    """Lines of ``text`` no wider than ``width``: split at newlines, then between words; a word
    longer than a line (a sha256, a path) is cut between characters."""
    if font == MONO:
        return _wrap_mono(text, int(width / (0.6 * size)))
    widths = _widths(font)
    units = _word_units(font)
    scale = size / 1000.0
    space = widths[32] * scale
    # No glyph of these fonts is wider than 1.02 em: a short enough text needs no measuring.
    sure_fit = int(width / (1.02 * size))
    lines: list[str] = []
    for paragraph in text.split("\n"):
        if len(paragraph) <= sure_fit or text_width(paragraph, font, size) <= width:
            lines.append(paragraph)
            continue
        line, line_width, started = "", 0.0, False
        for word in paragraph.split(" "):
            word_width = units[word] * scale
            if started and line_width + space + word_width <= width:
                line, line_width = f"{line} {word}", line_width + space + word_width
                continue
            if started:
                lines.append(line)
            started = True
            while word_width > width:
                cut = _fitting_chars(word, widths, scale, width)
                lines.append(word[:cut])
                word = word[cut:]
                word_width = units[word] * scale
            line, line_width = word, word_width
        lines.append(line)
    return lines


def _wrapped(text: str, font: str, size: float, width: float) -> tuple[str, ...]:
    """:func:`wrap_text`, each line escaped for a PDF string."""
    if len(text) > REMEMBERED_CHARS:
        return _escaped_lines(text, wrap_text(text, font, size, width))
    return _wrapped_remembered(text, font, size, width)


def _escaped_lines(text: str, lines: list[str]) -> tuple[str, ...]:
    """``pdf_string`` of each line of ``text``."""
    # A line holds only characters of the text: when the text is printable ASCII (most are),
    # its lines are escaped together, as pdf_string escapes such a line.
    if not _PRINTABLE_LINES.fullmatch(text):
        return tuple(map(pdf_string, lines))
    joined = "\n".join(lines)
    if "\\" not in joined and "(" not in joined and ")" not in joined:
        return tuple(lines)
    return tuple(joined.replace("\\", "\\134").replace("(", "\\050").replace(")", "\\051")
                 .split("\n"))


_PRINTABLE_LINES = re.compile(r"[ -~\n]*")


# Criteria, conditions and titles recur from case to case, sources do not: only short texts
# are remembered, so what stays in memory after a rendering is bounded (~30 MB at most).
REMEMBERED_CHARS = 1000


@lru_cache(maxsize=1 << 14)
def _wrapped_remembered(text: str, font: str, size: float, width: float) -> tuple[str, ...]:
    return _escaped_lines(text, wrap_text(text, font, size, width))


# Between two lines of a run in a grid cell: show the one, move down (T*), start the next.
_LINE_BREAK = ") Tj\nT* ("


def _show_lines(lines) -> str:
    """The operators that show escaped ``lines`` one under the other."""
    return "(" + _LINE_BREAK.join(lines) + ") Tj"


def _show(text: str, font: str, size: float, width: float) -> tuple[int, str]:
    """(number of lines, operators) of ``text`` alone in a grid cell: its lines wrapped and
    escaped, each shown by ``Tj``, the next reached by ``T*``."""
    lines = _escaped_lines(text, wrap_text(text, font, size, width))
    return len(lines), _show_lines(lines)


_shown_remembered = lru_cache(maxsize=1 << 14)(_show)


def _shown(text: str, font: str, size: float, width: float) -> tuple[int, str]:
    """:func:`_show`, remembered for short texts (as :func:`_wrapped`)."""
    if len(text) > REMEMBERED_CHARS:
        return _show(text, font, size, width)
    return _shown_remembered(text, font, size, width)


def _runs(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """A cell's (font, line) pairs as runs of lines in one font: (font, operators)."""
    runs = []
    for font, run in groupby(pairs, key=itemgetter(0)):
        runs.append((font, ("T* " if runs else "") + _show_lines([line for _, line in run])))
    return tuple(runs)


def _pairs(runs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The (font, line) pairs of a cell's runs (a line never holds an unescaped parenthesis)."""
    return [(font, line) for font, shown in runs
            for line in shown[shown.index("(") + 1:-len(") Tj")].split(_LINE_BREAK)]


def _wrap_mono(text: str, columns: int) -> list[str]:
    """Wrap for a monospace font: by character count, between words where possible."""
    columns = max(columns, 1)
    lines: list[str] = []
    for paragraph in text.split("\n"):
        while len(paragraph) > columns:
            cut = paragraph.rfind(" ", 1, columns + 1)
            if cut > 0:                      # at the last space that fits, which is dropped
                lines.append(paragraph[:cut])
                paragraph = paragraph[cut + 1:]
            else:
                lines.append(paragraph[:columns])
                paragraph = paragraph[columns:]
        lines.append(paragraph)
    return lines


def _fitting_chars(word: str, widths: list[int], scale: float, width: float) -> int:
    total = 0.0
    for count, code in enumerate(word.encode("cp1252", "replace")):
        total += widths[code] * scale
        if total > width:
            return max(count, 1)
    return len(word)


# --------------------------------------------------------------------------- the grid

@dataclass
class Cell:
    """Text for one grid cell: paragraphs of (text, font); wrapped when the grid is made."""

    parts: list[tuple[str, str]]
    colour: object = None          # text colour, None: black
    background: object = None
    mono: bool = False


def cell(text: object = "", *, bold: bool = False, italic: bool = False, mono: bool = False,
         colour=None, background=None) -> Cell:
    """One cell of text in one font."""
    font = MONO if mono else BOLD if bold else ITALIC if italic else FONT
    return Cell([("" if text is None else str(text), font)], colour, background, mono)


def lines_cell(parts: list[tuple[str, bool]], background=None) -> Cell:
    """A cell of several paragraphs, each plain or bold: ``[("TC-1: PASS", False), ...]``."""
    return Cell([(text, BOLD if bold else FONT) for text, bold in parts], None, background)


GAP = "gap"          # a row of ``Grid`` that is blank space between blocks of rows


def group_row(cells: list[Cell]) -> tuple[str, list[Cell]]:
    """A row that heads the rows after it (a test case's id and title): repeated at the top
    of the next page when the block is split, and never left alone at the foot of a page."""
    return ("group", cells)


@dataclass
class _Row:
    """A row as drawn: strings only (cheap to pickle, nothing left to format but positions)."""

    cells: list[tuple[tuple[str, str], ...]]   # per column: runs of lines in one font,
    #                                        (font, its text operators): see _shown
    colours: list[str]                       # per column: text colour as "r g b"
    backgrounds: list[str | None]            # per column: "r g b", or None; [] if none
    height: float
    kind: str = "row"                        # row | group | gap


class Grid(Flowable):
    """A bordered table of wrapped text with a header row repeated on every page; rows split
    between pages, and a row taller than a page splits between its lines.

    ``rows`` holds lists of cells, :func:`group_row` rows and :data:`GAP` entries.
    """

    def __init__(self, widths: list[float], rows: list, *,
                 header: list[Cell] | None = None, size: float = SIZE,
                 leading: float = LEADING, _wrapped=None, _height: float | None = None):
        super().__init__()
        self.widths, self.size, self.leading = list(widths), size, leading
        if _wrapped is not None:
            self.header, self.rows = _wrapped
        else:
            self.header = self._row(header, HEADER_BACKGROUND) if header else None
            self.rows = []
            for item in rows:
                if item == GAP:
                    self.rows.append(_Row([], [], [], 6.0, GAP))
                elif isinstance(item, tuple):
                    self.rows.append(self._row(item[1], HEADER_BACKGROUND, kind="group"))
                else:
                    self.rows.append(self._row(item))
        # Summed once (and passed on by split): wrap() is called for every page a large grid
        # is split over, and summing again each time made a 10,000-case report quadratic.
        self._height = _height if _height is not None else (
            (self.header.height if self.header else 0) + sum(r.height for r in self.rows))

    def _row(self, cells: list[Cell], background=None, kind: str = "row") -> _Row:
        # A cell's text is kept as the operators that show it: one string per run of lines in
        # one font, not a string per line (fewer objects to pickle to the PDF's process, and
        # nothing left to join there).
        wrapped, most = [], 1
        size = self.size
        for width, item in zip(self.widths, cells):
            parts = item.parts
            text_size = size - 0.5 if item.mono else size
            if len(parts) == 1:
                text, font = parts[0]
                count, shown = _shown(text, font, text_size, width - 2 * PAD)
                wrapped.append(((font, shown),))
            else:
                pairs = [(font, line) for text, font in parts
                         for line in _wrapped(text, font, text_size, width - 2 * PAD)]
                wrapped.append(_runs(pairs))
                count = len(pairs)
            if count > most:
                most = count
        colours = [_rgb(item.colour) if item.colour else _BLACK for item in cells]
        backgrounds = []                        # most rows: none to fill
        if background or any(item.background for item in cells):
            backgrounds = [_rgb(colour) if colour else None
                           for colour in (item.background or background for item in cells)]
        return _Row(wrapped, colours, backgrounds, most * self.leading + 2 * PAD, kind)

    def wrap(self, availWidth, availHeight):
        self.width, self.height = sum(self.widths), self._height
        return self.width, self.height

    def split(self, availWidth, availHeight):
        head = self.header.height if self.header else 0
        room = availHeight - head
        used, count = 0.0, 0
        for row in self.rows:
            if used + row.height > room:
                break
            used += row.height
            count += 1
        if count == len(self.rows):
            return [self]
        # A group row or a gap never ends a page: they belong to what follows.
        while count and self.rows[count - 1].kind in ("group", GAP):
            count -= 1
        rest = self.rows[count:]
        while rest and rest[0].kind == GAP:
            rest = rest[1:]
        if count == 0:
            # The first row alone does not fit: cut it between lines if a few fit here.
            fitting = int((room - 2 * PAD) // self.leading)
            if fitting < 2 or self.rows[0].kind != "row":
                return []
            first, second = self._cut(self.rows[0], fitting)
            return [self._copy([first]), self._copy([second] + self.rows[1:])]
        group = next((row for row in reversed(self.rows[:count]) if row.kind == "group"), None)
        first = self.rows[:count]
        consumed = sum(row.height for row in first) + sum(
            row.height for row in self.rows[count:len(self.rows) - len(rest)])
        if group is not None and rest and rest[0].kind == "row":
            rest = [group] + rest            # the next page says whose rows these are
            consumed -= group.height
        return [self._copy(first), self._copy(rest, self._height - consumed)]

    def _cut(self, row: _Row, fitting: int) -> tuple[_Row, _Row]:
        def part(lines_of):
            cells, most = [], 1
            for runs in row.cells:
                pairs = lines_of(_pairs(runs))
                cells.append(_runs(pairs))
                most = max(most, len(pairs))
            return _Row(cells, row.colours, row.backgrounds, most * self.leading + 2 * PAD)
        return part(lambda lines: lines[:fitting]), part(lambda lines: lines[fitting:])

    def _copy(self, rows: list[_Row], height: float | None = None) -> "Grid":
        return Grid(self.widths, [], size=self.size, leading=self.leading,
                    _wrapped=(self.header, rows), _height=height)

    def state(self) -> tuple:
        """The grid as wrapped, in plain data (picklable): see :class:`PendingGrid`."""
        return self.widths, self.size, self.leading, self.header, self.rows, self._height

    def draw(self):
        # PDF operators written directly (one string per grid): going through reportlab's text
        # object costs a setFont, a setTextOrigin and number formatting per line, which made a
        # 10,000-test-case report take a minute.
        xs = [0.0]
        for width in self.widths:
            xs.append(xs[-1] + width)
        ops = _GridOps(self, xs)
        top = self.height
        block_top = None         # top of the current run of rows between gaps: one box
        for row in ([self.header] if self.header else []) + self.rows:
            bottom = top - row.height
            if row.kind == GAP:
                if block_top is not None:
                    ops.close_block(block_top, top)
                    block_top = None
                top = bottom
                continue
            if block_top is None:
                block_top = top
            ops.row(row, top, bottom)
            top = bottom
        if block_top is not None:
            ops.close_block(block_top, top)
        self.canv.addLiteral(ops.literal())


class PendingGrid(Grid):
    """A :class:`Grid` wrapped elsewhere (in another process): ``fetch()`` returns its
    :meth:`Grid.state`, and is called when the layout first reaches the grid, so what comes
    before it is laid out while it is being wrapped."""

    def __init__(self, fetch: Callable[[], tuple]):
        Flowable.__init__(self)
        self._fetch = fetch

    def _arrive(self) -> None:
        if self._fetch is not None:
            (self.widths, self.size, self.leading, self.header, self.rows,
             self._height) = self._fetch()
            self._fetch = None

    def wrap(self, availWidth, availHeight):
        self._arrive()
        return super().wrap(availWidth, availHeight)

    def split(self, availWidth, availHeight):
        self._arrive()
        return super().split(availWidth, availHeight)

    def draw(self):
        self._arrive()
        super().draw()


class _GridOps:
    """The fills, text and rules of one drawn grid, as PDF operators. What repeats (column
    positions, colours, font selections) is formatted once per grid."""

    def __init__(self, grid: Grid, xs: list[float]):
        self.grid, self.xs = grid, xs
        self.right = f"{xs[-1]:.2f}"
        self.text_x = [f"1 0 0 1 {x + PAD:.2f} " for x in xs[:-1]]
        self.canvas = grid.canv
        self.fonts: dict[str, str] = {}
        self.fills: list[str] = []
        self.text = ["BT", f"{grid.leading:.2f} TL"]
        self.rules: list[str] = []
        self.current_font: str | None = None
        self.current_rgb: str | None = None

    def row(self, row: _Row, top: float, bottom: float) -> None:
        y = f"{bottom:.2f}"
        if row.backgrounds:                     # empty when no cell has one
            xs, widths = self.xs, self.grid.widths
            for column, background in enumerate(row.backgrounds):
                if background is not None:
                    self.fills.append(f"{background} rg {xs[column]:.2f} {y} "
                                      f"{widths[column]:.2f} {row.height:.2f} re f")
        self.rules.append(f"0 {y} m {self.right} {y} l")
        text, text_x = self.text, self.text_x
        text_y = f"{top - PAD - self.grid.size:.2f} Tm"
        rgb_now, font_now = self.current_rgb, self.current_font
        for column, (runs, rgb) in enumerate(zip(row.cells, row.colours)):
            if rgb != rgb_now:
                text.append(f"{rgb} rg")
                rgb_now = rgb
            if not runs:
                continue
            # One position per cell; each further line moves down by the leading (T*).
            text.append(text_x[column] + text_y)
            for font, shown in runs:
                if font != font_now:            # the size follows from the font in a grid
                    text.append(self._select(font))
                    font_now = font
                text.append(shown)
        self.current_rgb, self.current_font = rgb_now, font_now

    def _select(self, font: str) -> str:
        # Asked only for a font drawn: asking registers the font with the document.
        if font not in self.fonts:
            size = self.grid.size - 0.5 if font == MONO else self.grid.size
            self.fonts[font] = f"{self.canvas._doc.getInternalFontName(font)} {size:.2f} Tf"
        return self.fonts[font]

    def close_block(self, block_top: float, bottom: float) -> None:
        self.rules.append(f"0 {block_top:.2f} m {self.right} {block_top:.2f} l")
        self.rules.extend(f"{x:.2f} {bottom:.2f} m {x:.2f} {block_top:.2f} l" for x in self.xs)

    def literal(self) -> str:
        return ("q\n" + "\n".join(self.fills) + "\n" + "\n".join(self.text) + "\nET"
                + f"\n0.4 w {_rgb(GRID_COLOUR)} RG\n" + "\n".join(self.rules) + "\nS\nQ")


_RGB: dict[object, str] = {}


def _rgb(colour) -> str:
    """``r g b`` operands of a colour (formatted once: a grid has few colours, many cells)."""
    if colour not in _RGB:
        _RGB[colour] = f"{colour.red:.3f} {colour.green:.3f} {colour.blue:.3f}"
    return _RGB[colour]


_BLACK = _rgb(colors.black)


# Each byte of the fonts' encoding as it goes inside a PDF string: printable ASCII as is, the
# delimiters ( ) \ and every other byte as an octal escape (the content stream stays ASCII).
_PDF_BYTES = [chr(b) if 32 <= b < 127 and b not in b"()\\" else f"\\{b:03o}" for b in range(256)]


def pdf_string(text: str) -> str:
    r"""``text`` in the fonts' encoding, escaped for a PDF string literal.

    >>> print(pdf_string("a(b)\\ é"))
    a\050b\051\134 \351
    """
    if _PRINTABLE_ASCII.fullmatch(text):
        # The same escapes as the byte table, without encoding (C sources are full of "(").
        if "\\" in text:
            text = text.replace("\\", "\\134")
        if "(" in text or ")" in text:
            text = text.replace("(", "\\050").replace(")", "\\051")
        return text
    return "".join(map(_PDF_BYTES.__getitem__, text.encode("cp1252", "replace")))


_PRINTABLE_ASCII = re.compile(r"[ -~]*")


# --------------------------------------------------------------------------- headings, contents

class Heading(Paragraph):
    """A section heading: an outline entry and a destination for the table of contents."""

    def __init__(self, text: str, style, *, level: int, key: str, title: str):
        super().__init__(text, style)
        self.level, self.key, self.title = level, key, title

    def draw(self):
        canvas = self.canv
        canvas.bookmarkHorizontal(self.key, 0, self.height + 2)
        canvas.addOutlineEntry(self.title, self.key, level=self.level, closed=self.level > 0)
        getattr(canvas, "heading_pages", {})[self.key] = canvas.getPageNumber()
        super().draw()


class Contents(Flowable):
    """The table of contents: titles known before rendering, page numbers filled in by
    :class:`NumberedCanvas` at save (so the document is laid out once)."""

    def __init__(self, entries: list[tuple[int, str, str]], size: float = 9, leading: float = 13):
        super().__init__()
        self.entries, self.size, self.leading = entries, size, leading

    def wrap(self, availWidth, availHeight):
        self.width = availWidth
        self.height = self.leading * len(self.entries)
        return self.width, self.height

    def split(self, availWidth, availHeight):
        fitting = int(availHeight // self.leading)
        if fitting >= len(self.entries):
            return [self]
        if fitting < 1:
            return []
        return [Contents(self.entries[:fitting], self.size, self.leading),
                Contents(self.entries[fitting:], self.size, self.leading)]

    def draw(self):
        canvas = self.canv
        y = self.height - self.size
        for level, title, key in self.entries:
            font = BOLD if level == 0 else FONT
            indent = 12 * level
            canvas.setFont(font, self.size)
            canvas.drawString(indent, y, title)
            leader_from = indent + text_width(title, font, self.size) + 4
            dots = int(max(0, self.width - 24 - leader_from) // text_width(". ", FONT, self.size))
            canvas.setFont(FONT, self.size)
            canvas.drawString(leader_from, y, ". " * dots)
            # The page number is a form filled in when the document is saved (its page is
            # not known yet); the whole line links to the heading.
            canvas.saveState()
            canvas.translate(self.width, y)
            canvas.doForm(page_form(key))
            canvas.restoreState()
            getattr(canvas, "contents_keys", set()).add(key)
            canvas.linkRect("", key, (indent, y - 2, self.width, y + self.size), relative=1,
                            thickness=0)
            y -= self.leading


def page_form(key: str) -> str:
    """Name of the form holding the page number of heading ``key``."""
    return "pcertpage" + "".join(c if c.isalnum() else "_" for c in key)


def contents_entries(story: list, max_level: int = 1) -> list[tuple[int, str, str]]:
    """(level, title, key) of every :class:`Heading` in ``story`` (also inside KeepTogether)."""
    entries = []
    for flowable in story:
        if isinstance(flowable, Heading):
            if flowable.level <= max_level:
                entries.append((flowable.level, flowable.title, flowable.key))
        elif isinstance(getattr(flowable, "_content", None), list):
            entries += contents_entries(flowable._content, max_level)
    return entries


_NUMBER_SLOT = "\x00"                     # where a footer's page number goes


class NumberedCanvas(Canvas):
    """Writes "Page 3 of 17" on every page, and at save fills in the numbers it could not know
    while laying out: the page count and the pages of the headings in the contents.

    Those numbers are PDF forms, drawn where needed and defined at save (a PDF may refer to a
    form defined later), so pages are written as they are laid out and every bookmark and link
    points at its real page.
    """

    footer_right_x = PAGE_WIDTH - MARGIN
    footer_y = FOOTER_Y
    TOTAL_FORM = "pcertpagecount"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.heading_pages: dict[str, int] = {}
        self.contents_keys: set[str] = set()
        # Footer operators by the width of "Page n of ": (before the count's form, after).
        self._footers: dict[float, tuple[list[str], list[str]]] = {}

    def showPage(self):
        text = f"Page {self._pageNumber} of "
        width = text_width(text, FONT, 7.5)
        # Every page ends in the same graphics state (each flowable restores what it changes):
        # a footer as wide as one drawn before gets its operators, with this page's number.
        if width in self._footers:
            before, after = self._footers[width]
            self._code.extend(op.replace(_NUMBER_SLOT, f"({text})") for op in before)
            self.doForm(self.TOTAL_FORM)        # drawn: it also notes the page uses the form
            self._code.extend(after)
        else:
            self._draw_footer(text, width)
        super().showPage()

    def _draw_footer(self, text: str, width: float) -> None:
        code = self._code
        start = len(code)
        self.saveState()
        self.setFont(FONT, 7.5)
        # "Page 3 of " right-aligned before room for the count (at most five digits).
        count_room = text_width("00000", FONT, 7.5)
        self.drawRightString(self.footer_right_x - count_room, self.footer_y, text)
        self.translate(self.footer_right_x - count_room, self.footer_y)
        form = len(code)
        self.doForm(self.TOTAL_FORM)
        self.restoreState()
        before, shown = code[start:form], f"({text})"
        if sum(op.count(shown) for op in before) == 1 and _NUMBER_SLOT not in "".join(before):
            self._footers[width] = ([op.replace(shown, _NUMBER_SLOT) for op in before],
                                    code[form + 1:])

    def save(self):
        total = self._pageNumber - 1
        self._number_form(self.TOTAL_FORM, str(total), right=False)
        for key in sorted(self.contents_keys | set(self.heading_pages)):
            self._number_form(page_form(key), str(self.heading_pages.get(key, "?")), right=True)
        super().save()

    def _number_form(self, name: str, text: str, *, right: bool) -> None:
        self.beginForm(name, lowerx=-60, lowery=-4, upperx=60, uppery=12)
        self.setFont(FONT, 9 if right else 7.5)
        if right:
            self.drawRightString(0, 0, text)
        else:
            self.drawString(0, 0, text)
        self.endForm()


class Listing(Preformatted):
    """Lines drawn literally (no markup) in a monospace style on a light background, split
    across pages; for console excerpts and procedure sources.

    Takes the lines as they are: Preformatted's own constructor would trim blank lines.
    """

    def __init__(self, lines: list[str], style):
        self.style, self.bulletText, self.lines = style, None, list(lines)

    def draw(self):
        self.canv.saveState()
        self.canv.setFillColor(colors.HexColor("#f4f4f4"))
        self.canv.rect(0, -2, self.width, self.height + 1, stroke=0, fill=1)
        self.canv.restoreState()
        super().draw()

    def split(self, availWidth, availHeight):
        fitting = int(availHeight // self.style.leading)
        if fitting < 1:
            return []
        return [Listing(self.lines[:fitting], self.style),
                Listing(self.lines[fitting:], self.style)]
