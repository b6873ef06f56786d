"""`gridrecon run` on the shipped sample finds exactly the planted defects, and writes its files."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import SAMPLE, run_cli, sample_config

from gridrecon import api
from gridrecon.checks.findings import FINDING_FIELDS
from gridrecon.core.config import load_config
from gridrecon.sample_data import AS_OF, generate

KEY = ["rule_id", "asset_type", "pms_id", "marketing_id", "field"]


def planted() -> pd.DataFrame:
    return pd.read_csv(SAMPLE / "planted.csv", dtype=str, encoding="utf-8-sig").fillna("")


def keys(frame: pd.DataFrame) -> set[tuple[str, ...]]:
    return set(map(tuple, frame[KEY].fillna("").astype(str).values))


@pytest.fixture(scope="module")
def sample_result(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    result, run_folder = api.run(load_config(sample_config(folder)), as_of=AS_OF)
    return result, run_folder


def test_the_sample_produces_exactly_the_planted_findings(sample_result) -> None:
    result, _ = sample_result
    expected = planted()
    wanted = keys(expected[expected["expect"] == "finding"])
    assert len(wanted) >= 30
    assert keys(result.findings) == wanted


def test_the_cases_that_must_produce_nothing_produce_nothing(sample_result) -> None:
    result, _ = sample_result
    must_not = planted()
    must_not = must_not[must_not["expect"] == "none"]
    assert len(must_not) >= 8
    found = result.findings.fillna("")
    for case in must_not.itertuples():
        hits = found[
            (found["rule_id"] == case.rule_id)
            & (found["pms_id"] == case.pms_id)
            & (found["marketing_id"] == case.marketing_id)
        ]
        assert hits.empty, case.case


def test_deadline_arithmetic_shows_in_the_details(sample_result) -> None:
    findings = sample_result[0].findings
    late = findings[(findings["rule_id"] == "ARCHIVE_LATE") & (findings["field"] == "marketing")]
    assert any("commissioned 2026-09-29, deadline 2026-10-12" in d for d in late["detail"])
    pending = findings[findings["rule_id"] == "ARCHIVE_PENDING"].set_index("pms_id")["detail"]
    assert any(d.endswith("2 working days left") for d in pending)
    assert any(d.endswith("0 working days left") for d in pending)  # the deadline day is as_of


def test_invalid_values_name_table_column_and_value(sample_result) -> None:
    findings = sample_result[0].findings
    invalid = findings[findings["rule_id"] == "INVALID_VALUE"].set_index("field")
    assert invalid.loc["voltage_kv", "detail"].endswith(".DYDJ = '99': not in code list")
    assert invalid.loc["voltage_kv", "pms_value"] == "99"


def test_unlinked_findings_name_their_best_pms_candidate_first(sample_result) -> None:
    findings = sample_result[0].findings
    for detail in findings.loc[findings["rule_id"] == "UNLINKED", "detail"]:
        assert detail.startswith("candidates: ") and ", 1.00)" in detail.split(";")[0]


def test_the_run_folder_holds_json_csv_and_summary_and_latest_points_at_it(sample_result) -> None:
    result, folder = sample_result
    assert folder.name == result.run_id
    latest = folder.parent / "latest"
    records = json.loads((latest / "findings.json").read_text(encoding="utf-8"))
    assert len(records) == len(result.findings)
    assert all(list(record) == FINDING_FIELDS for record in records)
    raw = (latest / "findings.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for Chinese text
    rows = list(csv.DictReader(raw.decode("utf-8-sig").splitlines()))
    assert list(rows[0]) == FINDING_FIELDS and len(rows) == len(records)
    assert {r["finding_id"] for r in rows} == {r["finding_id"] for r in records}
    summary = json.loads((latest / "summary.json").read_text(encoding="utf-8"))
    assert summary["as_of"] == "2026-11-20"
    assert summary["sources"]["pms"]["rows"]["transformer"] == 2724
    assert summary["sources"]["pms"]["rows_by_table"]["T_SB_ZWYC_ZSBYQ"] == 1882
    assert summary["findings"]["by_rule"]["INVALID_VALUE"] == 9
    assert sum(summary["findings"]["by_rule"].values()) == len(records)


def test_metrics_count_linkage_consistency_and_timeliness(sample_result) -> None:
    metrics = sample_result[0].metrics.set_index(["asset_type", "org_code"])
    total = metrics.loc[("transformer", "*")]
    findings = sample_result[0].findings
    overdue = findings[
        (findings["rule_id"].isin(["ARCHIVE_OVERDUE", "ARCHIVE_PENDING"]))
        & (findings["asset_type"] == "transformer")
    ]
    assert total["pms_assets"] - total["linked"] == len(overdue)
    mismatched_pairs = findings[
        (findings["rule_id"] == "ATTR_MISMATCH") & (findings["asset_type"] == "transformer")
    ]["marketing_id"].nunique()
    assert total["pairs"] - total["consistent_pairs"] == mismatched_pairs
    assert total["linkage_rate"] == round(total["linked"] / total["pms_assets"], 4)
    assert 0 < total["timeliness_rate"] < 1
    per_org = metrics.xs("transformer")
    own = per_org[per_org["scope"] == "org"]
    assert own["pms_assets"].sum() == total["pms_assets"]
    # a city company's rollup counts its counties; the province's counts everything
    assert per_org.loc["37401", "scope"] == "rollup"
    counties = own[own.index.str.startswith("37401") & (own.index.str.len() == 7)]
    city_own = own.loc["37401", "pms_assets"] if "37401" in own.index else 0
    assert per_org.loc["37401", "pms_assets"] == counties["pms_assets"].sum() + city_own
    # everything but the planted transformer whose unit is not in the org map ("?")
    assert own.loc["?", "pms_assets"] == 1
    assert per_org.loc["37101", "pms_assets"] == total["pms_assets"] - 1


def test_fail_on_exits_one_and_a_clean_threshold_exits_zero(tmp_path: Path) -> None:
    config = sample_config(tmp_path)
    failing = run_cli("run", "--config", str(config), "--as-of", "2026-11-20", "--fail-on", "error")
    assert failing.code == 1, failing.stderr
    assert "open findings at or above --fail-on error" in failing.stdout
    passing = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert passing.code == 0, passing.stderr
    runs = [p for p in (tmp_path / "reports").iterdir() if p.name != "latest"]
    assert len(runs) == 2
    assert (tmp_path / "reports" / "latest").resolve().name == max(p.name for p in runs)


def test_disabled_rules_and_changed_severities_come_from_the_config(tmp_path: Path) -> None:
    config = sample_config(
        tmp_path,
        extra='[rules.UNLINKED]\nenabled = false\n[rules.ATTR_MISMATCH]\nseverity = "error"\n'
        'owner = "营销部"\n',
    )
    result, _ = api.run(load_config(config), as_of=AS_OF)
    assert "UNLINKED" not in set(result.findings["rule_id"])
    mismatches = result.findings[result.findings["rule_id"] == "ATTR_MISMATCH"]
    assert set(mismatches["severity"]) == {"error"} and set(mismatches["owner"]) == {"营销部"}
    assert result.settings["rules"]["UNLINKED"]["enabled"] is False


def test_a_longer_deadline_turns_overdue_into_pending(tmp_path: Path) -> None:
    config = sample_config(tmp_path, extra="[rules]\ndeadline_working_days = 10\n")
    result, _ = api.run(load_config(config), as_of=AS_OF)
    pending = result.findings[result.findings["rule_id"] == "ARCHIVE_PENDING"]
    # commissioned 2026-11-05: the 10th working day after it is 2026-11-19 -> still overdue;
    # commissioned 2026-11-13 and 11-17: pending
    assert len(pending) == 2
    assert pending["detail"].str.contains(r"\(10 working days\)").all()


def test_an_unknown_calendar_year_exits_two_naming_it(tmp_path: Path) -> None:
    result = run_cli("run", "--config", str(sample_config(tmp_path)), "--as-of", "2027-03-01")
    # as_of in 2027: "working days overdue" needs 2027, which chinesecalendar does not know
    assert result.code == 2
    assert "2027" in result.stderr and "[2027]" in result.stderr
    assert not (tmp_path / "reports").exists()


def test_an_override_file_makes_an_unknown_year_known(tmp_path: Path) -> None:
    (tmp_path / "holidays.toml").write_text('[2027]\nholidays = ["2027-01-01"]\n', encoding="utf-8")
    config = sample_config(tmp_path, extra='[calendar]\noverrides = "holidays.toml"\n')
    result = run_cli("run", "--config", str(config), "--as-of", "2027-03-01")
    assert result.code == 0, result.stderr
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["as_of"] == "2027-03-01"
    assert "ARCHIVE_PENDING" not in summary["findings"]["by_rule"]


@pytest.mark.postgres
@pytest.mark.mariadb
def test_pms_in_postgresql_and_marketing_in_mariadb_give_the_same_findings(
    pg_database, mariadb_database, sample_result, tmp_path
) -> None:
    generate(pg_database, mariadb_database, scale="small")
    config = sample_config(tmp_path, pg_database, mariadb_database + "?charset=utf8mb4")
    result, _ = api.run(load_config(config), as_of=AS_OF)
    expected = sample_result[0].findings[FINDING_FIELDS].drop(columns=["first_seen", "last_seen"])
    got = result.findings[FINDING_FIELDS].drop(columns=["first_seen", "last_seen"])
    pd.testing.assert_frame_equal(expected, got)


def test_as_of_defaults_to_today_in_the_configured_zone(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    config = sample_config(tmp_path, extra="")
    config.write_text('timezone = "Pacific/Kiritimati"\n' + config.read_text(), encoding="utf-8")
    today = dt.datetime.now(ZoneInfo("Pacific/Kiritimati")).date()  # UTC+14: often "tomorrow"
    result = run_cli("run", "--config", str(config))
    if result.code == 2:  # a today beyond the calendar's years must be refused, not guessed
        assert str(today.year) in result.stderr
        return
    assert result.code == 0, result.stderr
    summary = json.loads((tmp_path / "reports" / "latest" / "summary.json").read_text())
    assert summary["as_of"] == today.isoformat()


def test_progress_goes_to_a_terminal_and_never_into_pipes(tmp_path: Path) -> None:
    import os
    import pty
    import subprocess
    import threading

    from conftest import GRIDRECON

    config = sample_config(tmp_path)
    piped = run_cli("run", "--config", str(config), "--as-of", "2026-11-20")
    assert piped.code == 0 and piped.stderr == ""  # cron mail and log files stay clean
    controller, terminal = pty.openpty()
    shown = bytearray()

    def drain() -> None:  # a terminal that nobody reads fills up and blocks the writer
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    completed = subprocess.run(
        [str(GRIDRECON), "run", "--config", str(config), "--as-of", "2026-11-20"],
        stdout=subprocess.PIPE,
        stderr=terminal,
        timeout=300,
        check=False,
    )
    os.close(terminal)
    reader.join(timeout=10)
    os.close(controller)
    assert completed.returncode == 0
    assert b"reading pms transformers" in bytes(shown)
    assert b"reading" not in completed.stdout


@pytest.mark.parametrize("failing", ["validation", "matching"])
def test_an_error_while_validating_and_matching_at_once_ends_the_run_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # Great Expectations validates in a thread of the run (and in its worker process) while the
    # records are matched: an error in either is the run's error, and neither outlives it.
    import hashlib
    import threading

    from gridrecon.checks import validity
    from gridrecon.checks.rules import Judge
    from gridrecon.core.errors import GridreconError

    config = load_config(sample_config(tmp_path))
    api.run(config, as_of=AS_OF)
    store = Path(config.state_url.database)
    before = hashlib.sha256(store.read_bytes()).hexdigest()

    def broken(*args, **kwargs):
        raise GridreconError(f"{failing} broke")

    if failing == "validation":
        monkeypatch.setattr(Judge, "validate", broken)
    else:
        monkeypatch.setattr(api, "matched_records", broken)
    with pytest.raises(GridreconError, match=f"^{failing} broke$"):
        api.run(config, as_of=AS_OF, full=True)
    assert not [t for t in threading.enumerate() if t.name.startswith("gridrecon-validate")]
    assert validity._worker is None  # stopped, whichever side failed
    assert hashlib.sha256(store.read_bytes()).hexdigest() == before
