"""Contacts, identities, conversations, messages, staff and the audit log

Revision ID: 0001
Revises:
Create Date: 2026-11-23 14:17:52.020218
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auditevent",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("actor_kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("subject_type", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("auditevent", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_auditevent_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_auditevent_at"), ["at"], unique=False)

    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("ladder_stage", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("ladder_updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_contact_email"), ["email"], unique=False)
        batch_op.create_index(batch_op.f("ix_contact_ladder_stage"), ["ladder_stage"], unique=False)

    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("api_token_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("slack_user_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_api_token_hash"), ["api_token_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_staff_slack_user_id"), ["slack_user_id"], unique=False)

    op.create_table(
        "conversation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("thread_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("assignee_id", sa.Integer(), nullable=True),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("escalation_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("opened_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_message_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("escalated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("first_response_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["staff.id"],
        ),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_channel_thread", ["channel", "thread_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversation_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_conversation_last_message_at"), ["last_message_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_conversation_state"), ["state"], unique=False)

    op.create_table(
        "identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("external_user_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("handle", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_user_id", name="uq_identity_channel_user"),
    )
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_contact_id"), ["contact_id"], unique=False)

    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("external_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("direction", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("author_kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("public", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("reply_to_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("intent", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("intent_confidence", sa.Float(), nullable=True),
        sa.Column("low_confidence", sa.Boolean(), nullable=True),
        sa.Column("sentiment", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("sentiment_confidence", sa.Float(), nullable=True),
        sa.Column("abusive", sa.Boolean(), nullable=True),
        sa.Column("abusive_score", sa.Float(), nullable=True),
        sa.Column("wants_human", sa.Boolean(), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("kb_article_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("kb_score", sa.Float(), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("processed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("raw", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversation.id"],
        ),
        sa.ForeignKeyConstraint(
            ["reply_to_id"],
            ["message.id"],
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"],
            ["staff.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", name="uq_message_channel_external_id"),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_message_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index("ix_message_conversation_id_id", ["conversation_id", "id"], unique=False)
        batch_op.create_index("ix_message_created_at", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_intent"), ["intent"], unique=False)
        batch_op.create_index(batch_op.f("ix_message_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_status"))
        batch_op.drop_index(batch_op.f("ix_message_intent"))
        batch_op.drop_index("ix_message_created_at")
        batch_op.drop_index("ix_message_conversation_id_id")
        batch_op.drop_index(batch_op.f("ix_message_contact_id"))
    op.drop_table("message")
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_contact_id"))
    op.drop_table("identity")
    with op.batch_alter_table("conversation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_state"))
        batch_op.drop_index(batch_op.f("ix_conversation_last_message_at"))
        batch_op.drop_index(batch_op.f("ix_conversation_contact_id"))
        batch_op.drop_index("ix_conversation_channel_thread")
    op.drop_table("conversation")
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_slack_user_id"))
        batch_op.drop_index(batch_op.f("ix_staff_api_token_hash"))
    op.drop_table("staff")
    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_ladder_stage"))
        batch_op.drop_index(batch_op.f("ix_contact_email"))
    op.drop_table("contact")
    with op.batch_alter_table("auditevent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_auditevent_at"))
        batch_op.drop_index(batch_op.f("ix_auditevent_action"))
    op.drop_table("auditevent")
