"""Times to the microsecond on MariaDB and MySQL.

Their DATETIME keeps whole seconds, so two runs started within one second could come back in
either order: a finding's history, the previous completed run and `runs list` all order by these
times. SQLite and PostgreSQL already keep microseconds; nothing changes there.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# (table, column, nullable) for every time column of 0001
TIME_COLUMNS = [
    ("gr_runs", "started_at", False),
    ("gr_runs", "finished_at", True),
    ("gr_findings", "first_seen", False),
    ("gr_findings", "last_seen", False),
    ("gr_findings", "resolved_at", True),
    ("gr_finding_events", "at", False),
    ("gr_waivers", "waived_at", False),
    ("gr_first_seen", "first_seen", False),
    ("gr_lock", "since", False),
]


def _alter(from_fsp: int, to_fsp: int) -> None:
    """Every time column from DATETIME(from_fsp) to DATETIME(to_fsp), on MariaDB and MySQL."""
    if op.get_bind().dialect.name not in ("mysql", "mariadb"):
        return
    for table, column, nullable in TIME_COLUMNS:
        op.alter_column(
            table,
            column,
            type_=mysql.DATETIME(fsp=to_fsp),
            existing_type=mysql.DATETIME(fsp=from_fsp),
            existing_nullable=nullable,
        )


def upgrade() -> None:
    _alter(0, 6)


def downgrade() -> None:
    _alter(6, 0)
