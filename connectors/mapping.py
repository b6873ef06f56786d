"""Mapping files: how one system's schema becomes the canonical asset records (SPEC §2).

A mapping is a TOML file that names, per asset type, the table(s), the column of each canonical
field, the code lists, row filters, the parent path and the org map. Nothing about a schema lives
in code: the built-in mappings (`pms2`, `sg186`) are ordinary mapping files shipped in
connectors/mappings/. This module only parses and checks the file itself; checking it against a
live database happens in connectors.schema_check.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..core.errors import MappingError
from ..core.toml_section import Section, key_text, read_toml, shown

ASSET_TYPES = ("substation", "line", "transformer")
SYSTEMS = ("pms", "marketing")
CANONICAL_STATUSES = ("in_service", "not_commissioned", "retired", "other")

# Canonical fields a mapping assigns a column to (parent is described by its own path).
MAPPED_FIELDS = (
    "source_id",
    "pms_id",
    "name",
    "voltage_kv",
    "capacity_kva",
    "org_code",
    "status",
    "commissioned_on",
    "recorded_at",
    "updated_at",
)
REQUIRED_FIELDS = ("source_id", "name")
# A substation has no parent in the canonical model; lines and transformers do.
HAS_PARENT = {"substation": False, "line": True, "transformer": True}
MAX_HOPS = 2

_FIELD_OPTIONS = {"column", "codes", "org_map", "scale", "format", "encoding"}
_TABLE_KEYS = {"table", "where", "columns"}
_ASSET_KEYS = {"tables", "columns", "absent", "parent"}
_HOP_KEYS = {"table", "from", "to", "where"}


@dataclass(frozen=True)
class FieldSpec:
    """Where one canonical field comes from, and how its raw value is decoded."""

    name: str
    column: str
    codes: str | None = None  # name of a code list in [codes]
    org_map: bool = False  # translate through the mapping's org map
    scale: float | None = None  # multiply a number (e.g. MVA -> kVA: 1000)
    format: str | None = None  # strftime format for dates stored as text
    # The column is declared latin1 but holds bytes of this encoding (GBK in old SG186 installs):
    # the text the database hands over is turned back into those bytes and decoded properly.
    encoding: str | None = None


@dataclass(frozen=True)
class TableSpec:
    table: str
    where: tuple[tuple[str, tuple[Any, ...]], ...]  # column -> accepted values
    fields: tuple[FieldSpec, ...]
    parent_column: str | None  # the column the parent path starts from

    def field(self, name: str) -> FieldSpec | None:
        return next((spec for spec in self.fields if spec.name == name), None)

    def columns(self) -> list[str]:
        """Every column this table is read for, once each, in a stable order."""
        seen = [spec.column for spec in self.fields]
        if self.parent_column:
            seen.append(self.parent_column)
        return list(dict.fromkeys(seen))


@dataclass(frozen=True)
class Hop:
    """One step of a parent path through a relation table: rows where `from` = key give `to`."""

    table: str
    from_column: str
    to_column: str
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()


@dataclass(frozen=True)
class AssetMapping:
    asset_type: str
    tables: tuple[TableSpec, ...]
    hops: tuple[Hop, ...]  # empty: the parent column already holds the parent's source_id
    absent: frozenset[str]  # canonical fields this system does not have

    @property
    def has_parent(self) -> bool:
        return any(table.parent_column for table in self.tables)


@dataclass(frozen=True)
class OrgMapSpec:
    """Translates a system's own unit code into the common org code (marketing ORG_NO)."""

    table: str | None = None
    key: str | None = None
    value: str | None = None
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    database: str | None = None  # "pms" or "marketing"; default: the mapping's own system
    csv: Path | None = None  # alternatively a CSV file with columns key,value (or as named)


@dataclass(frozen=True)
class OrgTreeSpec:
    """Where the names and hierarchy of org codes are (SG186 O_ORG), for reports."""

    table: str
    code: str
    name: str
    parent: str | None = None
    where: tuple[tuple[str, tuple[Any, ...]], ...] = ()


@dataclass(frozen=True)
class Mapping:
    name: str
    path: Path
    system: str
    description: str
    codes: dict[str, dict[str, Any]]
    org_map: OrgMapSpec | None
    assets: dict[str, AssetMapping]
    org_tree: OrgTreeSpec | None = None
    builtin: bool = False

    @property
    def origin(self) -> str:
        """How to show where the mapping came from: 'built-in' or its file."""
        return "built-in" if self.builtin else str(self.path)


def builtin_mapping_names() -> list[str]:
    folder = resources.files("gridrecon.connectors.mappings")
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_mapping(name_or_path: str, expected_system: str | None = None) -> Mapping:
    """Load a built-in mapping by name, or a mapping file by path."""
    if name_or_path in builtin_mapping_names():
        path = Path(str(resources.files("gridrecon.connectors.mappings") / f"{name_or_path}.toml"))
        name = name_or_path
    else:
        path = Path(name_or_path)
        name = path.stem
        if not path.is_file():
            builtin = ", ".join(builtin_mapping_names())
            raise MappingError(
                f"mapping '{name_or_path}' is neither a built-in mapping ({builtin}) "
                "nor an existing mapping file"
            )
    mapping = parse_mapping(read_toml(path, MappingError), path, name)
    if name_or_path in builtin_mapping_names():
        mapping = dataclasses.replace(mapping, builtin=True)
    if expected_system and mapping.system != expected_system:
        raise MappingError(
            f"{path}: 'system' is '{mapping.system}' but the config uses this mapping for "
            f'[{expected_system}]; set system = "{expected_system}" or use another mapping'
        )
    return mapping


def parse_mapping(data: dict[str, Any], path: Path, name: str) -> Mapping:
    root = Section(data, path, "", MappingError)
    root.check_keys({"system", "description", "codes", "org_map", "org_tree", *ASSET_TYPES})
    system = root.string("system", required=True)
    if system not in SYSTEMS:
        raise root.fail(f"'system' must be one of {', '.join(SYSTEMS)}, got '{system}'")

    codes = _parse_codes(root.section("codes", required=False))
    org_map = _parse_org_map(root.section("org_map", required=False), path.parent)
    assets = {}
    for asset_type in ASSET_TYPES:
        section = root.section(asset_type, required=False)
        if section is None:
            raise root.fail(
                f"missing section [{asset_type}]: every mapping describes substation, line "
                "and transformer"
            )
        assets[asset_type] = _parse_asset(section, asset_type, system, codes, org_map)
    return Mapping(
        name=name,
        path=path,
        system=system,
        description=root.string("description", default="") or "",
        codes=codes,
        org_map=org_map,
        assets=assets,
        org_tree=_parse_org_tree(root.section("org_tree", required=False)),
    )


def _parse_org_tree(section: Section | None) -> OrgTreeSpec | None:
    if section is None:
        return None
    section.check_keys({"table", "code", "name", "parent", "where"})
    return OrgTreeSpec(
        table=section.string("table", required=True),
        code=section.string("code", required=True),
        name=section.string("name", required=True),
        parent=section.string("parent"),
        where=_parse_where(section, "where"),
    )


def _parse_codes(section: Section | None) -> dict[str, dict[str, Any]]:
    if section is None:
        return {}
    lists: dict[str, dict[str, Any]] = {}
    for list_name in section.data:
        entries = section.section(list_name)
        assert entries is not None
        decoded: dict[str, Any] = {}
        spelled: dict[str, str] = {}
        for code, value in entries.data.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise entries.fail(
                    f"code '{entries.key_name(code)}' must map to a number or a text, "
                    f"got {shown(value)}"
                )
            if isinstance(value, float) and not math.isfinite(value):
                raise entries.fail(f"code '{entries.key_name(code)}' maps to {value}, not a number")
            # codes are compared as stripped text, so '22' and ' 22' would be one code
            if code.strip() in spelled:
                raise entries.fail(
                    f"codes '{entries.key_name(spelled[code.strip()])}' and "
                    f"'{entries.key_name(code)}' are the same code (spaces around a code are "
                    "ignored); keep one"
                )
            spelled[code.strip()] = code
            decoded[code.strip()] = value
        lists[list_name] = decoded
    return lists


def _parse_where(section: Section, key: str) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    """Row filters: {COLUMN = value} or {COLUMN = [value, ...]}; all must hold."""
    where = section.section(key, required=False)
    if where is None:
        return ()
    filters = []
    for column, accepted in where.data.items():
        values = accepted if isinstance(accepted, list) else [accepted]
        if not values or not all(
            isinstance(v, (str, int, float))
            and not isinstance(v, bool)
            and not (isinstance(v, float) and not math.isfinite(v))
            for v in values
        ):
            raise where.fail(
                f"'{where.key_name(column)}' must be a text or a number, or a list of them, "
                f"to keep; got {shown(accepted)}"
            )
        filters.append((column, tuple(values)))
    return tuple(filters)


def _parse_org_map(section: Section | None, base: Path) -> OrgMapSpec | None:
    if section is None:
        return None
    section.check_keys({"table", "key", "value", "where", "database", "csv"})
    database = section.string("database")
    if database is not None and database not in SYSTEMS:
        raise section.fail(f"'org_map.database' must be pms or marketing, got {shown(database)}")
    csv_text = section.string("csv")
    table = section.string("table")
    if (csv_text is None) == (table is None):
        raise section.fail("[org_map] needs exactly one of 'table' (a database table) or 'csv'")
    key = section.string("key", required=table is not None, default="key")
    value = section.string("value", required=table is not None, default="value")
    csv_path = None
    if csv_text is not None:
        csv_path = Path(csv_text) if Path(csv_text).is_absolute() else (base / csv_text).resolve()
    return OrgMapSpec(
        table=table,
        key=key,
        value=value,
        where=_parse_where(section, "where"),
        database=database,
        csv=csv_path,
    )


def _parse_field(
    columns: Section,
    field_name: str,
    codes: dict[str, dict[str, Any]],
    org_map: OrgMapSpec | None,
) -> FieldSpec:
    raw = columns.data[field_name]
    where = columns.key_name(field_name)
    if isinstance(raw, str):
        spec = FieldSpec(name=field_name, column=columns.string(field_name))
    elif not isinstance(raw, dict):
        raise columns.fail(
            f"'{where}' must be a column name or a table like {{ column = \"...\", ... }}, "
            f"got {shown(raw)}"
        )
    else:
        options = columns.section(field_name)
        assert options is not None
        options.check_keys(_FIELD_OPTIONS)
        spec = FieldSpec(
            name=field_name,
            column=options.string("column", required=True),
            codes=options.string("codes"),
            org_map=options.boolean("org_map"),
            scale=options.number("scale"),
            format=options.string("format"),
            encoding=options.string("encoding"),
        )
        if spec.scale is not None and spec.scale <= 0:
            raise options.fail(f"'{where}.scale' must be a number > 0, got {spec.scale:g}")
        if spec.format is not None:
            _check_format(options, f"{where}.format", spec.format)
        if spec.encoding is not None:
            _check_encoding(options, f"{where}.encoding", spec.encoding)
    if spec.codes is not None and spec.codes not in codes:
        known = ", ".join(sorted(key_text(name) for name in codes)) or "none defined"
        raise columns.fail(
            f"'{where}.codes' names code list {shown(spec.codes)}, which is not in [codes] ({known})"
        )
    if spec.org_map and org_map is None:
        raise columns.fail(f"'{where}' sets org_map = true but the mapping has no [org_map]")
    if field_name == "status" and spec.codes is None:
        raise columns.fail(f"'{where}' needs a code list: codes = \"<list in [codes]>\"")
    if spec.codes and field_name == "status":
        for code, value in codes[spec.codes].items():
            if value not in CANONICAL_STATUSES:
                raise columns.fail(
                    f"'codes.{key_text(spec.codes)}.{key_text(code)}' maps to {shown(value)}; "
                    f"the status codes of '{where}' must map to one of "
                    f"{', '.join(CANONICAL_STATUSES)}"
                )
    if spec.codes and field_name in ("voltage_kv", "capacity_kva"):
        for code, value in codes[spec.codes].items():
            if isinstance(value, str):
                raise columns.fail(
                    f"'codes.{key_text(spec.codes)}.{key_text(code)}' maps to text {shown(value)}; "
                    f"the {field_name} codes of '{where}' must map to numbers"
                )
    return spec


def _check_format(options: Section, key: str, fmt: str) -> None:
    """A date format pandas can parse with, so a bad one fails here and not in the middle of a
    read."""
    import pandas as pd

    try:
        pd.to_datetime(pd.Series(["2000-01-02"]), format=fmt, errors="coerce")
    except (ValueError, TypeError, re.error) as exc:  # pandas raises all three for a bad format
        raise options.fail(
            f"'{key}' {shown(fmt)} is not a date format ({exc}); use strftime codes, "
            'e.g. "%Y%m%d" or "%Y-%m-%d %H:%M:%S"'
        ) from None


def _check_encoding(options: Section, key: str, encoding: str) -> None:
    try:
        b"a".decode(encoding, "replace")  # unlike codecs.lookup, refuses base64, rot13, ...
    except (LookupError, ValueError):
        raise options.fail(
            f"'{key}' {shown(encoding)} is not a text encoding Python knows; e.g. gbk, gb18030"
        ) from None


def _parse_asset(
    section: Section,
    asset_type: str,
    system: str,
    codes: dict[str, dict[str, Any]],
    org_map: OrgMapSpec | None,
) -> AssetMapping:
    section.check_keys(_ASSET_KEYS)
    absent = set(section.string_list("absent"))
    for name in absent:
        if name not in MAPPED_FIELDS and name != "parent":
            raise section.fail(
                f"'{section.key_name('absent')}' names '{name}', which is not a canonical field "
                f"({', '.join(MAPPED_FIELDS)}, parent)"
            )
    if system == "pms":
        # In PMS the equipment id is the record's own id (SPEC §2).
        absent.add("pms_id")

    shared = section.section("columns", required=False)
    tables_raw = section.data.get("tables")
    if not isinstance(tables_raw, list) or not tables_raw:
        raise section.fail(
            f"'{section.key_name('tables')}' must list one or more tables, "
            'e.g. tables = [{ table = "T_SB_ZNYC_DZ" }]'
        )

    parent_column_default, hops = _parse_parent(section, asset_type, absent)

    tables = []
    for index, raw in enumerate(tables_raw):
        entry = Section(raw, section.file, f"{section.key_name('tables')}[{index}]", MappingError)
        entry.check_keys(_TABLE_KEYS)
        own = entry.section("columns", required=False)
        fields = []
        for field_name in MAPPED_FIELDS:
            source = own if own is not None and field_name in own.data else shared
            if source is None or field_name not in source.data:
                if field_name in REQUIRED_FIELDS:
                    raise entry.fail(
                        f"'{section.key_name('columns')}' has no column for the required field "
                        f"'{field_name}'"
                    )
                if field_name not in absent:
                    raise entry.fail(
                        f"'{section.key_name('columns')}' has no column for '{field_name}'; map "
                        f"it there, or list it in '{section.key_name('absent')}' if this system "
                        "does not have it"
                    )
                continue
            if field_name == "pms_id" and system == "pms":
                raise entry.fail(
                    f"'{section.key_name('columns')}.pms_id': in a pms mapping the record's own "
                    "id is its PMS id; remove pms_id"
                )
            if field_name in absent:
                raise entry.fail(
                    f"'{section.key_name('absent')}' lists '{field_name}', which "
                    f"[{section.key_name('columns')}] maps too; keep one"
                )
            fields.append(_parse_field(source, field_name, codes, org_map))
        for checked in (own, shared):
            if checked is not None:
                checked.check_keys(set(MAPPED_FIELDS))
        parent_column = parent_column_default
        if parent_column is None and (hops or HAS_PARENT[asset_type]) and "parent" not in absent:
            # A parent path that starts from the record's own key (G_LINE.LINE_ID -> RELA).
            parent_column = next(f.column for f in fields if f.name == "source_id")
        tables.append(
            TableSpec(
                table=entry.string("table", required=True),
                where=_parse_where(entry, "where"),
                fields=tuple(fields),
                parent_column=parent_column,
            )
        )
    return AssetMapping(
        asset_type=asset_type, tables=tuple(tables), hops=hops, absent=frozenset(absent)
    )


def _parse_parent(
    section: Section, asset_type: str, absent: set[str]
) -> tuple[str | None, tuple[Hop, ...]]:
    parent = section.section("parent", required=False)
    if parent is None:
        if HAS_PARENT[asset_type] and "parent" not in absent:
            raise section.fail(
                f"[{section.key_name('parent')}] is missing: a {asset_type} has a parent; give "
                'parent = { column = "..." } or a path through relation tables '
                '(parent = { via = [...] }), or list "parent" in absent'
            )
        return None, ()
    if not HAS_PARENT[asset_type]:
        raise parent.fail(
            f"a {asset_type} has no parent in gridrecon's model; remove [{parent.where}]"
        )
    parent.check_keys({"column", "via"})
    column = parent.string("column")
    via = parent.data.get("via", [])
    if not isinstance(via, list) or len(via) > MAX_HOPS:
        raise parent.fail(
            f"'{parent.key_name('via')}' must list at most {MAX_HOPS} relation-table hops"
        )
    if column is None and not via:
        raise parent.fail(f"[{parent.where}] needs 'column', 'via' or both")
    hops = []
    for index, raw in enumerate(via):
        hop = Section(raw, section.file, f"{parent.key_name('via')}[{index}]", MappingError)
        hop.check_keys(_HOP_KEYS)
        hops.append(
            Hop(
                table=hop.string("table", required=True),
                from_column=hop.string("from", required=True),
                to_column=hop.string("to", required=True),
                where=_parse_where(hop, "where"),
            )
        )
    return column, tuple(hops)
