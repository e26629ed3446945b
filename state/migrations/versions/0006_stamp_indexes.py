"""Indexes on what the store's stamp reads newest of: ``links.updated_at``, ``quarantine.changed_at``.

Without them the stamp scans every link at each run's start and end (35 ms at
100k links on SQLite), a fixed cost of the no-op that lists and plans nothing.

Revision ID: 0006_stamp_indexes
Revises: 0005_page_memos
"""

from __future__ import annotations

from alembic import op

revision = "0006_stamp_indexes"
down_revision = "0005_page_memos"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create both indexes (named as SQLModel names them, so the models and the migrations agree)."""
    op.create_index("ix_links_updated_at", "links", ["updated_at"])
    op.create_index("ix_quarantine_changed_at", "quarantine", ["changed_at"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_quarantine_changed_at", table_name="quarantine")
    op.drop_index("ix_links_updated_at", table_name="links")
