"""A plan folder: what a steward reviews and what `gridrecon plan apply` writes.

- plan.json: the manifest (plan id, run id, when, by whom, the config's sources with passwords
  masked, the template and its hash, the filters) with every change, the manual list, what was
  left out and what the next run is expected to show. `plan apply` reads this file only.
- changes.csv: one row per change, for review: the finding it resolves, old and new value.
- import-substation.csv, import-line.csv, import-transformer.csv: the changes laid out by the
  template's import sheets, exactly the rows `plan apply` stages (values as they go into the
  marketing system: no apostrophes added; look at them in changes.xlsx, not by opening the CSV
  in Excel).
- changes.xlsx: the same in one workbook: 概要 (summary), 变更清单 (changes), one sheet per
  import sheet, 人工处理 (manual), 未纳入 (left out).
- changes.sql: the staging tables and the changes as SQL for the target's dialect.
- manual.csv: the findings without a safe automatic fix, with what to do (UNLINKED with its
  candidate PMS records).

The folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..reports.sanitize import clean_value, csv_cell, looks_like_formula, sheet_name, xlsx_text
from .build import MANUAL_FINDING_FIELDS, PLAN_FORMAT, Plan
from .staging import render_sql, staging_row
from .template import Template

CHANGE_COLUMNS = [
    "change_no",
    "action",
    "asset_type",
    "sheet",
    "finding_id",
    "rule_id",
    "field",
    "pms_id",
    "marketing_id",
    "asset_name",
    "org_code",
    "marketing_value",
    "new_value",
    "parent_pms_id",
    "parent_marketing_id",
    "depends_on",
    "pms_values",
]
MANUAL_COLUMNS = [
    *(f for f in MANUAL_FINDING_FIELDS if f != "detail"),
    "why",
    "candidates",
    "detail",
]
NOT_PLANNED_COLUMNS = [
    "finding_id",
    "rule_id",
    "asset_type",
    "pms_id",
    "marketing_id",
    "asset_name",
    "field",
    "why",
]
# Staging columns gridrecon fills in when it writes, not part of the import files.
_WRITE_TIME = ("IMPORT_STATUS", "STAGED_AT")


def import_rows(plan: Plan, template: Template, asset_type: str) -> tuple[list[str], list[dict]]:
    """The import sheet of one asset type: its columns and one row per change."""
    sheet = template.sheets[asset_type]
    rows = [
        staging_row(change, plan.plan_id, plan.run_id, sheet)
        for change in plan.changes
        if change["asset_type"] == asset_type
    ]
    columns = [c for c in staging_row_columns(template, asset_type) if c not in _WRITE_TIME]
    return columns, rows


def staging_row_columns(template: Template, asset_type: str) -> list[str]:
    from .staging import staging_columns

    return [name for name, _, _ in staging_columns(template.sheets[asset_type])]


def _change_record(change: dict[str, Any]) -> dict[str, Any]:
    record = {c: change.get(c) for c in CHANGE_COLUMNS}
    record["pms_values"] = json.dumps(change["pms_values"], ensure_ascii=False, sort_keys=True)
    return record


def _manual_record(item: dict[str, Any]) -> dict[str, Any]:
    record = {c: item.get(c) for c in MANUAL_COLUMNS}
    record["candidates"] = "; ".join(
        f"{c['pms_id']} ({c['score']:.2f}{', already linked' if c['already_linked'] else ''})"
        for c in item.get("candidates", [])
    )
    return record


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def _csv(columns: list[str], rows: list[dict[str, Any]], exact: bool = False) -> bytes:
    """UTF-8 with a BOM (Excel shows the Chinese text). Review files neutralise formula-looking
    cells with an apostrophe; import files (`exact`) keep every value as it is."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        cells = [_text(clean_value(row.get(c))) for c in columns]
        writer.writerow(cells if exact else [csv_cell(c) for c in cells])
    return buffer.getvalue().encode("utf-8-sig")


def _xlsx(plan: Plan, template: Template) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(
        buffer,
        {"strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False},
    )
    header = book.add_format({"bold": True, "bg_color": "#DDE4EE", "border": 1})
    quoted = book.add_format({"quote_prefix": True})
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    bold = book.add_format({"bold": True})
    taken: set[str] = set()

    def table(title: str, columns: list[str], rows: list[dict[str, Any]]) -> None:
        sheet = book.add_worksheet(sheet_name(title, taken))
        widths = [len(c) + 2 for c in columns]
        for col, name in enumerate(columns):
            sheet.write_string(0, col, name, header)
        for r, row in enumerate(rows, start=1):
            for col, name in enumerate(columns):
                value = row.get(name)
                if value is None:
                    continue
                if isinstance(value, bool):
                    value = "true" if value else "false"
                if isinstance(value, (int, float)):
                    sheet.write_number(r, col, value)
                    shown = _text(value)
                elif hasattr(value, "isoformat"):
                    sheet.write_datetime(r, col, value, date)
                    shown = value.isoformat()
                else:
                    shown = xlsx_text(str(value))
                    sheet.write_string(r, col, shown, quoted if looks_like_formula(shown) else None)
                widths[col] = max(widths[col], min(60, len(shown) + 2))
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)
        sheet.freeze_panes(1, 0)
        sheet.autofilter(0, 0, max(len(rows), 1), max(len(columns) - 1, 0))

    summary = book.add_worksheet(sheet_name("概要", taken))
    summary.set_column(0, 0, 22)
    summary.set_column(1, 1, 70)
    facts = [
        ("plan_id", plan.plan_id),
        ("run_id", plan.run_id),
        ("run_as_of", plan.run_as_of),
        ("created_at", plan.created_at),
        ("created_by", plan.created_by),
        ("template", f"{plan.template['name']} ({plan.template['origin']})"),
        ("pms", plan.sources["pms"]),
        ("marketing", plan.sources["marketing"]),
        ("changes", len(plan.changes)),
        ("manual", len(plan.manual)),
        ("not_planned", len(plan.not_planned)),
        ("expected_resolved", len(plan.expected.get("resolved", []))),
        ("expected_new", len(plan.expected.get("new", []))),
    ]
    for r, (key, value) in enumerate(facts):
        summary.write_string(r, 0, key, bold)
        if isinstance(value, int):
            summary.write_number(r, 1, value)
        else:
            summary.write_string(r, 1, xlsx_text(str(value)))
    table("变更清单", CHANGE_COLUMNS, [_change_record(c) for c in plan.changes])
    for asset_type, sheet in template.sheets.items():
        columns, rows = import_rows(plan, template, asset_type)
        table(sheet.title, columns, rows)
    table("人工处理", MANUAL_COLUMNS, [_manual_record(m) for m in plan.manual])
    table("未纳入", NOT_PLANNED_COLUMNS, plan.not_planned)
    book.close()
    return buffer.getvalue()


def plan_json(plan: Plan) -> str:
    # The fields as they are (plain dicts and lists already): asdict's deep copy costs seconds
    # for a plan of 30,000 changes.
    data = {f.name: getattr(plan, f.name) for f in fields(Plan)}
    return json.dumps(data, ensure_ascii=False, indent=1, default=str) + "\n"


def write_plan(plan: Plan, template: Template, out: Path) -> Path:
    """Write the plan folder `out` (which must not exist, or be empty)."""
    out = out.resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(
            f"{out} exists and is not an empty folder: give --out a new folder for the plan"
        )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the folder {out.parent}: {exc.strerror}") from None
    files: dict[str, bytes] = {
        "plan.json": plan_json(plan).encode("utf-8"),
        "changes.csv": _csv(CHANGE_COLUMNS, [_change_record(c) for c in plan.changes]),
        "manual.csv": _csv(MANUAL_COLUMNS, [_manual_record(m) for m in plan.manual]),
        "changes.sql": render_sql(plan, template).encode("utf-8"),
        "changes.xlsx": _xlsx(plan, template),
    }
    for asset_type in template.sheets:
        columns, rows = import_rows(plan, template, asset_type)
        files[f"import-{asset_type}.csv"] = _csv(columns, rows, exact=True)
    temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        for name, data in files.items():
            (temporary / name).write_bytes(data)
        if out.exists():
            out.rmdir()  # empty, checked above
        temporary.rename(out)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return out


def load_plan(folder: Path) -> Plan:
    """The plan of a plan folder (or of its plan.json)."""
    path = folder / "plan.json" if folder.is_dir() else folder
    if not path.is_file():
        raise ConfigError(
            f"{folder} is not a plan folder (no plan.json); make one with "
            "`gridrecon plan --out DIR`"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read as a plan: {exc}") from None
    known = {f.name for f in fields(Plan)}
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT or not known <= set(data):
        raise ConfigError(
            f"{path} is not a plan of this gridrecon version (format {PLAN_FORMAT}); make the "
            "plan again with `gridrecon plan --out DIR`"
        )
    return Plan(**{k: data[k] for k in known})
