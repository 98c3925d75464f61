"""Pollers' positions on their platforms (channel cursors); why each inbound message came (message.kind)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "channelcursor",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("value", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("message") as batch:
        batch.add_column(
            sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), server_default="message", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("kind")
    op.drop_table("channelcursor")
