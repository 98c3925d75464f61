"""Merge the branches of parallel work (follow-ups and identity, response-log index, Slack support posts,
webhooks and languages, moderation and data rights) into one head

Revision ID: 0006
Revises: 0005a, 0005b, 0005d, 0005e, 0005f
Create Date: 2026-11-23 19:20:00.000000
"""

from collections.abc import Sequence

revision: str = "0006"
down_revision: tuple[str, ...] = ("0005a", "0005b", "0005d", "0005e", "0005f")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
