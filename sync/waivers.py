"""Stewards' waivers: a finding explained and accepted stays out of the open counts until expiry.

A waiver names existing findings only (an unknown id is an error naming it, and nothing is
written); waiving again replaces the reason, who and expiry. Bulk waivers come from the steward's
edited findings export: a CSV with a finding_id column and a `reason` column filled in where the
finding is to be waived (optionally `until` and `by`).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..core.errors import ConfigError
from . import store
from .store import StateStore, to_utc_naive


@dataclass(frozen=True)
class Waiver:
    finding_id: str
    reason: str
    by: str
    until: dt.date | None


def _check_known(connection: Connection, ids: list[str]) -> None:
    known: set[str] = set()
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        known.update(
            connection.execute(
                sa.select(store.findings.c.finding_id).where(store.findings.c.finding_id.in_(chunk))
            ).scalars()
        )
    unknown = [i for i in ids if i not in known]
    if unknown:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise ConfigError(
            f"unknown finding id {shown}: nothing was waived. Ids are in findings.csv / "
            "findings.json of a run, or `gridrecon findings list`"
        )


def add_waivers(connection: Connection, waivers: list[Waiver], now: dt.datetime) -> int:
    for waiver in waivers:
        if not waiver.reason.strip():
            raise ConfigError(f"finding {waiver.finding_id}: a waiver needs a reason")
    ids = list(dict.fromkeys(w.finding_id for w in waivers))
    _check_known(connection, ids)
    StateStore.delete_in(connection, store.waivers, "finding_id", ids)
    latest = {w.finding_id: w for w in waivers}  # the last row for an id wins
    StateStore.insert_many(
        connection,
        store.waivers,
        [
            {
                "finding_id": w.finding_id,
                "reason": w.reason.strip(),
                "waived_by": w.by,
                "waived_at": to_utc_naive(now),
                "until": w.until,
            }
            for w in latest.values()
        ],
    )
    return len(latest)


def remove_waivers(connection: Connection, ids: list[str]) -> int:
    _check_known(connection, ids)
    before = connection.execute(
        sa.select(sa.func.count())
        .select_from(store.waivers)
        .where(store.waivers.c.finding_id.in_(ids))
    ).scalar_one()
    StateStore.delete_in(connection, store.waivers, "finding_id", ids)
    return int(before)


def parse_until(text: str | None, where: str) -> dt.date | None:
    if text is None or not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{where}: until must be a date like 2026-12-31, got '{text}'") from None


def read_waiver_csv(path: Path, default_by: str) -> list[Waiver]:
    """The rows of an edited findings export that have a reason filled in.

    Excel on a Chinese Windows saves CSV as GBK, so that is tried when UTF-8 fails.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte sequence
        raise ConfigError(f"{path}: not UTF-8 or GBK text")
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    if "finding_id" not in header or "reason" not in header:
        raise ConfigError(
            f"{path}: needs a finding_id column and a reason column (found: {', '.join(header)}); "
            "add a column named reason to the exported findings.csv and fill it in"
        )
    waivers = []
    for line, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if not row.get("reason"):
            continue
        if not row.get("finding_id"):
            raise ConfigError(f"{path}, line {line}: a reason but no finding_id")
        waivers.append(
            Waiver(
                finding_id=row["finding_id"],
                reason=row["reason"],
                by=row.get("by") or default_by,
                until=parse_until(row.get("until"), f"{path}, line {line}"),
            )
        )
    if not waivers:
        raise ConfigError(f"{path}: no row has a reason filled in, so nothing to waive")
    return waivers
