"""A differently shaped schema, described only by a mapping file, reads into canonical records.

Other table and column names (in mixed case), one table per type, other code lists, voltage stored
as a number, capacity in MVA, dates stored as text, an org map in a CSV file, a parent found by a
column, and no creation-time column at all.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from gridrecon.connectors.reader import read_all
from gridrecon.core.config import load_config


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
    assert (row["capacity_kva"], row["parent_source_id"], row["org_code"]) == (
        400.0,
        "F-1",
        "3740101",
    )
    assert row["commissioned_on"] == pd.Timestamp(dt.date(2026, 11, 7))
    assert pd.isna(row["updated_at"])

    pms = read_all(config)["pms"]
    assert pms.records("line")["source_id"].tolist() == ["F-1", "F-2"]
    assert pms.records("line")["pms_id"].tolist() == pms.records("line")["source_id"].tolist()


def test_a_duplicated_id_is_judged_only_by_duplicate_id_on_either_side(custom_config: Path) -> None:
    import sqlalchemy as sa

    from gridrecon import api
    from gridrecon.sample_data import AS_OF

    engine = sa.create_engine(f"sqlite:///{custom_config.parent / 'register.sqlite'}")
    with engine.begin() as connection:  # the register has no primary keys: T-1 twice
        connection.exec_driver_sql(
            "INSERT INTO asset_xfmr VALUES ('T-1', '河口村1号公变', 'HV10', 0, 'F-9', NULL, "
            "'U7', 'Z', '20261107', 'PUB')"
        )
    engine.dispose()
    findings = api.reconcile(load_config(custom_config), as_of=AS_OF).findings
    about_t1 = findings[(findings["pms_id"] == "T-1") | (findings["marketing_id"] == "T-1")]
    # one finding per duplicated id and system; the second row's bad capacity, unknown org,
    # unknown status and missing parent are not judged
    assert sorted(zip(about_t1["rule_id"], about_t1["side"], strict=True)) == [
        ("DUPLICATE_ID", "marketing"),
        ("DUPLICATE_ID", "pms"),
    ]
    assert set(about_t1["detail"]) == {
        "PMS id occurs 2 times (in asset_xfmr)",
        "marketing id occurs 2 times (in asset_xfmr)",
    }
