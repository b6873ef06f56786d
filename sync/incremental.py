"""Incremental nights: read only the rows a source changed, reuse what is known about the rest.

After every completed run gridrecon keeps a snapshot of what it read: the canonical records of
both systems and which of them failed validation. The next run, when [incremental] is enabled,
asks each source table only for rows whose update-time column is at or after the watermark (the
earlier of the newest update seen and the last run's start, minus `lag_minutes` for rows whose
transaction was still open), and for the keys of every row changed at all (in scope or not, so a
row that left the scope leaves the snapshot too). Those rows replace their snapshot copies; every
rule then runs over the merged records, except that Great Expectations validates only the rows
that are new or changed (a row's validity depends on nothing else; the one check that depends on
the date, a commissioning date in the future, is re-judged for the carried-over failures).

What an incremental night cannot see: a deleted row, a row with no update time, a change made
only in a relation table (a transformer moved to another 台区 without its own CHG_DATE changing).
So every `full_sweep_days` (weekly by default), after a change of config or mapping, and with
`gridrecon run --full`, the run reads everything again. Tables without a usable update-time
column (none mapped, or stored as text) are read whole every night.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..connectors.normalize import record_keys

SNAPSHOT_FILE = "snapshot.pickle"
SNAPSHOT_VERSION = 1


@dataclass
class ValidityMemory:
    """What validation found for one system and asset type, by record key (table + id)."""

    validated: pd.Index  # keys of every record validated
    failures: pd.DataFrame  # key, field, check, reason, value


@dataclass
class Snapshot:
    """What the last completed run read, for the next run to build on."""

    fingerprint: str  # the config fingerprint of the run that wrote it
    run_started_at: dt.datetime  # aware
    full_sweep_at: dt.datetime  # aware: when the records were last read whole
    records: dict[str, dict[str, pd.DataFrame]]  # system -> asset type -> canonical records
    validity: dict[tuple[str, str], ValidityMemory] = field(default_factory=dict)
    version: int = SNAPSHOT_VERSION


@dataclass(frozen=True)
class ReadPlan:
    """How this run reads the sources: everything, or the changes since `since`."""

    mode: str  # "full" | "incremental"
    reason: str  # why, for the log and summary.json
    snapshot: Snapshot | None = None
    since: dt.datetime | None = None  # aware; the watermark minus the lag


def load(folder: Path) -> Snapshot | None:
    """The snapshot in `folder`, or None if there is none (or it is from another version)."""
    path = folder / SNAPSHOT_FILE
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            # gridrecon's own file, written below by the same user; never a file from elsewhere
            snapshot = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None  # unreadable: the run reads everything and writes a new one
    if not isinstance(snapshot, Snapshot) or snapshot.version != SNAPSHOT_VERSION:
        return None
    return snapshot


def save(folder: Path, snapshot: Snapshot) -> None:
    """Write atomically: a crash leaves the previous snapshot or the new one, never half."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{SNAPSHOT_FILE}.{os.getpid()}.tmp"
    with temporary.open("wb") as handle:
        pickle.dump(snapshot, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(temporary, folder / SNAPSHOT_FILE)


def discard(folder: Path) -> None:
    (folder / SNAPSHOT_FILE).unlink(missing_ok=True)


def plan_read(
    enabled: bool,
    folder: Path,
    fingerprint: str,
    now: dt.datetime,
    lag_minutes: int,
    full_sweep_days: int,
    force_full: bool,
    first_run: bool = False,
) -> ReadPlan:
    """Decide whether this run may read incrementally, and from when."""
    if not enabled:
        return ReadPlan("full", "incremental reads are off")
    if force_full:
        return ReadPlan("full", "--full was given")
    if first_run:
        return ReadPlan("full", "the state store has no completed run")
    snapshot = load(folder)
    if snapshot is None:
        return ReadPlan("full", "no snapshot of an earlier run")
    if snapshot.fingerprint != fingerprint:
        return ReadPlan("full", "the config, a mapping or the rules changed since the snapshot")
    if now - snapshot.full_sweep_at >= dt.timedelta(days=full_sweep_days):
        return ReadPlan("full", f"the last full read is {full_sweep_days} or more days old")
    newest = _newest_update(snapshot)
    watermark = min(newest, snapshot.run_started_at) if newest else snapshot.run_started_at
    since = watermark - dt.timedelta(minutes=lag_minutes)
    return ReadPlan("incremental", f"changes since {since.isoformat()}", snapshot, since)


def _newest_update(snapshot: Snapshot) -> dt.datetime | None:
    stamps = [
        frame["updated_at"].max()
        for by_type in snapshot.records.values()
        for frame in by_type.values()
        if len(frame)
    ]
    stamps = [s for s in stamps if pd.notna(s)]
    return max(stamps).to_pydatetime() if stamps else None


def remember_validity(
    judged: dict[tuple[str, str], pd.DataFrame], invalid: dict[tuple[str, str], pd.DataFrame]
) -> dict[tuple[str, str], ValidityMemory]:
    """Validation results by record key, from a run's validated records and their failures."""
    memory = {}
    for key, records in judged.items():
        keys = record_keys(records)
        failures = invalid[key]
        failure_keys = keys.reindex(failures["row"].to_numpy()).to_numpy()
        memory[key] = ValidityMemory(
            validated=pd.Index(keys.dropna().unique()),
            failures=pd.DataFrame(
                {
                    "key": failure_keys,
                    **{c: failures[c].to_numpy() for c in ("field", "check", "reason", "value")},
                }
            ),
        )
    return memory
