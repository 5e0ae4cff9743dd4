"""The first release's store: runs, what each probe saw, which probes ended, findings.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("started", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("info", sa.Text, nullable=False),
        sa.Column("systems", sa.Text, nullable=False),
        sa.Column("targets", sa.Text, nullable=False),
    )
    op.create_table(
        "observations",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("system", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_table(
        "probes",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("check_name", sa.Text, primary_key=True),
        sa.Column("system", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, primary_key=True),
    )
    op.create_table(
        "findings",
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text, nullable=False),
    )
