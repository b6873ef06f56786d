"""A differently shaped schema, described only by a mapping file, reads into canonical records.

Other table and column names (in mixed case), one table per type, other code lists, voltage stored
as a number, capacity in MVA, dates stored as text, an org map in a CSV file, a parent found by a
column, and no creation-time column at all.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from gridrecon.connectors.reader import read_all
from gridrecon.core.config import load_config

MAPPING = """
system = "marketing"
description = "a small utility's own asset register"

[codes.state]
A = "in_service"
S = "other"
X = "retired"
[codes.volt]
HV10 = 10.0
HV35 = 35.0

[org_map]
csv = "units.csv"
key = "unit"
value = "org_no"

[substation]
tables = [{ table = "asset_station" }]
absent = ["recorded_at", "pms_id"]
[substation.columns]
source_id = "ID"
name = "Title"
voltage_kv = "KV"
capacity_kva = { column = "CAP_MVA", scale = 1000 }
org_code = { column = "UNIT", org_map = true }
status = { column = "STATE", codes = "state" }
commissioned_on = { column = "START_DAY", format = "%Y%m%d" }
updated_at = "CHANGED"

[line]
tables = [{ table = "ASSET_FEEDER" }]
absent = ["recorded_at", "capacity_kva"]
parent = { column = "station_ref" }
[line.columns]
source_id = "fid"
pms_id = "ledger_ref"
name = "fname"
voltage_kv = { column = "volt", codes = "volt" }
org_code = { column = "unit", org_map = true }
status = { column = "state", codes = "state" }
commissioned_on = { column = "start_day", format = "%Y%m%d" }
updated_at = "changed"

[transformer]
tables = [{ table = "asset_xfmr", where = { scope = "PUB" } }]
absent = ["recorded_at", "updated_at"]
parent = { column = "feeder_ref" }
[transformer.columns]
source_id = "xid"
pms_id = "ledger_ref"
name = "label"
voltage_kv = { column = "volt", codes = "volt" }
capacity_kva = "kva"
org_code = { column = "unit", org_map = true }
status = { column = "state", codes = "state" }
commissioned_on = { column = "start_day", format = "%Y%m%d" }
"""


def build_database(path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as c:
        c.exec_driver_sql(
            'CREATE TABLE "Asset_Station" (id INTEGER, title TEXT, kv REAL, cap_mva REAL, '
            "unit TEXT, state TEXT, start_day TEXT, changed TIMESTAMP)"
        )
        c.exec_driver_sql(
            "CREATE TABLE asset_feeder (FID TEXT, FNAME TEXT, VOLT TEXT, STATION_REF INTEGER, "
            "LEDGER_REF TEXT, UNIT TEXT, STATE TEXT, START_DAY TEXT, CHANGED TIMESTAMP)"
        )
        c.exec_driver_sql(
            "CREATE TABLE asset_xfmr (xid TEXT, label TEXT, volt TEXT, kva NUMERIC, "
            "feeder_ref TEXT, ledger_ref TEXT, unit TEXT, state TEXT, start_day TEXT, scope TEXT)"
        )
        c.exec_driver_sql(
            "INSERT INTO \"Asset_Station\" VALUES "
            "(7, '35kV河口站', 35, 12.5, 'U1', 'A', '20240315', '2026-01-02 08:00:00'),"
            "(8, '35kV东山站', 35, 20, 'U9', 'S', 'bad-date', NULL)"
        )
        c.exec_driver_sql(
            "INSERT INTO asset_feeder VALUES "
            "('F-1', '10kV河口一线', 'HV10', 7, ' a1b2 ', 'U1', 'A', '20260929', "
            "'2026-10-01 12:30:00'),"
            "('F-2', '10kV河口二线', 'HV99', NULL, '   ', 'U2', 'Q', NULL, NULL)"
        )
        c.exec_driver_sql(
            "INSERT INTO asset_xfmr VALUES "
            "('T-1', '河口村1号公变', 'HV10', 400, 'F-1', 'c3d4', 'U2', 'A', '20261107', 'PUB'),"
            "('T-2', '某厂专变', 'HV10', 630, 'F-1', NULL, 'U2', 'A', '20261107', 'PRIV')"
        )
    engine.dispose()


@pytest.fixture
def custom_config(tmp_path: Path) -> Path:
    build_database(tmp_path / "register.sqlite")
    (tmp_path / "register.toml").write_text(MAPPING, encoding="utf-8")
    # The same register read as the PMS side: there the equipment id is the record's own id.
    as_pms = MAPPING.replace('system = "marketing"', 'system = "pms"')
    as_pms = as_pms.replace('pms_id = "ledger_ref"\n', "").replace('"recorded_at", "pms_id"', '"recorded_at"')
    (tmp_path / "register_pms.toml").write_text(as_pms, encoding="utf-8")
    (tmp_path / "units.csv").write_text("unit,org_no\nU1,37401\nU2,3740101\n", encoding="utf-8")
    config = tmp_path / "gridrecon.toml"
    config.write_text(
        'timezone = "Asia/Shanghai"\n'
        '[pms]\nurl = "sqlite:///register.sqlite"\nmapping = "register_pms.toml"\n'
        '[marketing]\nurl = "sqlite:///register.sqlite"\nmapping = "register.toml"\n',
        encoding="utf-8",
    )
    return config


def test_a_custom_schema_reads_into_canonical_records(custom_config: Path) -> None:
    config = load_config(custom_config)
    read = read_all(config)["marketing"]
    zone = config.timezone

    stations = read.records("substation").sort_values("source_id").reset_index(drop=True)
    assert stations["source_id"].tolist() == ["7", "8"]
    assert stations["pms_id"].isna().all()
    assert stations["voltage_kv"].tolist() == [35.0, 35.0]
    assert stations["capacity_kva"].tolist() == [12500.0, 20000.0]
    assert stations["org_code"].tolist()[0] == "37401"
    assert pd.isna(stations["org_code"][1]) and stations["raw_org_code"][1] == "U9"
    assert stations["status"].tolist() == ["in_service", "other"]
    assert stations["commissioned_on"][0] == pd.Timestamp("2024-03-15")
    assert pd.isna(stations["commissioned_on"][1])
    assert stations["raw_commissioned_on"][1] == "bad-date"
    assert stations["recorded_at"].isna().all()  # no creation-time column: first seen, later
    assert stations["updated_at"][0] == pd.Timestamp("2026-01-02 08:00", tz=zone)
    assert stations["source_table"].tolist() == ["asset_station"] * 2  # as the mapping spells it

    feeders = read.records("line").sort_values("source_id").reset_index(drop=True)
    assert feeders["pms_id"][0] == "a1b2"  # padding stripped
    assert pd.isna(feeders["pms_id"][1])  # blank is no link
    assert feeders["parent_source_id"][0] == "7"
    assert pd.isna(feeders["parent_source_id"][1])
    assert pd.isna(feeders["voltage_kv"][1]) and feeders["raw_voltage_kv"][1] == "HV99"
    assert pd.isna(feeders["status"][1]) and feeders["raw_status"][1] == "Q"
    assert feeders["capacity_kva"].isna().all()

    transformers = read.records("transformer")
    assert transformers["source_id"].tolist() == ["T-1"]  # the private one is filtered out
    row = transformers.iloc[0]
    assert (row["name"], row["name_key"]) == ("河口村1号公变", "河口村1#公变")
    assert (row["capacity_kva"], row["parent_source_id"], row["org_code"]) == (400.0, "F-1", "3740101")
    assert row["commissioned_on"] == pd.Timestamp(dt.date(2026, 11, 7))
    assert pd.isna(row["updated_at"])

    pms = read_all(config)["pms"]
    assert pms.records("line")["source_id"].tolist() == ["F-1", "F-2"]
    assert pms.records("line")["pms_id"].tolist() == pms.records("line")["source_id"].tolist()
