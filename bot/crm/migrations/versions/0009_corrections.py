"""Corrections: staff's and labelled CSVs' readings of messages, for retraining the heads

Revision ID: 0009_corrections
Revises: 0008_ideas
Create Date: 2026-12-03 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009_corrections"
down_revision: str | None = "0008_ideas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "correction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("aspect", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("was", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("article_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "aspect", name="uq_correction_message_aspect"),
    )
    with op.batch_alter_table("correction") as batch:
        batch.create_index(batch.f("ix_correction_aspect"), ["aspect"], unique=False)
        batch.create_index(batch.f("ix_correction_message_id"), ["message_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("correction") as batch:
        batch.drop_index(batch.f("ix_correction_message_id"))
        batch.drop_index(batch.f("ix_correction_aspect"))
    op.drop_table("correction")
