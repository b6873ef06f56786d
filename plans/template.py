"""Plan templates: how the marketing system takes new and corrected records in.

A template is a TOML file that names, per asset type, the import sheet (and the gridrecon-owned
staging table that mirrors it), its import columns with the canonical field each one carries,
the marketing key column an update changes, the parent's key columns, constant columns, and the
code lists that turn canonical values back into the marketing system's codes (kV back to
VOLT_CODE, in_service back to RUN_STATUS_CODE). Nothing about the import layout is in code: the
built-in template `sg186` is an ordinary file in plans/templates/.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..connectors.mapping import ASSET_TYPES, CANONICAL_STATUSES, HAS_PARENT, MAPPED_FIELDS
from ..core.errors import ConfigError
from ..core.toml_section import Section, read_toml

# Canonical fields an import column can carry: the mapped ones but the record's own key and
# times, which the marketing system assigns (the parent has its own two columns).
TEMPLATE_FIELDS = tuple(
    f for f in MAPPED_FIELDS if f not in ("source_id", "recorded_at", "updated_at")
)
NUMERIC_FIELDS = ("voltage_kv", "capacity_kva")
# gridrecon's own columns of every staging table: no template column may take these names.
STAGING_COLUMNS = (
    "PLAN_ID",
    "FINDING_ID",
    "CHANGE_NO",
    "RUN_ID",
    "OP",
    "CHG_FIELD",
    "PMS_VALUES",
    "IMPORT_STATUS",
    "STAGED_AT",
)
_SHEET_KEYS = {
    "sheet",
    "staging_table",
    "key",
    "parent_key",
    "parent_pms_id",
    "columns",
    "constants",
    "optional",
}


class TemplateError(ConfigError):
    """A plan template is malformed (exit 2, naming the file and the key)."""


@dataclass(frozen=True)
class ImportColumn:
    name: str  # the import column, as the marketing system spells it
    field: str  # the canonical field it carries
    codes: str | None = None  # a code list of the template: canonical value -> code


@dataclass(frozen=True)
class Sheet:
    """One import sheet: the layout of one asset type's new and changed records."""

    asset_type: str
    title: str  # the sheet's name in changes.xlsx
    staging_table: str
    key: str  # the marketing key column (the record an update changes; the id an import assigns)
    parent_key: str | None  # the parent's marketing key
    parent_pms_id: str | None  # the parent's PMS id (finds a parent created by the same plan)
    columns: tuple[ImportColumn, ...]
    constants: tuple[tuple[str, str], ...]
    optional: frozenset[str]  # canonical fields a new record may leave empty

    def columns_for(self, field: str) -> list[ImportColumn]:
        return [c for c in self.columns if c.field == field]

    @property
    def layout(self) -> list[str]:
        """Every import column of the sheet, in order: key, parent, mapped columns, constants."""
        names = [self.key]
        if self.parent_key:
            names += [self.parent_key, self.parent_pms_id]
        names += [c.name for c in self.columns]
        names += [name for name, _ in self.constants]
        return names


@dataclass(frozen=True)
class Template:
    name: str
    path: Path
    description: str
    codes: dict[str, dict[str, str]]
    sheets: dict[str, Sheet]
    builtin: bool = False

    @property
    def origin(self) -> str:
        return "built-in" if self.builtin else str(self.path)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def encode(self, column: ImportColumn, value: Any) -> tuple[bool, Any]:
        """The import value of a canonical value: (True, value), or (False, why it cannot be).

        A null stays null (whether that is allowed is the caller's business).
        """
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return True, None
        if column.codes is None:
            return True, value
        codes = self.codes[column.codes]
        if column.field in NUMERIC_FIELDS:
            number = float(value)
            for code_value, code in codes.items():
                if float(code_value) == number:
                    return True, code
            shown = _number_text(number)
        else:
            if str(value) in codes:
                return True, codes[str(value)]
            shown = str(value)
        return False, (
            f"{column.field} {shown} has no code in the template's code list '{column.codes}' "
            f"({self.origin})"
        )


def builtin_template_names() -> list[str]:
    folder = resources.files("gridrecon.plans") / "templates"
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def load_template(name_or_path: str) -> Template:
    """A built-in template by name, or a template file by path."""
    builtin = name_or_path in builtin_template_names()
    if builtin:
        path = Path(str(resources.files("gridrecon.plans") / "templates" / f"{name_or_path}.toml"))
        name = name_or_path
    else:
        path = Path(name_or_path)
        name = path.stem
        if not path.is_file():
            raise TemplateError(
                f"plan template '{name_or_path}' is neither a built-in template "
                f"({', '.join(builtin_template_names())}) nor an existing file; "
                "check [plan] template in the config"
            )
    template = parse_template(read_toml(path, TemplateError), path, name)
    return dataclasses.replace(template, builtin=builtin)


def parse_template(data: dict[str, Any], path: Path, name: str) -> Template:
    root = Section(data, path, "", TemplateError)
    root.check_keys({"description", "codes", *ASSET_TYPES})
    codes = _parse_codes(root.section("codes", required=False))
    sheets = {}
    for asset_type in ASSET_TYPES:
        section = root.section(asset_type, required=False)
        if section is None:
            raise root.fail(
                f"missing section [{asset_type}]: a template lays out substations, lines and "
                "transformers"
            )
        sheets[asset_type] = _parse_sheet(section, asset_type, codes)
    titles = [s.title.casefold() for s in sheets.values()]
    tables = [s.staging_table.casefold() for s in sheets.values()]
    if len(set(titles)) < len(titles) or len(set(tables)) < len(tables):
        raise root.fail("every asset type needs its own sheet and staging_table")
    return Template(
        name=name,
        path=path,
        description=root.string("description", default="") or "",
        codes=codes,
        sheets=sheets,
    )


def _parse_codes(section: Section | None) -> dict[str, dict[str, str]]:
    if section is None:
        return {}
    lists: dict[str, dict[str, str]] = {}
    for list_name in section.data:
        entries = section.section(list_name)
        assert entries is not None
        decoded: dict[str, str] = {}
        for value, code in entries.data.items():
            if isinstance(code, bool) or not isinstance(code, (str, int)):
                raise entries.fail(
                    f"'{entries.key_name(value)}' must give the code as a text, got {code!r}"
                )
            decoded[value.strip()] = str(code)
        lists[list_name] = decoded
    return lists


def _check_numeric(section: Section, list_name: str, codes: dict[str, str]) -> None:
    for value in codes:
        try:
            float(value)
        except ValueError:
            raise section.fail(
                f"code list '{list_name}' is used for a number, but '{value}' is not a number"
            ) from None


def _parse_sheet(section: Section, asset_type: str, codes: dict[str, dict[str, str]]) -> Sheet:
    section.check_keys(_SHEET_KEYS)
    title = section.string("sheet", default=asset_type)
    table = section.string("staging_table", required=True)
    key = section.string("key", required=True)
    parent_key = section.string("parent_key")
    parent_pms_id = section.string("parent_pms_id")
    if HAS_PARENT[asset_type]:
        if parent_key is None or parent_pms_id is None:
            raise section.fail(
                f"[{asset_type}] needs parent_key (the parent's marketing id column) and "
                "parent_pms_id (the parent's PMS id column): new records hang under a parent"
            )
    elif parent_key is not None or parent_pms_id is not None:
        raise section.fail(f"a {asset_type} has no parent; remove parent_key / parent_pms_id")

    raw_columns = section.section("columns")
    assert raw_columns is not None
    columns = []
    for column_name, spec in raw_columns.data.items():
        where = raw_columns.key_name(column_name)
        if isinstance(spec, str):
            field, code_list = spec, None
        else:
            options = raw_columns.section(column_name)
            assert options is not None
            options.check_keys({"field", "codes"})
            field = options.string("field", required=True)
            code_list = options.string("codes")
        if field not in TEMPLATE_FIELDS:
            raise raw_columns.fail(
                f"'{where}' carries '{field}', which is not a field a template can fill "
                f"({', '.join(TEMPLATE_FIELDS)})"
            )
        if code_list is not None and code_list not in codes:
            known = ", ".join(sorted(codes)) or "none defined"
            raise raw_columns.fail(
                f"'{where}' uses code list '{code_list}', not in [codes] ({known})"
            )
        if field == "status":
            if code_list is None:
                raise raw_columns.fail(
                    f"'{where}' needs a code list: codes = \"<list in [codes]>\""
                )
            unknown = set(codes[code_list]) - set(CANONICAL_STATUSES)
            if unknown:
                raise raw_columns.fail(
                    f"code list '{code_list}' has {', '.join(sorted(unknown))}; status code lists "
                    f"map {', '.join(CANONICAL_STATUSES)} to codes"
                )
        if field in NUMERIC_FIELDS and code_list is not None:
            _check_numeric(raw_columns, code_list, codes[code_list])
        columns.append(ImportColumn(column_name, field, code_list))
    if not any(c.field == "pms_id" for c in columns):
        raise raw_columns.fail(
            f"[{raw_columns.where}] needs a column carrying pms_id: a new record without its PMS "
            "id would be unlinked"
        )

    constants_section = section.section("constants", required=False)
    constants = []
    if constants_section is not None:
        for column_name, value in constants_section.data.items():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise constants_section.fail(
                    f"'{constants_section.key_name(column_name)}' must be a value, got {value!r}"
                )
            constants.append((column_name, str(value)))

    optional = frozenset(section.string_list("optional"))
    for field in optional:
        if field not in TEMPLATE_FIELDS or field == "pms_id":
            raise section.fail(
                f"'{section.key_name('optional')}' names '{field}'; optional fields are among "
                f"{', '.join(f for f in TEMPLATE_FIELDS if f != 'pms_id')}"
            )

    names = [key, parent_key, parent_pms_id, *(c.name for c in columns)]
    names += [name for name, _ in constants]
    names = [n for n in names if n is not None]
    folded = [n.casefold() for n in names]
    taken = {c.casefold() for c in STAGING_COLUMNS}
    for name in names:
        if folded.count(name.casefold()) > 1:
            raise section.fail(f"[{asset_type}] names the column '{name}' twice")
        if name.casefold() in taken:
            raise section.fail(
                f"[{asset_type}] column '{name}' is one of gridrecon's own staging columns "
                f"({', '.join(STAGING_COLUMNS)}); rename it"
            )
    return Sheet(
        asset_type=asset_type,
        title=title,
        staging_table=table,
        key=key,
        parent_key=parent_key,
        parent_pms_id=parent_pms_id,
        columns=tuple(columns),
        constants=tuple(constants),
        optional=optional,
    )


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
