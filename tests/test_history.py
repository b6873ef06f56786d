"""The state store remembers between runs: states, waivers, first sightings, the inconclusive
guard, the run lock and crash safety — on a SQLite and on a PostgreSQL store."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import GRIDRECON, SAMPLE, run_cli
from tiny_grid import AS_OF, Grid

from gridrecon import api
from gridrecon.core.config import load_config
from gridrecon.sync.locks import RunInProgress


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def store_config(request, tmp_path: Path) -> str:
    """The [state] section: a SQLite file, or a fresh PostgreSQL or MariaDB database."""
    if request.param == "sqlite":
        return '[state]\nurl = "sqlite:///state.sqlite"\n'
    if request.param == "postgresql":
        return f'[state]\nurl = "{request.getfixturevalue("pg_database")}"\n'
    return f'[state]\nurl = "{request.getfixturevalue("mariadb_database")}?charset=utf8mb4"\n'


def run(grid: Grid, store_config: str, as_of: dt.date = AS_OF, fail_on: str | None = None):
    config = load_config(grid.write(store_config + '[report]\ndir = "reports"\n'))
    result, _folder = api.run(config, as_of=as_of, fail_on=fail_on)
    return result


def by_field(result) -> dict[str, dict]:
    frame = result.findings
    return {row["field"]: row for row in frame.to_dict(orient="records")}


def test_findings_move_through_new_open_resolved_and_reopened(tmp_path, store_config) -> None:
    grid = Grid(tmp_path)
    grid.marketing["G_TRAN"][0]["PLATE_CAP"] = 315
    first = by_field(run(grid, store_config))
    assert first["capacity_kva"]["state"] == "new"
    capacity_id = first["capacity_kva"]["finding_id"]

    grid.marketing["G_TRAN"][0]["TRAN_NAME"] = "河口村2号公变"
    second = by_field(run(grid, store_config))
    assert (second["capacity_kva"]["state"], second["name"]["state"]) == ("open", "new")
    assert second["capacity_kva"]["finding_id"] == capacity_id
    assert second["capacity_kva"]["first_seen"] == first["capacity_kva"]["first_seen"]
    assert second["capacity_kva"]["last_seen"] >= first["capacity_kva"]["last_seen"]

    grid.marketing["G_TRAN"][0]["PLATE_CAP"] = 400
    third = run(grid, store_config)
    states = by_field(third)
    assert (states["capacity_kva"]["state"], states["name"]["state"]) == ("resolved", "open")
    assert third.counts()["open"] == 1 and third.counts()["resolved"] == 1

    grid.marketing["G_TRAN"][0]["PLATE_CAP"] = 315
    fourth = by_field(run(grid, store_config))
    assert fourth["capacity_kva"]["state"] == "reopened"
    assert fourth["capacity_kva"]["first_seen"] == first["capacity_kva"]["first_seen"]
    fifth = by_field(run(grid, store_config))
    assert fifth["capacity_kva"]["state"] == "open"

    config = load_config(grid.folder / "gridrecon.toml")
    record, history = api.show_finding(config, capacity_id)
    assert history["state"].tolist() == ["new", "resolved", "reopened"]
    assert record["state"] == "open" and record["age_days"] >= 0
    assert len(api.list_runs(config)) == 5


def test_the_store_keeps_run_times_to_the_microsecond(tmp_path, store_config) -> None:
    # Runs and a finding's history are ordered by these times; two runs within one second must
    # still come back in order (MariaDB's plain DATETIME would keep whole seconds).
    from gridrecon.sync import store as tables

    grid = Grid(tmp_path)
    result = run(grid, store_config)
    store = api._store(load_config(grid.folder / "gridrecon.toml"))
    try:
        with store.reading() as connection:
            stored = tables.list_runs(connection, 1)["started_at"].iloc[0]
    finally:
        store.dispose()
    assert stored == result.started_at


@pytest.mark.mariadb
def test_a_mariadb_store_made_before_microseconds_is_upgraded_in_place(
    tmp_path, mariadb_database
) -> None:
    from importlib import resources

    from alembic import command
    from alembic.config import Config as AlembicConfig

    url = f"{mariadb_database}?charset=utf8mb4"
    engine = sa.create_engine(url)
    alembic = AlembicConfig()
    alembic.set_main_option(
        "script_location", str(resources.files("gridrecon.sync") / "migrations")
    )
    with engine.begin() as connection:
        alembic.attributes["connection"] = connection
        command.upgrade(alembic, "0001")
        connection.execute(
            sa.text(
                "INSERT INTO gr_waivers (finding_id, reason, waived_by, waived_at) "
                "VALUES ('f-kept', '铭牌待核实', '张工', '2026-11-20 08:30:15')"
            )
        )
    grid = Grid(tmp_path)
    run(grid, f'[state]\nurl = "{url}"\n')  # upgrades the store, keeping its rows
    with engine.connect() as connection:
        waiver = connection.execute(sa.text("SELECT finding_id, waived_at FROM gr_waivers"))
        assert waiver.all() == [("f-kept", dt.datetime(2026, 11, 20, 8, 30, 15))]
        version = connection.execute(sa.text("SELECT version_num FROM gr_alembic_version"))
        assert version.scalar() == "0002"
        precisions = connection.execute(
            sa.text(
                "SELECT TABLE_NAME, COLUMN_NAME, DATETIME_PRECISION FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE = 'datetime' "
                "AND TABLE_NAME IN ('gr_runs', 'gr_findings', 'gr_finding_events', 'gr_waivers', "
                "'gr_first_seen', 'gr_lock')"
            )
        ).all()
        assert len(precisions) == 9 and {row[2] for row in precisions} == {6}, precisions
    engine.dispose()


@pytest.mark.mariadb
def test_stores_in_two_databases_of_one_mariadb_server_lock_apart(mariadb_database) -> None:
    # MariaDB's named locks are server-wide: a run on one store must not block another's.
    from conftest import MARIADB_URL, _scratch_database

    from gridrecon.sync.store import StateStore

    other_databases = _scratch_database(MARIADB_URL)
    stores = [StateStore(sa.make_url(url)) for url in (mariadb_database, next(other_databases))]
    again = StateStore(sa.make_url(mariadb_database))
    try:
        for store in stores:
            store.ensure_schema()
        with stores[0].lock("run-a"), stores[1].lock("run-b"):
            with pytest.raises(RunInProgress, match="run-a"), again.lock("run-c"):
                pass
    finally:
        for store in (*stores, again):
            store.dispose()
        other_databases.close()


def test_a_waiver_keeps_a_finding_out_of_open_counts_until_it_expires(
    tmp_path, store_config
) -> None:
    grid = Grid(tmp_path)
    grid.marketing["G_TRAN"][0]["PLATE_CAP"] = 315
    finding_id = run(grid, store_config).findings["finding_id"].iloc[0]
    config = load_config(grid.folder / "gridrecon.toml")
    assert api.waive(config, [finding_id], "铭牌待核实", "张工", dt.date(2026, 11, 25)) == 1

    waived = run(grid, store_config, as_of=dt.date(2026, 11, 25), fail_on="warning")
    assert waived.findings["waived"].tolist() == [True]
    assert waived.counts()["open"] == 0 and waived.counts()["waived"] == 1
    assert waived.exit_code == 0  # a waived finding does not trip --fail-on

    expired = run(grid, store_config, as_of=dt.date(2026, 11, 26), fail_on="warning")
    assert expired.findings["waived"].tolist() == [False]
    assert expired.exit_code == 1
    assert any("waivers expired" in note and finding_id in note for note in expired.notes)

    assert api.unwaive(config, [finding_id]) == 1


def test_waiving_an_unknown_id_exits_two_naming_it(tmp_path) -> None:
    grid = Grid(tmp_path)
    config = grid.write()
    result = run_cli(
        "findings", "waive", "feedfacefeedface", "--reason", "x", "--config", str(config)
    )
    assert result.code == 2
    assert "feedfacefeedface" in result.stderr and "Traceback" not in result.stderr


def test_bulk_waivers_come_from_the_stewards_edited_export(tmp_path) -> None:
    grid = Grid(tmp_path)
    grid.marketing["G_TRAN"][0]["PLATE_CAP"] = 315
    grid.marketing["G_TRAN"][0]["TRAN_NAME"] = "河口村2号公变"
    run(grid, "")
    exported = (tmp_path / "reports" / "latest" / "findings.csv").read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(exported.splitlines()))
    assert len(rows) == 2
    # The steward adds a reason column in Excel and fills it for one row; Excel saves GBK.
    edited = tmp_path / "edited.csv"
    with edited.open("w", encoding="gb18030", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], "reason", "until"])
        writer.writeheader()
        for row in rows:
            waive = row["field"] == "name"
            writer.writerow(
                {
                    **row,
                    "reason": "更名流程在途" if waive else "",
                    "until": "2026-12-31" if waive else "",
                }
            )
    result = run_cli(
        "findings",
        "waive",
        "--from-csv",
        str(edited),
        "--by",
        "李工",
        "--config",
        str(tmp_path / "gridrecon.toml"),
    )
    assert result.code == 0, result.stderr
    assert "waived 1 findings" in result.stdout
    listed = run_cli(
        "findings", "list", "--format", "json", "--config", str(tmp_path / "gridrecon.toml")
    )
    records = {r["field"]: r for r in json.loads(listed.stdout)}
    assert records["name"]["waiver_reason"] == "更名流程在途"
    assert (
        records["name"]["waived_by"] == "李工" and records["name"]["waived_until"] == "2026-12-31"
    )
    assert records["capacity_kva"]["waived"] is False


def _copy_sample(folder: Path) -> Path:
    for name in ("pms.sqlite", "marketing.sqlite"):
        (folder / name).write_bytes((SAMPLE / name).read_bytes())
    config = folder / "gridrecon.toml"
    config.write_text(
        '[pms]\nurl = "sqlite:///pms.sqlite"\n[marketing]\nurl = "sqlite:///marketing.sqlite"\n'
        '[report]\ndir = "reports"\n',
        encoding="utf-8",
    )
    return config


def _store_dump(url: str) -> dict[str, list]:
    """Every row of every gridrecon table, to compare a store before and after."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = [t for t in sa.inspect(connection).get_table_names() if t.startswith("gr_")]
            return {
                table: sorted(
                    map(tuple, connection.execute(sa.text(f"SELECT * FROM {table}"))), key=repr
                )
                for table in tables
                if table != "gr_lock"
            }
    finally:
        engine.dispose()


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _sample_with_store(tmp_path: Path, backend: str, request) -> tuple[Path, str]:
    """A copy of the sample with a SQLite or PostgreSQL state store; config path and store URL."""
    config = _copy_sample(tmp_path)
    if backend == "sqlite":
        return config, f"sqlite:///{tmp_path / 'gridrecon-state.sqlite'}"
    store_url = request.getfixturevalue("pg_database")
    config.write_text(config.read_text() + f'[state]\nurl = "{store_url}"\n', encoding="utf-8")
    return config, store_url


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_truncated_source_makes_the_run_inconclusive_and_changes_no_finding(
    tmp_path, backend, request
) -> None:
    config, store_url = _sample_with_store(tmp_path, backend, request)
    first = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert first.code == 0, first.stderr
    before = _store_dump(store_url)
    latest_before = (tmp_path / "reports" / "latest").resolve()

    # A half-finished nightly export: 60% of the lines are gone.
    with sqlite3.connect(tmp_path / "pms.sqlite") as connection:
        connection.execute(
            "DELETE FROM T_SB_ZWYC_XL WHERE rowid IN "
            "(SELECT rowid FROM T_SB_ZWYC_XL ORDER BY rowid LIMIT 180)"
        )
    truncated = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert truncated.code == 3, truncated.stderr
    after = _store_dump(store_url)
    assert after["gr_findings"] == before["gr_findings"]
    assert after["gr_finding_events"] == before["gr_finding_events"]
    runs = api.list_runs(load_config(config))
    assert runs["status"].tolist() == ["inconclusive", "completed"]
    assert "fewer than 50% of the 298" in runs["reason"].iloc[0]
    assert (tmp_path / "reports" / "latest").resolve() == latest_before

    # An empty source is inconclusive whatever the share.
    with sqlite3.connect(tmp_path / "marketing.sqlite") as connection:
        connection.execute("DELETE FROM G_SUBS")
    empty = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert (
        empty.code == 3 and "marketing returned no substation rows" in empty.stdout + empty.stderr
    )


def test_first_sightings_stand_in_for_a_missing_creation_time(tmp_path, custom_config) -> None:
    # The register has no creation-time column. On the store's first run every record is
    # baseline: never judged late. A record appearing later is first seen "now", after its
    # deadline, so it is archived late.
    config = load_config(custom_config)
    first, _ = api.run(config, as_of=AS_OF)
    assert "ARCHIVE_LATE" not in set(first.findings["rule_id"])
    engine = sa.create_engine(f"sqlite:///{custom_config.parent / 'register.sqlite'}")
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO asset_feeder VALUES ('F-3', '10kV河口三线', 'HV10', 7, NULL, 'U1', 'A', "
            "'20261008', NULL)"
        )
    engine.dispose()
    second, _ = api.run(config, as_of=AS_OF)
    late = second.findings[second.findings["rule_id"] == "ARCHIVE_LATE"]
    assert late[["pms_id", "field"]].values.tolist() == [["F-3", "pms"]]


def _start_paused_run(config: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real `gridrecon run` stopped just before its commit, every write done."""
    process = subprocess.Popen(
        [str(GRIDRECON), "run", "--config", str(config), "--as-of", "2026-11-20"],
        env={**os.environ, "GRIDRECON_TEST_PAUSE": "before-commit:120", **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = process.stderr.readline()
    assert "test pause at before-commit" in line, line + process.stderr.read()
    return process


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_run_killed_before_its_commit_leaves_the_store_as_it_was(
    tmp_path, backend, request
) -> None:
    config, store_url = _sample_with_store(tmp_path, backend, request)
    assert run_cli("run", "--config", str(config), "--as-of", "2026-11-20").code == 0
    with sqlite3.connect(tmp_path / "marketing.sqlite") as connection:  # something to change
        connection.execute("UPDATE G_TRAN SET PLATE_CAP = 1 WHERE EQUIP_ID = 9400000014")
    before = _store_dump(store_url)

    victim = _start_paused_run(config)
    try:
        second = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
        assert second.code == 2
        assert "another run in progress since" in second.stderr
        assert f"pid {victim.pid}" in second.stderr
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

    assert _store_dump(store_url) == before
    after_crash = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert after_crash.code == 0, after_crash.stderr  # the dead holder's lock is gone
    assert len(api.list_runs(load_config(config))) == 2


def test_the_store_schema_is_created_by_the_shipped_migrations(tmp_path) -> None:
    config = _copy_sample(tmp_path)
    listed = run_cli("runs", "list", "--config", str(config), "--format", "json")
    assert listed.code == 0 and json.loads(listed.stdout) == []
    with sqlite3.connect(tmp_path / "gridrecon-state.sqlite") as connection:
        version = connection.execute("SELECT version_num FROM gr_alembic_version").fetchone()
    assert version == ("0002",)


def test_the_head_revision_a_run_checks_for_is_the_newest_migration() -> None:
    # A run skips alembic when the store is at HEAD_REVISION: a new migration must move it.
    from importlib import resources

    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from gridrecon.sync.store import HEAD_REVISION

    config = AlembicConfig()
    config.set_main_option("script_location", str(resources.files("gridrecon.sync") / "migrations"))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]
