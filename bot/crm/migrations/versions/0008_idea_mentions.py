"""Ideas grouped: every suggestion of an idea is a mention of it, and its votes are its distinct customers

Revision ID: 0008_ideas
Revises: 0007_vectors
Create Date: 2026-12-03 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_ideas"
down_revision: str | None = "0007_vectors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ideamention",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idea_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["idea_id"], ["idea.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("ideamention") as batch:
        batch.create_index(batch.f("ix_ideamention_contact_id"), ["contact_id"], unique=False)
        batch.create_index(batch.f("ix_ideamention_idea_id"), ["idea_id"], unique=False)
    # Every idea so far was one customer's one message: its first mention, one vote.
    op.execute(
        "INSERT INTO ideamention (idea_id, message_id, contact_id, created_at) "
        "SELECT id, message_id, contact_id, created_at FROM idea"
    )
    op.execute("UPDATE idea SET votes = 1")


def downgrade() -> None:
    with op.batch_alter_table("ideamention") as batch:
        batch.drop_index(batch.f("ix_ideamention_idea_id"))
        batch.drop_index(batch.f("ix_ideamention_contact_id"))
    op.drop_table("ideamention")
