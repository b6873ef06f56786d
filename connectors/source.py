"""A read-only connection to one source system, and its schema catalogue.

Identifiers in a mapping match the database's case-insensitively (an Oracle schema copied to
PostgreSQL arrives lower-cased), so every table and column a mapping names is looked up in the
database's own catalogue and used with the database's spelling. A name that is not there is an
error naming the mapping key and what does exist: it is never formatted into SQL.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, SQLAlchemyError

from ..core.config import SourceConfig, display_url, scrubbed
from ..core.errors import MappingError, SourceError
from .dialects import DRIVER_PACKAGES, read_only_url, session_setup
from .mapping import Mapping

# SQLAlchemy logs a failed connection reset (after a dropped connection) at ERROR with a
# traceback; the reader reports the drop itself, in one line. Without a handler somewhere,
# Python's last-resort handler would print that traceback on stderr.
logging.getLogger("sqlalchemy").addHandler(logging.NullHandler())


@dataclass
class Problem:
    """One way a mapping does not fit its database."""

    key: str  # the mapping key, e.g. "transformer.tables[1].table"
    message: str


class Source:
    """One system's database (read-only) with the mapping that describes it."""

    def __init__(self, config: SourceConfig, mapping: Mapping):
        self.config = config
        self.mapping = mapping
        self.system = config.system
        self.display_url = display_url(config.url)
        self._engine: Engine | None = None
        self._tables: dict[str, str] | None = None  # casefolded name -> database spelling
        self._columns: dict[str, dict[str, str]] = {}
        self._types: dict[tuple[str, str], sa.types.TypeEngine] = {}
        self.rows_fetched = 0  # every row any query returned: key lookups are checked by it
        self._schema: str | None = None
        # where a streamed read (fetch.py) buffers what it fetched: beside the records read to
        # disk (sync/spill.py), else the system's temporary folder
        self.spill_dir: Path | None = None
        self.watchdog: Any = None  # fetch.Watchdog of the MySQL fast path, while one runs

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                url = read_only_url(self.config.url)
            except FileNotFoundError as missing:
                raise SourceError(
                    f"{self.system}: the SQLite database file {missing} does not exist; check "
                    f"the [{self.system}] url in the config"
                ) from None
            try:
                engine = sa.create_engine(url, pool_pre_ping=True)
            except NoSuchModuleError:
                raise SourceError(
                    f"{self.system}: no SQLAlchemy dialect for {self.display_url}; "
                    "spell the driver in the URL, e.g. postgresql+psycopg://, mysql+pymysql://, "
                    "oracle+oracledb://"
                ) from None
            except ModuleNotFoundError as exc:
                package = DRIVER_PACKAGES.get(exc.name or "", exc.name)
                raise SourceError(
                    f"{self.system}: the database driver for {self.display_url} is not "
                    f"installed; install {package}"
                ) from None
            except (SQLAlchemyError, ValueError, TypeError) as exc:
                raise SourceError(
                    f"{self.system}: cannot use {self.display_url}: {self.scrub(exc)}"
                ) from None
            sa.event.listen(
                engine, "connect", session_setup(engine.dialect, self.config.statement_timeout)
            )
            self._engine = engine
        return self._engine

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        try:
            connection = self.engine.connect()
        except SQLAlchemyError as exc:
            raise SourceError(
                f"cannot connect to the {self.system} database {self.display_url}: "
                f"{self.scrub(exc)}. Check the [{self.system}] url in the config and that the "
                "server is running"
            ) from None
        try:
            yield connection
        except DBAPIError as exc:
            error = SourceError(
                f"reading the {self.system} database {self.display_url} failed: {self.scrub(exc)}"
            )
            error.driver_error = exc.orig  # for the reader: retry a dropped connection?
            raise error from None
        finally:
            connection.close()

    def dispose(self) -> None:
        if self.watchdog is not None:
            self.watchdog.end()
            self.watchdog = None
        if self._engine is not None:
            self._engine.dispose()

    def scrub(self, exc: BaseException) -> str:
        """The driver's own first line, with the password (if any) removed."""
        return scrubbed(exc, self.config.url)

    # -- catalogue -----------------------------------------------------------------------

    @property
    def schema(self) -> str | None:
        """The configured schema in the database's own spelling (matched case-insensitively)."""
        if self.config.schema is None:
            return None
        if self._schema is None:
            with self.connect() as connection:
                try:
                    names = sa.inspect(connection).get_schema_names()
                except (SQLAlchemyError, NotImplementedError):
                    names = []
            matches = [n for n in names if n.casefold() == self.config.schema.casefold()]
            if names and not matches:
                raise SourceError(
                    f"schema '{self.config.schema}' does not exist in the {self.system} database "
                    f"{self.display_url}; its schemas: {', '.join(sorted(names))}. "
                    f"Fix [{self.system}] schema in the config"
                )
            self._schema = matches[0] if matches else self.config.schema
        return self._schema

    def table_names(self) -> dict[str, str]:
        if self._tables is None:
            schema = self.schema
            with self.connect() as connection:
                inspector = sa.inspect(connection)
                try:
                    names = inspector.get_table_names(schema=schema)
                    names += inspector.get_view_names(schema=schema)
                except SQLAlchemyError as exc:
                    raise SourceError(
                        f"cannot list the tables of the {self.system} database "
                        f"{self.display_url}{self._schema_text()}: {self.scrub(exc)}"
                    ) from None
            self._tables = {}
            for name in names:
                self._tables.setdefault(name.casefold(), name)
        return self._tables

    def column_names(self, table: str) -> dict[str, str]:
        if table not in self._columns:
            with self.connect() as connection:
                columns = sa.inspect(connection).get_columns(table, schema=self.schema)
            self._columns[table] = {}
            for column in columns:
                name = column["name"]
                if self.engine.dialect.name in ("mysql", "mariadb"):
                    # SQLAlchemy reads MySQL columns from SHOW CREATE TABLE and keeps its
                    # escaping: a column named a`b comes back as a``b
                    name = name.replace("``", "`")
                self._columns[table].setdefault(name.casefold(), name)
                self._types[(table, name)] = column["type"]
        return self._columns[table]

    def column_type(self, table: str, column: str) -> sa.types.TypeEngine:
        self.column_names(table)
        return self._types.get((table, column), sa.types.NullType())

    def estimated_rows(self, table: str) -> int:
        """About how many rows `table` holds: the catalogue's estimate on PostgreSQL and
        MariaDB/MySQL (kept by ANALYZE and autovacuum, read without a scan), else a count. It
        decides whether a read is spilled (sync/spill.py): an estimate off by a third changes how
        many partitions there are, not what is found."""
        dialect = self.engine.dialect.name
        with self.connect() as connection:
            estimate = None
            if dialect == "postgresql":
                estimate = connection.execute(
                    sa.text(
                        "SELECT c.reltuples FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relname = :name AND c.relkind IN ('r', 'p', 'm') "
                        "AND n.nspname = COALESCE(:schema, current_schema())"
                    ),
                    {"name": table, "schema": self.schema},
                ).scalar()
            elif dialect in ("mysql", "mariadb"):
                estimate = connection.execute(
                    sa.text(
                        "SELECT TABLE_ROWS FROM information_schema.TABLES "
                        "WHERE TABLE_NAME = :name AND TABLE_SCHEMA = COALESCE(:schema, DATABASE())"
                    ),
                    {"name": table, "schema": self.schema},
                ).scalar()
            if estimate is not None and estimate >= 0:  # -1: never analysed
                return int(estimate)
            counted = sa.select(sa.func.count()).select_from(self.table(table, []))
            return int(connection.execute(counted).scalar() or 0)

    def matching(self, table: sa.TableClause, name: str, column: str, values: list[Any]):
        """`column IN (values)`, with values bound as the column's own type.

        Mapping values are text ('03') and keys are canonical text ('9100000003'); compared
        with a NUMBER column as text, PostgreSQL refuses the query. Values that cannot be of
        the column's type cannot match it and are left out.
        """
        column_type = self.column_type(name, column)
        try:
            python_type = column_type.python_type
        except NotImplementedError:
            python_type = str
        coerced = []
        for value in values:
            try:
                if python_type in (int, float, Decimal) and not isinstance(value, python_type):
                    value = python_type(str(value).strip())
                elif python_type is str and not isinstance(value, str):
                    value = str(value)
            except (ValueError, ArithmeticError):
                continue
            coerced.append(value)
        typed = sa.type_coerce(table.c[column], column_type)
        return typed.in_(coerced) if coerced else sa.false()

    def _schema_text(self) -> str:
        return f" (schema {self.schema})" if self.config.schema else ""

    def find_table(self, name: str, key: str, problems: list[Problem]) -> str | None:
        actual = self.table_names().get(name.casefold())
        if actual is None:
            known = list(self.table_names().values())
            close = difflib.get_close_matches(name.upper(), [k.upper() for k in known], n=3)
            hint = f"; similar: {', '.join(close)}" if close else f"; it has {len(known)} tables"
            problems.append(
                Problem(
                    key,
                    f"table '{name}' does not exist in the {self.system} database "
                    f"{self.display_url}{self._schema_text()}{hint}",
                )
            )
        return actual

    def find_column(self, table: str, name: str, key: str, problems: list[Problem]) -> str | None:
        columns = self.column_names(table)
        actual = columns.get(name.casefold())
        if actual is None:
            problems.append(
                Problem(
                    key,
                    f"column '{name}' does not exist in table {table}; its columns: "
                    f"{', '.join(columns.values())}",
                )
            )
        return actual

    def table(self, name: str, columns: list[str]) -> sa.TableClause:
        """A lightweight table construct for database-spelled names (quoted by SQLAlchemy).

        Columns carry no type, so values arrive as the driver delivers them: a malformed date
        in a source must reach normalisation as data, not fail inside a type processor.
        """
        return sa.table(name, *(sa.column(c) for c in columns), schema=self.schema)


def raise_problems(mapping: Mapping, problems: list[Problem]) -> None:
    if not problems:
        return
    first = problems[0]
    more = (
        f" (and {len(problems) - 1} more problems: run gridrecon validate)"
        if len(problems) > 1
        else ""
    )
    raise MappingError(f"{mapping.path}: {first.key}: {first.message}{more}")


@dataclass
class ResolvedTable:
    """A mapped table with every name in the database's own spelling."""

    name: str
    columns: dict[str, str] = field(default_factory=dict)  # mapping spelling -> database spelling

    def column(self, mapping_name: str) -> str:
        return self.columns[mapping_name.casefold()]
