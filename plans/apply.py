"""Apply a plan: stage its changes in the staging database, after checking it is still right.

Refused with exit 2, before anything is written:
- a target that is one of the configured sources ([pms] or [marketing]): gridrecon never writes
  into the systems it reconciles;
- a plan laid out by another template than the config's [plan] template;
- a plan whose run is older than [plan] max_run_age_days (counted from the run's start), or that
  the state store does not know;
- a plan with changes whose findings are no longer open in the state store (resolved by a later
  run, waived, or unknown): make a new plan from the latest run instead.

A dry run (the default) checks all of this and counts what would be written; `write=True`
stages the rows in one transaction, with an audit row.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ..checks.result import OPEN_STATES
from ..core.config import Config, display_url
from ..core.errors import ConfigError, GridreconError
from .build import Plan, default_user
from .files import load_plan
from .staging import Staging, StagingResult
from .template import load_template

_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "oracle": 1521}
_LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}


class PlanRefused(GridreconError):
    """A plan that must not be applied as it is (exit 2); the message says what to do."""


@dataclass
class ApplyReport:
    plan: Plan
    staging: StagingResult
    by: str


def target_url(given: str | None, config: Config) -> URL:
    """--target (relative SQLite paths from the working directory), else [plan] staging_url."""
    if given is None:
        if config.plan.staging_url is None:
            raise ConfigError(
                "no staging database: give --target URL or set [plan] staging_url in the config"
            )
        return config.plan.staging_url
    try:
        url = make_url(given)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "--target is not a database URL; expected e.g. postgresql+psycopg://user@host/staging "
            "or sqlite:///staging.sqlite"
        ) from None
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        if not Path(url.database).is_absolute() and not url.database.startswith("file:"):
            url = url.set(database=str(Path(url.database).resolve()))
    return url


def _server(url: URL) -> tuple[str, str, int | None, str]:
    backend = url.get_backend_name()
    backend = "mysql" if backend == "mariadb" else backend
    host = (url.host or "").lower()
    host = "localhost" if host in _LOOPBACK else host
    database = url.database or str(url.query.get("service_name", ""))
    return backend, host, url.port or _DEFAULT_PORTS.get(backend), database


def same_database(a: URL, b: URL) -> bool:
    """Whether two URLs reach the same database (users, drivers and options aside)."""
    if a.get_backend_name() == "sqlite" or b.get_backend_name() == "sqlite":
        if a.get_backend_name() != b.get_backend_name():
            return False
        if not a.database or not b.database or ":memory:" in (a.database, b.database):
            return False
        return Path(a.database).resolve() == Path(b.database).resolve()
    return _server(a) == _server(b)


def apply_plan(
    config: Config,
    folder: Path,
    target: str | None = None,
    write: bool = False,
    by: str | None = None,
) -> ApplyReport:
    from .state import finding_states, require_run

    plan = load_plan(folder)
    url = target_url(target, config)
    for system in ("pms", "marketing"):
        if same_database(url, config.source(system).url):
            raise PlanRefused(
                f"the target {display_url(url)} is the configured [{system}] database: gridrecon "
                "never writes into the systems it reconciles. Give the staging (interface) "
                "database as --target"
            )
    template = load_template(config.plan.template)
    if template.sha256 != plan.template.get("sha256"):
        raise PlanRefused(
            f"plan {plan.plan_id} was laid out by template {plan.template.get('name')} "
            f"({plan.template.get('origin')}), which is not the config's [plan] template "
            f"{template.name} ({template.origin}) as it is now: make the plan again"
        )
    now = dt.datetime.now(config.timezone)
    run = require_run(config, plan.run_id)
    age = now - run["started_at"]
    limit = config.plan.max_run_age_days
    if age > dt.timedelta(days=limit):
        started = run["started_at"].astimezone(config.timezone).isoformat(timespec="minutes")
        raise PlanRefused(
            f"plan {plan.plan_id} was made from run {plan.run_id} started {started}, "
            f"{age.total_seconds() / 86400:.1f} days ago; [plan] max_run_age_days is {limit:g}. "
            "Run gridrecon run and make a new plan"
        )
    ids = [c["finding_id"] for c in plan.changes]
    states = finding_states(config, ids, now.date())
    stale = []
    for change in plan.changes:
        state = states.get(change["finding_id"])
        if state is None:
            stale.append(f"{change['finding_id']} (not in the state store)")
        elif state["state"] not in OPEN_STATES:
            stale.append(f"{change['finding_id']} ({state['state']} by run {state['last_run_id']})")
        elif state["waived"]:
            stale.append(f"{change['finding_id']} (waived)")
    if stale:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise PlanRefused(
            f"{len(stale)} of the {len(plan.changes)} changes of plan {plan.plan_id} are for "
            f"findings no longer open: {shown}. Nothing was written; make a new plan from the "
            "latest run (gridrecon plan --out DIR)"
        )
    who = by or default_user()
    staging = Staging(url, template)
    try:
        result = staging.stage(plan, write, who, now, secrets.token_hex(8))
    finally:
        staging.dispose()
    return ApplyReport(plan=plan, staging=result, by=who)
