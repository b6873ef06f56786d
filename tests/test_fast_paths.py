"""The fast read paths give exactly the records the generic SQLAlchemy path gives.

PostgreSQL and MySQL/MariaDB are read through connectorx, into Arrow (connectors/fetch.py); a
PostgreSQL URL connectorx cannot take is read through a raw psycopg server-side cursor. Both are
compared, record for record, with `reader = "generic"` on the sample plus rows written to be
awkward: quotes, tabs, newlines, backslashes, emoji, blank and padded ids, NULL in every nullable
column, numbers as text, and on MariaDB zero dates.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from gridrecon.connectors import fetch
from gridrecon.connectors.mapping import ASSET_TYPES
from gridrecon.connectors.reader import open_sources, read_all
from gridrecon.core.config import load_config
from gridrecon.sample_data import generate

AWKWARD_NAMES = [
    "quote \" and ' apostrophe",
    "tab\there, newline\nthere, carriage\rreturn",
    "back\\slash \\N and \\t literally",
    "emoji 🔌⚡ and 全角１号",
    "  padded  ",
    "",
    ",comma;semicolon|pipe",
]


def write_config(folder: Path, pms_url: str, marketing_url: str, reader: str) -> Path:
    path = folder / f"{reader}.toml"
    path.write_text(
        f'[pms]\nurl = "{pms_url}"\nreader = "{reader}"\n'
        f'[marketing]\nurl = "{marketing_url}"\nreader = "{reader}"\n',
        encoding="utf-8",
    )
    return path


def canonical(config_path: Path) -> dict[tuple[str, str], pd.DataFrame]:
    frames = {}
    for system, read in read_all(load_config(config_path)).items():
        for asset_type in ASSET_TYPES:
            frame = read.records(asset_type)
            frame = frame.sort_values(["source_table", "source_id", "name"], na_position="first")
            frames[(system, asset_type)] = frame.reset_index(drop=True)
    return frames


def add_awkward_rows(url: str) -> None:
    """Awkward rows in one PMS and one marketing table, in scope so they reach the records."""
    engine = sa.create_engine(url)
    metadata = sa.MetaData()
    lines = sa.Table("T_SB_ZWYC_XL", metadata, autoload_with=engine)
    transformers = sa.Table("G_TRAN", metadata, autoload_with=engine)
    with engine.begin() as connection:
        for number, name in enumerate(AWKWARD_NAMES):
            connection.execute(
                lines.insert().values(
                    OBJ_ID=f"  awkward{number:02d}  " if number % 2 else f"awkward{number:02d}",
                    XLMC=name,
                    DYDJ="22" if number % 3 else None,
                    YWDW=None,
                    YXZT="20",
                    TYRQ=dt.date(2026, 11, 2) if number % 2 else None,
                    DJSJ=dt.datetime(2026, 11, 3, 8, 30, 15) if number % 2 else None,
                    GXSJ=None,
                    FBZT="发布",
                    QSDZ=None,
                )
            )
            connection.execute(
                transformers.insert().values(
                    EQUIP_ID=8_800_000_000 + number,
                    TG_ID=None,
                    TRAN_NAME=name,
                    PLATE_CAP=None if number % 2 else 1234567.89,
                    FRSTSIDE_VOLT_CODE="AC00101" if number % 3 else "bogus",
                    ORG_NO=None,
                    RUN_STATUS_CODE="01",
                    PUB_PRIV_FLAG="01",
                    FRST_RUN_DATE=None,
                    PMS_EQUIP_ID="   " if number % 2 else f"awkward{number:02d}",
                    CREATE_DATE=dt.datetime(2026, 11, 5, 23, 59, 59),
                    CHG_DATE=None,
                )
            )
        if engine.dialect.name in ("mysql", "mariadb"):
            # old SG186 installs hold zero dates; the driver shows them as text, never a date
            connection.exec_driver_sql("SET SESSION sql_mode = ''")
            connection.exec_driver_sql(
                "UPDATE G_TRAN SET FRST_RUN_DATE = '0000-00-00', "
                "CREATE_DATE = '0000-00-00 00:00:00' WHERE EQUIP_ID = 8800000001"
            )
            # and days a month does not have, where the server allows them
            connection.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            connection.exec_driver_sql(
                "UPDATE G_TRAN SET FRST_RUN_DATE = '2026-02-31', "
                "CREATE_DATE = '2026-11-00 08:00:00' WHERE EQUIP_ID = 8800000003"
            )
    engine.dispose()


def assert_fast_path_used(config_path: Path, expected: fetch.Fetcher) -> None:
    for source in open_sources(load_config(config_path)).values():
        assert fetch.fetcher(source, bulk=True) is expected
        assert fetch.fetcher(source, bulk=False) is fetch.generic  # key lookups stay bound
        source.dispose()


def compare_paths(url: str, tmp_path: Path, expected: fetch.Fetcher) -> None:
    generate(url, url, scale="small")
    add_awkward_rows(url)
    fast = write_config(tmp_path, url, url, "auto")
    assert_fast_path_used(fast, expected)
    fast_records = canonical(fast)
    generic_records = canonical(write_config(tmp_path, url, url, "generic"))
    assert fast_records.keys() == generic_records.keys()
    for key in fast_records:
        pd.testing.assert_frame_equal(fast_records[key], generic_records[key], obj=str(key))
    names = set(fast_records[("marketing", "transformer")]["name"].dropna())
    assert {n for n in AWKWARD_NAMES if n.strip()} <= names
    ids = set(fast_records[("pms", "line")]["source_id"])
    assert "awkward01" in ids  # padding stripped on both paths


@pytest.mark.postgres
def test_postgresql_fast_path_gives_the_generic_records(pg_database, tmp_path) -> None:
    compare_paths(pg_database, tmp_path, fetch.postgresql)


@pytest.mark.postgres
def test_postgresql_through_psycopg_gives_the_generic_records(pg_database, tmp_path) -> None:
    # a URL with options connectorx does not take: the fast path's psycopg cursor reads it
    url = sa.make_url(pg_database).update_query_dict({"application_name": "gridrecon-test"})
    config = write_config(
        tmp_path, url.render_as_string(False), url.render_as_string(False), "auto"
    )
    sources = open_sources(load_config(config))
    assert not fetch._connectorx_usable(sources["pms"])
    for source in sources.values():
        source.dispose()
    compare_paths(url.render_as_string(False), tmp_path, fetch.postgresql)


@pytest.mark.postgres
def test_the_postgresql_fast_path_reads_in_a_read_only_session_with_the_timeout(
    pg_database, tmp_path
) -> None:
    import connectorx

    config = write_config(tmp_path, pg_database, pg_database, "auto")
    config.write_text(config.read_text() + "statement_timeout = 7\n", encoding="utf-8")
    source = open_sources(load_config(config))["marketing"]
    settings = connectorx.read_sql(
        fetch._connectorx_pg_url(source),
        "SELECT current_setting('default_transaction_read_only') AS read_only, "
        "current_setting('statement_timeout') AS timeout",
        return_type="arrow",
    ).to_pylist()
    source.dispose()
    assert settings == [{"read_only": "on", "timeout": "7s"}]


@pytest.mark.mariadb
def test_mariadb_fast_path_gives_the_generic_records(mariadb_database, tmp_path, caplog) -> None:
    compare_paths(mariadb_database, tmp_path, fetch.mysql)
    # no read fell back to the generic path: connectorx was never handed a date it cannot hold
    assert "fast reader failed" not in caplog.text
    records = canonical(write_config(tmp_path, mariadb_database, mariadb_database, "auto"))
    transformers = records[("marketing", "transformer")].set_index("source_id")
    assert pd.isna(transformers.loc["8800000001", "recorded_at"])  # a zero date is no date
    invalid = transformers.loc["8800000003"]
    assert pd.isna(invalid["commissioned_on"]) and invalid["raw_commissioned_on"] == "2026-02-31"
    assert transformers["commissioned_on"].notna().sum() > 1000  # the others are dates


@pytest.mark.mariadb
def test_a_url_connectorx_cannot_take_goes_the_generic_way(mariadb_database, tmp_path) -> None:
    url = sa.make_url(mariadb_database).update_query_dict({"local_infile": "0"})
    config = write_config(tmp_path, mariadb_database, url.render_as_string(False), "auto")
    sources = open_sources(load_config(config))
    assert fetch.fetcher(sources["marketing"], bulk=True) is fetch.generic
    for source in sources.values():
        source.dispose()
