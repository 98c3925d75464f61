"""Web chat typing indicators: when the customer and when staff last typed in a web chat session

Revision ID: 0009w
Revises: 0008e
Create Date: 2026-12-03 13:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009w"
down_revision: str | None = "0008e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("webchatsession") as batch:
        batch.add_column(sa.Column("customer_typing_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("staff_typing_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("staff_typing_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webchatsession") as batch:
        batch.drop_column("staff_typing_id")
        batch.drop_column("staff_typing_at")
        batch.drop_column("customer_typing_at")
