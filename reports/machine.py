"""findings.json, findings.csv and summary.json (SPEC §7, §8), all from one RunResult.

findings.json is a JSON array of finding objects; findings.csv has the same fields as columns,
UTF-8 with a BOM so Excel opens the Chinese text correctly. summary.json says what the run read,
its counts and metrics, and the settings it ran with. Text is cleaned of control characters in
both, and a CSV cell that Excel would run as a formula starts with an apostrophe (sanitize.py).
"""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from ..checks.findings import FINDING_FIELDS
from ..checks.result import RunResult
from .sanitize import clean_value, neutralise_formula


def finding_records(result: RunResult) -> list[dict[str, Any]]:
    frame = result.findings[FINDING_FIELDS]
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for record in records:
        for key, value in record.items():
            record[key] = clean_value(value)
        record["waived"] = bool(record["waived"])
    return records


def findings_json(result: RunResult) -> str:
    return json.dumps(finding_records(result), ensure_ascii=False, indent=1) + "\n"


def findings_csv(result: RunResult) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(FINDING_FIELDS)
    for record in finding_records(result):
        writer.writerow(["" if record[f] is None else _cell(record[f]) for f in FINDING_FIELDS])
    return buffer.getvalue().encode("utf-8-sig")


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise_formula(str(value))  # finding_records cleaned it already


def summary(result: RunResult) -> dict[str, Any]:
    metrics = result.metrics.astype(object).where(result.metrics.notna(), None)
    return {
        "run_id": result.run_id,
        "status": result.status,
        "exit_code": result.exit_code,
        "as_of": result.as_of.isoformat(),
        "started_at": result.started_at.isoformat(),
        "finished_at": result.finished_at.isoformat() if result.finished_at else None,
        "config": {"path": result.config_path, "fingerprint": result.config_fingerprint},
        "fail_on": result.fail_on,
        "sources": {
            system: {
                "url": source.url,
                "mapping": source.mapping,
                "rows": source.rows,
                "rows_by_table": source.rows_by_table,
                "newest_update": source.newest_update,
                "seconds": source.seconds,
            }
            for system, source in result.sources.items()
        },
        "findings": result.counts(),
        "metrics": [_clean(row) for row in metrics.to_dict(orient="records")],
        "settings": result.settings,
        "notes": result.notes,
        # what re-rendering this run later needs besides findings.json (gridrecon report)
        "previous_run_id": result.previous_run_id,
        "orgs": _records(result.orgs),
        "trend": _records(result.trend),
    }


def _records(frame) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    shown = frame.astype(object).where(frame.notna(), None)
    return [
        {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
        for row in shown.to_dict(orient="records")
    ]


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (None if isinstance(value, float) and math.isnan(value) else value)
        for key, value in row.items()
    }


def summary_json(result: RunResult) -> str:
    return json.dumps(summary(result), ensure_ascii=False, indent=2, default=str) + "\n"
