"""The first state-store schema: runs, findings and their history, waivers, first sightings.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Times are stored as naive UTC (portable across SQLite, PostgreSQL and MariaDB).
ID = sa.String(64)
TEXT = sa.Text()


def upgrade() -> None:
    op.create_table(
        "gr_runs",
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("exit_code", sa.Integer),
        sa.Column("duration_s", sa.Float),
        sa.Column("config_path", TEXT),
        sa.Column("config_fingerprint", sa.String(64)),
        sa.Column("reason", TEXT),
        sa.Column("summary_json", TEXT),
    )
    op.create_index("ix_gr_runs_started_at", "gr_runs", ["started_at"])

    op.create_table(
        "gr_findings",
        sa.Column("finding_id", sa.String(32), primary_key=True),
        sa.Column("rule_id", sa.String(32), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("asset_type", sa.String(16), nullable=False),
        sa.Column("pms_id", sa.String(255)),
        sa.Column("marketing_id", sa.String(255)),
        sa.Column("asset_name", TEXT),
        sa.Column("org_code", sa.String(64)),
        sa.Column("field", sa.String(32)),
        sa.Column("pms_value", TEXT),
        sa.Column("marketing_value", TEXT),
        sa.Column("detail", TEXT),
        sa.Column("owner", sa.String(64)),
        sa.Column("side", sa.String(16)),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("first_run_id", ID, nullable=False),
        sa.Column("last_run_id", ID, nullable=False),
        sa.Column("resolved_at", sa.DateTime()),
    )
    op.create_index("ix_gr_findings_state", "gr_findings", ["state"])
    op.create_index("ix_gr_findings_pms_id", "gr_findings", ["pms_id"])
    op.create_index("ix_gr_findings_marketing_id", "gr_findings", ["marketing_id"])

    # One row per state change of a finding (new, resolved, reopened), not per night.
    op.create_table(
        "gr_finding_events",
        sa.Column("finding_id", sa.String(32), primary_key=True),
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )

    # Open and waived findings per run, rule, asset type and org: the trend behind the reports.
    op.create_table(
        "gr_run_counts",
        sa.Column("run_id", ID, primary_key=True),
        sa.Column("rule_id", sa.String(32), primary_key=True),
        sa.Column("asset_type", sa.String(16), primary_key=True),
        sa.Column("org_code", sa.String(64), primary_key=True),
        sa.Column("open", sa.Integer, nullable=False),
        sa.Column("waived", sa.Integer, nullable=False),
    )

    op.create_table(
        "gr_waivers",
        sa.Column("finding_id", sa.String(32), primary_key=True),
        sa.Column("reason", TEXT, nullable=False),
        sa.Column("waived_by", sa.String(128), nullable=False),
        sa.Column("waived_at", sa.DateTime(), nullable=False),
        sa.Column("until", sa.Date),
    )

    # When a record was first seen, for systems without a creation-time column (SPEC §2).
    # baseline: seen on the store's first run, so its creation time is unknown, not "then".
    op.create_table(
        "gr_first_seen",
        sa.Column("system", sa.String(16), primary_key=True),
        sa.Column("asset_type", sa.String(16), primary_key=True),
        sa.Column("source_id", sa.String(255), primary_key=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("baseline", sa.Boolean, nullable=False),
    )

    # Who holds the run lock (for the "another run in progress since ..." message); liveness
    # itself comes from the database's session lock or a file lock, never from this row alone.
    op.create_table(
        "gr_lock",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("holder", TEXT, nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "gr_lock",
        "gr_first_seen",
        "gr_waivers",
        "gr_run_counts",
        "gr_finding_events",
        "gr_findings",
        "gr_runs",
    ):
        op.drop_table(table)
