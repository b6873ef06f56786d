"""Ad-hoc questions: `check asset` by key lookups, `diff` on a slice, clean machine output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE, run_cli

from gridrecon import adhoc, api
from gridrecon.core.config import load_config
from gridrecon.sample_data import AS_OF, generate, write_sqlite_pair

CAPACITY_PAIR = "9cd1ae14f9e6942135fd1c90e853c49a"  # planted: PMS 400 kVA, marketing 315 kVA
UNLINKED_MARKETING = "9400000008"  # planted: PMS_EQUIP_ID null


def sample_config(folder: Path, pms_url: str, marketing_url: str) -> Path:
    path = folder / "gridrecon.toml"
    path.write_text(
        f'[pms]\nurl = "{pms_url}"\n[marketing]\nurl = "{marketing_url}"\n'
        '[report]\ndir = "reports"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    return sample_config(
        tmp_path_factory.mktemp("shipped"),
        f"sqlite:///{SAMPLE / 'pms.sqlite'}",
        f"sqlite:///{SAMPLE / 'marketing.sqlite'}",
    )


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("city")
    write_sqlite_pair(folder, scale="city")
    return sample_config(folder, "sqlite:///pms.sqlite", "sqlite:///marketing.sqlite")


def test_checking_a_pms_id_shows_both_records_and_the_mismatch(shipped: Path) -> None:
    check = adhoc.check_asset(load_config(shipped), CAPACITY_PAIR, as_of=AS_OF)
    assert check.asset_type == "transformer" and check.pms_id == CAPACITY_PAIR
    assert check.pms["capacity_kva"].tolist() == [400.0]
    assert check.marketing["capacity_kva"].tolist() == [315.0]
    assert check.verdicts["ATTR_MISMATCH"] == ["capacity_kva: PMS 400 ≠ marketing 315"]
    assert all(not details for rule, details in check.verdicts.items() if rule != "ATTR_MISMATCH")
    assert [p["asset_type"] for p in check.parents] == ["line", "line", "substation", "substation"]


def test_checking_a_marketing_id_of_an_unlinked_record_says_so(shipped: Path) -> None:
    result = run_cli(
        "check",
        "asset",
        UNLINKED_MARKETING,
        "--as-of",
        "2026-11-20",
        "--format",
        "json",
        "--config",
        str(shipped),
    )
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)  # nothing but JSON on stdout
    assert answer["pms"] == [] and answer["marketing"][0]["source_id"] == UNLINKED_MARKETING
    assert answer["verdicts"]["UNLINKED"] and not answer["verdicts"]["MISSING_IN_PMS"]


def test_an_overdue_asset_shows_its_deadline_and_working_days_elapsed(shipped: Path) -> None:
    check = adhoc.check_asset(load_config(shipped), "73afe6e0447e33938decb16e06855284", as_of=AS_OF)
    assert str(check.deadline) == "2026-11-12"  # commissioned 2026-11-05
    assert check.working_days_elapsed == 11
    assert check.verdicts["ARCHIVE_OVERDUE"][0].endswith("6 working days overdue")


def test_a_name_fragment_with_several_hits_lists_them_to_choose_from(shipped: Path) -> None:
    result = run_cli("check", "asset", "城东小区", "--config", str(shipped))
    assert result.code == 0
    assert "matches 2 assets" in result.stdout and "城东小区3号公变" in result.stdout


def test_an_unknown_asset_exits_two(shipped: Path) -> None:
    result = run_cli("check", "asset", "no-such-asset", "--config", str(shipped))
    assert result.code == 2 and "no asset matches 'no-such-asset'" in result.stderr


def test_check_asset_shows_the_findings_history_from_the_state_store(tmp_path: Path) -> None:
    config = sample_config(
        tmp_path, f"sqlite:///{SAMPLE / 'pms.sqlite'}", f"sqlite:///{SAMPLE / 'marketing.sqlite'}"
    )
    api.run(load_config(config), as_of=AS_OF)
    check = adhoc.check_asset(load_config(config), CAPACITY_PAIR, as_of=AS_OF)
    assert check.history[["rule_id", "field", "state"]].values.tolist() == [
        ["ATTR_MISMATCH", "capacity_kva", "new"]
    ]


def test_check_asset_reads_by_key_not_whole_tables(city: Path) -> None:
    config = load_config(city)
    check = adhoc.check_asset(config, CAPACITY_PAIR, as_of=AS_OF)
    assert check.verdicts["ATTR_MISMATCH"]
    full = api.pull(config)
    table_rows = sum(sum(s.rows.values()) for s in full.summaries.values())
    assert table_rows > 50_000
    # the asset, its links and parents, plus the org map (a lookup table of ~100 units)
    assert check.rows_fetched < 200, check.rows_fetched


def test_diff_of_one_org_equals_the_full_run_restricted_to_it(city: Path) -> None:
    config = load_config(city)
    full = api.reconcile(config, as_of=AS_OF).findings
    sliced = adhoc.diff(config, "transformer", "3740101", as_of=AS_OF)
    expected = full[
        (full["asset_type"] == "transformer")
        & full["org_code"].fillna("").str.startswith("3740101")
    ]
    columns = ["finding_id", "rule_id", "pms_id", "marketing_id", "field", "detail"]
    unlinked = expected["rule_id"] == "UNLINKED"  # candidates come from the slice only
    pd.testing.assert_frame_equal(
        sliced.findings.loc[sliced.findings["rule_id"] != "UNLINKED", columns].reset_index(
            drop=True
        ),
        expected.loc[~unlinked, columns].reset_index(drop=True),
    )
    assert len(sliced.findings) == len(expected)
    fetched = int(sliced.notes[0].split()[0].replace(",", ""))
    assert fetched < 10_000  # one county of a city's 50,000+ rows


def test_diff_prints_clean_csv_for_scripts(shipped: Path) -> None:
    result = run_cli(
        "diff",
        "--type",
        "line",
        "--org",
        "3740101",
        "--as-of",
        "2026-11-20",
        "--format",
        "csv",
        "--config",
        str(shipped),
    )
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("finding_id,rule_id,severity")
    assert len(lines) == 5  # header + the 4 planted line findings of that county


@pytest.mark.postgres
@pytest.mark.mariadb
def test_check_and_diff_work_on_a_city_sample_in_postgresql_and_mariadb(
    pg_database, mariadb_database, tmp_path
) -> None:
    generate(pg_database, mariadb_database, scale="city")
    config = sample_config(tmp_path, pg_database, mariadb_database + "?charset=utf8mb4")
    checked = run_cli(
        "check",
        "asset",
        CAPACITY_PAIR,
        "--as-of",
        "2026-11-20",
        "--format",
        "json",
        "--config",
        str(config),
    )
    assert checked.code == 0, checked.stderr
    answer = json.loads(checked.stdout)
    assert answer["verdicts"]["ATTR_MISMATCH"] and answer["rows_fetched"] < 200
    marketing_id = run_cli(
        "check",
        "asset",
        UNLINKED_MARKETING,
        "--format",
        "json",
        "--as-of",
        "2026-11-20",
        "--config",
        str(config),
    )
    assert json.loads(marketing_id.stdout)["verdicts"]["UNLINKED"]
    diffed = run_cli(
        "diff",
        "--type",
        "line",
        "--org",
        "3740101",
        "--as-of",
        "2026-11-20",
        "--format",
        "json",
        "--config",
        str(config),
    )
    assert diffed.code == 0, diffed.stderr
    assert sorted(f["rule_id"] for f in json.loads(diffed.stdout)) == [
        "ARCHIVE_LATE",
        "ARCHIVE_OVERDUE",
        "ATTR_MISMATCH",
        "PARENT_MISSING",
    ]
