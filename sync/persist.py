"""What a run reads from and writes to the state store, around the rules.

Before judging: the inconclusive guard (a source that returned nothing, or far fewer rows than
the last complete run) and first sightings for systems without a creation-time column. After
judging: findings' history, waivers, per-run counts and the run's own record. Everything here runs
inside the run's single store transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd
from sqlalchemy.engine import Connection

from ..checks.result import RunResult
from ..checks.settings import RuleSettings
from ..connectors.mapping import ASSET_TYPES
from . import store
from .history import apply_history, write_counts, write_history
from .store import StateStore, from_utc_naive, to_utc_naive


def broken_sources(
    summaries: dict[str, Any], previous: dict[str, Any] | None, min_share: float
) -> list[str]:
    """Why each source looks broken: no rows, or fewer than min_share of the last complete run."""
    reasons = []
    earlier = (previous or {}).get("summary", {}).get("sources", {})
    for system, summary in summaries.items():
        for asset_type, rows in summary.rows.items():
            before = earlier.get(system, {}).get("rows", {}).get(asset_type)
            if rows == 0:
                reasons.append(f"{system} returned no {asset_type} rows")
            elif before and rows < min_share * before:
                reasons.append(
                    f"{system} returned {rows:,} {asset_type} rows, fewer than "
                    f"{min_share:.0%} of the {before:,} in run {previous['run_id']}"
                )
    return reasons


def inconclusive_result(
    config: Any,
    settings: RuleSettings,
    pulled: Any,
    as_of: dt.date,
    started_at: dt.datetime,
    run_id: str,
    fail_on: str | None,
    reasons: list[str],
) -> RunResult:
    """A run that concludes nothing: no findings created or resolved, the reasons recorded."""
    from ..api import config_fingerprint
    from ..checks import findings, metrics

    return RunResult(
        run_id=run_id,
        as_of=as_of,
        started_at=started_at,
        finished_at=None,
        config_path=str(config.path),
        config_fingerprint=config_fingerprint(config, settings, pulled.mappings),
        settings=settings.as_dict(),
        sources=pulled.summaries,
        findings=findings.empty(),
        metrics=pd.DataFrame(columns=metrics.METRIC_COLUMNS),
        status="inconclusive",
        fail_on=fail_on,
        notes=[f"inconclusive: {reason}" for reason in reasons],
        orgs=pulled.orgs,
    )


def fill_first_seen(connection: Connection, pulled: Any, now: dt.datetime, first_run: bool) -> None:
    """recorded_at for systems without a creation-time column: when gridrecon first saw it.

    Records already there on a new store's first run get no creation time at all (they are
    never judged late on that evidence); records that appear later get the run's time.
    """
    for system, read in pulled.reads.items():
        mapping = pulled.mappings[system]
        for asset_type in ASSET_TYPES:
            if "recorded_at" not in mapping.assets[asset_type].absent:
                continue
            records = read.assets[asset_type].records
            seen = StateStore.first_seen_frame(connection, system, asset_type)
            ids = records["source_id"].dropna().unique()
            fresh = sorted(set(ids) - set(seen["source_id"]))
            StateStore.insert_many(
                connection,
                store.first_seen,
                [
                    {
                        "system": system,
                        "asset_type": asset_type,
                        "source_id": source_id,
                        "first_seen": to_utc_naive(now),
                        "baseline": first_run,
                    }
                    for source_id in fresh
                ],
            )
            known = pd.concat(
                [
                    seen,
                    pd.DataFrame(
                        {"source_id": fresh, "first_seen": to_utc_naive(now), "baseline": first_run}
                    ),
                ],
                ignore_index=True,
            )
            known = known[~known["baseline"].astype(bool)]
            stamps = pd.Series(
                [from_utc_naive(t) for t in known["first_seen"]],
                index=known["source_id"],
                dtype=object,
            )
            zone = records["recorded_at"].dtype.tz
            recorded = pd.to_datetime(records["source_id"].map(stamps.to_dict()), utc=True)
            records["recorded_at"] = recorded.dt.tz_convert(zone).astype(
                records["recorded_at"].dtype
            )


def remember(
    connection: Connection, result: RunResult, previous: dict[str, Any] | None, as_of: dt.date
) -> None:
    """Give every finding its state and waiver, write the history, fill the run's trend."""
    history = apply_history(
        result.findings,
        StateStore.known_findings(connection),
        StateStore.waivers_frame(connection),
        result.started_at,
        as_of,
        result.started_at.tzinfo,
    )
    write_history(connection, history, result.run_id, result.started_at)
    result.findings = history.findings
    write_counts(connection, result.findings, result.run_id)
    if history.expired_waivers:
        result.notes.append(
            f"{len(history.expired_waivers)} waivers expired and their findings are open again: "
            + ", ".join(history.expired_waivers[:20])
            + (" …" if len(history.expired_waivers) > 20 else "")
        )
    result.previous_run_id = previous["run_id"] if previous else None
    result.trend = StateStore.trend(connection)
    # the trend query sees this run's counts (same transaction) but not its run row yet
    if result.run_id not in set(result.trend["run_id"]):
        mine = result.findings[
            result.findings["state"].isin(store.OPEN_STATES)
            & ~result.findings["waived"].astype(bool)
        ]
        counts = mine.groupby("rule_id").size()
        extra = pd.DataFrame(
            {
                "run_id": result.run_id,
                "started_at": result.started_at,
                "rule_id": counts.index,
                "open": counts.to_numpy(),
            }
        )
        result.trend = pd.concat([result.trend, extra], ignore_index=True)


def record_run(connection: Connection, result: RunResult) -> None:
    from ..reports.machine import summary

    duration = (
        (result.finished_at - result.started_at).total_seconds() if result.finished_at else None
    )
    connection.execute(
        store.runs.insert().values(
            run_id=result.run_id,
            started_at=to_utc_naive(result.started_at),
            finished_at=to_utc_naive(result.finished_at) if result.finished_at else None,
            as_of=result.as_of,
            status=result.status,
            exit_code=result.exit_code,
            duration_s=duration,
            config_path=result.config_path,
            config_fingerprint=result.config_fingerprint,
            reason="; ".join(result.notes) or None,
            summary_json=json.dumps(summary(result), ensure_ascii=False, default=str),
        )
    )
