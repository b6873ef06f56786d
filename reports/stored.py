"""Load a finished run back from its folder, so any run can be rendered again (`gridrecon report`).

A run folder holds findings.json and summary.json, which together carry the whole result the
reports are rendered from; nothing is queried again.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from ..checks.findings import FINDING_FIELDS, INTERNAL_FIELDS
from ..checks.metrics import METRIC_COLUMNS
from ..checks.result import RunResult, SourceSummary
from ..core.errors import ConfigError


def run_folder(report_dir: Path, run: str) -> Path:
    folder = report_dir / run
    if not (folder / "summary.json").is_file() or not (folder / "findings.json").is_file():
        known = (
            sorted(
                p.name for p in report_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
            )
            if report_dir.is_dir()
            else []
        )
        shown = ", ".join(known[-5:]) or "none"
        raise ConfigError(
            f"no stored run '{run}' in the report directory {report_dir} (recent: {shown}); "
            "`gridrecon runs list` shows the run ids"
        )
    return folder


def load_run(report_dir: Path, run: str) -> RunResult:
    folder = run_folder(report_dir, run)
    try:
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        records = json.loads((folder / "findings.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the run folder {folder} cannot be read: {exc}") from None
    findings = pd.DataFrame(records, columns=FINDING_FIELDS)
    for column in FINDING_FIELDS:
        if column != "waived":
            findings[column] = findings[column].astype("str")
    findings["waived"] = findings["waived"].astype(bool)
    for column in INTERNAL_FIELDS:
        findings[column] = ""
    trend = pd.DataFrame(
        summary.get("trend", []), columns=["run_id", "started_at", "rule_id", "open"]
    )
    return RunResult(
        run_id=summary["run_id"],
        as_of=dt.date.fromisoformat(summary["as_of"]),
        started_at=dt.datetime.fromisoformat(summary["started_at"]),
        finished_at=(
            dt.datetime.fromisoformat(summary["finished_at"])
            if summary.get("finished_at")
            else None
        ),
        config_path=summary["config"]["path"],
        config_fingerprint=summary["config"]["fingerprint"],
        settings=summary.get("settings", {}),
        sources={
            system: SourceSummary(
                system=system,
                url=s["url"],
                mapping=s["mapping"],
                rows=s["rows"],
                rows_by_table=s.get("rows_by_table", {}),
                newest_update=s.get("newest_update", {}),
                seconds=s.get("seconds", 0.0),
            )
            for system, s in summary.get("sources", {}).items()
        },
        findings=findings,
        metrics=pd.DataFrame(summary.get("metrics", []), columns=METRIC_COLUMNS),
        status=summary.get("status", "completed"),
        fail_on=summary.get("fail_on"),
        notes=summary.get("notes", []),
        orgs=pd.DataFrame(summary.get("orgs", []), columns=["org_code", "org_name", "parent_code"]),
        previous_run_id=summary.get("previous_run_id"),
        trend=trend.astype({"open": "int64"}),
    )
