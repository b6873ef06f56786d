"""The words the reports show people: Chinese by default, English with lang="en".

Machine-readable outputs (JSON, CSV) keep the contract's codes (rule IDs, `in_service`, ...); the
reports stewards read show these labels instead, always next to the rule ID so a label can be
traced back to the contract. A code without a label is shown as itself, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..core.errors import GridreconError

LANGUAGES = ("zh", "en")

RULES = {
    "zh": {
        "ARCHIVE_OVERDUE": "建档超期",
        "ARCHIVE_PENDING": "待建档",
        "ARCHIVE_LATE": "建档延迟",
        "MISSING_IN_PMS": "PMS无台账",
        "UNLINKED": "未关联PMS",
        "ATTR_MISMATCH": "属性不一致",
        "DUPLICATE_LINK": "重复关联",
        "DUPLICATE_ID": "编号重复",
        "PARENT_MISSING": "上级设备缺失",
        "INVALID_VALUE": "数据无效",
    },
    "en": {
        "ARCHIVE_OVERDUE": "Archive overdue",
        "ARCHIVE_PENDING": "Archive pending",
        "ARCHIVE_LATE": "Archived late",
        "MISSING_IN_PMS": "Missing in PMS",
        "UNLINKED": "Not linked to PMS",
        "ATTR_MISMATCH": "Attribute mismatch",
        "DUPLICATE_LINK": "Duplicate link",
        "DUPLICATE_ID": "Duplicate ID",
        "PARENT_MISSING": "Parent missing",
        "INVALID_VALUE": "Invalid value",
    },
}

ASSET_TYPES = {
    "zh": {"substation": "变电站", "line": "线路", "transformer": "公变"},
    "en": {"substation": "Substation", "line": "Line", "transformer": "Public transformer"},
}

STATES = {
    "zh": {"new": "新增", "open": "未关闭", "reopened": "重新打开", "resolved": "已解决"},
    "en": {"new": "New", "open": "Open", "reopened": "Reopened", "resolved": "Resolved"},
}

SEVERITIES = {
    "zh": {"error": "严重", "warning": "警告", "info": "提示"},
    "en": {"error": "Error", "warning": "Warning", "info": "Info"},
}

# The `field` of a finding: a canonical field (SPEC §2), `parent`, or the system it is about.
FIELDS = {
    "zh": {
        "source_id": "设备编号",
        "pms_id": "PMS编号",
        "name": "设备名称",
        "voltage_kv": "电压等级(kV)",
        "capacity_kva": "容量(kVA)",
        "org_code": "所属单位",
        "status": "运行状态",
        "parent": "上级设备",
        "commissioned_on": "投运日期",
        "recorded_at": "建档时间",
        "updated_at": "更新时间",
        "pms": "PMS",
        "marketing": "营销系统",
    },
    "en": {
        "source_id": "Source ID",
        "pms_id": "PMS ID",
        "name": "Name",
        "voltage_kv": "Voltage (kV)",
        "capacity_kva": "Capacity (kVA)",
        "org_code": "Org",
        "status": "Status",
        "parent": "Parent",
        "commissioned_on": "Commissioned on",
        "recorded_at": "Recorded at",
        "updated_at": "Updated at",
        "pms": "PMS",
        "marketing": "Marketing",
    },
}

# Canonical status values, shown where a finding's field is `status`.
STATUSES = {
    "zh": {"in_service": "在运", "not_commissioned": "未投运", "retired": "退役", "other": "其他"},
    "en": {
        "in_service": "In service",
        "not_commissioned": "Not commissioned",
        "retired": "Retired",
        "other": "Other",
    },
}

METRICS = {
    "zh": {
        "linkage_rate": "贯通率",
        "consistency_rate": "一致率",
        "timeliness_rate": "及时率",
        "pms_assets": "PMS在运设备",
        "linked": "已贯通",
        "pairs": "比对对数",
        "consistent_pairs": "一致对数",
        "due": "应按期建档",
        "on_time": "按期建档",
    },
    "en": {
        "linkage_rate": "Linkage rate",
        "consistency_rate": "Consistency rate",
        "timeliness_rate": "Timeliness rate",
        "pms_assets": "In-service PMS assets",
        "linked": "Linked",
        "pairs": "Pairs compared",
        "consistent_pairs": "Consistent pairs",
        "due": "Due",
        "on_time": "On time",
    },
}

# Column headers of the finding tables (HTML and XLSX).
COLUMNS = {
    "zh": {
        "finding_id": "问题编号",
        "rule": "问题类型",
        "rule_id": "规则ID",
        "severity": "严重程度",
        "state": "状态",
        "asset_type": "设备类型",
        "pms_id": "PMS编号",
        "marketing_id": "营销编号",
        "ids": "PMS编号 / 营销编号",
        "asset_name": "设备名称",
        "org_code": "单位编码",
        "org_name": "单位",
        "field": "字段",
        "pms_value": "PMS值",
        "marketing_value": "营销值",
        "detail": "说明",
        "owner": "责任部门",
        "first_seen": "首次发现",
        "last_seen": "最近发现",
        "waived": "已豁免",
        "waiver_reason": "豁免原因",
        "waived_by": "豁免人",
        "waiver_expires": "豁免到期",
    },
    "en": {
        "finding_id": "Finding ID",
        "rule": "Rule",
        "rule_id": "Rule ID",
        "severity": "Severity",
        "state": "State",
        "asset_type": "Asset type",
        "pms_id": "PMS ID",
        "marketing_id": "Marketing ID",
        "ids": "PMS ID / marketing ID",
        "asset_name": "Name",
        "org_code": "Org code",
        "org_name": "Org",
        "field": "Field",
        "pms_value": "PMS value",
        "marketing_value": "Marketing value",
        "detail": "Detail",
        "owner": "Owner",
        "first_seen": "First seen",
        "last_seen": "Last seen",
        "waived": "Waived",
        "waiver_reason": "Waiver reason",
        "waived_by": "Waived by",
        "waiver_expires": "Waiver expires",
    },
}

# Everything else the reports say.
TEXT = {
    "zh": {
        "title": "电网设备档案核查报告",
        "subtitle": "PMS 与营销系统 站-线-变 档案贯通核查",
        "run_id": "运行编号",
        "as_of": "评估日期",
        "started_at": "运行时间",
        "status": "运行状态",
        "previous_run": "上次运行",
        "first_run": "首次运行：所有问题均为新增",
        "config": "配置指纹",
        "headline": "核心指标",
        "headline_note": "全省合计；括号内为分子/分母。",
        "by_org": "各单位指标",
        "by_org_note": "地市公司行汇总其下属区县；“本部”为地市公司自有设备。点击地市行展开或收起区县。",
        "own_assets": "本部",
        "unknown_org": "未知单位",
        "all_orgs": "全省合计",
        "expand_all": "全部展开",
        "collapse_all": "全部收起",
        "no_data": "无数据",
        "changes": "与上次运行相比",
        "open_total": "未关闭合计",
        "findings_open": "未关闭问题",
        "trend": "各规则未关闭问题趋势",
        "trend_empty": "暂无历史运行数据。",
        "findings": "问题清单",
        "filter_all": "全部",
        "filter_active": "未关闭（新增/未关闭/重新打开）",
        "search": "搜索名称、编号、说明…",
        "reset": "重置筛选",
        "shown": "显示 {from}–{to} 条，共 {count} 条",
        "none_shown": "没有符合条件的问题",
        "page_size": "每页",
        "prev": "上一页",
        "next": "下一页",
        "waived_title": "已豁免问题",
        "waived_note": "已豁免的问题不计入未关闭数，单独列出。",
        "sources": "数据来源",
        "system": "系统",
        "mapping": "映射",
        "rows": "读取行数",
        "seconds": "耗时(秒)",
        "total": "合计",
        "summary_sheet": "汇总",
        "metrics_sheet": "指标",
        "waived_sheet": "已豁免",
        "resolved_sheet": "本次解决",
        "no_org_sheet": "无单位",
        "counts_by_rule": "各规则问题数",
        "scope": "范围",
        "scope_all": "全省",
        "scope_rollup": "汇总",
        "scope_org": "本单位",
        "legend": "≥99% 良好 · ≥95% 一般 · <95% 较差",
        "notes": "说明",
        "generated_by": "由 gridrecon 生成",
        "pms_system": "PMS",
        "marketing_system": "营销",
    },
    "en": {
        "title": "Grid asset archive reconciliation",
        "subtitle": "PMS vs. marketing system: substations, lines, public transformers",
        "run_id": "Run",
        "as_of": "As of",
        "started_at": "Started",
        "status": "Status",
        "previous_run": "Previous run",
        "first_run": "First run: every finding is new",
        "config": "Config fingerprint",
        "headline": "Headline metrics",
        "headline_note": "Whole company; numerator/denominator in brackets.",
        "by_org": "Metrics per org",
        "by_org_note": "A city row sums its counties; \u201cown assets\u201d are the city "
        "company's own. Click a city row to show or hide its counties.",
        "own_assets": "own assets",
        "unknown_org": "unknown org",
        "all_orgs": "Whole company",
        "expand_all": "Expand all",
        "collapse_all": "Collapse all",
        "no_data": "no data",
        "changes": "Since the previous run",
        "open_total": "Open in total",
        "findings_open": "Open findings",
        "trend": "Open findings per rule",
        "trend_empty": "No earlier runs yet.",
        "findings": "Findings",
        "filter_all": "All",
        "filter_active": "Open (new, open, reopened)",
        "search": "Search name, ID, detail…",
        "reset": "Reset filters",
        "shown": "Showing {from}–{to} of {count}",
        "none_shown": "No finding matches",
        "page_size": "Per page",
        "prev": "Previous",
        "next": "Next",
        "waived_title": "Waived findings",
        "waived_note": "Waived findings stay out of the open counts and are listed here.",
        "sources": "What was read",
        "system": "System",
        "mapping": "Mapping",
        "rows": "Rows read",
        "seconds": "Seconds",
        "total": "Total",
        "summary_sheet": "Summary",
        "metrics_sheet": "Metrics",
        "waived_sheet": "Waived",
        "resolved_sheet": "Resolved",
        "no_org_sheet": "No org",
        "counts_by_rule": "Findings per rule",
        "scope": "Scope",
        "scope_all": "total",
        "scope_rollup": "rollup",
        "scope_org": "own",
        "legend": "≥99% good · ≥95% fair · <95% poor",
        "notes": "Notes",
        "generated_by": "Made by gridrecon",
        "pms_system": "PMS",
        "marketing_system": "Marketing",
    },
}


@dataclass(frozen=True)
class Labels:
    """The labels of one language; unknown codes come back unchanged."""

    lang: str

    def rule(self, rule_id: str) -> str:
        return RULES[self.lang].get(rule_id, rule_id)

    def rule_with_id(self, rule_id: str) -> str:
        label = self.rule(rule_id)
        return rule_id if label == rule_id else f"{label} {rule_id}"

    def asset_type(self, asset_type: str) -> str:
        return ASSET_TYPES[self.lang].get(asset_type, asset_type)

    def state(self, state: str) -> str:
        return STATES[self.lang].get(state, state)

    def severity(self, severity: str) -> str:
        return SEVERITIES[self.lang].get(severity, severity)

    def field(self, field: str) -> str:
        return FIELDS[self.lang].get(field, field)

    def metric(self, metric: str) -> str:
        return METRICS[self.lang].get(metric, metric)

    def column(self, column: str) -> str:
        return COLUMNS[self.lang].get(column, column)

    def text(self, key: str, **values: Any) -> str:
        text = TEXT[self.lang][key]
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text

    def value(self, field: Any, value: Any) -> Any:
        """A compared value as shown: status codes get their label, everything else as is."""
        if field == "status" and isinstance(value, str):
            return STATUSES[self.lang].get(value, value)
        return value

    def for_script(self) -> dict[str, dict[str, str]]:
        """Every table the page's script needs, as plain dicts (embedded as JSON)."""
        return {
            "rules": RULES[self.lang],
            "asset_types": ASSET_TYPES[self.lang],
            "states": STATES[self.lang],
            "severities": SEVERITIES[self.lang],
            "fields": FIELDS[self.lang],
            "columns": COLUMNS[self.lang],
            "text": TEXT[self.lang],
        }


def org_tree(orgs: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    """The org tree's names and parents (org_code -> name, org_code -> parent code)."""
    names: dict[str, str] = {}
    parents: dict[str, str] = {}
    for code, name, parent in orgs[["org_code", "org_name", "parent_code"]].itertuples(index=False):
        if pd.isna(code):
            continue
        code = str(code)
        if not pd.isna(name) and str(name).strip():
            names[code] = str(name)
        if not pd.isna(parent) and str(parent) not in ("", code):
            parents[code] = str(parent)
    return names, parents


def labels(lang: str = "zh") -> Labels:
    if lang not in LANGUAGES:
        raise GridreconError(
            f"unknown report language {lang!r}; use one of: {', '.join(LANGUAGES)}"
        )
    return Labels(lang)
