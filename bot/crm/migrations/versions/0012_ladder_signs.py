"""What the advocacy ladder's patterns found in a message, kept on it (bot.crm.ladder.text_signs), so the
ladder matches each message's words once instead of on every later message of the customer

Revision ID: 0012_ladder_signs
Revises: 0011_digest
Create Date: 2026-12-04 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_ladder_signs"
down_revision: str | None = "0011_digest"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing messages keep None: the ladder matches their words when it reads them, as before.
    # A plain ALTER TABLE on both databases (the message table's full-text triggers stay as they are).
    op.add_column("message", sa.Column("ladder_signs", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("message", "ladder_signs")
