"""Read one system's three asset types into canonical frames (SPEC §2).

The flow per asset type: resolve every mapped name against the live catalogue, stream each table
in chunks (filters applied in SQL), normalise each chunk, then resolve parents through relation
tables. Only SELECTs are issued, on a session the database itself holds read-only.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import sqlalchemy as sa

from ..core.errors import GridreconError, MappingError, SourceError
from .dialects import failure_kind
from .fetch import fetcher
from .mapping import ASSET_TYPES, AssetMapping, Hop, Mapping, OrgMapSpec, OrgTreeSpec, TableSpec
from .normalize import (
    NULL_HASH,
    clean_text,
    empty_frame,
    id_hashes,
    normalize_chunk,
    normalize_ids,
)
from .source import Problem, ResolvedTable, Source, raise_problems

if TYPE_CHECKING:
    from ..sync.spill import SpilledRecords, SpillWriter

log = logging.getLogger("gridrecon")
# Up to this many keys are asked for by value (`IN`, the key's index); more, and the statement
# scans instead.
FEW_KEYS = 2000


@dataclass
class AssetRead:
    """The canonical records of one asset type from one system, and what was read."""

    system: str
    asset_type: str
    records: pd.DataFrame  # none where they are spilled
    rows_by_table: dict[str, int]
    seconds: float
    spilled: SpilledRecords | None = None  # on disk by partition (sync/spill.py)

    @property
    def rows(self) -> int:
        return self.spilled.rows if self.spilled is not None else len(self.records)

    @property
    def newest_update(self) -> datetime | None:
        if self.spilled is not None:
            return self.spilled.newest_update
        newest = self.records["updated_at"].max()
        return None if pd.isna(newest) else newest.to_pydatetime()


@dataclass
class SourceRead:
    """Everything read from one system in one go."""

    system: str
    url: str  # masked
    mapping: str
    assets: dict[str, AssetRead] = field(default_factory=dict)

    def records(self, asset_type: str) -> pd.DataFrame:
        return self.assets[asset_type].records


class Resolver:
    """Checks every name a mapping uses against the live database, collecting all problems."""

    def __init__(self, source: Source):
        self.source = source
        self.problems: list[Problem] = []
        self.tables: dict[str, ResolvedTable] = {}

    def table(self, name: str, key: str) -> ResolvedTable | None:
        folded = name.casefold()
        if folded not in self.tables:
            actual = self.source.find_table(name, key, self.problems)
            if actual is None:
                return None
            self.tables[folded] = ResolvedTable(actual)
        return self.tables[folded]

    def column(self, table: ResolvedTable | None, name: str, key: str) -> None:
        if table is None or name.casefold() in table.columns:
            return
        actual = self.source.find_column(table.name, name, key, self.problems)
        if actual is not None:
            table.columns[name.casefold()] = actual

    def asset(self, asset: AssetMapping) -> None:
        prefix = asset.asset_type
        for index, spec in enumerate(asset.tables):
            table = self.table(spec.table, f"{prefix}.tables[{index}].table")
            for field_spec in spec.fields:
                self.column(table, field_spec.column, f"{prefix}.columns.{field_spec.name}")
            if spec.parent_column:
                self.column(table, spec.parent_column, f"{prefix}.parent.column")
            for column, _values in spec.where:
                self.column(table, column, f"{prefix}.tables[{index}].where.{column}")
        for index, hop in enumerate(asset.hops):
            key = f"{prefix}.parent.via[{index}]"
            table = self.table(hop.table, f"{key}.table")
            self.column(table, hop.from_column, f"{key}.from")
            self.column(table, hop.to_column, f"{key}.to")
            for column, _values in hop.where:
                self.column(table, column, f"{key}.where.{column}")

    def org_tree(self, spec: OrgTreeSpec) -> None:
        table = self.table(spec.table, "org_tree.table")
        for key, column in (("code", spec.code), ("name", spec.name), ("parent", spec.parent)):
            if column:
                self.column(table, column, f"org_tree.{key}")
        for column, _values in spec.where:
            self.column(table, column, f"org_tree.where.{column}")

    def org_map(self, spec: OrgMapSpec) -> None:
        table = self.table(spec.table, "org_map.table")
        self.column(table, spec.key, "org_map.key")
        self.column(table, spec.value, "org_map.value")
        for column, _values in spec.where:
            self.column(table, column, f"org_map.where.{column}")


def resolve(source: Source, asset_types: Iterable[str] = ASSET_TYPES) -> Resolver:
    """Resolve the source's mapping (not its org map) and fail on the first problem."""
    resolver = Resolver(source)
    for asset_type in asset_types:
        resolver.asset(source.mapping.assets[asset_type])
    raise_problems(source.mapping, resolver.problems)
    return resolver


def select_rows(
    source: Source,
    resolved: ResolvedTable,
    labelled: list[tuple[str, str]],
    where: Any,
    also: list[str] = (),
) -> tuple[sa.Select, sa.TableClause]:
    """SELECT mapped columns AS labels FROM table WHERE column IN (values) AND ...

    Returns the table construct too, for further conditions on the same FROM (`also` names the
    extra columns those conditions use).
    """
    named = [c for c, _ in labelled] + [c for c, _ in where] + list(also)
    columns = list(dict.fromkeys(resolved.column(c) for c in named))
    table = source.table(resolved.name, columns)
    statement = sa.select(*(table.c[resolved.column(c)].label(label) for c, label in labelled))
    for column, values in where:
        statement = statement.where(
            source.matching(table, resolved.name, resolved.column(column), list(values))
        )
    return statement, table


def read_statement(
    source: Source,
    table: str,
    statement: sa.Select,
    bulk: bool = False,
    convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
    restart: Callable[[], None] | None = None,
    streamed: bool = False,
) -> list[pd.DataFrame]:
    """Every chunk one statement returns (each passed through `convert` as it arrives).

    restart: called before each attempt, where `convert` hands the chunks on rather than
    returning them (a spilled read). streamed: the bulk fast path in chunks (fetch.fetcher).

    A connection that drops under the statement (a server restart, a failover, a killed session)
    is retried from the start, `retries` times with a doubling delay; a statement the server
    cancels for running past `statement_timeout` is not. Either way a failure is a SourceError
    naming the system and the table, with the URL masked.
    """
    config = source.config
    for attempt in range(config.retries + 1):
        chunks: list[pd.DataFrame] = []
        if restart is not None:
            restart()
        try:
            for raw in fetcher(source, bulk, streamed)(source, statement):
                chunks.append(convert(raw) if convert is not None else raw)
            return chunks
        except SourceError as exc:
            driver_error = getattr(exc, "driver_error", None)
            if driver_error is None and attempt == 0:
                raise  # unreachable at the start: nothing to retry
            kind = failure_kind(driver_error) if driver_error is not None else "dropped"
            message = str(exc)
        except GridreconError:  # a mapping error, a spill that cannot be written
            raise
        except Exception as exc:  # a fast path's own driver error
            kind = failure_kind(exc)
            message = (
                f"reading the {source.system} database {source.display_url} failed: "
                f"{source.scrub(exc)}"
            )
        where = f"{source.system}: table {table}"
        if kind == "timeout":
            raise SourceError(
                f"{where}: the query ran longer than [{source.system}] statement_timeout = "
                f"{config.statement_timeout} s and the server cancelled it; raise the timeout, "
                "or find what blocks the table (locks, a missing index on a view)"
            ) from None
        if kind != "dropped":
            raise SourceError(f"{where}: {message}") from None
        if attempt == config.retries:
            raise SourceError(
                f"{where}: the connection dropped {attempt + 1} times while reading it "
                f"({message}); gave up after [{source.system}] retries = {config.retries}"
            ) from None
        delay = config.retry_delay * 2**attempt
        log.warning(
            "%s: connection dropped while reading %s (%s); retry %d of %d in %.1f s",
            source.system,
            table,
            message,
            attempt + 1,
            config.retries,
            delay,
        )
        source.dispose()  # the pool's connections may all be dead
        time.sleep(delay)
    raise AssertionError("unreachable")


def _table_statement(
    source: Source,
    resolver: Resolver,
    spec: TableSpec,
    selection: Selection | None = None,
    org_map: dict[str, str] | None = None,
) -> sa.Select | None:
    """The SELECT of one mapped table; None when a selection cannot match this table."""
    resolved = resolver.tables[spec.table.casefold()]
    labelled = [(f.column, f.name) for f in spec.fields]
    if spec.parent_column:
        labelled.append((spec.parent_column, "_parent_start"))
    statement, table = select_rows(source, resolved, labelled, spec.where)
    if selection is None:
        return statement
    condition = _selected(source, resolved, table, spec, selection, org_map)
    return None if condition is None else statement.where(condition)


def follow_hop(
    source: Source, resolver: Resolver, hop: Hop, starts: pd.Series, keys: list[str] | None = None
) -> pd.Series:
    """Where one hop of a parent path leads from each of `starts` (null where nowhere); the
    relation is read whole, or only for `keys` if given.

    A key related to several parents takes the smallest, so a read is deterministic.
    """
    return follow_pairs(read_relation(source, resolver, hop, keys), starts)


def follow_pairs(pairs: pd.DataFrame, starts: pd.Series) -> pd.Series:
    """For each of `starts`, the smallest value the key -> value `pairs` give it (null: none)."""
    # One numbering of the relation's keys and the starts, then array lookups: sorting and
    # indexing a province's relation by its text keys costs several times more, and at ten
    # times a province grows faster than the rows do.
    numbers, distinct = pd.factorize(pd.concat([pairs["key"], starts], ignore_index=True))
    key_numbers, start_numbers = numbers[: len(pairs)], numbers[len(pairs) :]
    chosen = np.append(_chosen_pairs(key_numbers, pairs["value"], len(distinct)), -1)
    rows = chosen[start_numbers]  # a null start is number -1: the last entry, -1
    found = pairs["value"].array.take(rows, allow_fill=True)
    return pd.Series(found, index=starts.index, dtype="str")


def _chosen_pairs(key_numbers: np.ndarray, values: pd.Series, distinct: int) -> np.ndarray:
    """Per key number: the pair a key leads to (of several, the one of the smallest value)."""
    chosen = np.full(distinct, -1)
    single = np.bincount(key_numbers, minlength=distinct)[key_numbers] == 1
    chosen[key_numbers[single]] = np.flatnonzero(single)
    if not single.all():  # keys with several parents: the smallest parent
        several = pd.DataFrame(
            {"number": key_numbers[~single], "value": values.to_numpy()[~single]}
        )
        several["row"] = np.flatnonzero(~single)
        first = several.sort_values(["number", "value"]).drop_duplicates("number")
        chosen[first["number"].to_numpy()] = first["row"].to_numpy()
    return chosen


class Relation:
    """One hop's key -> value pairs prepared for many lookups: where follow_pairs numbers the
    relation's keys with every call, a read spilled chunk by chunk (sync/spill.py) looks each
    chunk's starts up in the relation's distinct keys, sorted by their 64-bit hashes once. Same
    answers as follow_pairs, in a sixth of the memory of a hash table of the keys' text."""

    def __init__(self, pairs: pd.DataFrame):
        keys, values = pairs["key"].array, pairs["value"].array
        hashes = id_hashes(pairs["key"])
        # equal hashes in any order (a sort twice as fast as a stable one): which pair of a
        # repeated key is kept is decided by value below
        order = np.argsort(hashes)
        hashes = hashes[order]
        first = np.concatenate(([True], hashes[1:] != hashes[:-1]))  # of each run of one hash
        if not first.all():  # keys with several parents: the smallest parent first
            runs = np.cumsum(first) - 1
            repeated = np.flatnonzero(np.bincount(runs)[runs] > 1)
            rows = order[repeated]
            several = pd.DataFrame(
                {"run": runs[repeated], "key": keys.take(rows), "value": values.take(rows)}
            )
            several["row"] = repeated
            if several.groupby("run")["key"].nunique().gt(1).any():
                # two distinct keys of one hash (one chance in millions): by text instead
                self._by_text = (pairs["key"], pairs["value"])
                return
            smallest = several.sort_values(["run", "value"]).drop_duplicates("run")["row"]
            first[repeated] = False
            first[smallest.to_numpy()] = True
        self._by_text = None
        self._hashes = hashes[first]
        chosen = order[first]  # the text taken once, of the pairs kept
        self._keys = keys.take(chosen)
        self._values = values.take(chosen)

    def follow(self, starts: pd.Series) -> pd.Series:
        if self._by_text is not None:
            return follow_pairs(pd.DataFrame(dict(zip(("key", "value"), self._by_text))), starts)
        if not len(self._hashes):
            rows = np.full(len(starts), -1)
        else:
            wanted = id_hashes(starts)
            # looked up in sorted order: each search starts where the last one ended, not at
            # the top of a table larger than the processor's caches
            order = np.argsort(wanted)
            at = np.empty(len(wanted), dtype=np.intp)
            at[order] = np.searchsorted(self._hashes, wanted[order])
            at = at.clip(max=len(self._hashes) - 1)
            # the one key of that hash, if it is the start's text (a null start has none)
            same = (self._hashes[at] == wanted) & (wanted != NULL_HASH)
            same &= np.asarray(self._keys.take(at) == starts.array, dtype=bool)
            rows = np.where(same, at, -1)
        found = self._values.take(rows, allow_fill=True)
        return pd.Series(found, index=starts.index, dtype="str")


def read_relation(
    source: Source,
    resolver: Resolver,
    hop: Hop,
    keys: list[str] | None = None,
    streamed: bool = False,
) -> pd.DataFrame:
    """The key -> value pairs of one hop of a parent path, both present (only for `keys`, if
    given; `streamed`: see fetch.fetcher)."""
    resolved = resolver.tables[hop.table.casefold()]
    where = hop.where + (((hop.from_column, tuple(keys)),) if keys is not None else ())
    statement, _ = select_rows(
        source, resolved, [(hop.from_column, "key"), (hop.to_column, "value")], where
    )
    parts = read_statement(
        source,
        hop.table,
        statement,
        bulk=keys is None,
        convert=lambda c: pd.DataFrame(
            {"key": normalize_ids(c["key"]), "value": normalize_ids(c["value"])}
        ),
        streamed=streamed,
    )
    pairs = pd.concat(parts) if parts else pd.DataFrame({"key": [], "value": []}, dtype="str")
    return pairs.dropna().reset_index(drop=True)


@dataclass(frozen=True)
class Selection:
    """Read only the records whose canonical `field` is one of `values` (a slice, not a pull).

    field: source_id or pms_id (exact keys), name (values are fragments: contains), or
    org_code (values are org-code prefixes: 37401 selects 37401 and the counties below it).
    """

    field: str
    values: tuple[str, ...]


def _selected(
    source: Source,
    resolved: ResolvedTable,
    table: sa.TableClause,
    spec: TableSpec,
    selection: Selection,
    org_map: dict[str, str] | None,
) -> Any:
    """The WHERE condition of a selection on one table, or None if the table cannot match."""
    field_spec = spec.field(selection.field)
    if selection.field == "pms_id" and source.system == "pms":
        field_spec = spec.field("source_id")
    if field_spec is None:
        return None
    name = resolved.column(field_spec.column)
    if selection.field == "name":
        return sa.or_(*(table.c[name].contains(v, autoescape=True) for v in selection.values))
    if selection.field == "org_code":
        if field_spec.org_map:
            units = [u for u, org in (org_map or {}).items() if org.startswith(selection.values)]
            return source.matching(table, resolved.name, name, units)
        return sa.or_(*(table.c[name].startswith(v, autoescape=True) for v in selection.values))
    return source.matching(table, resolved.name, name, list(selection.values))


def read_asset(
    source: Source,
    resolver: Resolver,
    asset_type: str,
    org_map: dict[str, str] | None,
    zone: ZoneInfo,
    selection: Selection | None = None,
    progress: Progress | None = None,
    spill: SpillWriter | None = None,
) -> AssetRead:
    """spill: where a full read too large to hold goes, chunk by chunk (sync/spill.py)."""
    started = time.monotonic()
    mapping: Mapping = source.mapping
    asset = mapping.assets[asset_type]
    if spill is not None:
        return _spill_asset(source, resolver, asset, org_map, zone, spill, progress)
    chunks: list[pd.DataFrame] = []
    rows_by_table: dict[str, int] = {}
    read_so_far = 0

    def normalized(raw: pd.DataFrame, spec: TableSpec) -> pd.DataFrame:
        nonlocal read_so_far
        read_so_far += len(raw)
        if progress is not None:
            progress(source.system, asset_type, read_so_far)
        return normalize_chunk(source.system, raw, spec, asset, mapping.codes, org_map, zone)

    for spec in asset.tables:
        statement = _table_statement(source, resolver, spec, selection, org_map)
        if statement is None:
            continue
        table_chunks = read_statement(
            source,
            spec.table,
            statement,
            bulk=selection is None,
            convert=lambda raw, spec=spec: normalized(raw, spec),
        )
        chunks.extend(table_chunks)
        rows_by_table[spec.table] = sum(len(chunk) for chunk in table_chunks)
    records = pd.concat(chunks, ignore_index=True) if chunks else empty_frame(zone)
    for hop in asset.hops:
        # a slice follows only its own records' relations; a pull reads the whole relation
        keys = None
        if selection is not None:
            keys = sorted(records["parent_source_id"].dropna().unique())
        records["parent_source_id"] = follow_hop(
            source, resolver, hop, records["parent_source_id"], keys
        )
    return AssetRead(
        system=source.system,
        asset_type=asset_type,
        records=records,
        rows_by_table=rows_by_table,
        seconds=time.monotonic() - started,
    )


# Rows normalised at a time in a read spilled to disk: fewer, larger chunks than a streamed read
# delivers (chunk_size) spend less on what each chunk costs whatever its size.
SPILL_CHUNK_ROWS = 200_000


def _spill_asset(
    source: Source,
    resolver: Resolver,
    asset: AssetMapping,
    org_map: dict[str, str] | None,
    zone: ZoneInfo,
    spill: SpillWriter,
    progress: Progress | None,
) -> AssetRead:
    """read_asset of a full read whose records go to disk as they arrive: the relations of the
    parent path are read first, so each chunk's parents are resolved before it is written."""
    started = time.monotonic()
    relations = [
        Relation(read_relation(source, resolver, hop, streamed=True)) for hop in asset.hops
    ]
    read_so_far = 0
    waiting: list[pd.DataFrame] = []  # raw chunks gathered into one of SPILL_CHUNK_ROWS

    def spilled(spec: TableSpec) -> None:
        nonlocal read_so_far
        raw = pd.concat(waiting, ignore_index=True) if len(waiting) > 1 else waiting[0]
        waiting.clear()
        read_so_far += len(raw)
        if progress is not None:
            progress(source.system, asset.asset_type, read_so_far)
        chunk = normalize_chunk(
            source.system, raw, spec, asset, source.mapping.codes, org_map, zone
        )
        for relation in relations:
            chunk["parent_source_id"] = relation.follow(chunk["parent_source_id"])
        spill.add(chunk)

    def arrived(raw: pd.DataFrame, spec: TableSpec) -> None:
        waiting.append(raw)
        if sum(len(w) for w in waiting) >= SPILL_CHUNK_ROWS:
            spilled(spec)

    def restart(spec: TableSpec) -> None:
        waiting.clear()
        spill.begin(spec.table)

    for spec in asset.tables:
        statement = _table_statement(source, resolver, spec)
        read_statement(
            source,
            spec.table,
            statement,
            bulk=True,
            convert=lambda raw, spec=spec: arrived(raw, spec),
            restart=lambda spec=spec: restart(spec),
            streamed=True,
        )
        if waiting:
            spilled(spec)
    written = spill.close(empty_frame(zone))
    return AssetRead(
        system=source.system,
        asset_type=asset.asset_type,
        records=written.empty,
        rows_by_table=written.rows_by_table,
        seconds=time.monotonic() - started,
        spilled=written,
    )


@dataclass
class AssetChanges:
    """What one asset type's tables changed since a time: the rows, and every id touched."""

    records: pd.DataFrame  # in-scope rows changed since, normalised, parents resolved
    touched: dict[str, pd.Index | None]  # table -> ids changed (in scope or not); None: read whole
    seconds: float
    since: datetime


def _update_column(source: Source, resolved: ResolvedTable, spec: TableSpec) -> str | None:
    """The table's update-time column, if it is a real timestamp the database can compare."""
    updated = spec.field("updated_at")
    if updated is None or updated.format:
        return None
    column = resolved.column(updated.column)
    return column if isinstance(source.column_type(resolved.name, column), sa.DateTime) else None


def read_changes(
    source: Source,
    resolver: Resolver,
    asset_type: str,
    org_map: dict[str, str] | None,
    zone: ZoneInfo,
    since: datetime,
) -> AssetChanges:
    """The rows of one asset type whose update time is at or after `since` (aware)."""
    started = time.monotonic()
    mapping: Mapping = source.mapping
    asset = mapping.assets[asset_type]
    chunks: list[pd.DataFrame] = []
    touched: dict[str, pd.Index | None] = {}
    for spec in asset.tables:
        resolved = resolver.tables[spec.table.casefold()]
        statement = _table_statement(source, resolver, spec)
        column = _update_column(source, resolved, spec)
        if column is not None:
            column_type = source.column_type(resolved.name, column)
            bound = since if column_type.timezone else since.astimezone(zone).replace(tzinfo=None)
            table = statement.get_final_froms()[0]
            changed = table.c[column] >= sa.literal(bound, column_type)
            id_column = resolved.column(spec.field("source_id").column)
            keys_statement = sa.select(table.c[id_column].label("source_id")).where(changed)
            # A night's changes are few: the generic path, without the fast paths' fixed costs
            # per statement (connectorx's count query, the watchdog process).
            ids = read_statement(source, spec.table, keys_statement)
            raw_ids = pd.concat([c["source_id"] for c in ids]).dropna() if ids else pd.Series()
            touched[spec.table] = pd.Index(normalize_ids(raw_ids).dropna().unique())
            if raw_ids.empty:
                continue  # nothing changed in this table: its rows are not asked for again
            if raw_ids.nunique() <= FEW_KEYS:
                # The rows just found are read by their ids (the table's key index), not by a
                # second scan for the update time; what changes between the two statements
                # is after the watermark and is read the next night.
                changed = source.matching(
                    table, resolved.name, id_column, raw_ids.unique().tolist()
                )
            statement = statement.where(changed)
        else:
            touched[spec.table] = None  # no usable update time: the table is read whole
        chunks.extend(
            read_statement(
                source,
                spec.table,
                statement,
                bulk=column is None,  # a table read whole every night takes the fast path
                convert=lambda raw, spec=spec: normalize_chunk(
                    source.system, raw, spec, asset, mapping.codes, org_map, zone
                ),
            )
        )
    records = pd.concat(chunks, ignore_index=True) if chunks else empty_frame(zone)
    for hop in asset.hops if not records.empty else ():
        keys = sorted(records["parent_source_id"].dropna().unique())
        # a few changed rows follow their own relations; many read the relation whole
        records["parent_source_id"] = follow_hop(
            source,
            resolver,
            hop,
            records["parent_source_id"],
            keys if len(keys) <= FEW_KEYS else None,
        )
    return AssetChanges(records, touched, time.monotonic() - started, since)


def apply_changes(
    previous: pd.DataFrame, changed: pd.DataFrame, touched: dict[str, pd.Index | None]
) -> tuple[pd.DataFrame, pd.Series]:
    """The previous records with every touched row replaced by tonight's version.

    touched: per source table, the ids read as changed (in scope or not), or None where the
    table was read whole. Returns the merged records and which of them were read tonight.
    """
    drop = pd.Series(False, index=previous.index)
    for table, ids in touched.items():
        in_table = previous["source_table"] == table
        drop |= in_table if ids is None else in_table & previous["source_id"].isin(ids)
    if not drop.any() and changed.empty:  # a quiet night: no copy of a province's records
        return previous, pd.Series(False, index=previous.index)
    kept = previous[~drop]
    merged = pd.concat([kept, changed], ignore_index=True)
    fresh = pd.Series(False, index=merged.index)
    fresh.iloc[len(kept) :] = True
    return merged, fresh


def load_org_map(mapping: Mapping, sources: dict[str, Source]) -> dict[str, str] | None:
    """The mapping's org map as unit code -> common org code, or None if it has none."""
    spec = mapping.org_map
    if spec is None:
        return None
    if spec.csv is not None:
        return _org_map_from_csv(mapping, spec)
    source = sources[spec.database or mapping.system]
    resolver = Resolver(source)
    resolver.org_map(spec)
    raise_problems(mapping, resolver.problems)
    resolved = resolver.tables[spec.table.casefold()]
    statement, _ = select_rows(
        source, resolved, [(spec.key, "key"), (spec.value, "value")], spec.where
    )
    lookup: dict[str, str] = {}
    for chunk in read_statement(source, spec.table, statement):
        keys, values = normalize_ids(chunk["key"]), normalize_ids(chunk["value"])
        lookup.update(
            (k, v) for k, v in zip(keys, values, strict=True) if pd.notna(k) and pd.notna(v)
        )
    return lookup


ORG_TREE_COLUMNS = ["org_code", "org_name", "parent_code"]


def load_org_tree(source: Source) -> pd.DataFrame:
    """org_code, org_name, parent_code from the mapping's [org_tree] (empty without one)."""
    spec = source.mapping.org_tree
    if spec is None:
        return pd.DataFrame({c: pd.Series(dtype="str") for c in ORG_TREE_COLUMNS})
    resolver = Resolver(source)
    resolver.org_tree(spec)
    raise_problems(source.mapping, resolver.problems)
    resolved = resolver.tables[spec.table.casefold()]
    labelled = [(spec.code, "org_code"), (spec.name, "org_name")]
    if spec.parent:
        labelled.append((spec.parent, "parent_code"))
    parts = read_statement(
        source, spec.table, select_rows(source, resolved, labelled, spec.where)[0]
    )
    tree = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ORG_TREE_COLUMNS)
    tree["org_code"] = normalize_ids(tree["org_code"])
    tree["org_name"] = clean_text(tree["org_name"])
    tree["parent_code"] = normalize_ids(tree["parent_code"]) if "parent_code" in tree else None
    return tree[ORG_TREE_COLUMNS].dropna(subset=["org_code"]).drop_duplicates("org_code")


def _org_map_from_csv(mapping: Mapping, spec: OrgMapSpec) -> dict[str, str]:
    assert spec.csv is not None
    try:
        with spec.csv.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {spec.key, spec.value} - set(reader.fieldnames or [])
            if missing:
                raise MappingError(
                    f"{mapping.path}: org_map.csv {spec.csv} has no column "
                    f"{', '.join(sorted(missing))}; its header: {', '.join(reader.fieldnames or [])}"
                )
            rows = [(row[spec.key], row[spec.value]) for row in reader]
    except OSError as exc:
        raise MappingError(f"{mapping.path}: org_map.csv {spec.csv}: {exc.strerror}") from None
    keys = normalize_ids(pd.Series([k for k, _ in rows], dtype=object))
    values = normalize_ids(pd.Series([v for _, v in rows], dtype=object))
    return {k: v for k, v in zip(keys, values, strict=True) if pd.notna(k) and pd.notna(v)}


Progress = Callable[[str, str, int], None]  # (system, asset type, rows read so far)


def read_source(
    source: Source,
    sources: dict[str, Source],
    zone: ZoneInfo,
    asset_types: Iterable[str] = ASSET_TYPES,
    progress: Progress | None = None,
    spills: dict[str, SpillWriter] | None = None,
) -> SourceRead:
    """Read the given asset types of one system into canonical frames (those in `spills` to
    disk by partition, sync/spill.py)."""
    asset_types = list(asset_types)
    resolver = resolve(source, asset_types)
    org_map = load_org_map(source.mapping, sources)
    read = SourceRead(system=source.system, url=source.display_url, mapping=source.mapping.name)
    for asset_type in asset_types:
        read.assets[asset_type] = read_asset(
            source,
            resolver,
            asset_type,
            org_map,
            zone,
            progress=progress,
            spill=(spills or {}).get(asset_type),
        )
    return read


def estimated_rows(source: Source, asset_type: str) -> int:
    """About how many rows a full read of one asset type's tables returns: the catalogue's
    estimate where the database keeps one (no scan), else a count."""
    resolver = resolve(source, [asset_type])
    total = 0
    for spec in source.mapping.assets[asset_type].tables:
        resolved = resolver.tables[spec.table.casefold()]
        total += source.estimated_rows(resolved.name)
    return total


def read_system_changes(
    source: Source, sources: dict[str, Source], zone: ZoneInfo, since: datetime
) -> dict[str, AssetChanges]:
    """Per asset type, the rows of one system changed since `since` (see sync/incremental.py)."""
    resolver = resolve(source)
    org_map = load_org_map(source.mapping, sources)
    return {t: read_changes(source, resolver, t, org_map, zone, since) for t in ASSET_TYPES}


def apply_system_changes(
    source: Source, previous: dict[str, pd.DataFrame], changes: dict[str, AssetChanges]
) -> tuple[SourceRead, dict[str, pd.Series]]:
    """One system's records as `previous` with tonight's changes applied, and per asset type
    which of the records were read tonight."""
    read = SourceRead(system=source.system, url=source.display_url, mapping=source.mapping.name)
    fresh: dict[str, pd.Series] = {}
    for asset_type, found in changes.items():
        records, fresh[asset_type] = apply_changes(
            previous[asset_type], found.records, found.touched
        )
        read.assets[asset_type] = AssetRead(
            system=source.system,
            asset_type=asset_type,
            records=records,
            rows_by_table=records["source_table"].value_counts().to_dict(),
            seconds=found.seconds,
        )
    return read, fresh


@dataclass(frozen=True)
class SourceQuery:
    """One SELECT a full pull issues, as text the database's own client can run."""

    system: str
    dialect: str
    table: str
    sql: str


def source_queries(config: Any) -> list[SourceQuery]:
    """The SELECTs a full pull of both systems issues, with their values inlined.

    For measuring what the databases deliver on their own (the benchmark's read floor): the
    same statements, run by psql or the mariadb client, with no Python in between.
    """
    queries: list[SourceQuery] = []
    sources = open_sources(config)
    try:
        for system, source in sources.items():
            resolver = resolve(source)

            def add(table: str, statement: sa.Select, source: Source = source) -> None:
                dialect = source.engine.dialect
                sql = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
                queries.append(SourceQuery(source.system, dialect.name, table, str(sql)))

            for asset_type in ASSET_TYPES:
                asset = source.mapping.assets[asset_type]
                for spec in asset.tables:
                    add(spec.table, _table_statement(source, resolver, spec))
                for hop in asset.hops:
                    resolved = resolver.tables[hop.table.casefold()]
                    labelled = [(hop.from_column, "key"), (hop.to_column, "value")]
                    add(hop.table, select_rows(source, resolved, labelled, hop.where)[0])
            spec = source.mapping.org_map
            if spec is not None and spec.csv is None and (spec.database or system) == system:
                resolver.org_map(spec)
                resolved = resolver.tables[spec.table.casefold()]
                labelled = [(spec.key, "key"), (spec.value, "value")]
                add(spec.table, select_rows(source, resolved, labelled, spec.where)[0])
    finally:
        for source in sources.values():
            source.dispose()
    return queries


def open_sources(config: Any) -> dict[str, Source]:
    """Both configured sources with their mappings loaded (nothing is connected yet)."""
    from .mapping import load_mapping

    return {
        system: Source(config.source(system), load_mapping(config.source(system).mapping, system))
        for system in ("pms", "marketing")
    }


def read_all(config: Any, asset_types: Iterable[str] = ASSET_TYPES) -> dict[str, SourceRead]:
    """Read both systems. Raises SourceError / MappingError with a message a user can act on."""
    sources = open_sources(config)
    try:
        return {
            system: read_source(source, sources, config.timezone, asset_types)
            for system, source in sources.items()
        }
    finally:
        for source in sources.values():
            source.dispose()


__all__ = [
    "AssetRead",
    "SourceRead",
    "SourceQuery",
    "read_all",
    "read_source",
    "open_sources",
    "source_queries",
    "SourceError",
]
