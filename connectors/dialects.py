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


def session_setup(dialect_name: str) -> Callable[[Any, Any], None]:
    """A `connect` event listener that puts each new connection into read-only mode."""
    statements = read_only_statements(dialect_name)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
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
