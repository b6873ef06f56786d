"""What differs per database engine, keyed by SQLAlchemy's own dialect name.

Everything here has a generic default that works for any dialect SQLAlchemy supports; an entry
only adds what an engine can do better (a read-only session, say).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL

# Statements run on every new DBAPI connection so that the session itself refuses writes. gridrecon
# never issues a write to a source; this makes the database enforce it too.
_READ_ONLY_SESSION: dict[str, list[str]] = {
    "postgresql": ["SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"],
    "mysql": ["SET SESSION TRANSACTION READ ONLY"],
    "mariadb": ["SET SESSION TRANSACTION READ ONLY"],
    "sqlite": ["PRAGMA query_only = ON"],
    # Oracle has no session-wide switch (SET TRANSACTION READ ONLY lasts one transaction); give
    # gridrecon a user with SELECT grants only.
}

# DBAPI packages to name when a driver is missing.
DRIVER_PACKAGES = {
    "psycopg": "psycopg[binary] (installed with gridrecon)",
    "pymysql": "PyMySQL (installed with gridrecon)",
    "oracledb": "oracledb: pip install 'gridrecon[oracle]'",
    "pyodbc": "pyodbc",
    "mysqldb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
}


def read_only_url(url: URL) -> URL:
    """The URL to open a source with. SQLite: the file must exist and is opened read-only.

    (Connecting to a missing SQLite file would silently create an empty database; for a source
    that hides a wrong path behind "0 rows".) Raises FileNotFoundError for a missing file.
    """
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return url
    if url.database.startswith("file:"):
        return url
    if not Path(url.database).is_file():
        raise FileNotFoundError(url.database)
    query = dict(url.query)
    query.setdefault("mode", "ro")
    query["uri"] = "true"
    return url.set(database=f"file:{url.database}", query=query)


def read_only_statements(dialect_name: str) -> list[str]:
    return _READ_ONLY_SESSION.get(dialect_name, [])


def timeout_statements(dialect_name: str, seconds: int, is_mariadb: bool) -> list[str]:
    """Session settings that make the server cancel a statement running longer than `seconds`."""
    if not seconds:
        return []
    if dialect_name == "postgresql":
        return [f"SET statement_timeout = {int(seconds) * 1000}"]
    if dialect_name in ("mysql", "mariadb"):
        if is_mariadb or dialect_name == "mariadb":
            return [f"SET SESSION max_statement_time = {int(seconds)}"]
        return [f"SET SESSION max_execution_time = {int(seconds) * 1000}"]
    return []  # SQLite runs in-process on a local file; Oracle: give the user a resource profile


def session_setup(dialect: Any, statement_timeout: int = 0) -> Callable[[Any, Any], None]:
    """A `connect` event listener: each new connection read-only, with the statement timeout."""
    read_only = read_only_statements(dialect.name)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # is_mariadb is known once the first connection has reported the server's version
        is_mariadb = bool(getattr(dialect, "is_mariadb", False)) or _reports_mariadb(
            dbapi_connection
        )
        statements = read_only + timeout_statements(dialect.name, statement_timeout, is_mariadb)
        if not statements:
            return
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                cursor.execute(statement)
        finally:
            cursor.close()
        # psycopg opens a transaction for SET; end it so the setting is the session's default
        commit = getattr(dbapi_connection, "commit", None)
        if commit is not None:
            commit()

    return on_connect


def _reports_mariadb(dbapi_connection: Any) -> bool:
    server = getattr(dbapi_connection, "get_server_info", None)
    return callable(server) and "mariadb" in str(server()).lower()


# Driver error codes that mean "the server cancelled the statement for taking too long" and
# "the connection went away under a statement" (a restart, a failover, a killed session).
_MYSQL_TIMEOUT = {1969, 3024}  # MariaDB max_statement_time; MySQL max_execution_time
_MYSQL_DROPPED = {1053, 1927, 2006, 2013, 2055}
_TIMEOUT_TEXT = ("max_statement_time", "maximum statement execution time", "statement timeout")
_DROPPED_TEXT = (
    "lost connection",
    "server has gone away",
    "connection was killed",
    "terminating connection",
    "server closed the connection",
    "connection reset",
    "broken pipe",
    "unexpected eof",
    "consuming input failed",
    "server disconnected",  # connectorx's own MySQL client
    "connection closed",  # connectorx's own PostgreSQL client
    "connection refused",
)


def failure_kind(error: BaseException) -> str | None:
    """'timeout', 'dropped' or None (any other error: retrying would not help)."""
    sqlstate = getattr(error, "sqlstate", None)  # psycopg
    if sqlstate == "57014":
        return "timeout"
    if sqlstate in ("57P01", "57P02", "57P03") or (sqlstate or "").startswith("08"):
        return "dropped"
    code = error.args[0] if error.args and isinstance(error.args[0], int) else None
    if code in _MYSQL_TIMEOUT:
        return "timeout"
    if code in _MYSQL_DROPPED:
        return "dropped"
    text = str(error).lower()
    if any(marker in text for marker in _TIMEOUT_TEXT) or "1969" in text:
        return "timeout"
    if any(marker in text for marker in _DROPPED_TEXT):
        return "dropped"
    if type(error).__name__ == "OperationalError" and sqlstate is None and code is None:
        return "dropped"  # psycopg reports a vanished server without an SQLSTATE
    return None
