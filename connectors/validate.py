"""Check a config's mappings against the live databases (`gridrecon validate`).

Unlike a run, validation does not stop at the first problem: it reports every missing table or
column, every code value the code lists do not know, every unit the org map cannot translate and
the in-scope row count of every mapped table, so a user can fix a new mapping in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import sqlalchemy as sa

from ..core.config import Config
from ..core.errors import GridreconError
from .mapping import ASSET_TYPES, TableSpec
from .normalize import normalize_codes, normalize_ids
from .reader import Resolver, load_org_map, open_sources, select_rows
from .source import Problem, Source


@dataclass
class TableCount:
    asset_type: str
    table: str
    rows: int


@dataclass
class UnknownValue:
    """Values seen in a coded column that its code list (or the org map) does not contain."""

    asset_type: str
    table: str
    column: str
    field: str
    value: str | None
    rows: int


@dataclass
class SourceValidation:
    system: str
    url: str
    mapping: str
    mapping_path: str
    error: str | None = None  # the source could not be checked at all (unreachable, ...)
    problems: list[Problem] = field(default_factory=list)
    tables: list[TableCount] = field(default_factory=list)
    unknown_values: list[UnknownValue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems


@dataclass
class ValidationReport:
    config_path: str
    sources: list[SourceValidation]

    @property
    def ok(self) -> bool:
        return all(source.ok for source in self.sources)


def validate(config: Config) -> ValidationReport:
    sources = open_sources(config)
    try:
        return ValidationReport(
            config_path=str(config.path),
            sources=[_validate_source(source, sources) for source in sources.values()],
        )
    finally:
        for source in sources.values():
            source.dispose()


def _validate_source(source: Source, sources: dict[str, Source]) -> SourceValidation:
    result = SourceValidation(
        system=source.system,
        url=source.display_url,
        mapping=source.mapping.name,
        mapping_path=source.mapping.origin,
    )
    try:
        resolver = Resolver(source)
        for asset_type in ASSET_TYPES:
            resolver.asset(source.mapping.assets[asset_type])
        if source.mapping.org_tree is not None:  # a run reads it for the reports
            resolver.org_tree(source.mapping.org_tree)
        result.problems = resolver.problems
        org_map = _org_map_or_problem(source, sources, result)
        broken = {p.key.split(".")[0] for p in resolver.problems}
        for asset_type in ASSET_TYPES:
            if asset_type in broken:
                continue
            for spec in source.mapping.assets[asset_type].tables:
                _inspect_table(source, resolver, asset_type, spec, org_map, result)
    except GridreconError as exc:
        result.error = exc.message
    return result


def _org_map_or_problem(
    source: Source, sources: dict[str, Source], result: SourceValidation
) -> dict[str, str] | None:
    try:
        return load_org_map(source.mapping, sources)
    except GridreconError as exc:
        result.problems.append(Problem("org_map", exc.message))
        return None


def _inspect_table(
    source: Source,
    resolver: Resolver,
    asset_type: str,
    spec: TableSpec,
    org_map: dict[str, str] | None,
    result: SourceValidation,
) -> None:
    resolved = resolver.tables[spec.table.casefold()]
    counted, _ = select_rows(source, resolved, [(spec.fields[0].column, "k")], spec.where)
    count_statement = sa.select(sa.func.count()).select_from(counted.subquery())
    with source.connect() as connection:
        result.tables.append(
            TableCount(
                asset_type, spec.table, int(connection.execute(count_statement).scalar_one())
            )
        )
        for field_spec in spec.fields:
            known: set[str] | None = None
            if field_spec.codes is not None:
                known = set(source.mapping.codes[field_spec.codes])
            elif field_spec.org_map and org_map is not None:
                known = set(org_map)
            if known is None:
                continue
            values, _ = select_rows(source, resolved, [(field_spec.column, "v")], spec.where)
            grouped = values.subquery()
            statement = sa.select(grouped.c.v, sa.func.count()).group_by(grouped.c.v)
            seen = pd.DataFrame(connection.execute(statement).all(), columns=["v", "n"])
            seen["key"] = (normalize_ids if field_spec.org_map else normalize_codes)(seen["v"])
            for key, rows in zip(seen["key"], seen["n"], strict=True):
                if pd.isna(key) or key in known:
                    continue
                result.unknown_values.append(
                    UnknownValue(
                        asset_type, spec.table, field_spec.column, field_spec.name, key, int(rows)
                    )
                )
