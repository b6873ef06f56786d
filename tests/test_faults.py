"""What a night survives: a source that hangs, a connection that drops under a read.

Real servers and real processes: `gridrecon run` runs as a command while the test makes a
mapped table slow (a view that sleeps per row) and, from another connection, cancels or kills
the run's session the way a failover or an administrator would. Each failure must exit 2 with
one line naming the system and the table, and leave the state store byte for byte as it was.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import SAMPLE, run_cli

from gridrecon.sample_data import generate

SLOW_TABLE = "T_SB_ZNYC_DZ"  # PMS substations: about 30 rows in the small sample
SLOW_MARKETING_TABLE = "G_SUBS"


def write_config(folder: Path, pms_url: str, marketing_url: str, source_extra: str) -> Path:
    path = folder / "gridrecon.toml"
    path.write_text(
        f'[pms]\nurl = "{pms_url}"\n{source_extra}'
        f'[marketing]\nurl = "{marketing_url}"\n{source_extra}'
        f'[state]\nurl = "sqlite:///{folder / "state.sqlite"}"\n'
        f'[report]\ndir = "{folder / "reports"}"\n',
        encoding="utf-8",
    )
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Stall:
    """A view that takes its time over every row, in the place of `table` (the data stays).

    PostgreSQL sleeps (pg_sleep). MariaDB counts through a sequence for each row instead: a
    SLEEP() in a view is evaluated while the statement is prepared, and meanwhile even the
    process list waits, which is not what a slow query does in production.
    """

    def __init__(self, url: str, table: str, seconds_per_row: float):
        engine = sa.create_engine(url)
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f'ALTER TABLE "{table}" RENAME TO "{table}_DATA"')
                connection.exec_driver_sql(
                    f'CREATE VIEW "{table}" AS SELECT * FROM "{table}_DATA" '
                    f"WHERE pg_sleep({seconds_per_row}) IS NOT NULL"
                )
            else:
                count = int(seconds_per_row * 20_000_000)  # about 20 million a second
                connection.exec_driver_sql(f"RENAME TABLE {table} TO {table}_DATA")
                connection.exec_driver_sql(
                    f"CREATE VIEW {table} AS SELECT * FROM {table}_DATA AS t WHERE "
                    f"(SELECT COUNT(*) FROM seq_1_to_{count} WHERE seq > CHAR_LENGTH(t.SUBS_ID)) > 0"
                )
        engine.dispose()

    def release(self) -> None:
        pass

    def __enter__(self) -> Stall:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Saboteur:
    """From its own connection, ends the run's statements on `table` as they appear."""

    def __init__(self, url: str, table: str, times: int, then: Callable[[], None] = lambda: None):
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        self.table = table
        self.times = times
        self.then = then  # called once the last time is done
        self.done = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _sessions(self, connection: sa.Connection) -> list[int]:
        if self.engine.dialect.name == "postgresql":
            sql = (
                # the fast path reads through a named cursor: FETCH ... FROM gridrecon_read
                "SELECT pid FROM pg_stat_activity "
                "WHERE (query LIKE :pattern OR query LIKE '%gridrecon_read%') "
                "AND state = 'active' AND pid <> pg_backend_pid() "
                # this test's database only: other tests on the server use the same tables
                "AND datname = current_database()"
            )
        else:
            sql = (
                "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE :pattern "
                "AND ID <> CONNECTION_ID() AND DB = DATABASE()"
            )
        pattern = f"%{self.table}%"
        return list(connection.execute(sa.text(sql), {"pattern": pattern}).scalars())

    def _watch(self) -> None:
        with self.engine.connect() as connection:
            while not self.stop.is_set() and self.done < self.times:
                for session in self._sessions(connection):
                    if self.engine.dialect.name == "postgresql":
                        connection.execute(
                            sa.text("SELECT pg_terminate_backend(:p)"), {"p": session}
                        )
                    else:
                        try:
                            connection.exec_driver_sql(f"KILL {int(session)}")
                        except sa.exc.OperationalError as exc:
                            if "Unknown thread id" not in str(exc):
                                raise
                            continue  # it ended by itself since it was listed: not ended here
                    self.done += 1
                    time.sleep(0.3)  # let the run notice before looking again
                    if self.done == self.times:
                        self.then()
                        return
                time.sleep(0.05)

    def __enter__(self) -> Saboteur:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)
        self.engine.dispose()


@pytest.fixture
def sources(pg_database, mariadb_database) -> tuple[str, str]:
    generate(pg_database, mariadb_database, scale="small")
    return pg_database, mariadb_database


def first_good_run(tmp_path: Path, sources: tuple[str, str], extra: str) -> Path:
    config = write_config(tmp_path, *sources, extra)
    assert run_cli("run", "--config", str(config)).code in (0, 1)
    return config


Scenario = Callable[[str, str], tuple[str, str]]


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("system", ["pms", "marketing"])
def test_a_query_that_hangs_is_cancelled_at_the_statement_timeout(
    system, sources, tmp_path
) -> None:
    config = first_good_run(tmp_path, sources, "statement_timeout = 2\n")
    url, table = (sources[0], SLOW_TABLE) if system == "pms" else (sources[1], SLOW_MARKETING_TABLE)
    store = digest(tmp_path / "state.sqlite")
    with Stall(url, table, 1):  # ~30 rows: half a minute
        began = time.monotonic()
        result = run_cli("run", "--config", str(config))
    assert result.code == 2, result.stderr
    assert time.monotonic() - began < 25, result.stderr  # cancelled, not waited out
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"{system}: table {table}" in message
    assert "statement_timeout = 2 s" in message
    assert digest(tmp_path / "state.sqlite") == store


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("system", ["pms", "marketing"])
def test_a_dropped_connection_is_retried_and_the_run_completes(system, sources, tmp_path) -> None:
    config = first_good_run(tmp_path, sources, "retries = 3\nretry_delay = 0.5\n")
    url, table = (sources[0], SLOW_TABLE) if system == "pms" else (sources[1], SLOW_MARKETING_TABLE)
    with Stall(url, table, 0.1), Saboteur(url, table, times=1) as saboteur:
        result = run_cli("run", "--config", str(config))
    assert saboteur.done == 1
    assert result.code in (0, 1), result.stderr
    assert "34 open findings" in result.stdout


@pytest.mark.postgres
@pytest.mark.mariadb
@pytest.mark.parametrize("system", ["pms", "marketing"])
def test_a_connection_that_keeps_dropping_fails_cleanly(system, sources, tmp_path) -> None:
    config = first_good_run(tmp_path, sources, "retries = 1\nretry_delay = 0.2\n")
    url, table = (sources[0], SLOW_TABLE) if system == "pms" else (sources[1], SLOW_MARKETING_TABLE)
    store = digest(tmp_path / "state.sqlite")
    with Stall(url, table, 0.1), Saboteur(url, table, times=10):
        result = run_cli("run", "--config", str(config))
    assert result.code == 2, result.stdout
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"{system}: table {table}: the connection dropped 2 times" in message
    assert "retries = 1" in message
    assert digest(tmp_path / "state.sqlite") == store


@pytest.mark.postgres
@pytest.mark.mariadb
def test_under_load_a_second_run_is_refused_and_a_kill_in_the_write_phase_loses_nothing(
    pg_database, mariadb_database, tmp_path
) -> None:
    """At city scale (about 66,000 records; the province-scale figures are the benchmark's),
    with the state store on PostgreSQL beside PMS, as a production install would have it."""
    from test_history import _start_paused_run, _store_dump
    from test_incremental import quiet_transformers

    generate(pg_database, mariadb_database, scale="city")
    config = tmp_path / "gridrecon.toml"
    config.write_text(
        f'[pms]\nurl = "{pg_database}"\n[marketing]\nurl = "{mariadb_database}"\n'
        f'[state]\nurl = "{pg_database}"\n[report]\ndir = "{tmp_path / "reports"}"\n',
        encoding="utf-8",
    )
    first = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert first.code == 0, first.stderr
    ((quiet, _),) = quiet_transformers(mariadb_database, 1)
    change_engine = sa.create_engine(mariadb_database)
    with change_engine.begin() as connection:  # something for the next run to write
        connection.exec_driver_sql(f"UPDATE G_TRAN SET PLATE_CAP = 1 WHERE EQUIP_ID = {quiet}")
    change_engine.dispose()
    before = _store_dump(pg_database)

    victim = _start_paused_run(config)  # every write done, the commit not yet
    try:
        second = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
        assert second.code == 2
        assert "another run in progress since" in second.stderr
        assert f"pid {victim.pid}" in second.stderr
        assert "\n" not in second.stderr.strip()
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

    assert _store_dump(pg_database) == before
    after = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert after.code == 0, after.stderr
    opened = [
        int(line.split()[0])
        for line in (first.stdout + after.stdout).splitlines()
        if "open findings" in line
    ]
    assert opened[1] == opened[0] + 1  # the capacity change is now a finding


def test_a_source_unreachable_at_the_start_leaves_the_store_as_it_was(tmp_path) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    config = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'pms.sqlite'}",
        f"sqlite:///{tmp_path / 'marketing.sqlite'}",
        "",
    )
    assert run_cli("run", "--config", str(config)).code in (0, 1)
    store = digest(tmp_path / "state.sqlite")
    latest = (tmp_path / "reports" / "latest").resolve()
    text = config.read_text(encoding="utf-8").replace(
        f"sqlite:///{tmp_path / 'marketing.sqlite'}",
        "mysql+pymysql://steward:s3cret-pw@127.0.0.1:1/sg186",
    )
    config.write_text(text, encoding="utf-8")
    result = run_cli("run", "--config", str(config))
    assert result.code == 2
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "cannot connect to the marketing database" in message
    assert "steward:***@127.0.0.1:1/sg186" in message and "s3cret-pw" not in message
    assert digest(tmp_path / "state.sqlite") == store
    assert (tmp_path / "reports" / "latest").resolve() == latest
