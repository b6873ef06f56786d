"""The staging database: gridrecon-owned tables the marketing system's interface imports from.

One staging table per import sheet of the template (GR_STAGE_SUBS, GR_STAGE_LINE, GR_STAGE_TRAN
with the built-in template), each row one change: the plan and finding it comes from, the
operation, the template's import columns and the PMS values it was built from. The key is
(PLAN_ID, FINDING_ID), so staging the same plan again writes nothing. IMPORT_STATUS is 'pending'
when gridrecon writes a row; the interface sets it to 'done' (and fills in the key it assigned)
once the change is in the marketing system. GR_PLAN_APPLY records every apply.

Table and column names come from the template: an existing table is matched against the target's
catalogue case-insensitively and used with its own spelling; everything is quoted by SQLAlchemy.
The same tables render as changes.sql for any supported dialect, values bound by SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateTable

from ..connectors.mapping import ASSET_TYPES
from ..core.config import Config, display_url, scrubbed
from ..core.errors import ConfigError, GridreconError
from .template import Sheet, Template

AUDIT_TABLE = "GR_PLAN_APPLY"
PENDING = "pending"
SQL_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite", "oracle")
_TABLE_OPTIONS = {"mysql_charset": "utf8mb4", "mariadb_charset": "utf8mb4"}
_CHUNK = 500


class StagingError(GridreconError):
    """The staging database cannot be used as the plan needs it (exit 2)."""


def dialect_name(given: str | None, config: Config) -> str:
    """The SQL dialect of changes.sql: --dialect, else the staging URL's, else marketing's."""
    if given is None:
        url = config.plan.staging_url or config.marketing.url
        given = url.get_backend_name()
    if given not in SQL_DIALECTS:
        raise ConfigError(f"--dialect must be one of {', '.join(SQL_DIALECTS)}, got '{given}'")
    return given


def load_dialect(name: str) -> sa.engine.Dialect:
    """A dialect that only renders SQL (no driver is imported, nothing is connected), in the
    'named' parameter style: SQL for a file, where no percent sign may be doubled."""
    return sa.make_url(f"{name}://").get_dialect()(paramstyle="named")


def _import_type(sheet: Sheet, column_name: str) -> sa.types.TypeEngine:
    column = next((c for c in sheet.columns if c.name == column_name), None)
    if column is None:  # key, parent and constant columns: ids and codes as text
        return sa.String(64)
    if column.codes is not None:
        return sa.String(32)
    if column.field == "capacity_kva":
        return sa.Numeric(14, 2, asdecimal=False)
    if column.field == "voltage_kv":
        return sa.Float()
    if column.field == "commissioned_on":
        return sa.Date()
    if column.field == "name":
        return sa.String(255)
    return sa.String(64)


def staging_columns(sheet: Sheet) -> list[tuple[str, sa.types.TypeEngine, bool]]:
    """(name, type, primary key) of every column of a sheet's staging table, in order."""
    return [
        ("PLAN_ID", sa.String(64), True),
        ("FINDING_ID", sa.String(32), True),
        ("CHANGE_NO", sa.Integer(), False),
        ("RUN_ID", sa.String(64), False),
        ("OP", sa.String(8), False),
        ("CHG_FIELD", sa.String(32), False),
        *((name, _import_type(sheet, name), False) for name in sheet.layout),
        ("PMS_VALUES", sa.Text(), False),
        ("IMPORT_STATUS", sa.String(16), False),
        ("STAGED_AT", sa.DateTime(), False),
    ]


AUDIT_COLUMNS = [
    ("APPLY_ID", sa.String(32), True),
    ("PLAN_ID", sa.String(64), False),
    ("RUN_ID", sa.String(64), False),
    ("APPLIED_BY", sa.String(128), False),
    ("APPLIED_AT", sa.DateTime(), False),
    ("ROWS_WRITTEN", sa.Integer(), False),
    ("ROWS_ALREADY_STAGED", sa.Integer(), False),
    ("DETAIL", sa.Text(), False),
]


def _table(
    metadata: sa.MetaData,
    name: str,
    columns: list[tuple[str, sa.types.TypeEngine, bool]],
    spelled: dict[str, str] | None = None,
) -> sa.Table:
    """A table whose columns are keyed by the template's names and named as the database spells
    them (`spelled`: casefolded name -> database name, for a table that exists already)."""
    spelled = spelled or {}
    return sa.Table(
        name,
        metadata,
        *(
            sa.Column(spelled.get(n.casefold(), n), t, key=n, primary_key=pk)
            for n, t, pk in columns
        ),
        **_TABLE_OPTIONS,
    )


def template_tables(template: Template) -> tuple[dict[str, sa.Table], sa.Table]:
    """The staging tables (by asset type) and the audit table, as the template names them."""
    metadata = sa.MetaData()
    tables = {
        t: _table(metadata, s.staging_table, staging_columns(s)) for t, s in template.sheets.items()
    }
    return tables, _table(metadata, AUDIT_TABLE, AUDIT_COLUMNS)


def staging_row(change: dict[str, Any], plan_id: str, run_id: str, sheet: Sheet) -> dict[str, Any]:
    """The staging row of one change, keyed by the template's column names."""
    row: dict[str, Any] = {
        "PLAN_ID": plan_id,
        "FINDING_ID": change["finding_id"],
        "CHANGE_NO": change["change_no"],
        "RUN_ID": run_id,
        "OP": "INSERT" if change["action"] == "create" else "UPDATE",
        "CHG_FIELD": change["field"],
    }
    for name in sheet.layout:
        value = change["row"].get(name)
        column_type = _import_type(sheet, name)
        if value is not None and isinstance(column_type, sa.Date):
            value = dt.date.fromisoformat(value)
        elif value is not None and isinstance(column_type, (sa.Numeric, sa.Float)):
            value = float(value)
        elif value is not None:
            value = str(value)
        row[name] = value
    row["PMS_VALUES"] = json.dumps(change["pms_values"], ensure_ascii=False, sort_keys=True)
    row["IMPORT_STATUS"] = PENDING
    return row


# -- changes.sql -------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r":(gr[vk]\d+)\b")
_COMMENT_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _comment(text: str) -> str:
    """Text for a `--` comment line: a newline in data must not end the comment."""
    return _COMMENT_UNSAFE.sub(" ", text)


class _Insert:
    """One table's idempotent INSERT, compiled once; rows are rendered into it.

    INSERT INTO t (columns, STAGED_AT) SELECT <values>, CURRENT_TIMESTAMP WHERE NOT EXISTS
    (a row with this PLAN_ID and FINDING_ID). Compiling that for each of 30,000 changes costs a
    minute; compiled once with bound parameters, each row's values are rendered by the dialect's
    own literal rendering (what literal_binds uses) into the parameters' places.
    """

    def __init__(self, table: sa.Table, columns: list[str], dialect: sa.engine.Dialect):
        self.table = table
        self.columns = columns
        self.dialect = dialect
        self.types = {f"grv{i}": table.c[c].type for i, c in enumerate(columns)}
        self.types |= {"grk0": table.c.PLAN_ID.type, "grk1": table.c.FINDING_ID.type}
        compiled = self.statement(
            [sa.bindparam(f"grv{i}", type_=table.c[c].type) for i, c in enumerate(columns)],
            sa.bindparam("grk0", type_=table.c.PLAN_ID.type),
            sa.bindparam("grk1", type_=table.c.FINDING_ID.type),
        ).compile(dialect=dialect)
        self.compiled = compiled
        self.text = compiled.string.strip()
        # The fast path only when every parameter shows up exactly once (an identifier from the
        # template could, in theory, contain something that looks like one).
        found = _PLACEHOLDER.findall(self.text)
        self.fast = sorted(found) == sorted(self.types)

    def statement(self, values: list[Any], plan_id: Any, finding_id: Any) -> sa.Insert:
        table = self.table
        selected = [v.label(c) for v, c in zip(values, self.columns)]
        selected.append(sa.func.current_timestamp().label("STAGED_AT"))
        missing = ~sa.exists().where(table.c.PLAN_ID == plan_id, table.c.FINDING_ID == finding_id)
        return table.insert().from_select(
            [*self.columns, "STAGED_AT"], sa.select(*selected).where(missing)
        )

    def render(self, row: dict[str, Any]) -> str:
        values = [row[c] for c in self.columns]
        if not self.fast:
            literals = [
                sa.null() if v is None else sa.literal(v, type_=self.table.c[c].type)
                for v, c in zip(values, self.columns)
            ]
            statement = self.statement(literals, row["PLAN_ID"], row["FINDING_ID"])
            compiled = statement.compile(
                dialect=self.dialect, compile_kwargs={"literal_binds": True}
            )
            return str(compiled).strip()
        given = {f"grv{i}": v for i, v in enumerate(values)}
        given |= {"grk0": row["PLAN_ID"], "grk1": row["FINDING_ID"]}

        def literal(match: re.Match[str]) -> str:
            value = given[match.group(1)]
            if value is None:
                return "NULL"
            return self.compiled.render_literal_value(value, self.types[match.group(1)])

        return _PLACEHOLDER.sub(literal, self.text)


def render_sql(plan: Any, template: Template) -> str:
    """changes.sql: the staging tables and one idempotent INSERT per change, for plan.dialect.

    Values are rendered by SQLAlchemy for the dialect (quoting and escaping are its job, not
    string formatting); each INSERT selects its row only when (PLAN_ID, FINDING_ID) is not
    staged yet, so running the file twice stages nothing new.
    """
    dialect = load_dialect(plan.dialect)
    tables, audit = template_tables(template)
    lines = [
        _comment(
            f"-- gridrecon plan {plan.plan_id} from run {plan.run_id} (as of {plan.run_as_of})"
        ),
        _comment(
            f"-- template {plan.template['name']} ({plan.template['origin']}), "
            f"dialect {plan.dialect}"
        ),
        f"-- {len(plan.changes)} changes into the staging tables, in apply order (parents first).",
        "-- `gridrecon plan apply` does the same in one transaction after checking that every",
        f"-- finding is still open and the run is recent, and records the apply in {AUDIT_TABLE};",
        "-- running this file by hand does neither.",
        "",
    ]
    for table in [*tables.values(), audit]:
        ddl = CreateTable(table, if_not_exists=True).compile(dialect=dialect)
        lines += [str(ddl).strip() + ";", ""]
    inserts: dict[str, _Insert] = {}
    for change in plan.changes:
        asset_type = change["asset_type"]
        row = staging_row(change, plan.plan_id, plan.run_id, template.sheets[asset_type])
        if asset_type not in inserts:
            inserts[asset_type] = _Insert(tables[asset_type], list(row), dialect)
        field = f" {change['field']}" if change["field"] else ""
        lines += [
            _comment(
                f"-- change {change['change_no']}: {change['action']} {asset_type} "
                f"{change['pms_id']} (finding {change['finding_id']} {change['rule_id']}{field})"
            ),
            inserts[asset_type].render(row) + ";",
            "",
        ]
    return "\n".join(lines)


# -- writing a plan into a staging database ----------------------------------------------------


@dataclass
class StagingResult:
    """What applying a plan wrote (or, in a dry run, would write)."""

    target: str  # masked URL
    written: bool
    apply_id: str | None = None
    to_write: dict[str, int] = field(default_factory=dict)  # staging table -> rows
    already_staged: dict[str, int] = field(default_factory=dict)  # by this plan, earlier
    staged_elsewhere: list[dict[str, str]] = field(default_factory=list)  # pending, other plans
    created_tables: list[str] = field(default_factory=list)

    @property
    def rows_written(self) -> int:
        return sum(self.to_write.values()) if self.written else 0


class Staging:
    """A read-write connection to the staging database, with the template's tables resolved."""

    def __init__(self, url: URL, template: Template):
        self.url = url
        self.display_url = display_url(url)
        self.template = template
        self._engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            if self.url.get_backend_name() == "sqlite" and self.url.database:
                folder = Path(self.url.database).parent
                if not folder.is_dir():
                    raise StagingError(
                        f"the folder of the staging database {self.display_url} does not exist"
                    )
            try:
                self._engine = sa.create_engine(self.url, pool_pre_ping=True)
            except ModuleNotFoundError as exc:
                raise StagingError(
                    f"the database driver for {self.display_url} is not installed ({exc.name})"
                ) from None
            except (SQLAlchemyError, ValueError) as exc:
                raise StagingError(f"cannot use {self.display_url}: {self.scrub(exc)}") from None
        return self._engine

    def scrub(self, exc: BaseException) -> str:
        return scrubbed(exc, self.url)

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()

    def _absent_file(self) -> bool:
        database = self.url.database
        return (
            self.url.get_backend_name() == "sqlite"
            and bool(database)
            and database != ":memory:"
            and not database.startswith("file:")
            and not Path(database).exists()
        )

    def resolve(self, connection: Connection) -> tuple[dict[str, sa.Table], sa.Table, list[str]]:
        """The tables as the target has them; names of those it does not have yet."""
        inspector = sa.inspect(connection)
        existing = {name.casefold(): name for name in inspector.get_table_names()}
        metadata = sa.MetaData()
        missing: list[str] = []

        def table(name: str, columns: list[tuple[str, sa.types.TypeEngine, bool]]) -> sa.Table:
            actual = existing.get(name.casefold())
            if actual is None:
                missing.append(name)
                return _table(metadata, name, columns)
            spelled = {c["name"].casefold(): c["name"] for c in inspector.get_columns(actual)}
            lacking = [n for n, _, _ in columns if n.casefold() not in spelled]
            if lacking:
                raise StagingError(
                    f"the staging table {actual} in {self.display_url} has no column "
                    f"{', '.join(lacking)}: it was made for another template. Add the columns, "
                    "or drop the table (after its rows are imported) to let gridrecon recreate it"
                )
            return _table(metadata, actual, columns, spelled)

        tables = {
            t: table(
                self.template.sheets[t].staging_table, staging_columns(self.template.sheets[t])
            )
            for t in ASSET_TYPES
        }
        return tables, table(AUDIT_TABLE, AUDIT_COLUMNS), missing

    def stage(
        self,
        plan: Any,
        write: bool,
        by: str,
        now: dt.datetime,
        apply_id: str,
    ) -> StagingResult:
        """Stage the plan's changes in one transaction (or only count them, when not writing)."""
        result = StagingResult(target=self.display_url, written=write)
        if not write and self._absent_file():
            # A dry run must not leave an empty SQLite file behind: nothing is staged there yet.
            tables, audit = template_tables(self.template)
            missing = [table.name for table in [*tables.values(), audit]]
            self._plan_rows(None, plan, tables, missing, result)
            return result
        try:
            with self.engine.connect() as connection:
                tables, audit, missing = self.resolve(connection)
            if write and missing:
                # DDL first and apart: MariaDB commits a transaction at every CREATE TABLE.
                with self.engine.begin() as connection:
                    for table in [*tables.values(), audit]:
                        if table.name in missing:
                            table.create(connection, checkfirst=True)
                result.created_tables = list(missing)
                missing = []
            with self.engine.begin() as connection:
                rows = self._plan_rows(connection, plan, tables, missing, result)
                if write:
                    stamp = now.astimezone(dt.UTC).replace(tzinfo=None)
                    for asset_type, batch in rows.items():
                        for row in batch:
                            row["STAGED_AT"] = stamp
                        for start in range(0, len(batch), _CHUNK):
                            connection.execute(
                                tables[asset_type].insert(), batch[start : start + _CHUNK]
                            )
                    connection.execute(
                        audit.insert(),
                        {
                            "APPLY_ID": apply_id,
                            "PLAN_ID": plan.plan_id,
                            "RUN_ID": plan.run_id,
                            "APPLIED_BY": by,
                            "APPLIED_AT": stamp,
                            "ROWS_WRITTEN": sum(len(b) for b in rows.values()),
                            "ROWS_ALREADY_STAGED": sum(result.already_staged.values())
                            + len(result.staged_elsewhere),
                            "DETAIL": json.dumps(
                                {
                                    "written": result.to_write,
                                    "already_staged": result.already_staged,
                                    "staged_by_other_plans": result.staged_elsewhere,
                                    "template": plan.template,
                                },
                                ensure_ascii=False,
                                sort_keys=True,
                            ),
                        },
                    )
                    result.apply_id = apply_id
        except SQLAlchemyError as exc:
            raise StagingError(
                f"writing the staging database {self.display_url} failed: {self.scrub(exc)}; "
                "nothing was written"
            ) from None
        return result

    def _plan_rows(
        self,
        connection: Connection | None,
        plan: Any,
        tables: dict[str, sa.Table],
        missing: list[str],
        result: StagingResult,
    ) -> dict[str, list[dict[str, Any]]]:
        """The rows still to stage; counts what this plan staged already and what another plan
        staged for the same finding and the interface has not imported yet."""
        rows: dict[str, list[dict[str, Any]]] = {}
        for asset_type in ASSET_TYPES:
            changes = [c for c in plan.changes if c["asset_type"] == asset_type]
            if not changes:
                continue
            table = tables[asset_type]
            ids = [c["finding_id"] for c in changes]
            mine: set[str] = set()
            others: dict[str, str] = {}
            if connection is not None and table.name not in missing:
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    statement = sa.select(table.c.PLAN_ID, table.c.FINDING_ID).where(
                        table.c.FINDING_ID.in_(chunk),
                        sa.or_(table.c.PLAN_ID == plan.plan_id, table.c.IMPORT_STATUS == PENDING),
                    )
                    for plan_id, finding_id in connection.execute(statement):
                        if plan_id == plan.plan_id:
                            mine.add(finding_id)
                        else:
                            others.setdefault(finding_id, plan_id)
            sheet = self.template.sheets[asset_type]
            batch = []
            for change in changes:
                finding_id = change["finding_id"]
                if finding_id in mine:
                    continue
                if finding_id in others:
                    result.staged_elsewhere.append(
                        {"finding_id": finding_id, "plan_id": others[finding_id]}
                    )
                    continue
                batch.append(staging_row(change, plan.plan_id, plan.run_id, sheet))
            if mine:
                result.already_staged[table.name] = len(mine)
            if batch:
                result.to_write[table.name] = len(batch)
                rows[asset_type] = batch
        return rows
