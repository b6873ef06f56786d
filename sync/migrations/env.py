"""Alembic environment: gridrecon passes the connection in, so no URL lives in any ini file."""

from alembic import context

from gridrecon.sync.store import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    # SQLite cannot ALTER most things in place; batch mode rebuilds tables when a migration must.
    render_as_batch=connection.dialect.name == "sqlite",
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
