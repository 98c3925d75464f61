"""Moderation queue, contact blocks and customers' data requests

Revision ID: 0005f
Revises: 0004
Create Date: 2026-11-23 18:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005f"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "moderationitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("reason", _STR(), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("decided_at", _TIME(), nullable=True),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("outcome", _STR(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.ForeignKeyConstraint(["decided_by"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    with op.batch_alter_table("moderationitem") as batch:
        batch.create_index(batch.f("ix_moderationitem_contact_id"), ["contact_id"], unique=False)
        batch.create_index(batch.f("ix_moderationitem_conversation_id"), ["conversation_id"], unique=False)
        batch.create_index("ix_moderationitem_status_id", ["status", "id"], unique=False)
    op.create_table(
        "contactblock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("until", _TIME(), nullable=False),
        sa.Column("reason", _STR(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("lifted_at", _TIME(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contactblock") as batch:
        batch.create_index(batch.f("ix_contactblock_contact_id"), ["contact_id"], unique=False)
    op.create_table(
        "datarequest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("identity_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("kind", _STR(), nullable=False),
        sa.Column("status", _STR(), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("completed_at", _TIME(), nullable=True),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("note", _STR(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["identity_id"], ["identity.id"]),
        sa.ForeignKeyConstraint(["message_id"], ["message.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("datarequest") as batch:
        batch.create_index(batch.f("ix_datarequest_contact_id"), ["contact_id"], unique=False)
        batch.create_index(batch.f("ix_datarequest_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("datarequest") as batch:
        batch.drop_index(batch.f("ix_datarequest_status"))
        batch.drop_index(batch.f("ix_datarequest_contact_id"))
    op.drop_table("datarequest")
    with op.batch_alter_table("contactblock") as batch:
        batch.drop_index(batch.f("ix_contactblock_contact_id"))
    op.drop_table("contactblock")
    with op.batch_alter_table("moderationitem") as batch:
        batch.drop_index("ix_moderationitem_status_id")
        batch.drop_index(batch.f("ix_moderationitem_conversation_id"))
        batch.drop_index(batch.f("ix_moderationitem_contact_id"))
    op.drop_table("moderationitem")
