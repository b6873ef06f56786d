"""Least privilege and secrets: a whole reconciliation as SELECT-only users, and the password in
the URLs appears in no output, report, summary, store or message."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import run_cli

from gridrecon.sample_data import generate


def _reader(admin_url: str, database: str, password: str) -> str:
    """Create a user that may only SELECT in `database`; its URL (with the password)."""
    name = f"gr_reader_{secrets.token_hex(3)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
            connection.exec_driver_sql(f"GRANT CONNECT ON DATABASE {database} TO {name}")
        else:
            connection.exec_driver_sql(f"CREATE USER '{name}'@'%%' IDENTIFIED BY '{password}'")
            connection.exec_driver_sql(f"GRANT SELECT ON `{database}`.* TO '{name}'@'%%'")
    if engine.dialect.name == "postgresql":
        inside = sa.create_engine(
            sa.make_url(admin_url).set(database=database), isolation_level="AUTOCOMMIT"
        )
        with inside.connect() as connection:
            connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA public TO {name}")
            connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {name}")
        inside.dispose()
    engine.dispose()
    return (
        sa.make_url(admin_url)
        .set(username=name, password=password, database=database)
        .render_as_string(hide_password=False)
    )


def _drop_reader(admin_url: str, url: str) -> None:
    name = sa.make_url(url).username
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            database = sa.make_url(url).database
            inside = sa.create_engine(sa.make_url(admin_url).set(database=database))
            with inside.begin() as c:
                c.exec_driver_sql(f"DROP OWNED BY {name}")
            inside.dispose()
            connection.exec_driver_sql(f"DROP ROLE IF EXISTS {name}")
        else:
            connection.exec_driver_sql(f"DROP USER IF EXISTS '{name}'@'%%'")
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.mariadb
def test_a_run_as_select_only_users_works_and_never_shows_their_passwords(
    pg_database, mariadb_database, tmp_path: Path
) -> None:
    from conftest import MARIADB_URL, PG_URL

    generate(pg_database, mariadb_database, scale="small")
    password = f"pw-{secrets.token_hex(8)}"
    pms_url = _reader(PG_URL, sa.make_url(pg_database).database, password)
    marketing_url = _reader(MARIADB_URL, sa.make_url(mariadb_database).database, password)
    try:
        config = tmp_path / "gridrecon.toml"
        config.write_text(
            '[pms]\nurl = "${PMS_URL}"\n[marketing]\nurl = "${MARKETING_URL}"\n'
            '[report]\ndir = "reports"\n',
            encoding="utf-8",
        )
        env = {"PMS_URL": pms_url, "MARKETING_URL": marketing_url + "?charset=utf8mb4"}
        done = run_cli("run", "--config", str(config), "--as-of", "2026-11-20", env=env)
        assert done.code == 0, done.stderr
        assert "34 open findings" in done.stdout
        listed = run_cli(
            "runs", "show", "latest", "--format", "json", "--config", str(config), env=env
        )
        # an unreachable source: the error message masks the password too
        broken = {**env, "PMS_URL": pms_url.replace("@127.0.0.1:5432", "@127.0.0.1:1")}
        failed = run_cli("run", "--config", str(config), env=broken)
        assert failed.code == 2 and "***" in failed.stderr

        outputs = [done.stdout, done.stderr, listed.stdout, failed.stdout, failed.stderr]
        for path in tmp_path.rglob("*"):
            if path.is_file():  # reports, summary.json, the SQLite state store
                outputs.append(path.read_bytes().decode("utf-8", errors="replace"))
        assert len(outputs) > 8
        assert all(password not in text for text in outputs)
        assert any(sa.make_url(pms_url).username in text for text in outputs)  # it did look
    finally:
        _drop_reader(PG_URL, pms_url)
        _drop_reader(MARIADB_URL, marketing_url)
