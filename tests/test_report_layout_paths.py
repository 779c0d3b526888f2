"""The PDF's shorter paths write what the plain ones wrote: a grid cell kept as the operators of
its runs of lines draws what a (line, font) pair per line drew, also when its row is cut between
pages; the running header and the page footers, drawn once and copied after, are the bytes
drawn on every page. Reports are evidence: the same bundle must give the same bytes."""

from __future__ import annotations

import io
import re
from itertools import groupby

from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

from reports import pdf, pdf_layout
from reports.pdf_layout import (HEADER_BACKGROUND, MONO, PAD, Cell, Grid, NumberedCanvas, _GridOps,
                                cell, group_row, lines_cell)

_WORDS = st.sampled_from(["open", "read()", "EBADF", "a\\b", "x" * 70, "é€", "中", "", " "])
_TEXT = st.lists(_WORDS, max_size=12).map(" ".join) | st.lists(_WORDS, max_size=6).map("\n".join)
_COLOURS = st.sampled_from([None, colors.red, colors.HexColor("#b35900")])


@st.composite
def _cells(draw) -> Cell:
    if draw(st.booleans()):
        return lines_cell([(draw(_TEXT), draw(st.booleans()))
                           for _ in range(draw(st.integers(0, 4)))],
                          background=draw(_COLOURS))
    style = draw(st.sampled_from(["bold", "italic", "mono", "plain"]))
    return cell(draw(_TEXT), bold=style == "bold", italic=style == "italic",
                mono=style == "mono", colour=draw(_COLOURS), background=draw(_COLOURS))


class _Document:
    def getInternalFontName(self, font: str) -> str:
        return "/" + font.replace("-", "")


class _Canvas:
    _doc = _Document()


def _rgb(colour) -> str:
    return f"{colour.red:.3f} {colour.green:.3f} {colour.blue:.3f}"


def _pairs(grid: Grid, cells: list[Cell]) -> list[list[tuple[str, str]]]:
    """Each column's lines as (line, font) pairs, wrapped as the grid wraps them."""
    return [[(line, font) for text, font in item.parts
             for line in pdf_layout._wrapped(text, font, grid.size - 0.5 if item.mono
                                             else grid.size, width - 2 * PAD)]
            for width, item in zip(grid.widths, cells)]


class _PlainOps:
    """The operators of drawn rows, written from (line, font) pairs one row after another, as
    reports/pdf_layout.py wrote them before it kept a cell as the operators of its runs."""

    def __init__(self, grid: Grid):
        self.grid, self.font, self.rgb = grid, None, None
        self.xs = [sum(grid.widths[:column]) for column in range(len(grid.widths) + 1)]
        self.fills, self.text, self.rules = [], ["BT", f"{grid.leading:.2f} TL"], []

    def row(self, pairs, colours, backgrounds, height: float, top: float) -> None:
        bottom, size = top - height, self.grid.size
        for column, background in enumerate(backgrounds):
            if background is not None:
                self.fills.append(f"{_rgb(background)} rg {self.xs[column]:.2f} {bottom:.2f} "
                                  f"{self.grid.widths[column]:.2f} {height:.2f} re f")
        self.rules.append(f"0 {bottom:.2f} m {self.xs[-1]:.2f} {bottom:.2f} l")
        for column, lines in enumerate(pairs):
            rgb = _rgb(colours[column] or colors.black)
            if rgb != self.rgb:
                self.text.append(f"{rgb} rg")
                self.rgb = rgb
            if not lines:
                continue
            self.text.append(f"1 0 0 1 {self.xs[column] + PAD:.2f} {top - PAD - size:.2f} Tm")
            move = "("
            for font, run in groupby(lines, key=lambda pair: pair[1]):
                if font != self.font:
                    self.text.append(f"{_Document().getInternalFontName(font)} "
                                     f"{size - 0.5 if font == MONO else size:.2f} Tf")
                    self.font = font
                self.text.append(move + ") Tj\nT* (".join(line for line, _ in run) + ") Tj")
                move = "T* ("


@settings(max_examples=150, deadline=None)
@given(widths=st.lists(st.sampled_from([24.0, 60.0, 118.0, 190.5]), min_size=1, max_size=4),
       data=st.data(), cut=st.integers(1, 6), heading=st.booleans())
def test_grid_rows_draw_the_operators_of_a_line_per_pair(widths, data, cut, heading):
    rows = [[data.draw(_cells()) for _ in widths] for _ in range(data.draw(st.integers(1, 4)))]
    grid = Grid(widths, [group_row(rows[0])] + rows[1:] if heading else rows)
    grid.canv = _Canvas()
    plain = _PlainOps(grid)
    ops = _GridOps(grid, plain.xs)
    top = 700.0
    for index, (row, cells) in enumerate(zip(grid.rows, rows)):
        shade = HEADER_BACKGROUND if heading and index == 0 else None
        colours = [item.colour for item in cells]
        backgrounds = [item.background or shade for item in cells]
        pairs = _pairs(grid, cells)
        if row.kind == "row":           # cut between its lines, as at the foot of a page
            pieces = list(zip(grid._cut(row, cut), ([lines[:cut] for lines in pairs],
                                                     [lines[cut:] for lines in pairs])))
        else:
            pieces = [(row, pairs)]
        for piece, lines in pieces:
            height = max(1, *(len(column) for column in lines)) * grid.leading + 2 * PAD
            assert piece.height == height
            ops.row(piece, top, top - height)
            plain.row(lines, colours, backgrounds, height, top)
            top -= height
    assert (ops.fills, ops.text, ops.rules) == (plain.fills, plain.text, plain.rules)


# --------------------------------------------------------------------------- page furniture

_RUN = ("20261126T160000Z-linux-x86_64-3fa906", "target linux-x86_64, profile base")


class _FootersDrawnInFull(NumberedCanvas):
    def showPage(self):
        self._footers.clear()
        super().showPage()


def _story() -> list:
    styles, story = pdf._styles(), []
    for number in range(105):               # page numbers of one, two and three digits
        story += [Paragraph(f"<font color='red'>Page</font> <b>{number}</b> <i>( text )</i>",
                            styles["h2"]),
                  Grid([120.0, 300.0], [[cell(f"TC-{number}", bold=True),
                                         cell("mono (x)", mono=True, colour=colors.red)]],
                       header=[cell("Test case", bold=True), cell("Value", bold=True)]),
                  PageBreak()]
    return story


def _pdf(*, copied: bool) -> bytes:
    """A document with the reports' running header and page footers; ``copied=False`` draws
    them in full on every page."""
    if copied:
        decorate, canvas = pdf._page_decoration(*_RUN), NumberedCanvas
    else:
        def decorate(canvas, doc):          # a new one for each page: nothing to copy from
            pdf._page_decoration(*_RUN)(canvas, doc)
        canvas = _FootersDrawnInFull
    buffer = io.BytesIO()
    SimpleDocTemplate(buffer, pagesize=A4, invariant=1).build(
        _story(), onFirstPage=decorate, onLaterPages=decorate, canvasmaker=canvas)
    return buffer.getvalue()


def test_header_and_footers_copied_are_those_drawn_on_every_page():
    copied = _pdf(copied=True)
    assert copied == _pdf(copied=False)
    pages = PdfReader(io.BytesIO(copied)).pages
    assert len(pages) > 100
    for number in (1, 9, 10, 99, 100, len(pages)):
        text = re.sub(r"\s+", " ", pages[number - 1].extract_text())
        assert f"Page {number} of {len(pages)}" in text and _RUN[0] in text and _RUN[1] in text
