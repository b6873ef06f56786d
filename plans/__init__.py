"""Sync plans: the corrections that bring marketing in line with PMS, and how they get there.

PMS is the master for equipment data, and changes reach the marketing system through an
interface (staging) database or a batch-import template, never by writing into its production
tables. `make_plan` turns a stored run's open findings into a plan folder (build.py, files.py);
`apply_plan` stages a plan in the staging database, after checking it is still right (apply.py,
staging.py). The import layout comes from a template file (template.py, templates/).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.config import Config
    from .build import Plan

# Loaded on first use: `gridrecon --help` (which imports the plan commands) stays fast.
_EXPORTS = {
    "ApplyReport": ".apply",
    "PlanRefused": ".apply",
    "apply_plan": ".apply",
    "Plan": ".build",
    "build_plan": ".build",
    "load_plan": ".files",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_plan(
    config: Config,
    out: Path,
    run: str = "latest",
    *,
    rule: str | None = None,
    org: str | None = None,
    asset_type: str | None = None,
    dialect: str | None = None,
    created_by: str | None = None,
) -> tuple[Plan, Path]:
    """Build the plan for a stored run and write its folder; returns the plan and the folder."""
    from .build import build_plan
    from .files import write_plan
    from .template import load_template

    plan = build_plan(
        config,
        run,
        rule=rule,
        org=org,
        asset_type=asset_type,
        dialect=dialect,
        created_by=created_by,
    )
    layout = load_template(config.plan.template)
    return plan, write_plan(plan, layout, out)


__all__ = [
    "ApplyReport",
    "Plan",
    "PlanRefused",
    "apply_plan",
    "build_plan",
    "load_plan",
    "make_plan",
]
