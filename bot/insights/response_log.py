"""What marketers read: the response log (filtered, keyset-paged) and its streamed exports, as CSV for
spreadsheets and as Parquet (typed columns: timestamps, numbers, booleans) for warehouses.

Every query is plain SQLAlchemy that runs the same on SQLite and PostgreSQL. Paging is by message id
(`id < cursor ORDER BY id DESC`), never OFFSET, so the thousandth page costs what the first does. Exports read
in batches of `batch_size` rows by id, each batch its own short query, so a million rows never sit in memory.
The dashboard's figures are bot/insights/dashboard.py, the ideas board bot/insights/ideas.py.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Engine, exists, func
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import (
    Contact,
    Conversation,
    Direction,
    Message,
    Staff,
    as_utc,
)

__all__ = [
    "AUTHORS",
    "CONVERSATION_COLUMNS",
    "CONVERSATION_TYPES",
    "EXPORT_FORMATS",
    "MESSAGE_COLUMNS",
    "MESSAGE_TYPES",
    "FilterError",
    "LogFilters",
    "LogPage",
    "LogRow",
    "csv_lines",
    "csv_row",
    "iso_text",
    "iter_conversation_records",
    "iter_conversation_rows",
    "iter_message_records",
    "iter_message_rows",
    "parquet_chunks",
    "parquet_schema",
    "parse_when",
    "record_export",
    "response_log",
    "safe_cell",
    "seconds_between",
]

#: Who wrote a message (the log's "who replied" filter): the customer, the bot or a staff member.
AUTHORS = ("customer", "bot", "staff")
PAGE_SIZE = 50
EXPORT_BATCH_SIZE = 1000
#: A spreadsheet runs a cell starting with one of these as a formula; such cells get a leading quote.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
MAX_TEXT_FILTER = 200


class FilterError(ValueError):
    """A filter value can't be understood; the message names the filter and what was expected."""


def parse_when(value: str | None, name: str, *, end_of_day: bool = False) -> datetime | None:
    """Parse a filter bound: `YYYY-MM-DD` (a UTC day; with `end_of_day`, the start of the next day, so a
    date given as `until` includes that whole day) or an ISO 8601 date-time (UTC if it has no offset).

    Raises:
        FilterError: the value is neither.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time.min, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"{name}: expected YYYY-MM-DD or an ISO 8601 date-time, got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _blank(value: str | None) -> str | None:
    return value.strip() if value and value.strip() else None


@dataclass(frozen=True, slots=True)
class LogFilters:
    """The response log's filters, shared by the page, both exports and the CLI. Blank means "any".

    `since` is inclusive and `until` exclusive; `author` is who wrote the message (customer, bot, staff);
    `state` is the conversation's state; `text` matches a substring, case-insensitively.
    """

    since: datetime | None = None
    until: datetime | None = None
    channel: str | None = None
    intent: str | None = None
    sentiment: str | None = None
    state: str | None = None
    author: str | None = None
    text: str | None = None
    conversation_id: int | None = None

    @classmethod
    def parse(
        cls,
        *,
        since: str | None = None,
        until: str | None = None,
        channel: str | None = None,
        intent: str | None = None,
        sentiment: str | None = None,
        state: str | None = None,
        author: str | None = None,
        text: str | None = None,
        conversation_id: int | None = None,
    ) -> LogFilters:
        """Build filters from request or command-line strings.

        Raises:
            FilterError: a date is malformed, `since` is not before `until`, `author` is unknown, or the text
                is too long.
        """
        filters = cls(
            since=parse_when(since, "since"),
            until=parse_when(until, "until", end_of_day=True),
            channel=_blank(channel),
            intent=_blank(intent),
            sentiment=_blank(sentiment),
            state=_blank(state),
            author=_blank(author),
            text=_blank(text),
            conversation_id=conversation_id,
        )
        if filters.since and filters.until and filters.since >= filters.until:
            raise FilterError("since: must be before until")
        if filters.author and filters.author not in AUTHORS:
            raise FilterError(f"author: expected one of {', '.join(AUTHORS)}, got {filters.author!r}")
        if filters.text and len(filters.text) > MAX_TEXT_FILTER:
            raise FilterError(f"text: at most {MAX_TEXT_FILTER} characters")
        return filters

    def describe(self) -> dict[str, str]:
        """The filters that are set, as strings (for the audit log and links)."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else str(value)
            for key, value in asdict(self).items()
            if value is not None
        }

    def message_conditions(self) -> list[Any]:
        """WHERE conditions on `Message` (the state filter needs `Conversation` joined)."""
        conditions: list[Any] = []
        if self.since:
            conditions.append(Message.created_at >= self.since)
        if self.until:
            conditions.append(Message.created_at < self.until)
        if self.channel:
            conditions.append(Message.channel == self.channel)
        if self.intent:
            conditions.append(Message.intent == self.intent)
        if self.sentiment:
            conditions.append(Message.sentiment == self.sentiment)
        if self.author:
            conditions.append(Message.author_kind == self.author)
        if self.text:
            conditions.append(Message.text.ilike(f"%{_escape_like(self.text)}%", escape="\\"))
        if self.state:
            conditions.append(Conversation.state == self.state)
        if self.conversation_id is not None:
            conditions.append(Message.conversation_id == self.conversation_id)
        return conditions

    def conversation_conditions(self) -> list[Any]:
        """WHERE conditions on `Conversation`: opened in the range, on the channel, in the state, and having
        at least one message matching the message-level filters (intent, sentiment, author, text)."""
        conditions: list[Any] = []
        if self.since:
            conditions.append(Conversation.opened_at >= self.since)
        if self.until:
            conditions.append(Conversation.opened_at < self.until)
        if self.channel:
            conditions.append(Conversation.channel == self.channel)
        if self.state:
            conditions.append(Conversation.state == self.state)
        if self.conversation_id is not None:
            conditions.append(Conversation.id == self.conversation_id)
        inner = LogFilters(
            intent=self.intent, sentiment=self.sentiment, author=self.author, text=self.text
        ).message_conditions()
        if inner:
            conditions.append(exists().where(Message.conversation_id == Conversation.id, *inner))
        return conditions


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class LogRow:
    """One line of the response log."""

    id: int
    conversation_id: int
    contact_id: int
    contact_name: str | None
    channel: str
    created_at: datetime
    direction: str
    author_kind: str
    staff_name: str | None
    text: str
    state: str
    intent: str | None
    intent_confidence: float | None
    sentiment: str | None
    abusive: bool | None
    kb_article_id: str | None
    action: str | None
    reason: str | None
    #: Inbound: seconds until the first reply to it; outbound: seconds since the message it answers.
    response_seconds: float | None


@dataclass(frozen=True, slots=True)
class LogPage:
    """A page of the log, newest first; `next_before` is the cursor of the next (older) page, if any."""

    rows: list[LogRow]
    next_before: int | None


#: The message columns the log and the export read (plain rows: no ORM objects to build per message).
_MESSAGE_FIELDS = (
    Message.id,
    Message.conversation_id,
    Message.contact_id,
    Message.channel,
    Message.created_at,
    Message.direction,
    Message.author_kind,
    Message.text,
    Message.intent,
    Message.intent_confidence,
    Message.sentiment,
    Message.abusive,
    Message.kb_article_id,
    Message.action,
    Message.reason,
    Message.reply_to_id,
)


def _log_query(filters: LogFilters):
    return (
        select(
            *_MESSAGE_FIELDS,
            Conversation.state,
            Contact.display_name.label("contact_name"),
            func.coalesce(Staff.name, Staff.email).label("staff_name"),
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(Contact, Contact.id == Message.contact_id)
        .outerjoin(Staff, Staff.id == Message.staff_id)
        .where(*filters.message_conditions())
    )


def _response_times(session: Session, messages: list[Any]) -> dict[int, float]:
    """Seconds between each message and its reply (inbound) or the message it replies to (outbound).

    Args:
        messages: rows with the `_MESSAGE_FIELDS` columns.
    """
    inbound_ids = [m.id for m in messages if m.direction == Direction.INBOUND.value]
    parent_ids = [m.reply_to_id for m in messages if m.reply_to_id is not None]
    times: dict[int, float] = {}
    if inbound_ids:
        first_reply = session.exec(
            select(Message.reply_to_id, func.min(Message.created_at))
            .where(Message.reply_to_id.in_(inbound_ids))
            .group_by(Message.reply_to_id)
        ).all()
        created = {m.id: m.created_at for m in messages}
        for parent_id, replied_at in first_reply:
            times[parent_id] = (as_utc(replied_at) - created[parent_id]).total_seconds()
    if parent_ids:
        parents = dict(
            session.exec(select(Message.id, Message.created_at).where(Message.id.in_(parent_ids))).all()
        )
        for m in messages:
            if m.reply_to_id in parents:
                times[m.id] = (m.created_at - as_utc(parents[m.reply_to_id])).total_seconds()
    return times


def response_log(
    engine: Engine, filters: LogFilters, *, before: int | None = None, limit: int = PAGE_SIZE
) -> LogPage:
    """One page of the log, newest first, starting below message id `before` (None: the newest)."""
    query = _log_query(filters)
    if before is not None:
        query = query.where(Message.id < before)
    with session_scope(engine, read_only=True) as session:
        found = session.exec(query.order_by(Message.id.desc()).limit(limit + 1)).all()
        page = found[:limit]
        times = _response_times(session, page)
        rows = [
            LogRow(
                id=m.id,
                conversation_id=m.conversation_id,
                contact_id=m.contact_id,
                contact_name=m.contact_name,
                channel=m.channel,
                created_at=m.created_at,
                direction=m.direction,
                author_kind=m.author_kind,
                staff_name=m.staff_name,
                text=m.text,
                state=m.state,
                intent=m.intent,
                intent_confidence=m.intent_confidence,
                sentiment=m.sentiment,
                abusive=m.abusive,
                kb_article_id=m.kb_article_id,
                action=m.action,
                reason=m.reason,
                response_seconds=times.get(m.id),
            )
            for m in page
        ]
    return LogPage(rows, rows[-1].id if len(found) > limit else None)


# --- Exports: CSV and Parquet ---------------------------------------------------------------------

MESSAGE_COLUMNS = (
    "message_id",
    "created_at",
    "channel",
    "conversation_id",
    "conversation_state",
    "contact_id",
    "contact_name",
    "direction",
    "author",
    "staff",
    "text",
    "intent",
    "intent_confidence",
    "sentiment",
    "abusive",
    "kb_article_id",
    "action",
    "reason",
    "response_seconds",
)
CONVERSATION_COLUMNS = (
    "conversation_id",
    "channel",
    "contact_id",
    "contact_name",
    "opened_at",
    "state",
    "escalated",
    "first_response_seconds",
    "resolution_seconds",
    "intents_seen",
    "messages",
    "csat",
    "outcome",
)
#: The type of each export column in Parquet: int, float, bool, text or time (a UTC timestamp).
MESSAGE_TYPES = {
    **dict.fromkeys(MESSAGE_COLUMNS, "text"),
    "message_id": "int",
    "created_at": "time",
    "conversation_id": "int",
    "contact_id": "int",
    "intent_confidence": "float",
    "abusive": "bool",
    "response_seconds": "float",
}
CONVERSATION_TYPES = {
    **dict.fromkeys(CONVERSATION_COLUMNS, "text"),
    "conversation_id": "int",
    "contact_id": "int",
    "opened_at": "time",
    "escalated": "bool",
    "first_response_seconds": "float",
    "resolution_seconds": "float",
    "messages": "int",
    "csat": "int",
}
#: The export formats: CSV (for spreadsheets) and Parquet (typed, for warehouses).
EXPORT_FORMATS = ("csv", "parquet")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will show as text: strings that would start a formula get a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def csv_lines(header: Iterable[str], batches: Iterable[list[list[Any]]]) -> Iterator[str]:
    """CSV text, one chunk per batch of rows (the header first), every cell passed through `safe_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    yield buffer.getvalue()
    for batch in batches:
        buffer.seek(0)
        buffer.truncate()
        writer.writerows([safe_cell(cell) for cell in row] for row in batch)
        yield buffer.getvalue()


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    """Seconds from `start` to `end` (to a tenth), or None when either is missing."""
    if start is None or end is None:
        return None
    return round((as_utc(end) - as_utc(start)).total_seconds(), 1)


def iso_text(moment: datetime | None) -> str:
    """`moment` as ISO 8601 text in UTC, or "" for none (a CSV cell)."""
    return as_utc(moment).isoformat() if moment is not None else ""


def csv_row(record: list[Any]) -> list[Any]:
    """A typed export row as CSV cells: none as "", times as ISO 8601 UTC text, booleans as true/false."""
    return [
        ""
        if value is None
        else iso_text(value)
        if isinstance(value, datetime)
        else str(value).lower()
        if isinstance(value, bool)
        else value
        for value in record
    ]


def _as_csv(batches: Iterator[list[list[Any]]]) -> Iterator[list[list[Any]]]:
    for batch in batches:
        yield [csv_row(record) for record in batch]


def iter_message_records(
    engine: Engine, filters: LogFilters, *, batch_size: int = EXPORT_BATCH_SIZE
) -> Iterator[list[list[Any]]]:
    """The filtered messages, oldest first, as typed rows in `MESSAGE_COLUMNS` order (`MESSAGE_TYPES`; None
    where there is no value), one list per batch."""
    after = 0
    while True:
        with session_scope(engine, read_only=True) as session:
            found = session.exec(
                _log_query(filters).where(Message.id > after).order_by(Message.id).limit(batch_size)
            ).all()
            if not found:
                return
            times = _response_times(session, found)
        yield [
            [
                m.id,
                as_utc(m.created_at),
                m.channel,
                m.conversation_id,
                m.state,
                m.contact_id,
                m.contact_name or None,
                m.direction,
                m.author_kind,
                m.staff_name or None,
                m.text,
                m.intent or None,
                None if m.intent_confidence is None else round(m.intent_confidence, 3),
                m.sentiment or None,
                m.abusive,
                m.kb_article_id or None,
                m.action or None,
                m.reason or None,
                None if m.id not in times else round(times[m.id], 1),
            ]
            for m in found
        ]
        after = found[-1].id
        if len(found) < batch_size:
            return


def iter_message_rows(
    engine: Engine, filters: LogFilters, *, batch_size: int = EXPORT_BATCH_SIZE
) -> Iterator[list[list[Any]]]:
    """The filtered messages, oldest first, as CSV rows in `MESSAGE_COLUMNS` order, one list per batch."""
    return _as_csv(iter_message_records(engine, filters, batch_size=batch_size))


def _outcome(conversation: Conversation) -> str:
    if conversation.state == "resolved":
        return "resolved by staff" if conversation.escalated_at else "resolved"
    if conversation.state == "human":
        return "with staff"
    if conversation.escalated_at:
        return "handed back to the bot"
    return "answered by the bot" if conversation.first_response_at else "no reply"


def iter_conversation_records(
    engine: Engine, filters: LogFilters, *, batch_size: int = EXPORT_BATCH_SIZE
) -> Iterator[list[list[Any]]]:
    """The filtered conversations, oldest first, as typed rows in `CONVERSATION_COLUMNS` order
    (`CONVERSATION_TYPES`), one list per batch."""
    after = 0
    while True:
        with session_scope(engine, read_only=True) as session:
            found = session.exec(
                select(Conversation, Contact.display_name)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Conversation.id > after, *filters.conversation_conditions())
                .order_by(Conversation.id)
                .limit(batch_size)
            ).all()
            if not found:
                return
            ids = [c.id for c, _ in found]
            intents: dict[int, set[str]] = defaultdict(set)
            counts: Counter[int] = Counter()
            for conversation_id, intent, n in session.exec(
                select(Message.conversation_id, Message.intent, func.count())
                .where(Message.conversation_id.in_(ids))
                .group_by(Message.conversation_id, Message.intent)
            ).all():
                counts[conversation_id] += n
                if intent:
                    intents[conversation_id].add(intent)
        yield [
            [
                c.id,
                c.channel,
                c.contact_id,
                contact_name or None,
                as_utc(c.opened_at),
                c.state,
                c.escalated_at is not None,
                seconds_between(c.opened_at, c.first_response_at),
                seconds_between(c.opened_at, c.resolved_at),
                " ".join(sorted(intents[c.id])),
                counts[c.id],
                c.csat,
                _outcome(c),
            ]
            for c, contact_name in found
        ]
        after = found[-1][0].id
        if len(found) < batch_size:
            return


def iter_conversation_rows(
    engine: Engine, filters: LogFilters, *, batch_size: int = EXPORT_BATCH_SIZE
) -> Iterator[list[list[Any]]]:
    """The filtered conversations, oldest first, as CSV rows in `CONVERSATION_COLUMNS` order, per batch."""
    return _as_csv(iter_conversation_records(engine, filters, batch_size=batch_size))


# --- Parquet export ------------------------------------------------------------------------------------


class _Chunks:
    """A write-only file for pyarrow that hands over what was written since the last `take()` (so a
    Parquet file streams out row group by row group) while `tell()` keeps counting from the start."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


def parquet_schema(columns: Iterable[str], types: dict[str, str]):
    """The Arrow schema of an export: each column typed by `types` (int, float, bool, text, time = UTC)."""
    import pyarrow as pa

    arrow = {
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "text": pa.string(),
        "time": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([pa.field(name, arrow[types[name]]) for name in columns])


def parquet_chunks(
    columns: Iterable[str], types: dict[str, str], batches: Iterable[list[list[Any]]]
) -> Iterator[bytes]:
    """A Parquet file (zstd) of typed rows, as bytes streamed one row group per batch; the footer last.

    Text is stored as it is (no formula guard: a warehouse runs nothing); no value is a null.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = list(columns)
    schema = parquet_schema(columns, types)
    sink = _Chunks()
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for batch in batches:
            table = pa.Table.from_arrays(
                [pa.array([row[i] for row in batch], type=schema.field(i).type) for i in range(len(columns))],
                schema=schema,
            )
            writer.write_table(table)
            yield sink.take()
    yield sink.take()


def record_export(
    engine: Engine,
    *,
    kind: str,
    filters: LogFilters,
    staff_id: int | None,
    via: str,
    who: str | None = None,
    file_format: str = "csv",
) -> None:
    """Write the AuditEvent for an export (before it streams, so an aborted download is audited too)."""
    with session_scope(engine) as session:
        audit(
            session,
            f"export.{kind}",
            "export",
            actor_kind="staff" if staff_id is not None else "operator",
            actor_id=staff_id,
            details={
                "filters": filters.describe(),
                "via": via,
                "format": file_format,
                **({"who": who} if who else {}),
            },
        )
