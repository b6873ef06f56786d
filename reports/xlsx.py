"""findings.xlsx: the workbook data stewards work down, rendered from a RunResult with XlsxWriter.

Sheets, in order: a summary (the run, open findings per rule and per org, headline metrics), then
the work queues — one sheet per rule, or per org with by="org" — holding the open, unwaived
findings; then the findings this run resolved, the waived findings, and every metric per org.
Every list sheet has a frozen header, an autofilter, column widths fitted to its content and real
Excel dates. The workbook is written in XlsxWriter's constant_memory mode (row by row, to
temporary files), so 100,000 findings do not need 100,000 rows of cell objects in memory.
Text is written with write_string only, never interpreted as a formula (see sanitize.py).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

from ..checks.result import ALL, OPEN_STATES, RunResult, tallies
from ..checks.settings import RULES, SEVERITY_RANK
from ..connectors.mapping import ASSET_TYPES
from ..core.errors import GridreconError
from .labels import Labels, labels, org_tree
from .sanitize import clean_frame, looks_like_formula, sheet_name, xlsx_text

GROUPINGS = ("rule", "org")
# The columns of every finding list: (key, kind); kinds: text, label, date
LIST_COLUMNS = [
    ("rule", "label"),
    ("rule_id", "text"),
    ("severity", "label"),
    ("state", "label"),
    ("asset_type", "label"),
    ("asset_name", "text"),
    ("org_code", "text"),
    ("org_name", "text"),
    ("field", "label"),
    ("pms_value", "text"),
    ("marketing_value", "text"),
    ("detail", "text"),
    ("pms_id", "text"),
    ("marketing_id", "text"),
    ("owner", "text"),
    ("first_seen", "date"),
    ("last_seen", "date"),
    ("finding_id", "text"),
]
WAIVER_COLUMNS = [("waiver_reason", "text"), ("waived_by", "text"), ("waiver_expires", "date")]
METRIC_COLUMNS = [
    "pms_assets", "linked", "linkage_rate", "pairs", "consistent_pairs", "consistency_rate",
    "due", "on_time", "timeliness_rate",
]  # fmt: skip
RATES = ("linkage_rate", "consistency_rate", "timeliness_rate")
WIDTH_SAMPLE = 500  # rows looked at to size a column
MAX_WIDTH = 60


def render_xlsx(result: RunResult, by: str = "rule", lang: str = "zh") -> bytes:
    if by not in GROUPINGS:
        raise GridreconError(f"unknown grouping {by!r} for findings.xlsx; use one of: rule, org")
    t = labels(lang)
    names, parents = org_tree(result.orgs)
    rows = _present(result, t, names).reset_index(drop=True)  # labels are row positions
    apart = rows["waived"].astype(bool) & rows["state"].isin(OPEN_STATES)
    active = rows["state"].isin(OPEN_STATES) & ~apart
    queues = _queues(rows[active], by, t, names, parents)

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(
        buffer,
        {
            "constant_memory": True,
            # Belt and braces: nothing is written with write(), but never guess a cell's type.
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "strings_to_numbers": False,
        },
    )
    formats = _formats(book)
    taken: set[str] = set()
    summary_name = sheet_name(t.text("summary_sheet"), taken)
    queue_names = [(key, title, sheet_name(title, taken), at) for key, title, at in queues]
    resolved_name = sheet_name(t.text("resolved_sheet"), taken)
    waived_name = sheet_name(t.text("waived_sheet"), taken)
    metrics_name = sheet_name(t.text("metrics_sheet"), taken)

    links = {key: name for key, _, name, _ in queue_names}
    _summary(book.add_worksheet(summary_name), result, rows, by, links, t, names, formats)
    extra = [c for c in WAIVER_COLUMNS if c[0] in rows.columns]
    cells = _cells(rows, LIST_COLUMNS + extra, t, result.started_at.tzinfo)
    for _, _, name, at in queue_names:
        _finding_list(book.add_worksheet(name), at, LIST_COLUMNS, cells, t, formats)
    resolved = _positions(rows["state"] == "resolved")
    _finding_list(book.add_worksheet(resolved_name), resolved, LIST_COLUMNS, cells, t, formats)
    _finding_list(
        book.add_worksheet(waived_name), _positions(apart), LIST_COLUMNS + extra, cells, t, formats
    )
    _metrics(book.add_worksheet(metrics_name), result.metrics, t, names, formats)
    book.close()
    return buffer.getvalue()


def _formats(book: xlsxwriter.Workbook) -> dict[str, Any]:
    return {
        "title": book.add_format({"bold": True, "font_size": 14}),
        "header": book.add_format(
            {"bold": True, "bg_color": "#DDE4EE", "border": 1, "text_wrap": True, "valign": "top"}
        ),
        "bold": book.add_format({"bold": True}),
        "date": book.add_format({"num_format": "yyyy-mm-dd"}),
        "datetime": book.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
        "pct": book.add_format({"num_format": "0.00%"}),
        "int": book.add_format({"num_format": "#,##0"}),
        # Excel's own marker for "text that looks like a formula": shown as is, stays text.
        "quoted": book.add_format({"quote_prefix": True}),
        "link": book.add_format({"font_color": "#0B5CAB", "underline": 1}),
    }


def _present(result: RunResult, t: Labels, names: dict[str, str]) -> pd.DataFrame:
    """The findings as stewards read them: cleaned text, labels, org names."""
    frame = clean_frame(result.findings)
    frame["rule"] = frame["rule_id"].map(t.rule)
    frame["org_name"] = frame["org_code"].map(lambda c: names.get(c, c), na_action="ignore")
    status = frame["field"] == "status"
    for side in ("pms_value", "marketing_value"):
        values = frame.loc[status, side]
        # only where there is a value: mapping nothing but nulls gives a float column, which
        # pandas refuses to write into a text column
        if values.notna().any():
            frame.loc[status, side] = values.map(lambda v: t.value("status", v))
    return frame


def _queues(
    frame: pd.DataFrame, by: str, t: Labels, names: dict[str, str], parents: dict[str, str]
) -> list[tuple[str, str, list[int]]]:
    """(key, sheet title, the findings' row positions) per work queue, in a steward's order."""
    rank = {rule: i for i, rule in enumerate(RULES)}
    if by == "rule":
        frame = frame.sort_values(
            ["org_code", "asset_type", "asset_name", "finding_id"],
            na_position="last",
            kind="stable",
        )
        keys = sorted(frame["rule_id"].unique(), key=lambda r: (rank.get(r, len(rank)), r))
        queued = _grouped(frame["rule_id"].tolist(), frame.index.tolist())
        return [(r, t.rule_with_id(r), queued.get(r, [])) for r in keys]
    frame = frame.assign(
        _severity=-frame["severity"].map(SEVERITY_RANK).fillna(-1),
        _rule=frame["rule_id"].map(lambda r: rank.get(r, len(rank))),
    ).sort_values(["_severity", "_rule", "asset_type", "asset_name", "finding_id"], kind="stable")
    queued = _grouped(frame["org_code"].fillna("").tolist(), frame.index.tolist())
    order = sorted(queued, key=lambda c: (c == "", _tree_key(c, parents)))
    return [(c, names.get(c, c) if c else t.text("no_org_sheet"), queued[c]) for c in order]


def _grouped(keys: list[Any], positions: list[int]) -> dict[Any, list[int]]:
    """The positions per key, each list in the order given."""
    groups: dict[Any, list[int]] = {}
    for key, position in zip(keys, positions, strict=True):
        groups.setdefault(key, []).append(position)
    return groups


def _positions(mask: pd.Series) -> list[int]:
    return mask.to_numpy().nonzero()[0].tolist()


def _tree_key(code: str, parents: dict[str, str]) -> tuple[str, ...]:
    """Sorts a city right before its counties."""
    chain = [code]
    while chain[-1] in parents and parents[chain[-1]] not in chain:
        chain.append(parents[chain[-1]])
    return tuple(reversed(chain))


def _write_text(sheet: Worksheet, row: int, col: int, value: Any, formats: dict[str, Any]) -> None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return
    text = xlsx_text(str(value))
    if not text:
        return
    if looks_like_formula(text):
        sheet.write_string(row, col, text, formats["quoted"])
    else:
        sheet.write_string(row, col, text)


def _cells(
    rows: pd.DataFrame, columns: list[tuple[str, str]], t: Labels, zone: dt.tzinfo | None
) -> dict[str, tuple[list[Any], list[bool] | None]]:
    """Every finding's cell per column, prepared once for every list sheet, so that the per-cell
    loop (100,000s of cells) does little: (values, whether each text looks like a formula), or
    (local datetimes, None) for a date column. None where a cell stays empty."""
    cells: dict[str, tuple[list[Any], list[bool] | None]] = {}
    for key, kind in columns:
        values = rows[key] if key in rows.columns else pd.Series(None, index=rows.index)
        if kind == "date":
            cells[key] = (_local_times(values, zone), None)
            continue
        if kind == "label":
            values = values.map(_labeller(key, t), na_action="ignore")
        texts = [xlsx_text(str(v)) or None if _present_value(v) else None for v in values]
        cells[key] = (texts, [text is not None and looks_like_formula(text) for text in texts])
    return cells


def _finding_list(
    sheet: Worksheet,
    positions: list[int],
    columns: list[tuple[str, str]],
    cells: dict[str, tuple[list[Any], list[bool] | None]],
    t: Labels,
    formats: dict[str, Any],
) -> None:
    """The findings at these row positions, one per row, in the order given."""
    headers = [t.column(key) for key, _ in columns]
    chosen = [cells[key] for key, _ in columns]
    for col, (header, (_, kind)) in enumerate(zip(headers, columns, strict=True)):
        values = chosen[col][0]
        sample = [values[at] for at in positions[:WIDTH_SAMPLE]]
        width = 17 if kind == "date" else _width([header, *sample])
        sheet.set_column(col, col, width)
    for col, header in enumerate(headers):
        sheet.write_string(0, col, header, formats["header"])
    plain, formula, when = None, formats["quoted"], formats["datetime"]
    for row, at in enumerate(positions, start=1):
        for col, (values, flags) in enumerate(chosen):
            value = values[at]
            if value is None:
                continue
            if flags is None:
                sheet.write_datetime(row, col, value, when)
            else:
                sheet.write_string(row, col, value, formula if flags[at] else plain)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(positions), 1), len(columns) - 1)
    # Ids and values are text on purpose; do not flag "number stored as text" on every row.
    sheet.ignore_errors({"number_stored_as_text": "A1:XFD1048576"})


def _present_value(value: Any) -> bool:
    return value is not None and (isinstance(value, str) or not pd.isna(value))


def _labeller(key: str, t: Labels) -> Callable[[str], str]:
    return {
        "rule": lambda v: v,  # already labelled in _present
        "severity": t.severity,
        "state": t.state,
        "asset_type": t.asset_type,
        "field": t.field,
    }[key]


def _local_times(values: pd.Series, zone: dt.tzinfo | None) -> list[dt.datetime | None]:
    """ISO timestamps as naive local datetimes (Excel has no time zones); None where missing."""
    if values.isna().all():
        return [None] * len(values)
    parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    if zone is not None:
        parsed = parsed.dt.tz_convert(zone)
    parsed = parsed.dt.tz_localize(None)
    return [None if pd.isna(v) else v.to_pydatetime() for v in parsed]


def _width(values: list[Any]) -> float:
    """A column width in Excel's units, CJK characters counting double.

    Approximated from the UTF-8 length (CJK characters take 3 bytes, ASCII 1), which is C-fast.
    """
    widest = 0
    for value in values:
        if value is None:
            continue
        for line in str(value).split("\n"):
            line = line[: MAX_WIDTH * 2]
            widest = max(widest, (len(line.encode("utf-8")) + len(line)) // 2)
    return min(max(widest + 2, 8), MAX_WIDTH)


def _summary(
    sheet: Worksheet,
    result: RunResult,
    rows: pd.DataFrame,
    by: str,
    links: dict[str, str],
    t: Labels,
    names: dict[str, str],
    formats: dict[str, Any],
) -> None:
    sheet.set_column(0, 0, 30)
    sheet.set_column(1, 1, 22)
    sheet.set_column(2, 12, 11)
    sheet.write_string(0, 0, t.text("title"), formats["title"])
    row = 2
    info = [
        (t.text("run_id"), result.run_id),
        (t.text("as_of"), result.as_of),
        (t.text("started_at"), result.started_at),
        (t.text("previous_run"), result.previous_run_id or "—"),
        (t.text("status"), result.status),
        (t.text("config"), result.config_fingerprint),
    ]
    for label, value in info:
        sheet.write_string(row, 0, label, formats["bold"])
        if isinstance(value, dt.datetime):
            local = value.replace(tzinfo=None)
            sheet.write_datetime(row, 1, local, formats["datetime"])
        elif isinstance(value, dt.date):
            sheet.write_datetime(row, 1, dt.datetime.combine(value, dt.time()), formats["date"])
        else:
            _write_text(sheet, row, 1, value, formats)
        row += 1
    for note in result.notes:
        _write_text(sheet, row, 0, note, formats)
        row += 1

    # As in summary.json: waived findings that would be open are counted apart.
    by_rule, by_org = tallies(rows)
    row += 1
    sheet.write_string(row, 0, t.text("counts_by_rule"), formats["title"])
    row += 1
    headers = [t.column("rule"), t.column("rule_id"), t.column("severity"),
               t.text("open_total"), t.state("new"), t.state("reopened"), t.state("resolved"),
               t.column("waived"), *[t.asset_type(a) for a in ASSET_TYPES]]  # fmt: skip
    for col, header in enumerate(headers):
        sheet.write_string(row, col, header, formats["header"])
    row += 1
    severities = result.settings.get("rules", {})
    rules = [*RULES, *sorted(set(rows["rule_id"].dropna()) - set(RULES))]
    for rule in [*rules, ALL]:
        if rule is ALL:
            sheet.write_string(row, 0, t.text("total"), formats["bold"])
        else:
            if by == "rule" and rule in links:
                sheet.write_url(row, 0, _internal(links[rule]), formats["link"], t.rule(rule))
            else:
                sheet.write_string(row, 0, t.rule(rule))
            sheet.write_string(row, 1, rule)
            sheet.write_string(row, 2, t.severity(severities.get(rule, {}).get("severity", "")))
        figures = [
            by_rule[rule, "open"],
            by_rule[rule, "state", "new"],
            by_rule[rule, "state", "reopened"],
            by_rule[rule, "state", "resolved"],
            by_rule[rule, "waived"],
            *[by_rule[rule, "type", a] for a in ASSET_TYPES],
        ]
        for col, figure in enumerate(figures, start=3):
            sheet.write_number(row, col, figure, formats["int"])
        row += 1
    row += 1

    sheet.write_string(
        row, 0, t.text("findings_open") + " · " + t.column("org_name"), formats["title"]
    )
    row += 1
    org_headers = [t.column("org_name"), t.column("org_code"), t.text("open_total"),
                   *[t.severity(s) for s in ("error", "warning", "info")]]  # fmt: skip
    for col, header in enumerate(org_headers):
        sheet.write_string(row, col, header, formats["header"])
    row += 1
    codes = {code for code, _ in by_org}
    for code in sorted(codes, key=lambda c: (c == "", c)):
        title = names.get(code, code) if code else t.text("no_org_sheet")
        if by == "org" and code in links:
            sheet.write_url(row, 0, _internal(links[code]), formats["link"], xlsx_text(title))
        else:
            _write_text(sheet, row, 0, title, formats)
        _write_text(sheet, row, 1, code, formats)
        sheet.write_number(row, 2, by_org[code, "open"], formats["int"])
        for col, severity in enumerate(("error", "warning", "info"), start=3):
            sheet.write_number(row, col, by_org[code, severity], formats["int"])
        row += 1
    row += 1

    sheet.write_string(row, 0, t.text("headline"), formats["title"])
    row += 1
    sheet.write_string(row, 0, t.column("asset_type"), formats["header"])
    for col, rate in enumerate(RATES, start=1):
        sheet.write_string(row, col, t.metric(rate), formats["header"])
    row += 1
    total = result.metrics[result.metrics["scope"] == "all"].set_index("asset_type")
    for asset_type in [a for a in ASSET_TYPES if a in total.index]:
        sheet.write_string(row, 0, t.asset_type(asset_type))
        for col, rate in enumerate(RATES, start=1):
            _write_rate(sheet, row, col, total.loc[asset_type, rate], formats)
        row += 1


def _internal(name: str) -> str:
    return "internal:'" + name.replace("'", "''") + "'!A1"


def _write_rate(sheet: Worksheet, row: int, col: int, value: Any, formats: dict[str, Any]) -> None:
    if value is not None and not pd.isna(value):
        sheet.write_number(row, col, float(value), formats["pct"])


def _metrics(
    sheet: Worksheet,
    metrics: pd.DataFrame,
    t: Labels,
    names: dict[str, str],
    formats: dict[str, Any],
) -> None:
    """Every metric row (per asset type, org and scope), as numbers a steward can pivot."""
    headers = [t.column("asset_type"), t.column("org_code"), t.column("org_name"), t.text("scope"),
               *[t.metric(m) for m in METRIC_COLUMNS]]  # fmt: skip
    widths = [12, 12, 28, 10, *[12] * len(METRIC_COLUMNS)]
    for col, width in enumerate(widths):
        sheet.set_column(col, col, width)
    for col, header in enumerate(headers):
        sheet.write_string(0, col, header, formats["header"])
    scopes = {
        "all": t.text("scope_all"),
        "rollup": t.text("scope_rollup"),
        "org": t.text("scope_org"),
    }
    for row, record in enumerate(metrics.to_dict(orient="records"), start=1):
        code = record["org_code"]
        sheet.write_string(row, 0, t.asset_type(record["asset_type"]))
        _write_text(sheet, row, 1, code, formats)
        name = (
            t.text("all_orgs")
            if code == "*"
            else names.get(code, t.text("unknown_org") if code == "?" else code)
        )
        _write_text(sheet, row, 2, name, formats)
        sheet.write_string(row, 3, scopes.get(record["scope"], record["scope"]))
        for col, metric in enumerate(METRIC_COLUMNS, start=4):
            if metric in RATES:
                _write_rate(sheet, row, col, record[metric], formats)
            else:
                sheet.write_number(row, col, int(record[metric]), formats["int"])
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, max(len(metrics), 1), len(headers) - 1)
