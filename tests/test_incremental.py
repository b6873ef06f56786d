"""Incremental nights: only changed rows are read, and the findings are those of a full read.

Each test runs real reconciliations over a copy of the shipped sample (SQLite) or the sample
written to PostgreSQL and MariaDB, changes the source between runs, and compares an incremental
run's findings with a full run's over the same data.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import SAMPLE

from gridrecon import api
from gridrecon.connectors import reader
from gridrecon.core.config import load_config
from gridrecon.sample_data import AS_OF, generate
from gridrecon.sync import incremental

NOW = dt.datetime.now().replace(microsecond=0)  # an update made "tonight"


def write_config(folder: Path, pms_url: str, marketing_url: str, extra: str = "") -> Path:
    path = folder / "gridrecon.toml"
    path.write_text(
        f'[pms]\nurl = "{pms_url}"\n[marketing]\nurl = "{marketing_url}"\n'
        f'[state]\nurl = "sqlite:///{folder / "state.sqlite"}"\n'
        f'[report]\ndir = "{folder / "reports"}"\n'
        f"[incremental]\nenabled = true\n{extra}",
        encoding="utf-8",
    )
    return path


def run(config: Path, full: bool = False) -> tuple[str, set[tuple[str, str | None]]]:
    """One run in this process: how it read, and its open findings as (rule, subject id)."""
    result, folder = api.run(load_config(config), as_of=AS_OF, full=full)
    assert result.status == "completed"
    read = next(n for n in result.notes if n.startswith("read: "))
    findings = json.loads((folder / "findings.json").read_text(encoding="utf-8"))
    open_ = {
        (f["finding_id"], f["rule_id"])
        for f in findings
        if f["state"] in ("new", "open", "reopened")
    }
    return read.split()[1], open_


def last_read(config: Path) -> str:
    """How the last completed run read, as its summary says."""
    summary = load_config(config).report_dir / "latest" / "summary.json"
    notes = json.loads(summary.read_text(encoding="utf-8"))["notes"]
    return next(n for n in notes if n.startswith("read: "))


def quiet_transformers(url: str, count: int) -> list[tuple[int, str]]:
    """Linked, in-service marketing transformers no planted case touches."""
    planted = set()
    with (SAMPLE / "planted.csv").open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            planted |= {row["pms_id"], row["marketing_id"]}
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                'SELECT "EQUIP_ID", "PMS_EQUIP_ID" FROM "G_TRAN" WHERE "RUN_STATUS_CODE" = \'01\' '
                'AND "PMS_EQUIP_ID" IS NOT NULL ORDER BY "EQUIP_ID"'
            )
            if engine.dialect.name != "mysql"
            else sa.text(
                "SELECT EQUIP_ID, PMS_EQUIP_ID FROM G_TRAN WHERE RUN_STATUS_CODE = '01' "
                "AND PMS_EQUIP_ID IS NOT NULL ORDER BY EQUIP_ID"
            )
        ).all()
    engine.dispose()
    quiet = [(e, p) for e, p in rows if str(e) not in planted and p not in planted]
    return quiet[:count]


def change(url: str, statement: str, **values) -> None:
    engine = sa.create_engine(url)
    if engine.dialect.name == "mysql":
        statement = statement.replace('"', "")
    with engine.begin() as connection:
        connection.execute(sa.text(statement), values)
    engine.dispose()


def night_after_night(config: Path, marketing_url: str) -> None:
    """The scenario every engine goes through."""
    (renamed, _), (deleted, deleted_pms) = quiet_transformers(marketing_url, 2)

    mode, first = run(config)
    assert mode == "full"  # a new store reads everything

    mode, unchanged = run(config)
    assert mode == "incremental"
    assert "no row changed, the last judgement holds" in last_read(config)
    assert unchanged == first

    # a change with its update time: seen tonight, as a full read would see it
    change(
        marketing_url,
        'UPDATE "G_TRAN" SET "TRAN_NAME" = \'改名后的变压器\', "CHG_DATE" = :now '
        'WHERE "EQUIP_ID" = :id',
        now=NOW,
        id=renamed,
    )
    mode, after_rename = run(config)
    assert mode == "incremental"
    new = after_rename - first
    assert [rule for _, rule in new] == ["ATTR_MISMATCH"]
    assert run(config, full=True) == ("full", after_rename)

    # a deletion leaves no update time behind: unseen until the next full read
    change(marketing_url, 'DELETE FROM "G_TRAN" WHERE "EQUIP_ID" = :id', id=deleted)
    mode, after_delete = run(config)
    assert (mode, after_delete) == ("incremental", after_rename)
    mode, swept = run(config, full=True)
    assert mode == "full"
    assert {rule for _, rule in swept - after_rename} == {"ARCHIVE_OVERDUE"}


# 0: every changed row is read by a second scan for the update time, and relations whole
@pytest.mark.parametrize("few_keys", [reader.FEW_KEYS, 0])
def test_incremental_nights_on_sqlite(tmp_path, monkeypatch, few_keys) -> None:
    monkeypatch.setattr(reader, "FEW_KEYS", few_keys)
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    marketing = f"sqlite:///{tmp_path / 'marketing.sqlite'}"
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'pms.sqlite'}", marketing)
    night_after_night(config, marketing)


@pytest.mark.postgres
@pytest.mark.mariadb
def test_incremental_nights_on_postgresql_and_mariadb(
    pg_database, mariadb_database, tmp_path
) -> None:
    generate(pg_database, mariadb_database, scale="small")
    config = write_config(tmp_path, pg_database, mariadb_database)
    night_after_night(config, mariadb_database)


PMS_TABLES = ["T_SB_ZNYC_DZ", "T_SB_ZWYC_XL", "T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"]
MARKETING_TABLES = ["G_SUBS", "G_LINE", "G_TRAN"]
RELATIONS = ["G_SUBS_LINE_RELA", "G_LINE_TG_RELA"]


def asked(config: Path) -> tuple[str, set[tuple[str, str | None]], list[str]]:
    """run(), and the SELECTs it sent (whitespace collapsed)."""
    statements: list[str] = []

    def seen(connection, cursor, statement, *_) -> None:
        statements.append(" ".join(statement.split()))

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", seen)
    try:
        mode, found = run(config)
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", seen)
    return mode, found, [s for s in statements if s.startswith("SELECT")]


def test_a_night_asks_unchanged_tables_only_for_ids_and_reads_changed_rows_by_id(
    tmp_path,
) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    pms, marketing = (f"sqlite:///{tmp_path / n}" for n in ("pms.sqlite", "marketing.sqlite"))
    # Every row last updated long ago but one transformer, the newest: only it falls in the
    # lag window, the rows read again every night.
    old = dt.datetime(2020, 1, 1)
    for table in PMS_TABLES:
        change(pms, f'UPDATE "{table}" SET "GXSJ" = :old', old=old)
    for table in MARKETING_TABLES:
        change(marketing, f'UPDATE "{table}" SET "CHG_DATE" = :old', old=old)
    *renamed, newest = [e for e, _ in quiet_transformers(marketing, 3)]
    change(
        marketing,
        'UPDATE "G_TRAN" SET "CHG_DATE" = :later WHERE "EQUIP_ID" = :id',
        later=dt.datetime(2020, 6, 1),
        id=newest,
    )
    config = write_config(tmp_path, pms, marketing)
    assert run(config)[0] == "full"

    def rows_read(statements: list[str], table: str) -> list[str]:
        return [s for s in statements if f'FROM "{table}"' in s and " AS name" in s]

    mode, _, statements = asked(config)
    assert mode == "incremental"
    assert "no row changed, the last judgement holds" in last_read(config)
    # Each table is asked for the ids of its rows updated since the watermark; only the
    # transformers have one, read again by its id; the lines' relation is not read.
    ids_asked = r'SELECT "(\w+)"\."\w+" AS source_id FROM "\1" WHERE "\1"\."(GXSJ|CHG_DATE)" >= \?'
    asked_for_ids = [re.fullmatch(ids_asked, s) for s in statements]
    assert sorted(m[1] for m in asked_for_ids if m) == sorted(PMS_TABLES + MARKETING_TABLES)
    for table in PMS_TABLES + MARKETING_TABLES[:2]:
        assert rows_read(statements, table) == []
    (rows,) = rows_read(statements, "G_TRAN")
    assert rows.endswith('AND "G_TRAN"."EQUIP_ID" IN (?)')  # by id, not a second scan
    assert not any('FROM "G_SUBS_LINE_RELA"' in s for s in statements)

    change(
        marketing,
        'UPDATE "G_TRAN" SET "TRAN_NAME" = \'改名后的变压器\', "CHG_DATE" = :now '
        'WHERE "EQUIP_ID" IN (:a, :b)',
        now=NOW,
        a=renamed[0],
        b=renamed[1],
    )
    mode, found, statements = asked(config)
    assert mode == "incremental"
    (rows,) = rows_read(statements, "G_TRAN")
    assert rows.endswith('AND "G_TRAN"."EQUIP_ID" IN (?, ?, ?)')
    assert run(config, full=True) == ("full", found)


def test_a_changed_config_or_an_old_sweep_reads_everything(tmp_path) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    pms, marketing = (f"sqlite:///{tmp_path / n}" for n in ("pms.sqlite", "marketing.sqlite"))
    config = write_config(tmp_path, pms, marketing, "full_sweep_days = 1\n")
    assert run(config)[0] == "full"
    assert run(config)[0] == "incremental"

    # the rules changed: what the snapshot remembers no longer answers tonight's questions
    text = config.read_text(encoding="utf-8")
    config.write_text(text + "[rules]\nunlinked_candidates = 1\n", encoding="utf-8")
    assert run(config)[0] == "full"
    assert run(config)[0] == "incremental"

    # the last full read is older than full_sweep_days
    folder = load_config(config).snapshot_dir
    snapshot = incremental.load(folder)
    snapshot.full_sweep_at -= dt.timedelta(days=1)
    (folder / incremental.SNAPSHOT_FILE).write_bytes(pickle.dumps(snapshot))
    assert run(config)[0] == "full"


def test_a_failed_run_keeps_the_snapshot_of_the_last_good_one(tmp_path) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    pms, marketing = (f"sqlite:///{tmp_path / n}" for n in ("pms.sqlite", "marketing.sqlite"))
    config = write_config(tmp_path, pms, marketing)
    run(config)
    snapshot_file = load_config(config).snapshot_dir / incremental.SNAPSHOT_FILE
    before = snapshot_file.read_bytes()
    (tmp_path / "marketing.sqlite").unlink()
    with pytest.raises(Exception, match="does not exist"):
        api.run(load_config(config), as_of=AS_OF)
    assert snapshot_file.read_bytes() == before


def test_a_run_that_fails_after_judging_leaves_the_snapshot_as_it_was(tmp_path) -> None:
    # The records of a run are written while it stores its findings and writes its reports;
    # one that then fails (here: the report folder is a file) leaves no records folder behind.
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    pms, marketing = (f"sqlite:///{tmp_path / n}" for n in ("pms.sqlite", "marketing.sqlite"))
    config = write_config(tmp_path, pms, marketing, f'snapshot_dir = "{tmp_path / "snap"}"\n')
    run(config)
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "snap").iterdir()}
    assert len(before) == 2  # the snapshot and its records folder
    shutil.rmtree(tmp_path / "reports")
    (tmp_path / "reports").write_text("not a folder", encoding="utf-8")
    with pytest.raises(Exception, match="cannot create the report directory"):
        api.run(load_config(config), as_of=AS_OF, full=True)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "snap").iterdir()} == before

    (tmp_path / "reports").unlink()
    assert run(config)[0] == "incremental"  # the snapshot still reads


def judged(
    config: Path, as_of: dt.date, full: bool = False
) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """One run: how it read, its findings (without their history) and its metrics."""
    result, _ = api.run(load_config(config), as_of=as_of, full=full)
    assert result.status == "completed"
    read = next(n for n in result.notes if n.startswith("read: "))
    findings = result.findings[result.findings["state"].isin(["new", "open", "reopened"])]
    findings = findings.drop(columns=["state", "first_seen", "last_seen"])
    return read, findings.reset_index(drop=True), result.metrics


def test_a_night_without_changes_builds_on_the_last_judgement_as_of_tonight(tmp_path) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    pms, marketing = (f"sqlite:///{tmp_path / n}" for n in ("pms.sqlite", "marketing.sqlite"))
    config = write_config(tmp_path, pms, marketing)
    _, on_as_of, _ = judged(config, AS_OF)

    # Ten days on, the assets pending at AS_OF are overdue and every count of days has moved:
    # the carried judgement must give exactly what judging every record again gives.
    later = AS_OF + dt.timedelta(days=10)
    read, carried, carried_metrics = judged(config, later)
    assert "no row changed, the last judgement holds" in read
    snapshot_files = sorted(p.name for p in load_config(config).snapshot_dir.iterdir())
    read, full, full_metrics = judged(config, later, full=True)
    assert read.startswith("read: full")
    pd.testing.assert_frame_equal(carried, full)
    pd.testing.assert_frame_equal(carried_metrics, full_metrics)
    rules = lambda f: f["rule_id"].value_counts().to_dict()  # noqa: E731
    assert rules(full)["ARCHIVE_OVERDUE"] > rules(on_as_of)["ARCHIVE_OVERDUE"]
    assert set(full["detail"]) != set(on_as_of["detail"])
    assert len(snapshot_files) == 2  # the snapshot and the one records file it names

    # The sample's commissioning date in the future (2026-12-15) is reached: that record is
    # judged again with the rest, and the findings are again those of a full read.
    reached = dt.date(2026, 12, 16)
    read, again, again_metrics = judged(config, reached)
    assert read.startswith("read: incremental") and "the last judgement holds" not in read
    _, full, full_metrics = judged(config, reached, full=True)
    pd.testing.assert_frame_equal(again, full)
    pd.testing.assert_frame_equal(again_metrics, full_metrics)
    assert on_as_of["detail"].str.contains("in the future").sum() == 1
    assert not full["detail"].str.contains("in the future").any()

    # As of an earlier day than the judgement carried, everything is judged again.
    read, _, _ = judged(config, AS_OF)
    assert "the last judgement holds" not in read


def test_a_change_committed_late_inside_the_lag_window_is_not_a_quiet_night(tmp_path) -> None:
    # The newest row is read again every night (the lag window, for transactions that commit
    # after the run began). One rewritten under the same update time differs from the
    # snapshot's copy: the night is not quiet, and the change is judged.
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    marketing = f"sqlite:///{tmp_path / 'marketing.sqlite'}"
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'pms.sqlite'}", marketing)
    _, first = run(config)
    newest = incremental.load(load_config(config).snapshot_dir).newest_update
    stamp = newest.strftime("%Y-%m-%d %H:%M:%S.%f")
    quiet = {str(e) for e, _ in quiet_transformers(marketing, 100_000)}
    engine = sa.create_engine(marketing)
    with engine.connect() as connection:
        (newest_id,) = connection.execute(
            sa.text('SELECT "EQUIP_ID" FROM "G_TRAN" WHERE "CHG_DATE" = :stamp'), {"stamp": stamp}
        ).one()
    engine.dispose()
    assert str(newest_id) in quiet  # linked, in service, no planted case
    mode, unchanged = run(config)
    assert "no row changed, the last judgement holds" in last_read(config)

    change(
        marketing,
        'UPDATE "G_TRAN" SET "TRAN_NAME" = \'改名后的变压器\' WHERE "EQUIP_ID" = :id',
        id=newest_id,
    )
    mode, after = run(config)
    assert mode == "incremental"
    assert "the last judgement holds" not in last_read(config)
    assert [rule for _, rule in after - first] == ["ATTR_MISMATCH"]


@pytest.mark.parametrize("at_once", [500_000, 4])  # ids hashed in one slice, or in several
def test_record_key_hashes_are_pandas_hashes_of_table_and_id(
    at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Snapshots keep these hashes from night to night: they must not change with how they are
    # computed. Nulls, empty text, repeated ids and a null table included.
    from gridrecon.connectors import normalize
    from gridrecon.connectors.normalize import record_key_hashes

    monkeypatch.setattr(normalize, "_HASHED_AT_ONCE", at_once)

    frame = pd.DataFrame(
        {
            "source_table": pd.Series(["T_A", "T_B", "T_A", None, "T_A", "T_B"], dtype="str"),
            "source_id": pd.Series(["1", "1", None, "2", "", "变压器-3"], dtype="str"),
        }
    )
    expected = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    assert record_key_hashes(frame).tolist() == expected.tolist()
    assert record_key_hashes(frame.iloc[:0]).tolist() == []


def test_sorted_unique_is_numpys_unique() -> None:
    import numpy as np

    from gridrecon.connectors.normalize import sorted_unique

    hashes = np.random.default_rng(8).integers(0, 2**64 - 1, 5000, dtype=np.uint64)
    for values in (hashes, np.repeat(hashes[:40], 3), hashes[:1], hashes[:0]):
        assert sorted_unique(values).tolist() == np.unique(values).tolist()
        assert sorted_unique(values).dtype == np.uint64


def test_a_run_keeps_each_records_key_hash_and_the_judged_ones_as_validated(tmp_path) -> None:
    # The hashes are computed once per run and shared by the snapshot and the validity memory:
    # they must be the records' own, and the validated ones those of the records judged.
    import datetime as dt

    from conftest import sample_config

    from gridrecon.checks.calendar import WorkingCalendar
    from gridrecon.checks.settings import RuleSettings
    from gridrecon.connectors.normalize import record_key_hashes, sorted_unique
    from gridrecon.sync.matching import duplicated_ids

    config = load_config(sample_config(tmp_path))
    pulled = api.pull(config)
    keep: dict = {}
    settings = RuleSettings.parse(config.rules, config.path)
    started = dt.datetime.now(config.timezone)
    api.conclude(config, settings, WorkingCalendar.load(None), pulled, AS_OF, started, None, keep)
    repeated = 0
    for (system, asset_type), hashes in keep["hashes"].items():
        records = pulled.reads[system].records(asset_type)
        assert hashes.tolist() == record_key_hashes(records).tolist()
        judged = records[~duplicated_ids(records["source_id"])]
        repeated += len(records) - len(judged)
        expected = sorted_unique(record_key_hashes(judged)[judged["source_id"].notna().to_numpy()])
        validated = keep["validity"][(system, asset_type)].validated
        assert validated.tolist() == expected.tolist()
    assert repeated == 2  # the sample's transformer id in two PMS tables


def test_the_records_folder_gives_back_the_same_records_and_their_validity(tmp_path) -> None:
    # The sample's records, read for real, through a records folder and back: the same values,
    # dtypes and index. A folder with a damaged or a missing file reads as none (the run then
    # reads everything).
    from conftest import sample_config

    config = load_config(sample_config(tmp_path))
    pulled = api.pull(config)
    records = {
        system: {t: read.records(t) for t in ("substation", "line", "transformer")}
        for system, read in pulled.reads.items()
    }
    failures = pd.DataFrame(
        {"key": ["T\x1f1"], "field": ["name"], "check": ["name_not_null"], "reason": ["r"]}
    )
    validity = {("pms", "line"): incremental.ValidityMemory(np.array([7, 9], "uint64"), failures)}
    folder = tmp_path / "snapshot"
    incremental.write_records(folder, "records-1", incremental.StoredRecords(records, validity))
    assert sorted(p.name for p in folder.iterdir()) == ["records-1"]  # no temporary left

    back = incremental.read_records(folder / "records-1")
    for system, by_type in records.items():
        for asset_type, frame in by_type.items():
            pd.testing.assert_frame_equal(back.records[system][asset_type], frame, check_exact=True)
    assert back.validity[("pms", "line")].validated.tolist() == [7, 9]
    pd.testing.assert_frame_equal(back.validity[("pms", "line")].failures, failures)

    damaged = folder / "records-1" / "marketing.transformer.arrow"
    damaged.write_bytes(damaged.read_bytes()[:4096])
    assert incremental.read_records(folder / "records-1") is None
    damaged.unlink()
    assert incremental.read_records(folder / "records-1") is None


def test_records_arrow_cannot_hold_are_a_snapshot_error_and_leave_nothing(tmp_path) -> None:
    # A column of mixed Python objects: the run that kept them would still complete (api
    # catches SnapshotError, like a full disk), and no half-written folder stays behind.
    frame = pd.DataFrame({"source_id": ["1", "2"], "odd": [object(), 1.5]})
    writer = incremental.RecordsWriter(
        tmp_path,
        dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        incremental.StoredRecords({"pms": {"line": frame}}),
    )
    with pytest.raises(incremental.SnapshotError, match="odd|object"):
        writer.done()
    writer.abandon()
    assert list(tmp_path.iterdir()) == []


def test_a_snapshot_that_cannot_be_written_leaves_a_completed_run_and_a_warning(
    tmp_path, caplog
) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    pms, marketing = (f"sqlite:///{tmp_path / n}" for n in ("pms.sqlite", "marketing.sqlite"))
    (tmp_path / "blocker").write_text("a file where the snapshot's folder would go", "utf-8")
    snapshot_dir = tmp_path / "blocker" / "snap"
    config = write_config(tmp_path, pms, marketing, f'snapshot_dir = "{snapshot_dir}"\n')
    assert run(config)[0] == "full"  # completed (run() asserts it) though nothing was kept
    assert "could not keep the snapshot for incremental runs" in caplog.text
    assert run(config)[0] == "full"
    assert "no snapshot of an earlier run" in last_read(config)
