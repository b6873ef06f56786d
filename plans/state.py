"""What the state store knows now about a plan's run and findings (read only).

A plan is made from one run, and applied later: by then a newer run may have resolved a finding,
or a steward may have waived it. Both making and applying a plan ask the store for the current
state of each finding, so no change is written for a finding that is no longer open.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ..core.config import Config
from ..core.errors import ConfigError
from ..sync import store as tables
from ..sync.store import StateStore

CHUNK = 1000


def _open(config: Config) -> StateStore:
    store = StateStore(config.state_url)
    store.ensure_schema()
    return store


def require_run(config: Config, run_id: str) -> dict[str, Any]:
    """The store's record of the run (zone-aware times); an error if the store does not know it."""
    store = _open(config)
    try:
        with store.reading() as connection:
            record = tables.get_run(connection, run_id)
    finally:
        store.dispose()
    if record is None:
        raise ConfigError(
            f"run {run_id} is not in the state store {store.display_url}: the plan's findings "
            "cannot be checked against it. Use a run of this config's store "
            "(`gridrecon runs list`)"
        )
    return record


def finding_states(config: Config, ids: list[str], today: dt.date) -> dict[str, dict[str, Any]]:
    """finding id -> {"state", "last_run_id", "waived"} for the ids the store knows."""
    store = _open(config)
    found: dict[str, dict[str, Any]] = {}
    findings, waivers = tables.findings, tables.waivers
    try:
        with store.reading() as connection:
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                statement = (
                    sa.select(
                        findings.c.finding_id,
                        findings.c.state,
                        findings.c.last_run_id,
                        waivers.c.finding_id.label("waiver"),
                        waivers.c.until,
                    )
                    .outerjoin(waivers, waivers.c.finding_id == findings.c.finding_id)
                    .where(findings.c.finding_id.in_(chunk))
                )
                for row in connection.execute(statement):
                    waived = row.waiver is not None and (row.until is None or row.until >= today)
                    found[row.finding_id] = {
                        "state": row.state,
                        "last_run_id": row.last_run_id,
                        "waived": waived,
                    }
    finally:
        store.dispose()
    return found
