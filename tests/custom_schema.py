"""A small utility's asset register, shaped unlike PMS2.0 or SG186, and its mapping file."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

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
            'INSERT INTO "Asset_Station" VALUES '
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
    as_pms = as_pms.replace('pms_id = "ledger_ref"\n', "").replace(
        '"recorded_at", "pms_id"', '"recorded_at"'
    )
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
