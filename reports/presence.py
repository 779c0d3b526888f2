"""The "Profile verdict" section of the PDF, from the manifest's `presence` section alone
(fields in docs/presence.md): whether the target provides every interface the profile
requires, what is missing, mistyped or out of bounds with the compiler's diagnostic, counts per
header and per unit of functionality, and the advisory namespace findings.

    >>> from reports.presence import presence_story
    >>> story = presence_story(bundle.manifest["presence"], styles)     # doctest: +SKIP

Everything shown comes from the bundle, so it is escaped like any other bundle text.
"""

from __future__ import annotations

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from reports.textsafe import markup

BODY_WIDTH = A4[0] - 2 * 18 * mm
ROWS_SHOWN = 300           # per list; the bundle's results hold every one
_HEADER = colors.HexColor("#d9d9d9")
_YES, _NO = colors.HexColor("#dff0d8"), colors.HexColor("#f2dede")


def _table(rows, widths, styles, shade=None) -> Table:
    data = [[Paragraph(markup(c), styles["cell_bold"]) for c in rows[0]]]
    for row in rows[1:]:
        data.append([Paragraph(markup(c), styles["cell_mono" if i == len(row) - 1 and len(row) > 2
                                                 else "cell"]) for i, c in enumerate(row)])
    table = Table(data, colWidths=widths, repeatRows=1, splitInRow=1, hAlign="LEFT")
    style = [("GRID", (0, 0), (-1, -1), 0.4, colors.grey), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("BACKGROUND", (0, 0), (-1, 0), _HEADER),
             ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]
    if shade:
        style += shade
    table.setStyle(TableStyle(style))
    return table


def _counts(counts: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted((counts or {}).items())) or "none"


def _cell(value) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _listing(title: str, items: list, columns, styles, widths) -> list:
    story = [Paragraph(markup(f"{title}: {len(items)}"), styles["h2"])]
    if not items:
        return story + [Paragraph("None.", styles["body"])]
    rows = [[c[0] for c in columns]]
    for item in items[:ROWS_SHOWN]:
        rows.append([_cell(item.get(key)) for _, key in columns])
    story.append(_table(rows, widths, styles))
    if len(items) > ROWS_SHOWN:
        story.append(Paragraph(markup(f"... and {len(items) - ROWS_SHOWN} more (results.jsonl "
                                      "has every one)."), styles["body"]))
    return story


def presence_story(presence: dict, styles: dict) -> list:
    """Flowables for the profile verdict; the caller adds the section heading."""
    counts = presence.get("counts") or {}
    provides = presence.get("provides_all")
    macros = presence.get("feature_macros") or {}
    tool = presence.get("toolchain") or {}
    verdict_text = ("YES: the target provides every interface the profile requires"
                    if provides else "NO: the target does not provide every interface the "
                                     "profile requires (see below)")
    summary = [
        ["Item", "Value"],
        ["Profile", f"{presence.get('label')} - {presence.get('title') or ''}"],
        ["Judged against", f"{presence.get('standard')}, C {presence.get('c_standard')}; "
                           f"base {' '.join(macros.get('base', []))}, "
                           f"XSI {' '.join(macros.get('xsi', []))}"],
        ["Multi-process target", "yes (MP interfaces required)" if presence.get("multi_process")
         else "no (MP interfaces not required)"],
        ["Headers' _POSIX_VERSION", str(presence.get("headers_posix_version"))
         + (" (older than the edition judged against)" if presence.get("headers_predate_edition")
            else "")],
        ["Verdict", verdict_text],
        ["Interfaces", f"{counts.get('interfaces')} required, {counts.get('interfaces_provided')} "
                       f"provided, {counts.get('interfaces_not_provided')} not provided"],
        ["Compile checks", f"{counts.get('expectations')} expectations: "
                           f"{_counts(counts.get('compile'))}"],
        ["Link checks", _counts(counts.get("link"))],
        ["Namespace (advisory)", _counts(counts.get("namespace"))],
        ["Compiler", f"{tool.get('version')} ({tool.get('command')}, sha256 {tool.get('sha256')}; "
                     f"C library sha256 {tool.get('libc_sha256')})"],
        ["Cache", f"{(presence.get('cache') or {}).get('hits', 0)} hits, "
                  f"{(presence.get('cache') or {}).get('misses', 0)} misses"],
    ]
    shade = [("BACKGROUND", (1, 5), (1, 5), _YES if provides else _NO)]
    story = [Paragraph(markup(
        "Presence checks compile every expectation of the profile's headers with the target's "
        "own compiler and link every required function and object with its libraries. Compile "
        "and link checks decide the verdict; namespace findings are advisory."), styles["body"]),
        Spacer(1, 3 * mm), _table(summary, [42 * mm, BODY_WIDTH - 42 * mm], styles, shade)]
    five = [32 * mm, 20 * mm, 15 * mm, 42 * mm, BODY_WIDTH - 109 * mm]
    story += _listing("Missing", presence.get("missing") or [],
                      [("Name", "name"), ("Header", "header"), ("Check", "check"),
                       ("Test case", "test_case"), ("Diagnostic", "diagnostic")], styles, five)
    story += _listing("Mistyped", presence.get("mistyped") or [],
                      [("Name", "name"), ("Header", "header"), ("Stage", "stage"),
                       ("Test case", "test_case"), ("Diagnostic", "diagnostic")], styles, five)
    story += _listing("Out of bounds", presence.get("out_of_bounds") or [],
                      [("Name", "name"), ("Header", "header"), ("Expected", "expected"),
                       ("Test case", "test_case"), ("Diagnostic", "diagnostic")], styles, five)
    refused = [u for u in presence.get("unsupported") or [] if not u.get("accepted")]
    four = [32 * mm, 20 * mm, 42 * mm, BODY_WIDTH - 94 * mm]
    story += _listing("Unsupported, not acceptable for this profile", refused,
                      [("Name", "name"), ("Header", "header"), ("Test case", "test_case"),
                       ("Reason", "reason")], styles, four)
    story += _listing("Unresolved", presence.get("unresolved") or [],
                      [("Name", "name"), ("Header", "header"), ("Test case", "test_case"),
                       ("Reason", "reason")], styles, four)
    accepted = sum(1 for u in presence.get("unsupported") or [] if u.get("accepted"))
    story.append(Paragraph(markup(f"{accepted} UNSUPPORTED results are acceptable for this "
                                  "profile (optional items, or options the profile does not "
                                  "require)."), styles["body"]))

    story.append(Paragraph("Per header", styles["h2"]))
    keys = ("pass", "fail", "unsupported", "unresolved", "untested")
    rows = [["Header", *keys]]
    for header, c in sorted((presence.get("per_header") or {}).items()):
        rows.append([header, *(str(c.get(k, 0)) for k in keys)])
    story.append(_table(rows, [50 * mm] + [(BODY_WIDTH - 50 * mm) / len(keys)] * len(keys), styles))

    story.append(Paragraph("Per unit of functionality (POSIX option group), interfaces",
                           styles["h2"]))
    states = ("provided", "not provided", "unsupported", "unresolved")
    rows = [["Unit", *states]]
    for unit, c in sorted((presence.get("per_unit") or {}).items()):
        rows.append([unit, *(str(c.get(k, 0)) for k in states)])
    story.append(_table(rows, [70 * mm] + [(BODY_WIDTH - 70 * mm) / len(states)] * len(states),
                        styles))

    namespace = presence.get("namespace") or {}
    story += _listing("Namespace findings (advisory)", namespace.get("headers") or [],
                      [("Header", "header"), ("Level", "level"), ("Count", "count"),
                       ("Names", "names")], styles, [35 * mm, 15 * mm, 15 * mm,
                                                     BODY_WIDTH - 65 * mm])
    return story
