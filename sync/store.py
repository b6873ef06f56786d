"""The state store: runs, findings with their history, waivers and first sightings.

SQLite by default, PostgreSQL (or MariaDB) supported. Its schema is created and upgraded by the
Alembic migrations shipped in sync/migrations, applied automatically before each use. A run's
changes are written in one transaction, so a run that fails or is killed leaves the store as it
was. Times are stored as naive UTC and returned zone-aware.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from ..checks.findings import BUILT_FIELDS
from ..core.config import display_url, scrubbed
from ..core.errors import ConfigError, GridreconError

OPEN_STATES = ("new", "open", "reopened")

# Naive UTC, to the microsecond: MariaDB's plain DATETIME keeps whole seconds, and runs, history
# and "the previous completed run" are ordered by these times (migration 0002).
TIMESTAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

metadata = sa.MetaData()
runs = sa.Table(
    "gr_runs",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("started_at", TIMESTAMP),
    sa.Column("finished_at", TIMESTAMP),
    sa.Column("as_of", sa.Date),
    sa.Column("status", sa.String(16)),
    sa.Column("exit_code", sa.Integer),
    sa.Column("duration_s", sa.Float),
    sa.Column("config_path", sa.Text),
    sa.Column("config_fingerprint", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Column("summary_json", sa.Text),
)
findings = sa.Table(
    "gr_findings",
    metadata,
    sa.Column("finding_id", sa.String(32), primary_key=True),
    *(
        sa.Column(name, sa.Text)
        for name in [*BUILT_FIELDS, "side", "state", "first_run_id", "last_run_id"]
    ),
    sa.Column("first_seen", TIMESTAMP),
    sa.Column("last_seen", TIMESTAMP),
    sa.Column("resolved_at", TIMESTAMP),
)
events = sa.Table(
    "gr_finding_events",
    metadata,
    sa.Column("finding_id", sa.String(32), primary_key=True),
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16)),
    sa.Column("at", TIMESTAMP),
)
run_counts = sa.Table(
    "gr_run_counts",
    metadata,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("rule_id", sa.String(32), primary_key=True),
    sa.Column("asset_type", sa.String(16), primary_key=True),
    sa.Column("org_code", sa.String(64), primary_key=True),
    sa.Column("open", sa.Integer),
    sa.Column("waived", sa.Integer),
)
waivers = sa.Table(
    "gr_waivers",
    metadata,
    sa.Column("finding_id", sa.String(32), primary_key=True),
    sa.Column("reason", sa.Text),
    sa.Column("waived_by", sa.String(128)),
    sa.Column("waived_at", TIMESTAMP),
    sa.Column("until", sa.Date),
)
first_seen = sa.Table(
    "gr_first_seen",
    metadata,
    sa.Column("system", sa.String(16), primary_key=True),
    sa.Column("asset_type", sa.String(16), primary_key=True),
    sa.Column("source_id", sa.String(255), primary_key=True),
    sa.Column("first_seen", TIMESTAMP),
    sa.Column("baseline", sa.Boolean),
)
lock = sa.Table(
    "gr_lock",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.Text),
    sa.Column("since", TIMESTAMP),
)

FINDING_COLUMNS = [c.name for c in findings.columns]
WRITE_CHUNK = 5000


# The newest migration in sync/migrations/versions (a test keeps the two in step).
HEAD_REVISION = "0002"
VERSION_TABLE = "gr_alembic_version"


def _revision(connection: Connection) -> str | None:
    """The migration the store is at, None for a store without gridrecon's tables."""
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


class StateStoreError(GridreconError):
    """The state store cannot be opened, upgraded or written (exit 2)."""


def to_utc_naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def from_utc_naive(moment: Any) -> Any:
    if moment is None or pd.isna(moment):
        return None
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


class StateStore:
    def __init__(self, url: URL):
        self.url = url
        self.display_url = display_url(url)
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                if self.url.get_backend_name() == "sqlite" and self.url.database:
                    # the folder of a new SQLite store must exist; the file itself is created
                    from pathlib import Path

                    folder = Path(self.url.database).parent
                    if not folder.is_dir():
                        raise ConfigError(
                            f"the folder of the state store {self.display_url} does not exist; "
                            "create it or change [state] url"
                        )
                self._engine = sa.create_engine(self.url, pool_pre_ping=True)
            except (SQLAlchemyError, ModuleNotFoundError, ValueError) as exc:
                raise StateStoreError(
                    f"cannot use the state store {self.display_url}: {self._scrub(exc)}"
                ) from None
        return self._engine

    def _scrub(self, exc: BaseException) -> str:
        return scrubbed(exc, self.url)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StateStoreError(
                f"{doing} the state store {self.display_url} failed: {self._scrub(exc)}; "
                "check [state] url in the config"
            ) from None

    def ensure_schema(self) -> None:
        """Create or upgrade the store's tables to the newest migration (idempotent)."""
        with self._errors("opening"), self.engine.connect() as connection:
            if _revision(connection) == HEAD_REVISION:
                return  # the common case, without importing alembic (a third of a second)
        from alembic import command
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option(
            "script_location", str(resources.files("gridrecon.sync") / "migrations")
        )
        with self._errors("opening"), self.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        from .locks import run_lock

        with self._errors("locking"), run_lock(self.engine, lock, run_id):
            yield

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction for everything a run writes: committed at the end, or not at all."""
        with self._errors("writing"), self.engine.begin() as connection:
            yield connection

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._errors("reading"), self.engine.connect() as connection:
            yield connection

    # -- reads ---------------------------------------------------------------------------------

    @staticmethod
    def previous_completed(connection: Connection) -> dict[str, Any] | None:
        row = connection.execute(
            sa.select(runs.c.run_id, runs.c.summary_json)
            .where(runs.c.status == "completed")
            .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
            .limit(1)
        ).first()
        if row is None:
            return None
        return {"run_id": row.run_id, "summary": json.loads(row.summary_json or "{}")}

    @staticmethod
    def known_findings(connection: Connection) -> pd.DataFrame:
        rows = connection.execute(sa.select(findings)).mappings().all()
        frame = pd.DataFrame(rows, columns=FINDING_COLUMNS)
        for column in ("first_seen", "last_seen", "resolved_at"):
            frame[column] = frame[column].map(from_utc_naive, na_action="ignore")
        return frame

    @staticmethod
    def waivers_frame(connection: Connection) -> pd.DataFrame:
        rows = connection.execute(sa.select(waivers)).mappings().all()
        return pd.DataFrame(rows, columns=[c.name for c in waivers.columns])

    @staticmethod
    def first_seen_frame(connection: Connection, system: str, asset_type: str) -> pd.DataFrame:
        statement = sa.select(
            first_seen.c.source_id, first_seen.c.first_seen, first_seen.c.baseline
        ).where(first_seen.c.system == system, first_seen.c.asset_type == asset_type)
        rows = connection.execute(statement).all()
        return pd.DataFrame(rows, columns=["source_id", "first_seen", "baseline"])

    @staticmethod
    def trend(connection: Connection, limit: int = 30) -> pd.DataFrame:
        recent = (
            sa.select(runs.c.run_id, runs.c.started_at)
            .where(runs.c.status == "completed")
            .order_by(runs.c.started_at.desc())
            .limit(limit)
            .subquery()
        )
        statement = (
            sa.select(
                recent.c.run_id,
                recent.c.started_at,
                run_counts.c.rule_id,
                sa.func.sum(run_counts.c.open).label("open"),
            )
            .join(run_counts, run_counts.c.run_id == recent.c.run_id)
            .group_by(recent.c.run_id, recent.c.started_at, run_counts.c.rule_id)
            .order_by(recent.c.started_at, run_counts.c.rule_id)
        )
        frame = pd.DataFrame(
            connection.execute(statement).all(), columns=["run_id", "started_at", "rule_id", "open"]
        )
        frame["open"] = frame["open"].astype("int64")
        frame["started_at"] = frame["started_at"].map(from_utc_naive, na_action="ignore")
        return frame

    # -- writes --------------------------------------------------------------------------------

    @staticmethod
    def insert_many(connection: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        for start in range(0, len(rows), WRITE_CHUNK):
            connection.execute(table.insert(), rows[start : start + WRITE_CHUNK])

    @staticmethod
    def update_many(
        connection: Connection, table: sa.Table, key: str, rows: list[dict[str, Any]]
    ) -> None:
        """UPDATE table SET <row's other columns> WHERE key = row[key], for each row."""
        if not rows:
            return
        columns = [c for c in rows[0] if c != key]
        statement = (
            table.update()
            .where(table.c[key] == sa.bindparam(f"_{key}"))
            .values({c: sa.bindparam(f"_{c}") for c in columns})
        )
        prefixed = [{f"_{k}": v for k, v in row.items()} for row in rows]
        for start in range(0, len(prefixed), WRITE_CHUNK):
            connection.execute(statement, prefixed[start : start + WRITE_CHUNK])

    @staticmethod
    def delete_in(
        connection: Connection, table: sa.Table, column: str, keys: Iterable[Any]
    ) -> None:
        keys = list(keys)
        for start in range(0, len(keys), 1000):
            connection.execute(
                table.delete().where(table.c[column].in_(keys[start : start + 1000]))
            )


def query_findings(
    connection: Connection,
    *,
    rule: str | None = None,
    org: str | None = None,
    asset_type: str | None = None,
    state: str | None = None,
    owner: str | None = None,
    since: dt.datetime | None = None,
    finding_id: str | None = None,
    pms_id: str | None = None,
    marketing_id: str | None = None,
) -> pd.DataFrame:
    """Findings as the store knows them now, with their waiver, filtered in SQL."""
    statement = sa.select(
        findings,
        waivers.c.reason.label("waiver_reason"),
        waivers.c.waived_by,
        waivers.c.until.label("waived_until"),
    ).outerjoin(waivers, waivers.c.finding_id == findings.c.finding_id)
    filters = {
        findings.c.rule_id: rule,
        findings.c.asset_type: asset_type,
        findings.c.owner: owner,
        findings.c.finding_id: finding_id,
        findings.c.pms_id: pms_id,
        findings.c.marketing_id: marketing_id,
    }
    for column, value in filters.items():
        if value is not None:
            statement = statement.where(column == value)
    if org is not None:  # an org code matches itself and the units below it (3740101 under 37401)
        statement = statement.where(findings.c.org_code.like(f"{org}%"))
    if state == "open":
        statement = statement.where(findings.c.state.in_(OPEN_STATES))
    elif state is not None:
        statement = statement.where(findings.c.state == state)
    if since is not None:
        statement = statement.where(findings.c.first_seen >= to_utc_naive(since))
    statement = statement.order_by(findings.c.rule_id, findings.c.asset_type, findings.c.finding_id)
    frame = pd.DataFrame(connection.execute(statement).mappings().all())
    if frame.empty:
        frame = pd.DataFrame(
            columns=FINDING_COLUMNS + ["waiver_reason", "waived_by", "waived_until"]
        )
    for column in ("first_seen", "last_seen", "resolved_at"):
        frame[column] = frame[column].map(from_utc_naive, na_action="ignore")
    return frame


def finding_events(connection: Connection, finding_id: str) -> pd.DataFrame:
    statement = (
        sa.select(events.c.run_id, events.c.state, events.c.at)
        .where(events.c.finding_id == finding_id)
        .order_by(events.c.at, events.c.run_id)
    )
    frame = pd.DataFrame(connection.execute(statement).all(), columns=["run_id", "state", "at"])
    frame["at"] = frame["at"].map(from_utc_naive, na_action="ignore")
    return frame


def list_runs(connection: Connection, limit: int) -> pd.DataFrame:
    statement = (
        sa.select(
            runs.c.run_id,
            runs.c.status,
            runs.c.exit_code,
            runs.c.as_of,
            runs.c.started_at,
            runs.c.duration_s,
            runs.c.summary_json,
            runs.c.reason,
        )
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(limit)
    )
    rows = connection.execute(statement).mappings().all()
    frame = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "status",
            "exit_code",
            "as_of",
            "started_at",
            "duration_s",
            "summary_json",
            "reason",
        ],
    )
    frame["started_at"] = frame["started_at"].map(from_utc_naive, na_action="ignore")
    return frame


def get_run(connection: Connection, run_id: str) -> dict[str, Any] | None:
    row = connection.execute(sa.select(runs).where(runs.c.run_id == run_id)).mappings().first()
    if row is None:
        return None
    record = dict(row)
    record["started_at"] = from_utc_naive(record["started_at"])
    record["finished_at"] = from_utc_naive(record["finished_at"])
    record["summary"] = json.loads(record.pop("summary_json") or "{}")
    return record
