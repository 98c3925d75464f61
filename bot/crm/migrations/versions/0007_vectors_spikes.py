"""Message vectors kept from the encoder pass, complaint spikes, and alerts among the Slack support posts

Revision ID: 0007_vectors
Revises: 0006
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0007_vectors"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "messagevector",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("encoder", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.PrimaryKeyConstraint("message_id"),
    )
    with op.batch_alter_table("messagevector") as batch:
        batch.create_index(batch.f("ix_messagevector_encoder"), ["encoder"], unique=False)
    op.create_table(
        "complaintspike",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("label", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("article_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("today", sa.Integer(), nullable=False),
        sa.Column("daily_average", sa.Float(), nullable=False),
        sa.Column("message_ids", sa.JSON(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("complaintspike") as batch:
        batch.create_index(batch.f("ix_complaintspike_day"), ["day"], unique=False)
    with op.batch_alter_table("supportpost") as batch:
        batch.add_column(
            sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default="escalation")
        )
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch.alter_column("conversation_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM supportpost WHERE conversation_id IS NULL")
    with op.batch_alter_table("supportpost") as batch:
        batch.alter_column("conversation_id", existing_type=sa.Integer(), nullable=False)
        batch.drop_column("text")
        batch.drop_column("kind")
    with op.batch_alter_table("complaintspike") as batch:
        batch.drop_index(batch.f("ix_complaintspike_day"))
    op.drop_table("complaintspike")
    with op.batch_alter_table("messagevector") as batch:
        batch.drop_index(batch.f("ix_messagevector_encoder"))
    op.drop_table("messagevector")
