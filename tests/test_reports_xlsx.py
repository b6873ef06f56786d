"""findings.xlsx: summary first, work queues per rule or org, waived apart; hostile data as text."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import openpyxl
import pytest
from test_reports_golden import CLEANED, HOSTILE, golden_result, sample_result

from gridrecon.core.errors import GridreconError
from gridrecon.reports import machine
from gridrecon.reports.sanitize import csv_cell, looks_like_formula, sheet_name
from gridrecon.reports.xlsx import render_xlsx

FORMULAS = [k for k in HOSTILE if k.startswith("formula_")]


@pytest.fixture(scope="module")
def result():
    return golden_result()


@pytest.fixture(scope="module")
def book(result):
    return openpyxl.load_workbook(io.BytesIO(render_xlsx(result)))


def rows_of(sheet) -> list[dict]:
    values = list(sheet.iter_rows(values_only=True))
    return [dict(zip(values[0], row, strict=True)) for row in values[1:]]


def test_the_summary_comes_first_then_a_queue_per_rule_then_resolved_waived_and_metrics(
    book, result
) -> None:
    names = book.sheetnames
    assert names[0] == "汇总"
    open_rules = set(result.open_findings["rule_id"])
    queues = names[1 : 1 + len(open_rules)]
    assert {name.split()[-1] for name in queues} == open_rules
    assert "建档超期 ARCHIVE_OVERDUE" in queues
    assert names[-3:] == ["本次解决", "已豁免", "指标"]


def test_sheet_names_are_valid_for_excel(book) -> None:
    folded = [name.casefold() for name in book.sheetnames]
    assert len(set(folded)) == len(folded)
    for name in book.sheetnames:
        assert 0 < len(name) <= 31 and not re.search(r"[\[\]:*?/\\]", name), name


def test_queues_hold_the_open_unwaived_findings_and_waived_ones_are_apart(book, result) -> None:
    findings = result.findings
    current = findings["state"].isin(["new", "open", "reopened"])
    waived = findings["waived"].astype(bool)
    queued = [r["问题编号"] for name in book.sheetnames[1:-3] for r in rows_of(book[name])]
    assert sorted(queued) == sorted(findings.loc[current & ~waived, "finding_id"])
    assert sorted(r["问题编号"] for r in rows_of(book["已豁免"])) == sorted(
        findings.loc[current & waived, "finding_id"]
    )
    resolved = sorted(r["问题编号"] for r in rows_of(book["本次解决"]))
    assert resolved == sorted(findings.loc[findings["state"] == "resolved", "finding_id"])
    assert len(resolved) == 3 and len(rows_of(book["已豁免"])) == 2


def test_list_sheets_have_a_frozen_header_a_filter_widths_and_real_dates(book) -> None:
    for name in book.sheetnames[1:-1]:
        sheet = book[name]
        assert sheet.freeze_panes == "A2", name
        assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:R"), name
        assert sheet.column_dimensions["F"].width >= 8  # asset name
    sheet = book["建档超期 ARCHIVE_OVERDUE"]
    header = [c.value for c in sheet[1]]
    assert header[:6] == ["问题类型", "规则ID", "严重程度", "状态", "设备类型", "设备名称"]
    first_seen = sheet.cell(row=2, column=header.index("首次发现") + 1)
    assert first_seen.is_date and isinstance(first_seen.value, dt.datetime)
    assert sheet.column_dimensions["L"].width > sheet.column_dimensions["C"].width  # detail


def test_labels_are_chinese_with_rule_ids_kept(book) -> None:
    row = rows_of(book["属性不一致 ATTR_MISMATCH"]) + rows_of(book["已豁免"])
    row = [r for r in row if r["规则ID"] == "ATTR_MISMATCH"]
    by_field = {r["字段"]: r for r in row}
    assert by_field["运行状态"]["PMS值"] == "在运" and by_field["运行状态"]["营销值"] == "其他"
    assert {r["规则ID"] for r in row} == {"ATTR_MISMATCH"}
    assert {r["设备类型"] for r in row} <= {"变电站", "线路", "公变"}
    assert {r["单位"] for r in row} == {"国网济南市章丘区供电公司"}


def test_the_summary_counts_equal_summary_json(book, result) -> None:
    counts = json.loads(machine.summary_json(result))["findings"]
    rows = list(book["汇总"].iter_rows(values_only=True))
    header = next(i for i, r in enumerate(rows) if r[:2] == ("问题类型", "规则ID"))
    per_rule = {}
    for row in rows[header + 1 :]:
        if row[0] == "合计":
            total = row
            break
        per_rule[row[1]] = row[3]
    assert {k: v for k, v in per_rule.items() if v} == counts["by_rule"]
    assert total[3] == counts["open"] and total[7] == counts["waived"]


def test_by_org_gives_a_sheet_per_org_with_a_city_before_its_counties() -> None:
    result = golden_result()
    findings = result.findings
    findings.loc[findings.index[:3], "org_code"] = "37401"  # a city's own findings
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(result, by="org")))
    names = book.sheetnames
    assert names[:3] == ["汇总", "国网济南供电公司", "国网济南市章丘区供电公司"]
    assert "无单位" in names  # the finding without an org
    severities = [r["严重程度"] for r in rows_of(book["国网济南市章丘区供电公司"])]
    assert severities == sorted(severities, key=["严重", "警告", "提示"].index)


def test_english_labels_with_lang_en() -> None:
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(sample_result(), lang="en")))
    assert book.sheetnames[0] == "Summary"
    assert "Archive overdue ARCHIVE_OVERDUE" in book.sheetnames
    header = [c.value for c in book["Archive overdue ARCHIVE_OVERDUE"][1]]
    assert header[:3] == ["Rule", "Rule ID", "Severity"]


def test_unknown_grouping_or_language_is_bad_input() -> None:
    with pytest.raises(GridreconError, match="rule, org"):
        render_xlsx(sample_result(), by="owner")
    with pytest.raises(GridreconError, match="zh, en"):
        render_xlsx(sample_result(), lang="fr")


def test_an_inconclusive_run_without_findings_or_metrics_still_renders() -> None:
    result = sample_result()
    result.findings = result.findings.iloc[0:0]
    result.metrics = result.metrics.iloc[0:0]
    result.status = "inconclusive"
    result.notes = ["inconclusive: pms returned no line rows"]
    book = openpyxl.load_workbook(io.BytesIO(render_xlsx(result)))
    assert book.sheetnames == ["汇总", "本次解决", "已豁免", "指标"]


# -- hostile data -------------------------------------------------------------------------------


def hostile_cells(book) -> dict[str, openpyxl.cell.Cell]:
    sheet = book["未关联PMS UNLINKED"]
    header = [c.value for c in sheet[1]]
    ids = header.index("问题编号")
    name = header.index("设备名称")
    return {row[ids].value: row[name] for row in sheet.iter_rows(min_row=2) if row[ids].value}


def test_formula_like_names_are_text_cells_in_xlsx(book) -> None:
    cells = hostile_cells(book)
    for number, key in enumerate(HOSTILE):
        cell = cells[f"0000hostile{number:05d}"]
        assert cell.data_type == "s", key  # a string, never a formula ("f")
        if key in FORMULAS:
            assert cell.value == HOSTILE[key], key  # shown exactly as the source has it
            assert cell.quotePrefix, key  # and Excel keeps it text when edited
    assert not cells["0000hostile00012"].quotePrefix  # "-100" is a number, not a formula


def test_control_characters_are_removed_and_long_names_and_emoji_survive_in_xlsx(book) -> None:
    cells = hostile_cells(book)
    keys = list(HOSTILE)
    assert cells[f"0000hostile{keys.index('control'):05d}"].value == CLEANED["control"]
    assert cells[f"0000hostile{keys.index('long'):05d}"].value == HOSTILE["long"]
    assert cells[f"0000hostile{keys.index('emoji'):05d}"].value == HOSTILE["emoji"]


def test_formula_like_values_start_with_an_apostrophe_in_csv(result) -> None:
    text = machine.findings_csv(result).decode("utf-8-sig")
    records = {r["finding_id"]: r for r in csv.DictReader(io.StringIO(text))}
    for number, key in enumerate(HOSTILE):
        record = records[f"0000hostile{number:05d}"]
        name = CLEANED.get(key, HOSTILE[key])
        expected = "'" + name if key in FORMULAS else name
        assert record["asset_name"] == expected, key
        assert record["pms_value"] == (expected if key != "long" else "x"), key
        assert not looks_like_formula(record["asset_name"]), key
    for record in records.values():  # no cell anywhere can start a formula
        assert not any(looks_like_formula(value) for value in record.values())


def test_json_keeps_the_text_exact_but_without_control_characters(result) -> None:
    records = {r["finding_id"]: r for r in json.loads(machine.findings_json(result))}
    for number, key in enumerate(HOSTILE):
        assert records[f"0000hostile{number:05d}"]["asset_name"] == CLEANED.get(key, HOSTILE[key])


@pytest.mark.parametrize(
    ("text", "neutralised"),
    [
        ("=1+1", "'=1+1"), ("+1", "+1"), ("+86 531", "'+86 531"), ("-100", "-100"),
        ("-1.5e3", "-1.5e3"), ("-", "'-"), ("@x", "'@x"), ("\t=x", "'\t=x"), ("\r=x", "'\n=x"),
        ("＠x", "'＠x"), ("a=b", "a=b"), ("", ""), ("城东=1", "城东=1"),
    ],
)  # fmt: skip
def test_csv_cells_are_neutralised_only_when_they_would_run(text: str, neutralised: str) -> None:
    assert csv_cell(text) == neutralised


def test_sheet_names_are_made_valid_unique_and_short() -> None:
    taken: set[str] = set()
    assert sheet_name("a/b:c*d?e[f]g\\h", taken) == "a_b_c_d_e_f_g_h"
    assert sheet_name("A_B_C_D_E_F_G_H", taken) == "A_B_C_D_E_F_G_H (2)"  # Excel ignores case
    long = "国网" * 20
    first, second = sheet_name(long, taken), sheet_name(long, taken)
    assert len(first) == 31 and len(second) <= 31 and first != second
    assert sheet_name("'quoted'", taken) == "quoted"
    assert sheet_name("History", taken) == "History (2)"
    assert sheet_name("  ", taken) == "_"
