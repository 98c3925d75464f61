"""E-mail on real mailboxes: the IMAP poller's position, bounced addresses, whether a message's sender was
vouched for (and the code round trip that stands in for it on a data request), and the subject a reply keeps

Revision ID: 0008e
Revises: 0007
Create Date: 2026-12-03 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008e"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime
_STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "mailboxposition",
        sa.Column("mailbox", _STR(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.PrimaryKeyConstraint("mailbox"),
    )
    with op.batch_alter_table("identity") as batch_op:
        batch_op.add_column(sa.Column("bounced_at", _TIME(), nullable=True))
        batch_op.add_column(sa.Column("bounce_detail", _STR(), nullable=True))
    with op.batch_alter_table("message") as batch_op:
        batch_op.add_column(
            sa.Column("sender_verified", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("subject", _STR(), nullable=True))
        batch_op.add_column(sa.Column("thread_references", _STR(), nullable=True))
    with op.batch_alter_table("identityverification") as batch_op:
        batch_op.add_column(sa.Column("data_request_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_identityverification_data_request_id", "datarequest", ["data_request_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("identityverification") as batch_op:
        batch_op.drop_constraint("fk_identityverification_data_request_id", type_="foreignkey")
        batch_op.drop_column("data_request_id")
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("thread_references")
        batch_op.drop_column("subject")
    with op.batch_alter_table("message") as batch_op:
        batch_op.drop_column("sender_verified")
    with op.batch_alter_table("identity") as batch_op:
        batch_op.drop_column("bounce_detail")
        batch_op.drop_column("bounced_at")
    op.drop_table("mailboxposition")
