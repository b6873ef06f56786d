"""The built-in mappings read the sample written to SQLite, PostgreSQL and MariaDB identically.

Also: identifiers match case-insensitively (a lower-cased copy of the schema, a schema named in
another case), and the sources' sessions refuse writes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import SAMPLE

from gridrecon.connectors.mapping import ASSET_TYPES
from gridrecon.connectors.reader import read_all
from gridrecon.core.config import load_config
from gridrecon.sample_data import generate


def write_config(
    folder: Path, pms_url: str, marketing_url: str, pms_schema: str | None = None
) -> Path:
    schema_line = f'schema = "{pms_schema}"\n' if pms_schema else ""
    path = folder / "gridrecon.toml"
    path.write_text(
        f'[pms]\nurl = "{pms_url}"\nmapping = "pms2"\n{schema_line}'
        f'[marketing]\nurl = "{marketing_url}"\nmapping = "sg186"\n',
        encoding="utf-8",
    )
    return path


def canonical(config_path: Path) -> dict[tuple[str, str], pd.DataFrame]:
    reads = read_all(load_config(config_path))
    frames = {}
    for system, read in reads.items():
        for asset_type in ASSET_TYPES:
            frame = read.records(asset_type)
            frame = frame.sort_values(["source_table", "source_id", "name"], na_position="first")
            frames[(system, asset_type)] = frame.reset_index(drop=True)
    return frames


@pytest.fixture(scope="module")
def sqlite_records(tmp_path_factory) -> dict[tuple[str, str], pd.DataFrame]:
    folder = tmp_path_factory.mktemp("sqlite")
    return canonical(
        write_config(
            folder,
            f"sqlite:///{SAMPLE / 'pms.sqlite'}",
            f"sqlite:///{SAMPLE / 'marketing.sqlite'}",
        )
    )


def assert_same_records(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        pd.testing.assert_frame_equal(left[key], right[key], obj=str(key))


def test_the_shipped_sample_reads_into_every_asset_type(sqlite_records) -> None:
    for (system, asset_type), frame in sqlite_records.items():
        assert len(frame) > 20, (system, asset_type)
        assert frame["source_id"].notna().all()
    transformers = sqlite_records[("pms", "transformer")]
    assert set(transformers["source_table"]) == {"T_SB_ZNYC_PDBYQ", "T_SB_ZWYC_ZSBYQ"}
    # marketing transformers reach their line through the 台区 (two hops)
    linked = sqlite_records[("marketing", "transformer")]["parent_source_id"].notna().mean()
    assert linked > 0.99


@pytest.mark.postgres
def test_postgresql_gives_the_same_records_as_sqlite(pg_database, sqlite_records, tmp_path) -> None:
    generate(pg_database, pg_database, scale="small")
    assert_same_records(sqlite_records, canonical(write_config(tmp_path, pg_database, pg_database)))


@pytest.mark.mariadb
def test_mariadb_gives_the_same_records_as_sqlite(
    mariadb_database, sqlite_records, tmp_path
) -> None:
    generate(mariadb_database, mariadb_database, scale="small")
    url = mariadb_database + "?charset=utf8mb4"
    assert_same_records(sqlite_records, canonical(write_config(tmp_path, url, url)))


@pytest.mark.postgres
def test_a_lower_cased_schema_in_another_case_named_schema_reads_the_same(
    pg_database, sqlite_records, tmp_path
) -> None:
    # As an Oracle schema copied to PostgreSQL arrives: every identifier lower-cased, in a schema
    # "scyw" that the config names "SCYW".
    engine = sa.create_engine(pg_database)
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA scyw")
    engine.dispose()
    in_schema = pg_database + "?options=-csearch_path%3Dscyw"
    generate(in_schema, pg_database, scale="small", lowercase=True)
    records = canonical(write_config(tmp_path, pg_database, pg_database, pms_schema="SCYW"))
    # source_table keeps the mapping's spelling, so the frames are identical
    assert_same_records(sqlite_records, records)


def _try_write(url: str) -> str:
    """Open the source the way a run does and attempt a write; return the database's refusal."""
    from gridrecon.connectors.mapping import load_mapping
    from gridrecon.connectors.source import Source
    from gridrecon.core.config import SourceConfig

    source = Source(SourceConfig("pms", sa.make_url(url), "pms2"), load_mapping("pms2"))
    try:
        with source.engine.connect() as connection:
            with pytest.raises(sa.exc.DBAPIError) as refused:
                connection.exec_driver_sql("CREATE TABLE gridrecon_write_probe (x INTEGER)")
                connection.commit()
        return str(refused.value.orig).lower()
    finally:
        source.dispose()


def test_a_sqlite_source_is_opened_read_only(tmp_path) -> None:
    path = tmp_path / "copy.sqlite"
    path.write_bytes((SAMPLE / "pms.sqlite").read_bytes())
    assert "readonly" in _try_write(f"sqlite:///{path}").replace(" ", "").replace("-", "")


@pytest.mark.postgres
def test_a_postgresql_source_session_is_read_only(pg_database) -> None:
    assert "read-only" in _try_write(pg_database)


@pytest.mark.mariadb
def test_a_mariadb_source_session_is_read_only(mariadb_database) -> None:
    assert "read only" in _try_write(mariadb_database)
