"""A read too large to hold goes to disk by partition and finds what a read held whole finds.

sync/spill.py writes the transformers of each system, chunk by chunk as they are read, to the
Arrow files of their partitions; api.judge_spilled then judges one partition of both systems at a
time. These tests run the whole conclusion both ways on the shipped sample (SQLite) and on the
sample written to PostgreSQL and MariaDB (read by the streamed fast paths), with partitions so
small that pairs, repeated ids and the UNLINKED candidate search all cross them; then nights of
incremental runs on top of a spilled read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import SAMPLE, run_cli, sample_config
from test_incremental import NOW, change, last_read, quiet_transformers, run
from test_incremental import write_config as incremental_config
from test_partition import assert_same_conclusion

from gridrecon import api
from gridrecon.checks.calendar import WorkingCalendar
from gridrecon.checks.settings import RuleSettings
from gridrecon.checks.validity import stop_worker
from gridrecon.connectors.normalize import NULL_HASH, id_hashes
from gridrecon.connectors.reader import Relation, follow_pairs, open_sources
from gridrecon.core.config import load_config
from gridrecon.sample_data import generate
from gridrecon.sync import incremental
from gridrecon.sync.matching import duplicated_ids
from gridrecon.sync.spill import ROW, SpillWriter, repeated_own_ids

AS_OF = dt.date(2026, 11, 20)
SPILLED_NOTE = "transformer read to disk by partition"


def conclude(config_path: Path, partition_rows: int) -> tuple[api.RunResult, dict, api.Pulled]:
    config = dataclasses.replace(load_config(config_path), partition_rows=partition_rows)
    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    pulled = api.pull(config)
    started = dt.datetime(2026, 11, 20, 2, 0, tzinfo=config.timezone)
    keep: dict = {}
    try:
        result = api.conclude(config, settings, calendar, pulled, AS_OF, started, None, keep)
    finally:
        stop_worker()
    return result, keep, pulled


def assert_spilled_alike(config_path: Path, partition_rows: int) -> Path:
    """Asserts both conclusions alike; the folder the records were spilled to."""
    whole, whole_kept, whole_pulled = conclude(config_path, 10**9)
    parted, parted_kept, pulled = conclude(config_path, partition_rows)
    try:
        assert whole_pulled.spill is None and not any("disk" in n for n in whole.notes)
        assert any(n.startswith(SPILLED_NOTE) for n in parted.notes)
        spilled = pulled.spilled("transformer")
        assert spilled is not None and spilled["pms"].count > 1
        # the records are on disk, not in memory, and every one of them is there
        for system, records in spilled.items():
            assert pulled.reads[system].records("transformer").empty
            assert records.rows == whole_pulled.reads[system].assets["transformer"].rows
            assert sum(records.load(p).shape[0] for p in range(records.count)) == records.rows

        assert_same_conclusion(whole, whole_kept, parted, parted_kept)
        records = {s: whole_pulled.reads[s].records("transformer") for s in ("pms", "marketing")}
        for system, frame in records.items():
            digest = parted_kept["digests"][(system, "transformer")]
            known = frame["source_id"].notna().to_numpy()
            expected = np.unique(incremental.record_key_hashes(frame)[known])
            assert np.array_equal(digest.id_hashes, expected)
            assert digest.newest == frame["updated_at"].max()
        folder = pulled.spill.path
        assert folder.is_dir()
    finally:
        pulled.remove_spill()
    return folder


@pytest.mark.parametrize("partition_rows", [40, 150])  # 70 and 20 partitions
def test_a_sample_read_to_disk_finds_what_one_read_whole_finds(
    tmp_path: Path, partition_rows: int
) -> None:
    folder = assert_spilled_alike(sample_config(tmp_path), partition_rows)
    assert not folder.exists()  # removed once the run is done with it


def test_a_marketing_id_repeated_across_partitions_is_one_duplicate_finding(
    tmp_path: Path,
) -> None:
    # Two marketing transformers share one own id but carry different PMS ids: they go to
    # different partitions, and DUPLICATE_ID must still count both, once.
    marketing = tmp_path / "marketing.sqlite"
    shutil.copy(SAMPLE / "marketing.sqlite", marketing)
    engine = sa.create_engine(f"sqlite:///{marketing}")
    with engine.begin() as connection:
        rows = connection.execute(
            sa.text(
                'SELECT "EQUIP_ID", "PMS_EQUIP_ID" FROM "G_TRAN" '
                'WHERE "PMS_EQUIP_ID" IS NOT NULL ORDER BY "EQUIP_ID" LIMIT 40'
            )
        ).all()
        config = sample_config(tmp_path, marketing_url=f"sqlite:///{marketing}")
        count = 150
        first = rows[0]
        # another record whose PMS id falls into another partition than the first's
        other = next(
            r
            for r in rows[1:]
            if id_hashes(pd.Series([r[1]]))[0] % count
            != id_hashes(pd.Series([first[1]]))[0] % count
        )
        # the same table without its primary key, so that an id can repeat (as in an SG186
        # copy loaded without constraints)
        created = connection.execute(
            sa.text("SELECT sql FROM sqlite_master WHERE name = 'G_TRAN'")
        ).scalar()
        unkeyed = created.replace('"G_TRAN"', '"G_TRAN_UNKEYED"').replace(
            ', \n\tPRIMARY KEY ("EQUIP_ID")', ""
        )
        assert unkeyed != created and "PRIMARY" not in unkeyed
        connection.execute(sa.text(unkeyed))
        connection.execute(sa.text('INSERT INTO "G_TRAN_UNKEYED" SELECT * FROM "G_TRAN"'))
        connection.execute(sa.text('DROP TABLE "G_TRAN"'))
        connection.execute(sa.text('ALTER TABLE "G_TRAN_UNKEYED" RENAME TO "G_TRAN"'))
        connection.execute(
            sa.text('UPDATE "G_TRAN" SET "EQUIP_ID" = :id WHERE "EQUIP_ID" = :other'),
            {"id": first[0], "other": other[0]},
        )
    engine.dispose()
    whole, _, _ = conclude(config, 10**9)
    parted, _, pulled = conclude(config, count)
    pulled.remove_spill()
    repeated = whole.findings[
        (whole.findings["rule_id"] == "DUPLICATE_ID")
        & (whole.findings["marketing_id"] == str(first[0]))
    ]
    assert len(repeated) == 1 and "occurs 2 times" in repeated["detail"].iloc[0]
    pd.testing.assert_frame_equal(parted.findings, whole.findings)


@pytest.mark.postgres
@pytest.mark.mariadb
def test_postgresql_and_mariadb_read_to_disk_by_the_streamed_fast_paths(
    pg_database, mariadb_database, tmp_path
) -> None:
    generate(pg_database, mariadb_database, scale="small")
    config = sample_config(tmp_path, pg_database, mariadb_database)
    assert_spilled_alike(config, 150)


def test_incremental_nights_on_top_of_a_read_to_disk(tmp_path: Path) -> None:
    for name in ("pms.sqlite", "marketing.sqlite"):
        shutil.copy(SAMPLE / name, tmp_path / name)
    marketing = f"sqlite:///{tmp_path / 'marketing.sqlite'}"
    config = incremental_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'pms.sqlite'}",
        marketing,
        extra="[run]\npartition_rows = 150\n",
    )
    ((renamed, _),) = quiet_transformers(marketing, 1)
    mode, first = run(config)
    assert mode == "full" and SPILLED_NOTE in " ".join(summary_notes(config))
    # the spilled partition files became the snapshot's records, whole again when read
    snapshot = load_config(config).snapshot_dir
    (records,) = snapshot.glob(incremental.RECORDS_GLOB)
    assert len(list(records.glob("marketing.transformer.*.arrow"))) > 1
    assert not list(snapshot.glob(".*.tmp"))  # nothing half-written or spilled is left
    stored = incremental.read_records(records)
    frame = stored.records["marketing"]["transformer"]
    assert ROW not in frame and list(frame.index) == list(range(len(frame)))
    assert len(frame) == frame["source_id"].count() > 150

    # nothing changed: the last judgement holds, without loading a record
    mode, unchanged = run(config)
    assert mode == "incremental" and unchanged == first
    assert "no row changed, the last judgement holds" in last_read(config)

    # a change: the records are too many to load whole, so they are read again by partition,
    # and the change is seen as a full read sees it
    change(
        marketing,
        'UPDATE "G_TRAN" SET "TRAN_NAME" = \'改名后的变压器\', "CHG_DATE" = :now '
        'WHERE "EQUIP_ID" = :id',
        now=NOW,
        id=renamed,
    )
    mode, after_rename = run(config)
    assert mode == "full" and "too many to load whole" in last_read(config)
    assert [rule for _, rule in after_rename - first] == ["ATTR_MISMATCH"]
    assert run(config, full=True) == ("full", after_rename)


def summary_notes(config: Path) -> list[str]:
    summary = load_config(config).report_dir / "latest" / "summary.json"
    return json.loads(summary.read_text(encoding="utf-8"))["notes"]


def test_a_run_that_fails_after_reading_to_disk_leaves_no_files(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    config = sample_config(
        tmp_path, extra=f'[run]\npartition_rows = 150\n[incremental]\nsnapshot_dir = "{snapshot}"\n'
    )
    (tmp_path / "reports").write_text("not a folder", encoding="utf-8")
    done = run_cli("run", "--as-of", AS_OF.isoformat(), cwd=tmp_path)
    assert done.code == 2 and "cannot create the report directory" in done.stderr
    assert snapshot.is_dir() and not list(snapshot.iterdir())  # the spilled records are gone
    assert load_config(config).report_dir.is_file()


def test_records_that_cannot_go_to_disk_are_one_clear_error(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    snapshot.write_text("a file where the snapshot folder goes", encoding="utf-8")
    sample_config(
        tmp_path, extra=f'[run]\npartition_rows = 150\n[incremental]\nsnapshot_dir = "{snapshot}"\n'
    )
    done = run_cli("run", "--as-of", AS_OF.isoformat(), cwd=tmp_path)
    assert done.code == 2, done.stderr
    assert f"cannot create {snapshot}" in done.stderr and "snapshot_dir" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def chunk(ids: list[str | None], links: list[str | None], table: str = "T") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_id": pd.Series(ids, dtype="str"),
            "pms_id": pd.Series(links, dtype="str"),
            "source_table": table,
            "updated_at": pd.Series(pd.NaT, index=range(len(ids)), dtype="datetime64[us]"),
        }
    )


def test_a_retried_table_starts_its_partition_files_afresh(tmp_path: Path) -> None:
    writer = SpillWriter(tmp_path, "marketing", "transformer", 3)
    writer.begin("A")
    writer.add(chunk(["a1", "a2"], ["p1", None], "A"))
    writer.begin("B")
    writer.add(chunk(["b1", "b2", "b3"], ["p1", "p2", None], "B"))
    writer.begin("B")  # the statement is retried from the start: what it wrote goes
    writer.add(chunk(["b1", "b2"], ["p1", "p2"], "B"))
    spilled = writer.close(chunk([], []))
    assert spilled.rows == 4 and spilled.rows_by_table == {"A": 2, "B": 2}
    loaded = pd.concat([spilled.load(p) for p in range(3)]).sort_index()
    assert list(loaded["source_id"]) == ["a1", "a2", "b1", "b2"]
    assert list(loaded.index) == [0, 1, 2, 3]
    assert len(spilled.own_hashes) == 4
    # a PMS id's carriers share a partition; the files hold each record once
    partition_of = {sid: p for p in range(3) for sid in spilled.load(p)["source_id"]}
    assert partition_of["a1"] == partition_of["b1"]


def test_repeated_own_ids_are_counted_over_every_partition(tmp_path: Path) -> None:
    writer = SpillWriter(tmp_path, "marketing", "transformer", 4)
    writer.begin("A")
    writer.add(chunk(["m1", "m2", "m1", None, None, "m3"], ["p1", "p2", "p9", None, "p4", "p5"]))
    spilled = writer.close(chunk([], []))
    assert spilled.own_hashes[3] == NULL_HASH == spilled.own_hashes[4]
    assert list(repeated_own_ids(spilled)) == [True, False, True, False, False, False]


def test_repeated_pms_ids_are_told_by_hash_then_by_text() -> None:
    # The UNLINKED candidate search asks which PMS ids repeat in a partition: of the hashes,
    # and of the text only where the hashes repeat. Two different ids sharing a hash (made here)
    # are not repeats; a null id is no id, however many there are.
    ids = pd.Series(
        ["a", "b", "a", None, None, "c", "d", "e", "e"], dtype="str", index=range(5, 14)
    )
    hashes = id_hashes(ids)
    hashes[6] = hashes[5]  # "d" collides with "c"
    assert list(api._repeated_ids(ids, hashes)) == list(duplicated_ids(ids))
    assert list(api._repeated_ids(ids, hashes)) == [True, False, True] + [False] * 4 + [True] * 2


def test_equal_ids_hash_equal_wherever_they_are_held() -> None:
    ids = [f"{n:012d}" for n in range(250_000)] + ["", "全角１号", None, "x" * 300]
    whole = id_hashes(pd.Series(ids, dtype="str"))
    # the same ids in a series made of several Arrow chunks, and at an offset into one
    pieces = [pd.Series(ids[:1000], dtype="str"), pd.Series(ids[1000:], dtype="str")]
    chunked = id_hashes(pd.concat(pieces, ignore_index=True))
    offset = id_hashes(pd.Series(["pad", *ids], dtype="str").iloc[1:])
    assert np.array_equal(whole, chunked) and np.array_equal(whole, offset)
    assert whole[-2] == NULL_HASH and (np.delete(whole, -2) != NULL_HASH).all()
    assert len(np.unique(whole)) == len(ids)  # distinct ids, distinct hashes
    # ids of one width, nulls and empty ones among them, hash as they do among other widths
    one_width = [None if n % 5 == 0 else "" if n % 7 == 0 else f"{n:012d}" for n in range(999)]
    alone = id_hashes(pd.Series(one_width, dtype="str"))
    among = id_hashes(pd.Series(["pad", *one_width], dtype="str"))[1:]
    assert np.array_equal(alone, among)


def test_a_prepared_relation_follows_as_follow_pairs_does() -> None:
    pairs = pd.DataFrame(
        {
            "key": pd.Series(["k1", "k2", "k2", "k3", "k4", "k4", "k4"], dtype="str"),
            "value": pd.Series(["v1", "v9", "v2", "v3", "v7", "v5", "v6"], dtype="str"),
        }
    )
    starts = pd.Series(
        ["k2", None, "k1", "nope", "k4", "k3", "k2"], dtype="str", index=range(10, 17)
    )
    followed = Relation(pairs).follow(starts)
    pd.testing.assert_series_equal(followed, follow_pairs(pairs, starts))
    assert list(followed.fillna("-")) == ["v2", "-", "v1", "-", "v5", "v3", "v2"]
    # many keys, most of them with several parents in no order: the smallest parent each time
    rng = np.random.default_rng(7)
    many = pd.DataFrame(
        {
            "key": pd.Series([f"k{n}" for n in rng.integers(0, 3000, 20_000)], dtype="str"),
            "value": pd.Series([f"v{n}" for n in rng.integers(0, 500, 20_000)], dtype="str"),
        }
    )
    starts = pd.Series([f"k{n}" for n in rng.integers(0, 3500, 5000)], dtype="str")
    pd.testing.assert_series_equal(Relation(many).follow(starts), follow_pairs(many, starts))


@pytest.mark.postgres
@pytest.mark.mariadb
def test_the_catalogue_estimates_a_tables_rows(pg_database, mariadb_database, tmp_path) -> None:
    generate(pg_database, mariadb_database, scale="small")
    sources = open_sources(load_config(sample_config(tmp_path, pg_database, mariadb_database)))
    try:
        pms, marketing = sources["pms"], sources["marketing"]
        with pms.connect() as connection:
            counted = connection.execute(sa.text('SELECT COUNT(*) FROM "T_SB_ZWYC_ZSBYQ"')).scalar()
        # never analysed: counted; analysed: the catalogue's figure, near the count
        assert pms.estimated_rows("T_SB_ZWYC_ZSBYQ") == counted
        engine = sa.create_engine(pg_database, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(sa.text('ANALYZE "T_SB_ZWYC_ZSBYQ"'))
        engine.dispose()
        assert abs(pms.estimated_rows("T_SB_ZWYC_ZSBYQ") - counted) <= counted * 0.1
        with marketing.connect() as connection:
            counted = connection.execute(sa.text("SELECT COUNT(*) FROM G_TRAN")).scalar()
        assert 0.5 * counted <= marketing.estimated_rows("G_TRAN") <= 1.5 * counted
    finally:
        for source in sources.values():
            source.dispose()
