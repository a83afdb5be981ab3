"""items.topic: the theme key the worker's topic head gave the flagged text (null: none).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("items", sa.Column("topic", sa.String(40), nullable=True))


def downgrade() -> None:
    # batch mode: SQLite drops a column by copying the table (indexes and all)
    with op.batch_alter_table("items") as batch:
        batch.drop_column("topic")
