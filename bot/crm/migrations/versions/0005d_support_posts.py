"""Escalations posted to the Slack support channel

Revision ID: 0005d
Revises: 0004
Create Date: 2026-11-23 18:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005d"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "supportpost",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("support_channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("posted_version", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("posted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("supportpost") as batch:
        batch.create_index(batch.f("ix_supportpost_conversation_id"), ["conversation_id"], unique=False)
        batch.create_index(batch.f("ix_supportpost_ts"), ["ts"], unique=False)
        batch.create_index(
            "ix_supportpost_status_next_attempt_at", ["status", "next_attempt_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("supportpost") as batch:
        batch.drop_index("ix_supportpost_status_next_attempt_at")
        batch.drop_index(batch.f("ix_supportpost_ts"))
        batch.drop_index(batch.f("ix_supportpost_conversation_id"))
    op.drop_table("supportpost")
