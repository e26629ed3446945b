"""What a pipeline's last quiet run listed, page by page (``page_memos``): the no-op fast path.

And when a quarantine entry last changed in what a plan reads of it (``quarantine.changed_at``).

Revision ID: 0005_page_memos
Revises: 0004_memory
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_page_memos"
down_revision = "0004_memory"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table (empty: the first run after the upgrade plans every page), add the column."""
    with op.batch_alter_table("quarantine") as batch:
        batch.add_column(sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "page_memos",
        sa.Column("pipeline", sa.String(length=100), primary_key=True),
        sa.Column("config", sa.String(length=64), nullable=False),
        sa.Column("stamp", sa.String(length=400), nullable=False),
        sa.Column("pages", sa.Text(), nullable=False),
        sa.Column("saved_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    op.drop_table("page_memos")
    with op.batch_alter_table("quarantine") as batch:
        batch.drop_column("changed_at")
