"""Fields a connection did not store as written (``links.not_stored``), and ``runs.matched``.

Revision ID: 0003_not_stored
Revises: 0002_lease
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_not_stored"
down_revision = "0002_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the two columns (nullable / defaulted: existing rows stay valid)."""
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("not_stored", sa.String(1000), nullable=True))
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("matched", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("matched")
    with op.batch_alter_table("links") as batch:
        batch.drop_column("not_stored")
