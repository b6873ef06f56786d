"""The one result of a run. Every report format is rendered from it; pass/fail is decided on it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..core.errors import EXIT_FINDINGS, EXIT_INCONCLUSIVE, EXIT_OK
from .settings import SEVERITY_RANK

OPEN_STATES = ("new", "open", "reopened")


@dataclass
class SourceSummary:
    """What a run read from one system."""

    system: str
    url: str  # masked
    mapping: str
    rows: dict[str, int]  # asset type -> in-scope rows
    rows_by_table: dict[str, int]
    newest_update: dict[str, str | None]  # asset type -> newest updated_at seen (ISO)
    seconds: float

    def __post_init__(self) -> None:
        # To the millisecond, as summary.json keeps it: a report rendered again from a stored run
        # shows what the live one showed ('%.1f' of 0.3503 is 0.4, of 0.35 it is 0.3).
        self.seconds = round(self.seconds, 3)


@dataclass
class RunResult:
    run_id: str
    as_of: dt.date
    started_at: dt.datetime
    finished_at: dt.datetime | None
    config_path: str
    config_fingerprint: str
    settings: dict[str, Any]
    sources: dict[str, SourceSummary]
    # FINDING_FIELDS (+ internal side, subject): the open ones and those resolved by this run
    findings: pd.DataFrame
    metrics: pd.DataFrame
    status: str = "completed"  # completed | inconclusive | failed
    fail_on: str | None = None
    notes: list[str] = field(default_factory=list)
    # org_code -> name and parent (city of a county), where the marketing mapping has an org tree
    orgs: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["org_code", "org_name", "parent_code"])
    )
    previous_run_id: str | None = None
    # open findings per rule in recent runs, oldest first: run_id, started_at, rule_id, open
    trend: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["run_id", "started_at", "rule_id", "open"])
    )

    @property
    def open_findings(self) -> pd.DataFrame:
        frame = self.findings
        return frame[frame["state"].isin(OPEN_STATES) & ~frame["waived"].astype(bool)]

    def failing_findings(self) -> pd.DataFrame:
        """Open, unwaived findings at or above --fail-on (empty when no --fail-on was given)."""
        if self.fail_on is None:
            return self.findings.iloc[0:0]
        threshold = SEVERITY_RANK[self.fail_on]
        frame = self.open_findings
        return frame[frame["severity"].map(SEVERITY_RANK) >= threshold]

    @property
    def exit_code(self) -> int:
        if self.status == "inconclusive":
            return EXIT_INCONCLUSIVE
        return EXIT_FINDINGS if len(self.failing_findings()) else EXIT_OK

    def counts(self) -> dict[str, Any]:
        """Counts of open findings per rule, severity, asset type and org, and per state."""
        frame = self.open_findings
        current = self.findings[self.findings["state"].isin(OPEN_STATES)]
        waived = current[current["waived"].astype(bool)]
        return {
            "open": len(frame),
            "waived": len(waived),
            "resolved": int((self.findings["state"] == "resolved").sum()),
            "new": int((self.findings["state"] == "new").sum()),
            "by_state": _count(self.findings, "state"),
            "by_rule": _count(frame, "rule_id"),
            "by_severity": _count(frame, "severity"),
            "by_asset_type": _count(frame, "asset_type"),
            "by_org": _count(frame, "org_code"),
            "by_rule_and_asset_type": {
                rule: _count(group, "asset_type") for rule, group in frame.groupby("rule_id")
            },
        }


def _count(frame: pd.DataFrame, column: str) -> dict[str, int]:
    counts = frame[column].fillna("?").value_counts().sort_index()
    return {str(key): int(value) for key, value in counts.items()}
