"""The lease of the process running a run, and the inventory it scans (the per-inventory lock).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("runs", sa.Column("lease_pid", sa.Integer))
    op.add_column("runs", sa.Column("lease_host", sa.Text))
    op.add_column("runs", sa.Column("heartbeat", sa.Text))
    op.add_column("runs", sa.Column("inventory", sa.Text))
