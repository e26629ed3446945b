"""Run leases: the state store's own run lock on SQLite.

PostgreSQL locks a run with a session advisory lock and needs no table; the
table exists on both so that one schema serves both dialects.

Revision ID: 0002_lease
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_lease"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``run_leases``: one row per pipeline being run, with its holder and expiry."""
    op.create_table(
        "run_leases",
        sa.Column("pipeline", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(255), nullable=False),
        # Seconds since the epoch (UTC): compared atomically inside the acquiring statement.
        sa.Column("expires_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    """Drop ``run_leases``."""
    op.drop_table("run_leases")
