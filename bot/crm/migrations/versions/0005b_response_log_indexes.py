"""Indexes for the response log: a message's replies by reply_to_id

Revision ID: 0005b
Revises: 0004
Create Date: 2026-11-23 18:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005b"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.create_index("ix_message_reply_to_id", ["reply_to_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_index("ix_message_reply_to_id")
