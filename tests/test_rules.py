"""How the rules meet each other (SPEC §6), on tiny hand-written PMS and SG186 databases.

Each test writes a few rows into empty SQLite copies of the sample schemas and runs a real
reconciliation on them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from tiny_grid import LINE, SUB, TRAN, Grid

from gridrecon.core.errors import CalendarYearUnknown


def found(findings: pd.DataFrame) -> set[tuple]:
    return set(zip(findings["rule_id"], findings["field"].fillna(""), strict=True))


@pytest.fixture
def grid(tmp_path: Path) -> Grid:
    return Grid(tmp_path)


def test_a_clean_chain_produces_no_finding(grid: Grid) -> None:
    assert grid.run().empty


def test_a_capacity_difference_within_the_tolerance_is_not_a_mismatch(grid: Grid) -> None:
    grid.marketing["G_TRAN"][0]["PLATE_CAP"] = 400.4
    assert found(grid.run()) == {("ATTR_MISMATCH", "capacity_kva")}
    assert grid.run("[rules]\ntolerance = { capacity_kva = 0.5 }\n").empty


def test_a_code_not_in_the_code_list_is_invalid_and_not_compared(grid: Grid) -> None:
    grid.marketing["G_TRAN"][0]["FRSTSIDE_VOLT_CODE"] = "AC99999"
    findings = grid.run()
    assert found(findings) == {("INVALID_VALUE", "voltage_kv")}
    row = findings.iloc[0]
    assert (row["marketing_id"], row["pms_id"], row["marketing_value"]) == ("3", TRAN, "AC99999")
    assert row["detail"] == "G_TRAN.FRSTSIDE_VOLT_CODE = 'AC99999': not in code list"
    assert row["owner"] == "营销"


def test_a_record_with_a_repeated_id_is_judged_only_by_duplicate_id(grid: Grid) -> None:
    # the transformer's id in both PMS tables, the second copy with a voltage not in the list
    twin = {**grid.pms["T_SB_ZNYC_PDBYQ"][0], "DYDJ": "99"}
    grid.pms["T_SB_ZWYC_ZSBYQ"].append(twin)
    findings = grid.run()
    assert found(findings) == {("DUPLICATE_ID", "")}
    assert "occurs 2 times" in findings.iloc[0]["detail"]


def test_a_stopped_linked_record_is_a_status_mismatch_not_overdue(grid: Grid) -> None:
    grid.marketing["G_TRAN"][0]["RUN_STATUS_CODE"] = "02"
    findings = grid.run()
    assert found(findings) == {("ATTR_MISMATCH", "status")}
    assert findings.iloc[0][["pms_value", "marketing_value"]].tolist() == ["in_service", "retired"]


def test_a_parent_whose_marketing_record_is_unlinked_is_not_compared(grid: Grid) -> None:
    grid.marketing["G_LINE"][0]["PMS_EQUIP_ID"] = None
    findings = grid.run()
    # the line is unlinked (and so overdue in PMS); its transformer's parent cannot be compared
    assert found(findings) == {("UNLINKED", ""), ("ARCHIVE_OVERDUE", "")}


def test_a_different_parent_on_both_linked_sides_is_a_parent_mismatch(grid: Grid) -> None:
    other = "d" * 32
    grid.pms["T_SB_ZWYC_XL"].append(grid._pms(other, XLMC="10kV河口二线", QSDZ=SUB))
    grid.marketing["G_LINE"].append(
        {
            **grid.marketing["G_LINE"][0],
            "LINE_ID": 4,
            "LINE_NAME": "10kV河口二线",
            "PMS_EQUIP_ID": other,
        }
    )
    grid.marketing["G_SUBS_LINE_RELA"].append({"RELA_ID": 2, "SUBS_ID": 1, "LINE_ID": 4})
    grid.marketing["G_LINE_TG_RELA"][0]["LINE_ID"] = 4
    findings = grid.run()
    assert found(findings) == {("ATTR_MISMATCH", "parent")}
    assert findings.iloc[0][["pms_value", "marketing_value"]].tolist() == [LINE, other]


def test_archiving_on_the_deadline_day_is_on_time_and_a_day_later_is_late(grid: Grid) -> None:
    transformer = grid.pms["T_SB_ZNYC_PDBYQ"][0]
    transformer["TYRQ"] = dt.date(2026, 9, 29)  # deadline Mon 2026-10-12 (National Day)
    transformer["DJSJ"] = dt.datetime(2026, 10, 12, 23, 59)
    grid.marketing["G_TRAN"][0]["CREATE_DATE"] = dt.datetime(2026, 10, 12, 23, 59)
    assert grid.run().empty
    grid.marketing["G_TRAN"][0]["CREATE_DATE"] = dt.datetime(2026, 10, 13, 0, 1)
    findings = grid.run()
    assert found(findings) == {("ARCHIVE_LATE", "marketing")}
    assert findings.iloc[0]["marketing_value"] == "2026-10-13"


def test_an_asset_older_than_the_calendar_needs_timeliness_since(grid: Grid) -> None:
    for table in ("T_SB_ZNYC_DZ", "T_SB_ZWYC_XL", "T_SB_ZNYC_PDBYQ"):
        grid.pms[table][0]["TYRQ"] = dt.date(2003, 6, 1)
    with pytest.raises(CalendarYearUnknown, match="2003"):
        grid.run()
    assert grid.run('[rules]\ntimeliness_since = "2024-01-01"\n').empty


def test_an_unpublished_pms_record_does_not_exist_for_any_rule(grid: Grid) -> None:
    grid.pms["T_SB_ZNYC_PDBYQ"][0]["FBZT"] = "未发布"
    findings = grid.run()
    assert found(findings) == {("MISSING_IN_PMS", "")}
    assert findings.iloc[0]["owner"] == "运检"


def test_a_pending_archive_turns_overdue_the_working_day_after_its_deadline(grid: Grid) -> None:
    grid.pms["T_SB_ZNYC_PDBYQ"][0]["TYRQ"] = dt.date(2026, 11, 17)  # deadline Tue 11-24
    grid.marketing["G_TRAN"].clear()
    grid.marketing["G_LINE_TG_RELA"].clear()
    on_deadline = grid.run(as_of=dt.date(2026, 11, 24))
    assert found(on_deadline) == {("ARCHIVE_PENDING", "")}
    assert on_deadline.iloc[0]["detail"].endswith("0 working days left")
    after = grid.run(as_of=dt.date(2026, 11, 25))
    assert found(after) == {("ARCHIVE_OVERDUE", "")}
    assert after.iloc[0]["detail"].endswith("1 working days overdue")


def test_the_candidates_ranked_by_name_are_those_a_full_comparison_ranks() -> None:
    # Candidate names are scored with cheap upper bounds first; the ranking shown must be the
    # one comparing every name in full gives, ties (broken by PMS id) included.
    import difflib
    import random

    from gridrecon.checks.rules import _similarities

    chance = random.Random(7)
    words = ["河口", "新村", "东岭", "西坡", "北郊", "南湖", "#", "1", "2", "3", "号", "公变", "线"]
    names = pd.Series(
        ["".join(chance.choice(words) for _ in range(chance.randint(2, 6))) for _ in range(3000)]
    )
    for key in ("河口1#公变", "东岭线", "南湖新村2#", "西坡"):
        for keep in (1, 3, 10):
            full = [difflib.SequenceMatcher(None, key, n).ratio() for n in names]
            fast = _similarities(key, names, keep)
            assert _best(fast, keep) == _best(full, keep)
            assert sum(s < 0 for s in fast) > len(names) // 2  # most were ruled out cheaply


def _best(scores: list[float], keep: int) -> list[tuple[float, int]]:
    return sorted((-score, position) for position, score in enumerate(scores))[:keep]
