"""Shared fixtures: real database servers, scratch databases, the CLI runner.

Tests that need PostgreSQL or MariaDB skip with a reason when the server is unreachable, except
when GRIDRECON_REQUIRE_SERVERS=1 (set by CI): then an unreachable server fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from custom_schema import custom_config  # noqa: F401  (a fixture shared by several test files)

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"

PG_URL = os.environ.get(
    "GRIDRECON_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MARIADB_URL = os.environ.get(
    "GRIDRECON_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)


def servers_required() -> bool:
    return os.environ.get("GRIDRECON_REQUIRE_SERVERS") == "1"


def _unreachable(url: str, why: Exception) -> None:
    message = f"server {sa.make_url(url).render_as_string(hide_password=True)} unreachable: {why}"
    if servers_required():
        pytest.fail(message + " (GRIDRECON_REQUIRE_SERVERS=1)")
    pytest.skip(message)


def _scratch_database(admin_url: str) -> Iterator[str]:
    """Create a uniquely named database on the server, yield its URL, drop it afterwards."""
    name = f"gr_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            quoted = admin.dialect.identifier_preparer.quote(name)
            connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
    except sa.exc.OperationalError as exc:
        _unreachable(admin_url, exc.orig or exc)
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            if admin.dialect.name == "postgresql":
                connection.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": name},
                )
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
        admin.dispose()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """URL of a fresh, empty PostgreSQL database."""
    yield from _scratch_database(PG_URL)


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """URL of a fresh, empty MariaDB database."""
    yield from _scratch_database(MARIADB_URL)


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[str]:
    yield from _scratch_database(PG_URL)


@pytest.fixture(scope="session")
def mariadb_session_database() -> Iterator[str]:
    yield from _scratch_database(MARIADB_URL)


GRIDRECON = Path(sys.executable).with_name("gridrecon")


@dataclass
class Completed:
    code: int
    stdout: str
    stderr: str


def sample_config(
    folder: Path, pms_url: str | None = None, marketing_url: str | None = None, extra: str = ""
) -> Path:
    """A config in `folder` for the shipped SQLite sample (or the given URLs); reports in
    folder/reports."""
    pms_url = pms_url or f"sqlite:///{SAMPLE / 'pms.sqlite'}"
    marketing_url = marketing_url or f"sqlite:///{SAMPLE / 'marketing.sqlite'}"
    path = folder / "gridrecon.toml"
    path.write_text(
        f'[pms]\nurl = "{pms_url}"\n[marketing]\nurl = "{marketing_url}"\n'
        f'[report]\ndir = "reports"\n{extra}',
        encoding="utf-8",
    )
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Completed:
    """Run the installed `gridrecon` console command as a real process."""
    completed = subprocess.run(
        [str(GRIDRECON), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return Completed(completed.returncode, completed.stdout, completed.stderr)
