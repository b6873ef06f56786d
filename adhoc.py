"""Answers to daytime questions, from key lookups and slices instead of a full pull.

`check_asset` finds one asset by id or name, reads it and its parent chain from both systems by
key, and judges it with the same rules as a run. `diff` reconciles one asset type (optionally one
org) with the filters in the source queries. Neither writes anything.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from .checks.calendar import WorkingCalendar
from .checks.metrics import compute_metrics
from .checks.result import RunResult
from .checks.rules import Judge
from .checks.settings import RULES, RuleSettings
from .connectors.mapping import ASSET_TYPES
from .connectors.normalize import empty_frame
from .connectors.reader import Resolver, Selection, load_org_map, open_sources, read_asset
from .core.config import Config
from .sync.matching import PARENT_TYPE, match_asset

MAX_CHOICES = 20


class SliceReader:
    """Selective reads of both systems (org maps are small lookup tables, read whole once)."""

    def __init__(self, config: Config):
        self.config = config
        self.sources = open_sources(config)
        self._resolvers: dict[str, Resolver] = {}
        self._org_maps: dict[str, dict[str, str] | None] = {}

    def read(self, system: str, asset_type: str, selection: Selection | None) -> pd.DataFrame:
        source = self.sources[system]
        if system not in self._resolvers:
            resolver = Resolver(source)
            for kind in ASSET_TYPES:
                resolver.asset(source.mapping.assets[kind])
            from .connectors.source import raise_problems

            raise_problems(source.mapping, resolver.problems)
            self._resolvers[system] = resolver
            self._org_maps[system] = load_org_map(source.mapping, self.sources)
        if selection is not None and not selection.values:
            return empty_frame(self.config.timezone)
        return read_asset(
            source,
            self._resolvers[system],
            asset_type,
            self._org_maps[system],
            self.config.timezone,
            selection,
        ).records

    @property
    def rows_fetched(self) -> int:
        return sum(source.rows_fetched for source in self.sources.values())

    def close(self) -> None:
        for source in self.sources.values():
            source.dispose()


def _union(*frames: pd.DataFrame) -> pd.DataFrame:
    """Records read by several lookups, each once (a record is its table and raw row)."""
    filled = [f for f in frames if len(f)]
    if not filled:
        return frames[0]
    combined = pd.concat(filled, ignore_index=True)
    return combined[~combined.duplicated()].reset_index(drop=True)


@dataclass
class AssetCheck:
    """Everything `gridrecon check asset` shows about one asset."""

    query: str
    asset_type: str | None = None
    pms_id: str | None = None
    pms: pd.DataFrame = field(default_factory=pd.DataFrame)
    marketing: pd.DataFrame = field(default_factory=pd.DataFrame)
    parents: list[dict] = field(default_factory=list)  # the chain up, both systems
    deadline: dt.date | None = None
    working_days_elapsed: int | None = None
    as_of: dt.date | None = None
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)
    verdicts: dict[str, list[str]] = field(default_factory=dict)  # rule -> details ([] = ok)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    choices: list[dict] = field(default_factory=list)  # several assets matched: pick one
    rows_fetched: int = 0


def _find(reader: SliceReader, query: str, types: list[str]) -> list[tuple[str, str, pd.DataFrame]]:
    hits = []
    for asset_type in types:
        by_id = Selection("source_id", (query,))
        for system in ("pms", "marketing"):
            hits.append((system, asset_type, reader.read(system, asset_type, by_id)))
        hits.append(
            (
                "marketing",
                asset_type,
                reader.read("marketing", asset_type, Selection("pms_id", (query,))),
            )
        )
    if any(len(frame) for _, _, frame in hits):
        return hits
    by_name = Selection("name", (query,))
    return [
        (system, asset_type, reader.read(system, asset_type, by_name))
        for asset_type in types
        for system in ("pms", "marketing")
    ]


def _assets(hits: list[tuple[str, str, pd.DataFrame]]) -> dict[tuple[str, str, str], dict]:
    """Distinct assets among the hits: (type, "pms", pms id) or (type, "marketing", its id)."""
    assets: dict[tuple[str, str, str], dict] = {}
    for system, asset_type, frame in hits:
        for record in frame.to_dict(orient="records"):
            pms_id = record["pms_id"]
            if isinstance(pms_id, str):
                key = (asset_type, "pms", pms_id)
            else:
                key = (asset_type, "marketing", record["source_id"])
            assets.setdefault(
                key,
                {
                    "asset_type": asset_type,
                    "pms_id": key[2] if key[1] == "pms" else None,
                    "marketing_id": None,
                    "name": record["name"],
                    "org_code": record["org_code"],
                },
            )
            if system == "marketing":
                assets[key]["marketing_id"] = record["source_id"]
    return assets


def check_asset(
    config: Config, query: str, asset_type: str | None = None, as_of: dt.date | None = None
) -> AssetCheck:
    from . import api

    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    as_of = as_of or api.today(config)
    check = AssetCheck(query=query.strip(), as_of=as_of)
    reader = SliceReader(config)
    try:
        types = [asset_type] if asset_type else list(ASSET_TYPES)
        assets = _assets(_find(reader, check.query, types))
        if len(assets) != 1:
            check.choices = list(assets.values())[:MAX_CHOICES]
            check.rows_fetched = reader.rows_fetched
            return check
        (kind, side, key), found = next(iter(assets.items()))
        check.asset_type = kind
        check.pms_id = found["pms_id"]
        pms, marketing = _gather(reader, kind, side, key)
        check.pms = pms[kind]
        check.marketing = marketing[kind]
        check.parents = _chain(pms, marketing, kind)
        _judge(check, pms, marketing, settings, calendar, config)
        check.rows_fetched = reader.rows_fetched
    finally:
        reader.close()
    check.history = _history(config, check)
    return check


def _gather(reader: SliceReader, kind: str, side: str, key: str):
    """The asset in both systems, what links to it, and its parent chain, all by key."""
    pms: dict[str, pd.DataFrame] = {}
    marketing: dict[str, pd.DataFrame] = {}
    if side == "pms":
        marketing[kind] = reader.read("marketing", kind, Selection("pms_id", (key,)))
    else:
        marketing[kind] = reader.read("marketing", kind, Selection("source_id", (key,)))
    stored = tuple(
        sorted(set(marketing[kind]["pms_id"].dropna()) | ({key} if side == "pms" else set()))
    )
    pms[kind] = reader.read("pms", kind, Selection("source_id", stored))
    # marketing records carrying the same PMS id (DUPLICATE_LINK needs all of them)
    marketing[kind] = _union(
        marketing[kind], reader.read("marketing", kind, Selection("pms_id", stored))
    )
    child = kind
    while child in PARENT_TYPE:
        parent = PARENT_TYPE[child]
        pms_ids = tuple(sorted(set(pms[child]["parent_source_id"].dropna())))
        mkt_ids = tuple(sorted(set(marketing[child]["parent_source_id"].dropna())))
        marketing[parent] = reader.read("marketing", parent, Selection("source_id", mkt_ids))
        linked = tuple(sorted(set(marketing[parent]["pms_id"].dropna()) | set(pms_ids)))
        pms[parent] = reader.read("pms", parent, Selection("source_id", linked))
        child = parent
    return pms, marketing


def _chain(pms: dict, marketing: dict, kind: str) -> list[dict]:
    chain = []
    child = kind
    while child in PARENT_TYPE:
        parent = PARENT_TYPE[child]
        for system, frames in (("pms", pms), ("marketing", marketing)):
            ids = set(frames[child]["parent_source_id"].dropna())
            for record in frames[parent][frames[parent]["source_id"].isin(ids)].to_dict("records"):
                chain.append(
                    {
                        "system": system,
                        "asset_type": parent,
                        "source_id": record["source_id"],
                        "pms_id": record["pms_id"],
                        "name": record["name"],
                    }
                )
            for missing in sorted(ids - set(frames[parent]["source_id"])):
                chain.append(
                    {
                        "system": system,
                        "asset_type": parent,
                        "source_id": missing,
                        "pms_id": None,
                        "name": None,
                    }
                )
        child = parent
    return chain


def _judge(check: AssetCheck, pms, marketing, settings, calendar, config) -> None:
    mappings = {system: reader_mapping for system, reader_mapping in _mappings(config).items()}
    kind = check.asset_type
    parent = PARENT_TYPE.get(kind)
    match = match_asset(kind, pms[kind], marketing[kind], pms.get(parent), marketing.get(parent))
    quiet = RuleSettings(**{**settings.__dict__, "unlinked_candidates": 0})
    judgement = Judge(mappings, calendar, quiet, check.as_of).judge({kind: match})
    found = judgement.findings
    ours = set(marketing[kind]["source_id"].dropna())
    mine = (found["pms_id"] == check.pms_id) | found["marketing_id"].isin(ours)
    check.findings = found[mine].reset_index(drop=True)
    check.verdicts = {
        rule: check.findings.loc[check.findings["rule_id"] == rule, "detail"].tolist()
        for rule in RULES
        if settings.enabled(rule)
    }
    record = pms[kind][pms[kind]["source_id"] == check.pms_id]
    if len(record) and pd.notna(record["commissioned_on"].iloc[0]):
        commissioned = record["commissioned_on"].iloc[0].date()
        try:
            n = settings.rules["ARCHIVE_OVERDUE"].deadline_working_days
            check.deadline = calendar.deadline(commissioned, n)
            check.working_days_elapsed = calendar.working_days_between(commissioned, check.as_of)
        except Exception:  # noqa: BLE001 - a future or unknown-year date: shown without deadline
            check.deadline = None


def _mappings(config: Config):
    from .connectors.mapping import load_mapping

    return {
        system: load_mapping(config.source(system).mapping, system)
        for system in ("pms", "marketing")
    }


def _history(config: Config, check: AssetCheck) -> pd.DataFrame:
    """What the state store remembers about this asset's findings (nothing if there is no store)."""
    from .sync import store as tables
    from .sync.store import StateStore

    url = config.state_url
    if (
        url.get_backend_name() == "sqlite"
        and url.database
        and not pd.io.common.file_exists(url.database)
    ):
        return pd.DataFrame()
    store = StateStore(url)
    try:
        store.ensure_schema()
        with store.reading() as connection:
            frames = []
            if check.pms_id:
                frames.append(tables.query_findings(connection, pms_id=check.pms_id))
            for marketing_id in check.marketing.get("source_id", pd.Series(dtype="str")).dropna():
                frames.append(tables.query_findings(connection, marketing_id=marketing_id))
            frames = [f for f in frames if len(f)]
            if not frames:
                return pd.DataFrame()
            found = pd.concat(frames).drop_duplicates("finding_id")
            return found[found["asset_type"] == check.asset_type].reset_index(drop=True)
    finally:
        store.dispose()


def diff(
    config: Config, asset_type: str, org: str | None = None, as_of: dt.date | None = None
) -> RunResult:
    """Reconcile one asset type (and org) now, filtered in the source queries; nothing stored."""
    from . import api

    settings = RuleSettings.parse(config.rules, config.path)
    calendar = WorkingCalendar.load(config.calendar_overrides)
    as_of = as_of or api.today(config)
    started_at = dt.datetime.now(config.timezone)
    reader = SliceReader(config)
    try:
        selection = Selection("org_code", (org,)) if org else None
        pms = reader.read("pms", asset_type, selection)
        marketing = reader.read("marketing", asset_type, selection)
        if org:
            # a record whose org differs between the systems is still found through its link
            missing_mkt = tuple(
                sorted(set(pms["source_id"].dropna()) - set(marketing["pms_id"].dropna()))
            )
            marketing = _union(
                marketing, reader.read("marketing", asset_type, Selection("pms_id", missing_mkt))
            )
            missing_pms = tuple(
                sorted(set(marketing["pms_id"].dropna()) - set(pms["source_id"].dropna()))
            )
            pms = _union(pms, reader.read("pms", asset_type, Selection("source_id", missing_pms)))
        parent = PARENT_TYPE.get(asset_type)
        parents = {}
        if parent:
            for system, frame in (("pms", pms), ("marketing", marketing)):
                ids = tuple(sorted(set(frame["parent_source_id"].dropna())))
                parents[system] = reader.read(system, parent, Selection("source_id", ids))
        rows = {"pms": {asset_type: len(pms)}, "marketing": {asset_type: len(marketing)}}
        fetched = reader.rows_fetched
    finally:
        reader.close()
    match = match_asset(asset_type, pms, marketing, parents.get("pms"), parents.get("marketing"))
    mappings = _mappings(config)
    judgement = Judge(mappings, calendar, settings, as_of).judge({asset_type: match})
    findings = judgement.findings
    if org:
        findings = findings[findings["org_code"].fillna("").str.startswith(org)].reset_index(
            drop=True
        )
    findings["first_seen"] = findings["last_seen"] = started_at.isoformat(timespec="seconds")
    metrics = compute_metrics(
        {asset_type: match}, findings, judgement.deadlines, as_of, settings.metrics_period
    )
    from .checks.result import SourceSummary

    return RunResult(
        run_id=f"diff-{started_at:%Y%m%d-%H%M%S}",
        as_of=as_of,
        started_at=started_at,
        finished_at=dt.datetime.now(config.timezone),
        config_path=str(config.path),
        config_fingerprint=api.config_fingerprint(config, settings, mappings),
        settings=settings.as_dict(),
        sources={
            system: SourceSummary(system, "", mappings[system].name, rows[system], {}, {}, 0.0)
            for system in ("pms", "marketing")
        },
        findings=findings,
        metrics=metrics,
        notes=[f"{fetched:,} rows fetched"],
    )
