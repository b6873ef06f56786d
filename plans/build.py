"""Build a sync plan: the corrections that bring marketing in line with PMS, for one run.

From a stored run's open, unwaived findings:

- ARCHIVE_OVERDUE becomes a new marketing record built from the PMS record (substations before
  their lines, lines before their transformers), its parent given by its marketing key where the
  parent is in marketing, or by its PMS id where this plan creates the parent too;
- ATTR_MISMATCH on name, voltage_kv, capacity_kva, status or parent becomes an update of that one
  field to the PMS value (PMS is the master for equipment data);
- everything without a safe automatic fix is listed for a person, with what to do;
- ARCHIVE_LATE (a past event) and ARCHIVE_PENDING (not due yet) are left out, with the reason.

The PMS values are read again now, by key (a handful of rows, not a pull), and every change
carries them with the finding it resolves. Nothing is written anywhere but the plan folder.
"""

from __future__ import annotations

import datetime as dt
import getpass
import math
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..checks.findings import FINDING_FIELDS
from ..checks.result import OPEN_STATES
from ..checks.settings import RULES
from ..connectors.mapping import ASSET_TYPES
from ..connectors.normalize import name_key
from ..connectors.reader import Selection
from ..core.config import Config, display_url
from ..core.errors import ConfigError
from ..reports.sanitize import clean_value
from ..sync.matching import PARENT_TYPE
from .template import Sheet, Template, load_template

# What a manual-handling item repeats of its finding: all but the finding's history.
MANUAL_FINDING_FIELDS = tuple(
    f for f in FINDING_FIELDS if f not in ("state", "first_seen", "last_seen", "waived")
)

PLAN_FORMAT = 1
# The ATTR_MISMATCH fields a plan corrects by taking the PMS value.
PLANNED_FIELDS = ("name", "voltage_kv", "capacity_kva", "status", "parent")
# Fields recorded with every change: the PMS values it was built from.
PMS_VALUE_FIELDS = (
    "name",
    "voltage_kv",
    "capacity_kva",
    "org_code",
    "status",
    "commissioned_on",
    "parent_source_id",
    "source_table",
    "updated_at",
)
LOOKUP_CHUNK = 500  # keys per IN (...) of a lookup

NOT_PLANNED = {
    "ARCHIVE_LATE": "a past event: the record exists, there is nothing to correct",
    "ARCHIVE_PENDING": "not due yet: the deadline has not passed",
}
MANUAL_ADVICE = {
    "MISSING_IN_PMS": (
        "the stored PMS id matches no in-scope PMS record: find the right PMS record (or have it "
        "published) and correct PMS_EQUIP_ID, or retire the marketing record"
    ),
    "UNLINKED": (
        "the marketing record stores no PMS id: check the candidates and store the right PMS id "
        "(or retire the record)"
    ),
    "DUPLICATE_LINK": (
        "several marketing records carry this PMS id: keep the right one and relink or retire the "
        "others"
    ),
    "DUPLICATE_ID": "the id occurs more than once in its system: the duplicate must be removed there",
    "PARENT_MISSING": (
        "the parent the record points at does not exist in its own system: correct the parent "
        "reference there"
    ),
    "INVALID_VALUE": "correct the value at the source the detail names",
    "ATTR_MISMATCH": (
        "changing the owning unit moves the record (and its customers) to another unit: the "
        "units agree on it and make the change in the marketing system"
    ),
}
_CANDIDATE = re.compile(r"\(PMS ([^,()]+)(, already linked)?, ([0-9.]+)\)")


@dataclass
class Plan:
    """A plan: its manifest, the changes in apply order, the manual list and the rest."""

    plan_id: str
    run_id: str
    run_as_of: str
    run_started_at: str
    run_fingerprint: str
    created_at: str
    created_by: str
    config_path: str
    sources: dict[str, str]  # masked URLs
    state_url: str  # masked
    template: dict[str, str]  # name, origin, sha256
    dialect: str  # of changes.sql
    filters: dict[str, str | None]
    changes: list[dict[str, Any]] = field(default_factory=list)
    manual: list[dict[str, Any]] = field(default_factory=list)
    not_planned: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, Any] = field(default_factory=dict)
    format: int = PLAN_FORMAT

    def counts(self) -> dict[str, Any]:
        by_action: dict[str, int] = {}
        by_sheet: dict[str, int] = {}
        for change in self.changes:
            by_action[change["action"]] = by_action.get(change["action"], 0) + 1
            key = change["asset_type"]
            by_sheet[key] = by_sheet.get(key, 0) + 1
        return {
            "changes": len(self.changes),
            "by_action": by_action,
            "by_asset_type": by_sheet,
            "manual": len(self.manual),
            "not_planned": len(self.not_planned),
        }


def new_plan_id(now: dt.datetime) -> str:
    return f"plan-{now:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _none(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def value_text(value: Any) -> str | None:
    """A canonical value as a steward reads it: 400 not 400.0, dates as YYYY-MM-DD."""
    value = _none(value)
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is not None:
            return value.isoformat()
        return value.date().isoformat()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def _json_value(value: Any) -> Any:
    """A value as plan.json keeps it: numbers stay numbers, dates become ISO text."""
    value = _none(value)
    if isinstance(value, pd.Timestamp):
        return value.date().isoformat() if value.tzinfo is None else value.isoformat()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def candidates(detail: str | None) -> list[dict[str, Any]]:
    """The candidate PMS records an UNLINKED finding's detail names."""
    if not detail:
        return []
    return [
        {"pms_id": m.group(1), "already_linked": bool(m.group(2)), "score": float(m.group(3))}
        for m in _CANDIDATE.finditer(detail)
    ]


def _finding_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    for record in records:
        record["waived"] = bool(record["waived"])
    return records


def build_plan(
    config: Config,
    run: str = "latest",
    *,
    rule: str | None = None,
    org: str | None = None,
    asset_type: str | None = None,
    dialect: str | None = None,
    created_by: str | None = None,
) -> Plan:
    """The plan for a stored run's open, unwaived findings (filtered by rule, org, asset type)."""
    from ..reports.stored import load_run
    from .staging import dialect_name
    from .state import finding_states, require_run

    if rule is not None and rule not in RULES:
        raise ConfigError(f"--rule must be one of {', '.join(RULES)}, got '{rule}'")
    if asset_type is not None and asset_type not in ASSET_TYPES:
        raise ConfigError(f"--type must be one of {', '.join(ASSET_TYPES)}, got '{asset_type}'")
    layout = load_template(config.plan.template)
    sql_dialect = dialect_name(dialect, config)
    result = load_run(config.report_dir, run)
    if result.status != "completed":
        raise ConfigError(
            f"run {result.run_id} is {result.status}: a plan is made from a completed run; "
            "`gridrecon runs list` shows them"
        )
    now = dt.datetime.now(config.timezone)
    findings = _finding_records(result.findings)
    open_findings = [f for f in findings if f["state"] in OPEN_STATES and not f["waived"]]
    selected = [
        f
        for f in open_findings
        if (rule is None or f["rule_id"] == rule)
        and (asset_type is None or f["asset_type"] == asset_type)
        and (org is None or (f["org_code"] or "").startswith(org))
    ]
    stored = require_run(config, result.run_id)
    states = finding_states(config, [f["finding_id"] for f in selected], now.date())

    plan = Plan(
        plan_id=new_plan_id(now),
        run_id=result.run_id,
        run_as_of=result.as_of.isoformat(),
        run_started_at=stored["started_at"].astimezone(config.timezone).isoformat(),
        run_fingerprint=result.config_fingerprint,
        created_at=now.isoformat(timespec="seconds"),
        created_by=created_by or default_user(),
        config_path=str(config.path),
        sources={s: display_url(config.source(s).url) for s in ("pms", "marketing")},
        state_url=display_url(config.state_url),
        template={"name": layout.name, "origin": layout.origin, "sha256": layout.sha256},
        dialect=sql_dialect,
        filters={"rule": rule, "org": org, "asset_type": asset_type},
    )
    current = []
    for finding in selected:
        state = states.get(finding["finding_id"])
        if state is None:
            _not_planned(plan, finding, "not in the state store any more")
        elif state["state"] not in OPEN_STATES:
            _not_planned(plan, finding, f"{state['state']} since the run, in the state store")
        elif state["waived"]:
            _not_planned(plan, finding, "waived since the run")
        else:
            current.append(finding)
    twins = _unlinked_twins(open_findings)
    builder = _Builder(config, layout, plan, twins)
    try:
        builder.build(current)
    finally:
        builder.close()
    _expect(config, plan, builder.commissioned)
    return plan


def _not_planned(plan: Plan, finding: dict[str, Any], why: str) -> None:
    plan.not_planned.append(
        {
            "finding_id": finding["finding_id"],
            "rule_id": finding["rule_id"],
            "asset_type": finding["asset_type"],
            "pms_id": finding["pms_id"],
            "marketing_id": finding["marketing_id"],
            "asset_name": finding["asset_name"],
            "field": finding["field"],
            "why": why,
        }
    )


def _unlinked_twins(findings: list[dict[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(asset type, name key, org) -> the marketing id of an open UNLINKED record.

    A PMS asset with the same normalised name in the same org is, most likely, that record:
    creating a second one would make a duplicate, so such an asset is left to a person.
    """
    unlinked = [f for f in findings if f["rule_id"] == "UNLINKED" and f["asset_name"]]
    if not unlinked:
        return {}
    keys = name_key(pd.Series([f["asset_name"] for f in unlinked], dtype="str"))
    return {
        (f["asset_type"], key, f["org_code"] or ""): f["marketing_id"]
        for f, key in zip(unlinked, keys)
        if isinstance(key, str)
    }


class _Builder:
    def __init__(
        self,
        config: Config,
        template: Template,
        plan: Plan,
        twins: dict[tuple[str, str, str], str],
    ):
        from ..adhoc import SliceReader

        self.config = config
        self.template = template
        self.plan = plan
        self.twins = twins
        self.reader = SliceReader(config)
        self.pms: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.linked: dict[tuple[str, str], list[str]] = {}  # marketing ids linking a PMS id
        self.created: dict[tuple[str, str], str] = {}  # (type, PMS id) -> finding id creating it
        self.commissioned: dict[str, Any] = {}  # finding id of a create -> commissioned_on

    def close(self) -> None:
        self.reader.close()

    # -- reads, by key -------------------------------------------------------------------------

    def _read(self, system: str, asset_type: str, field: str, keys: set[str]) -> pd.DataFrame:
        keys_sorted = sorted(k for k in keys if k)
        frames = [
            self.reader.read(
                system,
                asset_type,
                Selection(field, tuple(keys_sorted[start : start + LOOKUP_CHUNK])),
            )
            for start in range(0, len(keys_sorted), LOOKUP_CHUNK)
        ]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def read_pms(self, asset_type: str, ids: set[str]) -> None:
        frame = self._read("pms", asset_type, "source_id", ids)
        for record in frame.to_dict(orient="records") if len(frame) else []:
            self.pms.setdefault((asset_type, record["source_id"]), []).append(record)

    def read_links(self, asset_type: str, pms_ids: set[str]) -> None:
        """The marketing records (any status) that store each of these PMS ids."""
        pms_ids = {p for p in pms_ids if (asset_type, p) not in self.linked}
        for p in pms_ids:
            self.linked[(asset_type, p)] = []
        frame = self._read("marketing", asset_type, "pms_id", pms_ids)
        for record in frame.to_dict(orient="records") if len(frame) else []:
            ids = self.linked.setdefault((asset_type, record["pms_id"]), [])
            if record["source_id"] not in ids:
                ids.append(record["source_id"])

    # -- the plan ------------------------------------------------------------------------------

    def build(self, findings: list[dict[str, Any]]) -> None:
        creates: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for finding in findings:
            rule = finding["rule_id"]
            if rule == "ARCHIVE_OVERDUE":
                creates.append(finding)
            elif rule == "ATTR_MISMATCH" and finding["field"] in PLANNED_FIELDS:
                updates.append(finding)
            elif rule in NOT_PLANNED:
                _not_planned(self.plan, finding, NOT_PLANNED[rule])
            else:
                self.manual(finding, MANUAL_ADVICE[rule])

        for asset_type in ASSET_TYPES:
            ids = {f["pms_id"] for f in creates + updates if f["asset_type"] == asset_type}
            if ids:
                self.read_pms(asset_type, ids)
            created_ids = {f["pms_id"] for f in creates if f["asset_type"] == asset_type}
            if created_ids:
                self.read_links(asset_type, created_ids)
        parents: dict[str, set[str]] = {}
        for finding in creates + updates:
            parent_type = PARENT_TYPE.get(finding["asset_type"])
            for record in self.pms.get((finding["asset_type"], finding["pms_id"]), []):
                if parent_type and isinstance(record["parent_source_id"], str):
                    parents.setdefault(parent_type, set()).add(record["parent_source_id"])
        for parent_type, ids in parents.items():
            self.read_links(parent_type, ids)

        changes: list[dict[str, Any]] = []
        for asset_type in ASSET_TYPES:  # parents first: a child may depend on its parent's create
            for finding in sorted(
                (f for f in creates if f["asset_type"] == asset_type), key=lambda f: f["pms_id"]
            ):
                change = self.create(finding)
                if change is not None:
                    changes.append(change)
            for finding in sorted(
                (f for f in updates if f["asset_type"] == asset_type),
                key=lambda f: (f["marketing_id"], f["field"]),
            ):
                change = self.update(finding)
                if change is not None:
                    changes.append(change)
        for number, change in enumerate(changes, start=1):
            change["change_no"] = number
        self.plan.changes = changes
        self.plan.manual.sort(key=lambda m: (m["rule_id"], m["asset_type"], m["finding_id"]))

    def manual(self, finding: dict[str, Any], why: str) -> None:
        item = {key: finding[key] for key in MANUAL_FINDING_FIELDS}
        item["why"] = why
        item["candidates"] = (
            candidates(finding["detail"]) if finding["rule_id"] == "UNLINKED" else []
        )
        self.plan.manual.append(item)

    def _pms_record(self, finding: dict[str, Any]) -> dict[str, Any] | None:
        """The PMS record of a finding now, or None (noted) when it cannot be used."""
        records = self.pms.get((finding["asset_type"], finding["pms_id"]), [])
        if not records:
            _not_planned(
                self.plan,
                finding,
                "the PMS record is not in PMS (in scope) any more; the next run judges it again",
            )
            return None
        if len(records) > 1:
            self.manual(
                finding,
                f"the PMS id occurs {len(records)} times in PMS now: PMS must remove the "
                "duplicate before marketing can follow it",
            )
            return None
        return records[0]

    def _parent(
        self, finding: dict[str, Any], parent_pms_id: Any
    ) -> tuple[str | None, str | None, str | None]:
        """(parent's marketing key, finding id of the change creating it, why neither)."""
        asset_type = finding["asset_type"]
        parent_type = PARENT_TYPE[asset_type]
        if not isinstance(parent_pms_id, str):
            return None, None, f"the PMS {asset_type} has no parent {parent_type}"
        keys = self.linked.get((parent_type, parent_pms_id), [])
        if len(keys) == 1:
            return keys[0], None, None
        if len(keys) > 1:
            return (
                None,
                None,
                f"its parent {parent_type} {parent_pms_id} is carried by several marketing "
                f"records ({', '.join(sorted(keys))}): settle that DUPLICATE_LINK first",
            )
        if (parent_type, parent_pms_id) in self.created:
            return None, self.created[(parent_type, parent_pms_id)], None
        return (
            None,
            None,
            f"its parent {parent_type} {parent_pms_id} is not in marketing and this plan does "
            "not create it: archive the parent first (or plan it too)",
        )

    def _change(
        self,
        finding: dict[str, Any],
        action: str,
        sheet: Sheet,
        record: dict[str, Any],
        row: dict[str, Any],
        **extra: Any,
    ) -> dict[str, Any]:
        change = {
            "change_no": 0,
            "finding_id": finding["finding_id"],
            "rule_id": finding["rule_id"],
            "action": action,
            "asset_type": finding["asset_type"],
            "sheet": sheet.title,
            "staging_table": sheet.staging_table,
            "pms_id": finding["pms_id"],
            "marketing_id": finding["marketing_id"],
            "asset_name": value_text(record["name"]) or finding["asset_name"],
            "org_code": finding["org_code"],
            "field": None,
            "marketing_value": None,
            "new_value": None,
            "parent_pms_id": None,
            "parent_marketing_id": None,
            "depends_on": None,
            "row": {name: _json_value(row.get(name)) for name in sheet.layout},
            "pms_values": {f: value_text(record.get(f)) for f in PMS_VALUE_FIELDS},
        }
        change.update(extra)
        return change

    def create(self, finding: dict[str, Any]) -> dict[str, Any] | None:
        asset_type, pms_id = finding["asset_type"], finding["pms_id"]
        record = self._pms_record(finding)
        if record is None:
            return None
        if record["status"] != "in_service":
            _not_planned(
                self.plan,
                finding,
                f"the PMS record is {_none(record['status']) or 'of unknown status'} now; the "
                "next run judges it again",
            )
            return None
        linked = self.linked.get((asset_type, pms_id), [])
        if linked:
            _not_planned(
                self.plan,
                finding,
                f"marketing record {', '.join(sorted(linked))} links to it now; the next run "
                "resolves this finding",
            )
            return None
        key = name_key(pd.Series([record["name"]], dtype="str")).iloc[0]
        twin = self.twins.get((asset_type, key, _none(record["org_code"]) or ""))
        if twin is not None:
            self.manual(
                finding,
                f"marketing record {twin} (UNLINKED) has the same name in the same org: store PMS "
                f"id {pms_id} on it instead of creating a second record",
            )
            return None
        sheet = self.template.sheets[asset_type]
        row: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        if asset_type in PARENT_TYPE:
            parent_key, depends_on, problem = self._parent(finding, record["parent_source_id"])
            if problem:
                self.manual(finding, f"cannot create it automatically: {problem}")
                return None
            row[sheet.parent_key] = parent_key
            row[sheet.parent_pms_id] = record["parent_source_id"]
            extra = {
                "parent_pms_id": record["parent_source_id"],
                "parent_marketing_id": parent_key,
                "depends_on": depends_on,
            }
        for column in sheet.columns:
            ok, value = self.template.encode(column, record.get(column.field))
            if not ok:
                self.manual(finding, f"cannot create it automatically: {value}")
                return None
            if value is None and column.field not in sheet.optional:
                self.manual(
                    finding,
                    f"cannot create it automatically: the PMS record has no {column.field} "
                    f"(the import column {column.name} needs one); correct it in PMS first",
                )
                return None
            row[column.name] = value
        row.update(dict(sheet.constants))
        self.created[(asset_type, pms_id)] = finding["finding_id"]
        self.commissioned[finding["finding_id"]] = record["commissioned_on"]
        return self._change(finding, "create", sheet, record, row, **extra)

    def update(self, finding: dict[str, Any]) -> dict[str, Any] | None:
        record = self._pms_record(finding)
        if record is None:
            return None
        field = finding["field"]
        now = record["parent_source_id"] if field == "parent" else record[field]
        # Compared as the run wrote it: findings.json holds text cleaned of control characters.
        if clean_value(value_text(now)) != finding["pms_value"]:
            _not_planned(
                self.plan,
                finding,
                f"PMS {field} changed since the run ({finding['pms_value']} then, "
                f"{value_text(now)} now); the next run judges it again",
            )
            return None
        sheet = self.template.sheets[finding["asset_type"]]
        row: dict[str, Any] = {sheet.key: finding["marketing_id"]}
        extra: dict[str, Any] = {
            "field": field,
            "marketing_value": finding["marketing_value"],
            "new_value": value_text(now),
        }
        if field == "parent":
            parent_key, _depends, problem = self._parent(finding, now)
            if problem or parent_key is None:
                self.manual(finding, f"cannot move it automatically: {problem}")
                return None
            row[sheet.parent_key] = parent_key
            row[sheet.parent_pms_id] = now
            extra |= {"parent_pms_id": now, "parent_marketing_id": parent_key}
        else:
            columns = sheet.columns_for(field)
            if not columns:
                self.manual(
                    finding,
                    f"the template {self.template.origin} has no import column for {field}",
                )
                return None
            for column in columns:
                ok, value = self.template.encode(column, now)
                if not ok:
                    self.manual(finding, f"cannot correct it automatically: {value}")
                    return None
                row[column.name] = value
        return self._change(finding, "update", sheet, record, row, **extra)


def _expect(config: Config, plan: Plan, commissioned: dict[str, Any]) -> None:
    """What the next run should show once the plan is imported.

    Every change's finding resolves. A created record is new in marketing today, after its
    deadline (that is why it was overdue), so the next run reports it ARCHIVE_LATE on the
    marketing side: late archiving is a fact the plan cannot undo, only make visible.
    """
    from ..checks.calendar import WorkingCalendar
    from ..checks.settings import RuleSettings

    settings = RuleSettings.parse(config.rules, config.path)
    expected_new = []
    if settings.enabled("ARCHIVE_LATE") and commissioned:
        calendar = WorkingCalendar.load(config.calendar_overrides)
        days = settings.rules["ARCHIVE_LATE"].deadline_working_days
        for change in plan.changes:
            day = _none(commissioned.get(change["finding_id"]))
            if change["action"] != "create" or day is None:
                continue
            deadline = calendar.deadline(pd.Timestamp(day).date(), days)
            expected_new.append(
                {
                    "rule_id": "ARCHIVE_LATE",
                    "asset_type": change["asset_type"],
                    "pms_id": change["pms_id"],
                    "field": "marketing",
                    "deadline": deadline.isoformat(),
                    "why": f"created in marketing after its deadline {deadline.isoformat()} "
                    f"(change {change['change_no']})",
                }
            )
    plan.expected = {
        "resolved": sorted(c["finding_id"] for c in plan.changes),
        "new": expected_new,
    }
