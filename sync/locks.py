"""The run lock: at most one run per state store, and a dead holder never blocks forever.

Liveness comes from something the operating system or the database releases by itself when the
holder dies: an flock on a file next to a SQLite store, a session-level advisory lock on
PostgreSQL, GET_LOCK on MariaDB/MySQL. Who holds the lock, and since when, is written beside it
for the "another run in progress since ..." message. Other dialects fall back to that row alone,
treating a lock older than the stale limit as abandoned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..core.errors import GridreconError

LOCK_NAME = "run"
# Postgres advisory-lock key: a fixed number, so every gridrecon process agrees on it.
_PG_LOCK_KEY = 0x67726563  # "grec"
STALE_AFTER = dt.timedelta(hours=6)


class RunInProgress(GridreconError):
    """Another run holds the store's run lock (exit 2)."""


def holder_text(run_id: str) -> str:
    return json.dumps({"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid()})


def _message(info: dict[str, Any] | None, since: str | None) -> str:
    if not info:
        return "another run is in progress on this state store; try again when it has finished"
    return (
        f"another run in progress since {since} (run {info.get('run_id')}, host "
        f"{info.get('host')}, pid {info.get('pid')}); try again when it has finished"
    )


@contextmanager
def run_lock(engine: Engine, lock_table: sa.Table, run_id: str) -> Iterator[None]:
    dialect = engine.dialect.name
    if dialect == "sqlite":
        with _file_lock(engine, run_id):
            yield
    elif dialect == "postgresql":
        with _session_lock(
            engine,
            lock_table,
            run_id,
            "SELECT pg_try_advisory_lock(:key)",
            "SELECT pg_advisory_unlock(:key)",
            {"key": _PG_LOCK_KEY},
        ):
            yield
    elif dialect in ("mysql", "mariadb"):
        with _session_lock(
            engine,
            lock_table,
            run_id,
            "SELECT GET_LOCK(:key, 0)",
            "SELECT RELEASE_LOCK(:key)",
            {"key": _mysql_lock_name(engine)},
        ):
            yield
    else:
        with _row_lock(engine, lock_table, run_id):
            yield


def _mysql_lock_name(engine: Engine) -> str:
    """GET_LOCK's name for this store. Unlike PostgreSQL's advisory locks, MariaDB's named locks
    are server-wide: the name says which database (names are at most 64 characters)."""
    database = (engine.url.database or "").encode("utf-8")
    return f"gridrecon_run:{hashlib.sha1(database).hexdigest()}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _local(since: dt.datetime) -> str:
    return since.replace(tzinfo=dt.UTC).astimezone().isoformat(timespec="seconds")


@contextmanager
def _file_lock(engine: Engine, run_id: str) -> Iterator[None]:
    import fcntl

    database = engine.url.database or ""
    path = Path(database.removeprefix("file:").split("?")[0] + ".lock")
    handle = path.open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                content = json.loads(handle.read() or "{}")
            except ValueError:
                content = {}
            raise RunInProgress(_message(content, content.get("since"))) from None
        handle.seek(0)
        handle.truncate()
        info = json.loads(holder_text(run_id))
        info["since"] = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        handle.write(json.dumps(info))
        handle.flush()
        yield
    finally:
        handle.close()  # closing releases the flock; the kernel does the same if we die


@contextmanager
def _session_lock(
    engine: Engine, lock_table: sa.Table, run_id: str, take: str, give: str, params: dict
) -> Iterator[None]:
    # The lock lives as long as this connection's session: a killed process loses it at once.
    connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        if not connection.execute(sa.text(take), params).scalar():
            row = connection.execute(
                sa.select(lock_table.c.holder, lock_table.c.since).where(
                    lock_table.c.name == LOCK_NAME
                )
            ).first()
            info = json.loads(row.holder) if row else None
            raise RunInProgress(_message(info, _local(row.since) if row else None))
        connection.execute(lock_table.delete().where(lock_table.c.name == LOCK_NAME))
        connection.execute(
            lock_table.insert().values(name=LOCK_NAME, holder=holder_text(run_id), since=_now())
        )
        try:
            yield
        finally:
            connection.execute(lock_table.delete().where(lock_table.c.name == LOCK_NAME))
            connection.execute(sa.text(give), params)
    finally:
        connection.close()


@contextmanager
def _row_lock(engine: Engine, lock_table: sa.Table, run_id: str) -> Iterator[None]:
    with engine.begin() as connection:
        row = connection.execute(
            sa.select(lock_table.c.holder, lock_table.c.since).where(lock_table.c.name == LOCK_NAME)
        ).first()
        if row is not None and _now() - row.since < STALE_AFTER:
            raise RunInProgress(_message(json.loads(row.holder), _local(row.since)))
        connection.execute(lock_table.delete().where(lock_table.c.name == LOCK_NAME))
        connection.execute(
            lock_table.insert().values(name=LOCK_NAME, holder=holder_text(run_id), since=_now())
        )
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.execute(lock_table.delete().where(lock_table.c.name == LOCK_NAME))
