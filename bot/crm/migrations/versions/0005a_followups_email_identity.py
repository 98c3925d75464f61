"""Follow-ups queued through the outbox, e-mail identity verification, undoable contact merges

Revision ID: 0005a
Revises: 0004
Create Date: 2026-11-23 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0005a"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("followup") as batch:
        batch.add_column(sa.Column("message_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch.add_column(sa.Column("staff_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_followup_message_id"), ["message_id"], unique=False)
    op.create_table(
        "identityverification",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("code_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("completed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("identityverification") as batch:
        batch.create_index(batch.f("ix_identityverification_contact_id"), ["contact_id"], unique=False)
        batch.create_index(
            batch.f("ix_identityverification_conversation_id"), ["conversation_id"], unique=False
        )
        batch.create_index(batch.f("ix_identityverification_status"), ["status"], unique=False)
    op.create_table(
        "contactmerge",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("into_contact_id", sa.Integer(), nullable=False),
        sa.Column("from_contact_id", sa.Integer(), nullable=False),
        sa.Column("moved", sa.JSON(), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("merged_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("undone_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("undone_by_staff_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["from_contact_id"], ["contact.id"]),
        sa.ForeignKeyConstraint(["into_contact_id"], ["contact.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contactmerge") as batch:
        batch.create_index(batch.f("ix_contactmerge_from_contact_id"), ["from_contact_id"], unique=False)
        batch.create_index(batch.f("ix_contactmerge_into_contact_id"), ["into_contact_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contactmerge") as batch:
        batch.drop_index(batch.f("ix_contactmerge_into_contact_id"))
        batch.drop_index(batch.f("ix_contactmerge_from_contact_id"))
    op.drop_table("contactmerge")
    with op.batch_alter_table("identityverification") as batch:
        batch.drop_index(batch.f("ix_identityverification_status"))
        batch.drop_index(batch.f("ix_identityverification_conversation_id"))
        batch.drop_index(batch.f("ix_identityverification_contact_id"))
    op.drop_table("identityverification")
    with op.batch_alter_table("followup") as batch:
        batch.drop_index(batch.f("ix_followup_message_id"))
        batch.drop_column("staff_id")
        batch.drop_column("text")
        batch.drop_column("message_id")
