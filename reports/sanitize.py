"""Hostile data shown as data: the one place every report cleans what it got from the sources.

Names, values and details come from two databases that anyone with a data-entry screen can
write to, so every report treats them as hostile:

- **Control characters** are removed from every text (all formats, JSON included, so the formats
  agree): C0 controls except tab and newline, DEL, C1 controls, the bidirectional overrides that
  can make a name display as something else (U+202A–U+202E, U+2066–U+2069), and the
  non-characters U+FFFE/U+FFFF that XML cannot hold. A carriage return becomes a newline; a lone
  surrogate (undecodable input) becomes U+FFFD.
- **Formula injection** (a cell starting with `=`, `+`, `-`, `@`, tab, carriage return or
  newline, or their full-width forms that Chinese input methods type, is run as a formula by
  Excel or LibreOffice): in findings.csv such a value gets a leading apostrophe `'`, the OWASP
  recommendation, because CSV has no cell types. In findings.xlsx the text is written unchanged as
  a string cell (never a formula) with Excel's "quote prefix" style, which is how Excel itself
  stores text typed as `'=...`: the cell shows the exact text and stays text when edited. Plain
  numbers such as `-100` are data, not formulas, and are left alone.
- **HTML**: templates are rendered with autoescaping on, and data for the page's script is
  embedded as JSON with `<`, `>`, `&`, U+2028 and U+2029 escaped, so neither `</script>` nor
  `<!--` can end the script block. The page's script writes data with `textContent` only.
- **Excel limits**: a cell holds at most 32,767 characters; sheet names are at most 31
  characters, unique ignoring case, without `[]:*?/\\` and not starting or ending with `'`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import pandas as pd
from markupsafe import Markup

_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff]")
_NEWLINES = re.compile("\r\n?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_NEEDS_CLEANING = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ufffe\uffff\ud800-\udfff]"
)

FORMULA_STARTS = frozenset("=+-@\t\r\n＝＋－＠")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

XLSX_CELL_LIMIT = 32_767
SHEET_NAME_LIMIT = 31
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def clean_text(text: str) -> str:
    """Text without control characters (tab and newline kept)."""
    if not _NEEDS_CLEANING.search(text):  # the common case: nothing to do, no copies
        return text
    text = _NEWLINES.sub("\n", text)
    text = _SURROGATE.sub("\ufffd", text)
    return _CONTROL.sub("", text)


def clean_value(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


def clean_frame(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """A copy of frame with the text of `columns` (default: every text column) cleaned."""
    frame = frame.copy()
    names = list(columns) if columns is not None else list(frame.columns)
    for name in names:
        column = frame[name]
        if column.dtype == object or pd.api.types.is_string_dtype(column.dtype):
            frame[name] = column.map(clean_value, na_action="ignore")
    return frame


def looks_like_formula(text: str) -> bool:
    return bool(text) and text[0] in FORMULA_STARTS and not _PLAIN_NUMBER.fullmatch(text)


def neutralise_formula(text: str) -> str:
    """A formula-looking value prefixed with an apostrophe (CSV has no cell types)."""
    return "'" + text if looks_like_formula(text) else text


def csv_cell(text: str) -> str:
    """Text for a CSV cell: cleaned and neutralised."""
    return neutralise_formula(clean_text(text))


def xlsx_text(text: str) -> str:
    """Text for an XLSX string cell: cleaned and within Excel's cell limit."""
    text = clean_text(text)
    if len(text) > XLSX_CELL_LIMIT:
        text = text[: XLSX_CELL_LIMIT - 1] + "…"
    return text


def script_json(data: Any) -> Markup:
    """JSON safe to place inside <script type="application/json"> in an HTML page."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )
    return Markup(text)


def sheet_name(wanted: str, taken: set[str]) -> str:
    """A valid, unused Excel sheet name close to `wanted`; adds it (case-folded) to `taken`."""
    base = _SHEET_FORBIDDEN.sub("_", clean_text(wanted)).replace("\n", " ").replace("\t", " ")
    base = base.strip().strip("'").strip() or "_"
    name = base[:SHEET_NAME_LIMIT]
    number = 1
    while name.casefold() in taken or name.casefold() == "history":  # "History" is reserved
        number += 1
        suffix = f" ({number})"
        name = base[: SHEET_NAME_LIMIT - len(suffix)].rstrip().rstrip("'") + suffix
    taken.add(name.casefold())
    return name
