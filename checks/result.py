"""The one result of a run. Every report format is rendered from it; pass/fail is decided on it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
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
        """Counts of open findings per rule, severity, asset type and org, and per state.

        Counted over the findings' distinct combinations (_combinations): every report of a
        run asks for these, and a pandas filter and value_counts per figure cost more than a
        night's few findings do."""
        tallied = ("rule_id", "severity", "asset_type", "org_code")
        by_state: Counter = Counter()
        by: dict[str, Counter] = {column: Counter() for column in tallied}
        by_rule_and_type: dict[str, Counter] = {}
        waived_count = 0
        for (state, *values, waived), n in _combinations(self.findings, ("state", *tallied)):
            by_state[_known(state)] += n
            if state not in OPEN_STATES:
                continue
            if waived:
                waived_count += n
                continue
            for column, value in zip(tallied, values):
                by[column][_known(value)] += n
            rule = values[0]
            if not _missing(rule):
                by_rule_and_type.setdefault(rule, Counter())[_known(values[2])] += n
        return {
            "open": sum(by["rule_id"].values()),
            "waived": waived_count,
            "resolved": by_state["resolved"],
            "new": by_state["new"],
            "by_state": _sorted(by_state),
            "by_rule": _sorted(by["rule_id"]),
            "by_severity": _sorted(by["severity"]),
            "by_asset_type": _sorted(by["asset_type"]),
            "by_org": _sorted(by["org_code"]),
            "by_rule_and_asset_type": {
                str(rule): _sorted(types) for rule, types in sorted(by_rule_and_type.items())
            },
        }


def _known(value: Any) -> Any:
    """A value to count by: '?' where there is none."""
    return "?" if _missing(value) else value


def _sorted(counts: Counter) -> dict[str, int]:
    return {str(key): int(n) for key, n in sorted(counts.items())}


# The key of every rule together in tallies()
ALL = object()


def tallies(findings: pd.DataFrame) -> tuple[Counter, Counter]:
    """The figures per rule and per org the reports show, in one pass over the findings rather
    than a filter per rule and org (waived findings that would be open are counted apart).

    By rule (and ALL): open and unwaived ("open"), per state among the unwaived ("state", s),
    open and waived ("waived"), open and unwaived per asset type ("type", a). By org code ("" for
    none), among the open and unwaived: all ("open") and per severity."""
    by_rule: Counter = Counter()
    by_org: Counter = Counter()
    columns = ("rule_id", "state", "asset_type", "org_code", "severity")
    for (rule, state, asset_type, org, severity, waived), n in _combinations(findings, columns):
        is_open = state in OPEN_STATES
        keys = (None if _missing(rule) else rule, ALL)
        if is_open and waived:
            for key in keys:
                by_rule[key, "waived"] += n
            continue
        for key in keys:
            by_rule[key, "state", state] += n
            if is_open:
                by_rule[key, "open"] += n
                by_rule[key, "type", asset_type] += n
        if is_open:
            code = "" if _missing(org) else org
            by_org[code, "open"] += n
            by_org[code, severity] += n
    return by_rule, by_org


def _combinations(findings: pd.DataFrame, columns: tuple[str, ...]) -> list[tuple[tuple, int]]:
    """Each distinct combination of these columns' values and whether the finding is waived,
    missing values included, with how many findings hold it: a few dozen combinations to count
    in Python, however many findings there are."""
    keys = findings[list(columns)].assign(waived=findings["waived"].astype(bool))
    counted = keys.value_counts(dropna=False, sort=False)
    return list(zip(counted.index.tolist(), counted.tolist(), strict=True))


def _missing(value: Any) -> bool:
    return not isinstance(value, str) and pd.isna(value)
