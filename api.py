"""gridrecon's library API: one function per thing a user does.

The CLI and the scheduler call these functions and nothing else, so there is one code path for a
run however it is started.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from .checks.calendar import WorkingCalendar
from .checks.metrics import compute_metrics
from .checks.result import RunResult, SourceSummary
from .checks.rules import Judge
from .checks.settings import RuleSettings
from .connectors.mapping import ASSET_TYPES
from .connectors.reader import SourceRead, load_org_tree, open_sources, read_source
from .core.config import Config, display_url
from .sync.matching import match_all


def today(config: Config) -> dt.date:
    return dt.datetime.now(config.timezone).date()


def config_fingerprint(config: Config, settings: RuleSettings, mappings: dict[str, Any]) -> str:
    """A hash of everything that decides a run's findings (passwords masked before hashing)."""
    described = {
        "timezone": str(config.timezone),
        "sources": {
            system: {
                "url": display_url(config.source(system).url),
                "schema": config.source(system).schema,
                "mapping": mappings[system].name,
                "mapping_sha256": hashlib.sha256(mappings[system].path.read_bytes()).hexdigest(),
            }
            for system in ("pms", "marketing")
        },
        "calendar_overrides": (
            hashlib.sha256(config.calendar_overrides.read_bytes()).hexdigest()
            if config.calendar_overrides and config.calendar_overrides.is_file()
            else None
        ),
        "rules": settings.as_dict(),
    }
    text = json.dumps(described, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _summarise(read: SourceRead, seconds: float) -> SourceSummary:
    rows_by_table: dict[str, int] = {}
    for asset in read.assets.values():
        for table, count in asset.rows_by_table.items():
            rows_by_table[table] = rows_by_table.get(table, 0) + count
    return SourceSummary(
        system=read.system,
        url=read.url,
        mapping=read.mapping,
        rows={t: a.rows for t, a in read.assets.items()},
        rows_by_table=rows_by_table,
        newest_update={
            t: (a.newest_update.isoformat() if a.newest_update else None)
            for t, a in read.assets.items()
        },
        seconds=seconds,
    )


def reconcile(
    config: Config, as_of: dt.date | None = None, fail_on: str | None = None
) -> RunResult:
    """Pull both systems, match, judge and measure: the run's result, nothing written."""
    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    as_of = as_of or today(config)
    started_at = dt.datetime.now(config.timezone)
    sources = open_sources(config)
    mappings = {system: source.mapping for system, source in sources.items()}
    try:
        reads: dict[str, SourceRead] = {}
        summaries: dict[str, SourceSummary] = {}
        for system, source in sources.items():
            began = time.monotonic()
            reads[system] = read_source(source, sources, config.timezone, ASSET_TYPES)
            summaries[system] = _summarise(reads[system], time.monotonic() - began)
        orgs = load_org_tree(sources["marketing"])
        if orgs.empty:
            orgs = load_org_tree(sources["pms"])
    finally:
        for source in sources.values():
            source.dispose()

    matches = match_all(
        {t: reads["pms"].records(t) for t in ASSET_TYPES},
        {t: reads["marketing"].records(t) for t in ASSET_TYPES},
    )
    judgement = Judge(mappings, calendar, settings, as_of).judge(matches)
    findings = judgement.findings
    seen = started_at.isoformat(timespec="seconds")
    findings["first_seen"] = seen
    findings["last_seen"] = seen
    parents = orgs.dropna(subset=["parent_code"]).set_index("org_code")["parent_code"].to_dict()
    metrics = compute_metrics(
        matches, findings, judgement.deadlines, as_of, settings.metrics_period, parents
    )
    return RunResult(
        run_id=f"{started_at:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}",
        as_of=as_of,
        started_at=started_at,
        finished_at=dt.datetime.now(config.timezone),
        config_path=str(config.path),
        config_fingerprint=config_fingerprint(config, settings, mappings),
        settings=settings.as_dict(),
        sources=summaries,
        findings=findings,
        metrics=metrics,
        fail_on=fail_on,
        orgs=orgs,
    )


def run(config: Config, as_of: dt.date | None = None, fail_on: str | None = None) -> tuple[RunResult, Path]:
    """One whole reconciliation (SPEC §8): reconcile, then write the run folder and latest/."""
    from .reports.output import write_run_folder

    result = reconcile(config, as_of=as_of, fail_on=fail_on)
    folder = write_run_folder(result, config.report_dir)
    return result, folder
