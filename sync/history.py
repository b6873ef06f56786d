"""Findings across runs (SPEC §7): new, open, resolved, reopened, and who waived what.

Given this run's findings and what the store knows, decide every finding's state, and the rows to
write. Pure pandas: reading and writing the store is sync/store.py's job.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.engine import Connection

from ..checks.findings import BUILT_FIELDS, FINDING_FIELDS, INTERNAL_FIELDS
from . import store
from .store import OPEN_STATES, StateStore, to_utc_naive

# what the store keeps of a finding besides its state and times
STORED_VALUES = [*BUILT_FIELDS, "side"]


@dataclass
class History:
    """This run's findings with their states, and what must be written to the store."""

    findings: pd.DataFrame  # current ones (new/open/reopened) and those resolved now
    new: pd.DataFrame
    reopened: pd.DataFrame
    continuing: pd.DataFrame
    resolved_ids: list[str]
    expired_waivers: list[str] = field(default_factory=list)


def _stamp(moment: dt.datetime | None, zone: ZoneInfo) -> str | None:
    if moment is None or pd.isna(moment):
        return None
    return moment.astimezone(zone).isoformat(timespec="seconds")


def active_waivers(waivers: pd.DataFrame, as_of: dt.date) -> pd.DataFrame:
    """Waivers in force on as_of: no expiry date, or one on or after as_of."""
    until = waivers["until"]
    return waivers[until.isna() | (pd.to_datetime(until) >= pd.Timestamp(as_of))]


def apply_history(
    current: pd.DataFrame,
    known: pd.DataFrame,
    waivers: pd.DataFrame,
    now: dt.datetime,
    as_of: dt.date,
    zone: ZoneInfo,
) -> History:
    known = known.set_index("finding_id", drop=False)
    known_open = known[known["state"].isin(OPEN_STATES)]
    known_resolved = known[known["state"] == "resolved"]
    ids = current["finding_id"]

    current = current.copy()
    current["state"] = "new"
    current.loc[ids.isin(known_open.index).to_numpy(), "state"] = "open"
    current.loc[ids.isin(known_resolved.index).to_numpy(), "state"] = "reopened"
    earlier = known["first_seen"].reindex(ids.to_numpy()).to_numpy()
    current["first_seen"] = [
        _stamp(first, zone) if first is not None and not pd.isna(first) else _stamp(now, zone)
        for first in earlier
    ]
    current["last_seen"] = _stamp(now, zone)

    gone = known_open[~known_open.index.isin(ids)]
    resolved = gone.reset_index(drop=True).copy()
    resolved["state"] = "resolved"
    resolved["first_seen"] = resolved["first_seen"].map(lambda t: _stamp(t, zone))
    resolved["last_seen"] = resolved["last_seen"].map(lambda t: _stamp(t, zone))
    resolved["subject"] = ""

    active = active_waivers(waivers, as_of)
    expired = waivers[~waivers["finding_id"].isin(active["finding_id"])]
    everything = pd.concat(
        [current, resolved[[c for c in current.columns if c in resolved.columns]]],
        ignore_index=True,
    )
    everything["waived"] = everything["finding_id"].isin(active["finding_id"])
    everything = everything[FINDING_FIELDS + INTERNAL_FIELDS]

    state = current["state"]
    return History(
        findings=everything,
        new=current[state == "new"],
        reopened=current[state == "reopened"],
        continuing=current[state == "open"],
        resolved_ids=list(gone.index),
        expired_waivers=sorted(set(expired["finding_id"]) & set(current["finding_id"])),
    )


def write_history(connection: Connection, history: History, run_id: str, now: dt.datetime) -> None:
    """Bring the store's findings and events up to this run (inside the run's transaction)."""
    at = to_utc_naive(now)
    table = store.findings
    StateStore.update_many(
        connection,
        table,
        "finding_id",
        [{"finding_id": i, "state": "resolved", "resolved_at": at} for i in history.resolved_ids],
    )
    # Everything still present is "open" now; new and reopened ones are written below.
    StateStore.update_many(
        connection,
        table,
        "finding_id",
        [
            {
                "finding_id": row["finding_id"],
                "state": "open",
                "last_seen": at,
                "last_run_id": run_id,
                **{c: row[c] for c in STORED_VALUES},
            }
            for row in _records(history.continuing)
        ],
    )
    StateStore.update_many(
        connection,
        table,
        "finding_id",
        [
            {
                "finding_id": row["finding_id"],
                "state": "reopened",
                "last_seen": at,
                "last_run_id": run_id,
                "resolved_at": None,
                **{c: row[c] for c in STORED_VALUES},
            }
            for row in _records(history.reopened)
        ],
    )
    StateStore.insert_many(
        connection,
        table,
        [
            {
                "finding_id": row["finding_id"],
                "state": "new",
                "first_seen": at,
                "last_seen": at,
                "first_run_id": run_id,
                "last_run_id": run_id,
                "resolved_at": None,
                **{c: row[c] for c in STORED_VALUES},
            }
            for row in _records(history.new)
        ],
    )
    changes = (
        [(i, "new") for i in history.new["finding_id"]]
        + [(i, "reopened") for i in history.reopened["finding_id"]]
        + [(i, "resolved") for i in history.resolved_ids]
    )
    StateStore.insert_many(
        connection,
        store.events,
        [{"finding_id": i, "run_id": run_id, "state": s, "at": at} for i, s in changes],
    )


def write_counts(connection: Connection, findings: pd.DataFrame, run_id: str) -> None:
    """Open and waived findings per rule, asset type and org, for the trend in reports."""
    current = findings[findings["state"].isin(OPEN_STATES)].copy()
    current["org_code"] = current["org_code"].fillna("?")
    current["waived"] = current["waived"].astype(bool)
    current["open"] = ~current["waived"]
    grouped = current.groupby(["rule_id", "asset_type", "org_code"])[["open", "waived"]].sum()
    StateStore.insert_many(
        connection,
        store.run_counts,
        [
            {
                "run_id": run_id,
                "rule_id": rule,
                "asset_type": asset_type,
                "org_code": org,
                "open": int(row["open"]),
                "waived": int(row["waived"]),
            }
            for (rule, asset_type, org), row in grouped.iterrows()
        ],
    )


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts with None for missing values (drivers reject NaN in text columns)."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
