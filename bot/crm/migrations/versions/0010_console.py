"""The staff console: tags, read markers, canned replies, snooze and the escalating message, teams, the words
behind a moderation flag, and full-text search over messages and contacts

Search is kept in sync by the database itself on every write: on SQLite, FTS5 tables maintained by triggers
(`message_fts` over message.text; `contact_fts` over a contact's names, e-mail and channel handles); on
PostgreSQL, GIN indexes over `to_tsvector('simple', ...)` expressions that bot/support/search.py queries with
the very same expressions.

Revision ID: 0010_console
Revises: 0009_corrections, 0009w (joins main's head: one head)
Create Date: 2026-12-04 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010_console"
down_revision: tuple[str, ...] = ("0009_corrections", "0009w")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sqlmodel.sql.sqltypes.UTCDateTime
_STR = sqlmodel.sql.sqltypes.AutoString

# What a contact is found by: names, e-mail, and each identity's handle, name and (for e-mail) address.
_CONTACT_NAMES = """
    coalesce((SELECT display_name FROM contact WHERE id = {id}), '') || ' ' ||
    coalesce((SELECT email FROM contact WHERE id = {id}), '') || ' ' ||
    coalesce((SELECT group_concat(
        coalesce(handle, '') || ' ' || coalesce(display_name, '') || ' ' ||
        CASE WHEN channel = 'email' THEN external_user_id ELSE '' END, ' ')
      FROM identity WHERE contact_id = {id}), '')
"""


def _refresh_contact(contact_id: str) -> str:
    """SQLite statements (inside a trigger) that rewrite one contact's row of `contact_fts`."""
    return (
        f"DELETE FROM contact_fts WHERE rowid = {contact_id}; "
        f"INSERT INTO contact_fts(rowid, names) SELECT {contact_id}, {_CONTACT_NAMES.format(id=contact_id)} "
        f"WHERE EXISTS (SELECT 1 FROM contact WHERE id = {contact_id});"
    )


SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE message_fts USING fts5(text, content='message', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER message_fts_insert AFTER INSERT ON message BEGIN "
    "INSERT INTO message_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER message_fts_delete AFTER DELETE ON message BEGIN "
    "INSERT INTO message_fts(message_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER message_fts_update AFTER UPDATE OF text ON message BEGIN "
    "INSERT INTO message_fts(message_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO message_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO message_fts(message_fts) VALUES ('rebuild')",
    "CREATE VIRTUAL TABLE contact_fts USING fts5(names, tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER contact_fts_insert AFTER INSERT ON contact BEGIN {_refresh_contact('new.id')} END",
    "CREATE TRIGGER contact_fts_update AFTER UPDATE OF display_name, email ON contact BEGIN "
    f"{_refresh_contact('new.id')} END",
    "CREATE TRIGGER contact_fts_delete AFTER DELETE ON contact BEGIN "
    "DELETE FROM contact_fts WHERE rowid = old.id; END",
    f"CREATE TRIGGER identity_fts_insert AFTER INSERT ON identity BEGIN {_refresh_contact('new.contact_id')} END",
    "CREATE TRIGGER identity_fts_update AFTER UPDATE ON identity BEGIN "
    f"{_refresh_contact('old.contact_id')} {_refresh_contact('new.contact_id')} END",
    f"CREATE TRIGGER identity_fts_delete AFTER DELETE ON identity BEGIN {_refresh_contact('old.contact_id')} END",
    f"INSERT INTO contact_fts(rowid, names) SELECT c.id, {_CONTACT_NAMES.format(id='c.id')} FROM contact c",
]
SQLITE_SEARCH_DROP = [
    *(
        f"DROP TRIGGER IF EXISTS {name}"
        for name in (
            "message_fts_insert",
            "message_fts_delete",
            "message_fts_update",
            "contact_fts_insert",
            "contact_fts_update",
            "contact_fts_delete",
            "identity_fts_insert",
            "identity_fts_update",
            "identity_fts_delete",
        )
    ),
    "DROP TABLE IF EXISTS message_fts",
    "DROP TABLE IF EXISTS contact_fts",
]

# Words are runs of letters and digits on both engines (FTS5's unicode61 tokenizer splits the same way).
_WORDS = "regexp_replace({}, '[^[:alnum:]]+', ' ', 'g')"
POSTGRES_SEARCH = [
    f"CREATE INDEX ix_message_text_search ON message USING gin (to_tsvector('simple', {_WORDS.format('text')}))",
    "CREATE INDEX ix_contact_search ON contact USING gin (to_tsvector('simple', "
    + _WORDS.format("coalesce(display_name, '') || ' ' || coalesce(email, '')")
    + "))",
    "CREATE INDEX ix_identity_search ON identity USING gin (to_tsvector('simple', "
    + _WORDS.format(
        "coalesce(handle, '') || ' ' || coalesce(display_name, '') || ' ' || "
        "CASE WHEN channel = 'email' THEN external_user_id ELSE '' END"
    )
    + "))",
]
POSTGRES_SEARCH_DROP = [
    "DROP INDEX IF EXISTS ix_message_text_search",
    "DROP INDEX IF EXISTS ix_contact_search",
    "DROP INDEX IF EXISTS ix_identity_search",
]


def upgrade() -> None:
    with op.batch_alter_table("conversation") as batch:
        batch.add_column(sa.Column("escalation_message_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("snoozed_until", _TIME(), nullable=True))
        batch.create_index(batch.f("ix_conversation_snoozed_until"), ["snoozed_until"], unique=False)
    with op.batch_alter_table("staff") as batch:
        batch.add_column(sa.Column("team", _STR(), nullable=True))
    with op.batch_alter_table("moderationitem") as batch:
        batch.add_column(sa.Column("flagged_words", sa.JSON(), nullable=True))
    op.create_table(
        "conversationtag",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("tag", _STR(), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "tag", name="uq_conversationtag_conversation_tag"),
    )
    with op.batch_alter_table("conversationtag") as batch:
        batch.create_index(batch.f("ix_conversationtag_conversation_id"), ["conversation_id"], unique=False)
        batch.create_index(batch.f("ix_conversationtag_tag"), ["tag"], unique=False)
    op.create_table(
        "conversationread",
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("last_read_message_id", sa.Integer(), nullable=False),
        sa.Column("read_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversation.id"]),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"]),
        sa.PrimaryKeyConstraint("staff_id", "conversation_id"),
    )
    op.create_table(
        "cannedreply",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shortcut", _STR(), nullable=False),
        sa.Column("title", _STR(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("team", _STR(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["staff.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("team", "shortcut", name="uq_cannedreply_team_shortcut"),
    )
    with op.batch_alter_table("cannedreply") as batch:
        batch.create_index(batch.f("ix_cannedreply_team"), ["team"], unique=False)
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH if dialect == "sqlite" else POSTGRES_SEARCH:
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_SEARCH_DROP if dialect == "sqlite" else POSTGRES_SEARCH_DROP:
        op.execute(statement)
    op.drop_table("cannedreply")
    op.drop_table("conversationread")
    op.drop_table("conversationtag")
    with op.batch_alter_table("moderationitem") as batch:
        batch.drop_column("flagged_words")
    with op.batch_alter_table("staff") as batch:
        batch.drop_column("team")
    with op.batch_alter_table("conversation") as batch:
        batch.drop_index(batch.f("ix_conversation_snoozed_until"))
        batch.drop_column("snoozed_until")
        batch.drop_column("escalation_message_id")
