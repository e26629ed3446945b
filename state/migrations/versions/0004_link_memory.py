"""What each side of a link held at its last sync, per counterpart and field (``links.memory``).

Revision ID: 0004_memory
Revises: 0003_not_stored
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_memory"
down_revision = "0003_not_stored"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (nullable: a link without memory is synced as before, then remembered)."""
    with op.batch_alter_table("links") as batch:
        batch.add_column(sa.Column("memory", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("links") as batch:
        batch.drop_column("memory")
