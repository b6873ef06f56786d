"""Rule settings from the config's [rules] section: severities, owners, deadline, tolerances.

Rule IDs are the contract (SPEC §6) and never change; everything else about a rule is a setting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..core.toml_section import Section, key_text, shown

SEVERITIES = ("info", "warning", "error")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

# rule id -> (default severity, which side's department owns the fix by default)
# "finding" means the side the finding is about (PMS-side findings go to PMS's owner, ...).
RULES: dict[str, tuple[str, str]] = {
    "ARCHIVE_OVERDUE": ("error", "marketing"),
    "ARCHIVE_PENDING": ("info", "marketing"),
    "ARCHIVE_LATE": ("warning", "finding"),
    "MISSING_IN_PMS": ("error", "pms"),
    "UNLINKED": ("warning", "marketing"),
    "ATTR_MISMATCH": ("warning", "marketing"),
    "DUPLICATE_LINK": ("error", "marketing"),
    "DUPLICATE_ID": ("error", "finding"),
    "PARENT_MISSING": ("error", "finding"),
    "INVALID_VALUE": ("warning", "finding"),
}
# Rules with their own deadline length. ARCHIVE_PENDING counts towards ARCHIVE_OVERDUE's deadline.
DEADLINE_RULES = ("ARCHIVE_OVERDUE", "ARCHIVE_LATE")
DEFAULT_OWNERS = {"pms": "运检", "marketing": "营销"}
METRICS_PERIODS = ("year", "month", "all")
COMPARED_FIELDS = ("name", "voltage_kv", "capacity_kva", "org_code", "status", "parent")


@dataclass(frozen=True)
class RuleSetting:
    enabled: bool
    severity: str
    owner: str | None  # a fixed department, or None: by side
    deadline_working_days: int


@dataclass(frozen=True)
class RuleSettings:
    rules: dict[str, RuleSetting]
    owners: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_OWNERS))
    tolerance: dict[str, float] = field(default_factory=dict)
    timeliness_since: dt.date | None = None
    metrics_period: str = "year"
    unlinked_candidates: int = 3
    validity_checks: frozenset[str] | None = None
    future_tolerance_days: int = 0

    def enabled(self, rule_id: str) -> bool:
        return self.rules[rule_id].enabled

    def severity(self, rule_id: str) -> str:
        return self.rules[rule_id].severity

    def owner(self, rule_id: str, side: str) -> str:
        """The department that owns the fix of a finding about `side` (pms or marketing)."""
        setting = self.rules[rule_id]
        if setting.owner:
            return setting.owner
        default_side = RULES[rule_id][1]
        return self.owners[side if default_side == "finding" else default_side]

    def as_dict(self) -> dict[str, Any]:
        """The settings as recorded with a run, so any finding can be traced to them."""
        return {
            "rules": {rule: vars(setting) for rule, setting in self.rules.items()},
            "owners": self.owners,
            "tolerance": self.tolerance,
            "timeliness_since": self.timeliness_since.isoformat()
            if self.timeliness_since
            else None,
            "metrics_period": self.metrics_period,
            "unlinked_candidates": self.unlinked_candidates,
            "validity_checks": sorted(self.validity_checks) if self.validity_checks else None,
            "future_tolerance_days": self.future_tolerance_days,
        }

    @classmethod
    def default(cls) -> RuleSettings:
        return cls.parse({}, Path("<defaults>"))

    @classmethod
    def parse(cls, data: dict[str, Any], file: Path) -> RuleSettings:
        section = Section(data, file, "rules")
        allowed = {
            "deadline_working_days",
            "owners",
            "tolerance",
            "timeliness_since",
            "metrics_period",
            "unlinked_candidates",
            "validity",
            *RULES,
        }
        for key in section.data:
            if key not in allowed and key.isupper():
                raise section.fail(
                    f"'rules.{key_text(key)}' is not a rule id; rule ids: {', '.join(RULES)}"
                )
        section.check_keys(allowed)
        deadline = section.integer("deadline_working_days", 5, minimum=1, maximum=60)

        owners = dict(DEFAULT_OWNERS)
        owner_section = section.section("owners", required=False)
        if owner_section is not None:
            owner_section.check_keys(set(DEFAULT_OWNERS))
            for side in DEFAULT_OWNERS:
                owners[side] = owner_section.string(side, default=owners[side])

        tolerance: dict[str, float] = {}
        tolerance_section = section.section("tolerance", required=False)
        if tolerance_section is not None:
            tolerance_section.check_keys({"voltage_kv", "capacity_kva"})
            for name in tolerance_section.data:
                value = tolerance_section.number(name)
                if value is None or value < 0:
                    raise tolerance_section.fail(
                        f"'rules.tolerance.{name}' must be a number ≥ 0, got {shown(value)}"
                    )
                tolerance[name] = value

        since = section.data.get("timeliness_since")
        if isinstance(since, str):
            try:
                since = dt.date.fromisoformat(since)
            except ValueError:
                pass
        if since is not None and (not isinstance(since, dt.date) or isinstance(since, dt.datetime)):
            raise section.fail(
                f"'rules.timeliness_since' must be a date like 2024-01-01, got {shown(since)}"
            )

        period = section.string("metrics_period", default="year")
        if period not in METRICS_PERIODS:
            raise section.fail(
                f"'rules.metrics_period' must be one of {', '.join(METRICS_PERIODS)}, "
                f"got {shown(period)}"
            )

        validity = section.section("validity", required=False)
        checks: frozenset[str] | None = None
        future_days = 0
        if validity is not None:
            validity.check_keys({"checks", "future_tolerance_days"})
            if "checks" in validity.data:
                from .validity import CHECK_NAMES

                checks = frozenset(validity.string_list("checks"))
                unknown = sorted(checks - set(CHECK_NAMES))
                if unknown:
                    raise validity.fail(
                        f"'rules.validity.checks' names unknown check "
                        f"{', '.join(shown(name) for name in unknown)}; "
                        f"checks: {', '.join(CHECK_NAMES)}"
                    )
            future_days = validity.integer("future_tolerance_days", 0, minimum=0, maximum=3650)

        rules = {}
        for rule_id, (severity, _side) in RULES.items():
            rule = section.section(rule_id, required=False)
            if rule is None:
                rules[rule_id] = RuleSetting(True, severity, None, deadline)
                continue
            keys = {"enabled", "severity", "owner"}
            if rule_id in DEADLINE_RULES:
                keys.add("deadline_working_days")
            rule.check_keys(keys)
            chosen = rule.string("severity", default=severity)
            if chosen not in SEVERITIES:
                raise rule.fail(
                    f"'rules.{rule_id}.severity' must be one of {', '.join(SEVERITIES)}, "
                    f"got {shown(chosen)}"
                )
            rules[rule_id] = RuleSetting(
                enabled=rule.boolean("enabled", True),
                severity=chosen,
                owner=rule.string("owner"),
                deadline_working_days=rule.integer(
                    "deadline_working_days", deadline, minimum=1, maximum=60
                ),
            )
        return cls(
            rules=rules,
            owners=owners,
            tolerance=tolerance,
            timeliness_since=since,
            metrics_period=period,
            unlinked_candidates=section.integer("unlinked_candidates", 3, minimum=0, maximum=20),
            validity_checks=checks,
            future_tolerance_days=future_days,
        )


def parse_severity(text: str) -> str:
    if text not in SEVERITIES:
        raise ConfigError(f"severity must be one of {', '.join(SEVERITIES)}, got '{text}'")
    return text
