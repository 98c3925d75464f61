"""The response log as Parquet for warehouses: the CSV export's columns, rows and filters, typed (UTC
timestamps, numbers, booleans, nulls), streamed row group by row group, audited, over the API (bearer token)
and `socialbot export --out x.parquet`.

Each Parquet file is read back with pyarrow and compared, cell by cell, with the CSV export of the same
scripted history and filters."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import AuditEvent, Conversation, Message
from bot.insights.response_log import (
    CONVERSATION_COLUMNS,
    MESSAGE_COLUMNS,
    MESSAGE_TYPES,
    LogFilters,
    csv_row,
    iter_message_records,
    parquet_chunks,
    safe_cell,
)
from tests import test_insights
from tests.test_insights import INJECTION, add_staff, csrf_of, read_csv

# The scripted customers of test_insights and a marketer with an API token, as fixtures here too.
traffic = test_insights.traffic
marketer = test_insights.marketer

PARQUET_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "text": pa.string(),
    "time": pa.timestamp("us", tz="UTC"),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def as_csv_cells(table: pa.Table) -> list[dict[str, str]]:
    """The Parquet rows written as the CSV export writes cells (text, formula guard), for comparing."""
    rows = []
    for record in table.to_pylist():
        cells = csv_row(list(record.values()))
        rows.append({name: str(safe_cell(cell)) for name, cell in zip(record, cells, strict=True)})
    return rows


def rate_a_conversation(runtime, conversation_id: int) -> None:
    with session_scope(runtime.engine) as session:
        conversation = session.get(Conversation, conversation_id)
        conversation.csat = 4
        session.add(conversation)


def test_the_parquet_export_has_the_csv_columns_rows_and_filters_typed(client, runtime, traffic, marketer):
    staff_id, token = marketer
    rate_a_conversation(runtime, traffic["web-ana-session"])
    for kind, columns in (("messages", MESSAGE_COLUMNS), ("conversations", CONVERSATION_COLUMNS)):
        for filters in ({}, {"sentiment": "negative"}, {"intent": "complaint", "channel": "webchat"}):
            parquet = client.post(f"/api/v1/export/{kind}.parquet", params=filters, headers=bearer(token))
            assert parquet.status_code == 200, parquet.text
            assert parquet.headers["content-type"] == "application/vnd.apache.parquet"
            assert f"{kind}-" in parquet.headers["content-disposition"]
            assert parquet.headers["content-disposition"].endswith('.parquet"')
            table = pq.read_table(io.BytesIO(parquet.content))
            csv_text = client.post(f"/api/v1/export/{kind}.csv", params=filters, headers=bearer(token)).text
            expected = read_csv(csv_text)
            assert table.column_names == list(columns)
            assert table.num_rows == len(expected) > 0, (kind, filters)
            assert as_csv_cells(table) == expected, (kind, filters)

    messages = pq.read_table(
        io.BytesIO(client.post("/api/v1/export/messages.parquet", headers=bearer(token)).content)
    )
    schema = {field.name: field.type for field in messages.schema}
    assert schema["created_at"] == pa.timestamp("us", tz="UTC")
    assert schema["message_id"] == pa.int64() and schema["abusive"] == pa.bool_()
    assert schema["intent_confidence"] == schema["response_seconds"] == pa.float64()
    assert schema == {name: PARQUET_TYPES[kind] for name, kind in MESSAGE_TYPES.items()}
    rows = messages.to_pylist()
    with Session(runtime.engine) as session:
        stored = session.exec(select(Message).order_by(Message.id)).all()
    assert [r["message_id"] for r in rows] == [m.id for m in stored]
    for row, message in zip(rows, stored, strict=True):
        assert isinstance(row["created_at"], datetime) and row["created_at"].utcoffset() == timedelta(0)
        created = message.created_at if message.created_at.tzinfo else message.created_at.replace(tzinfo=UTC)
        assert row["created_at"] == created
    # A warehouse runs no formula: the text is stored as the customer wrote it.
    assert INJECTION in [r["text"] for r in rows]
    customer = [r for r in rows if r["author"] == "customer"]
    assert all(isinstance(r["abusive"], bool) for r in customer)
    assert all(r["staff"] is None for r in customer)  # no value is a null, not ""

    conversations = pq.read_table(
        io.BytesIO(client.post("/api/v1/export/conversations.parquet", headers=bearer(token)).content)
    ).to_pylist()
    by_id = {r["conversation_id"]: r for r in conversations}
    ben, ana = by_id[traffic["web-ben-session"]], by_id[traffic["web-ana-session"]]
    assert ben["escalated"] is True and ben["outcome"] == "with staff" and ben["csat"] is None
    assert ana["escalated"] is False and ana["csat"] == 4 and isinstance(ana["messages"], int)
    assert isinstance(ana["opened_at"], datetime) and isinstance(ana["first_response_seconds"], float)

    with Session(runtime.engine) as session:
        audits = session.exec(
            select(AuditEvent).where(AuditEvent.action.startswith("export.")).order_by(AuditEvent.id)
        ).all()
    parquet_audits = [a for a in audits if a.details["format"] == "parquet"]
    assert len(parquet_audits) == 8 and {a.details["format"] for a in audits} == {"csv", "parquet"}
    assert all((a.actor_kind, a.actor_id, a.details["via"]) == ("staff", staff_id, "api") for a in audits)
    assert parquet_audits[1].action == "export.messages"
    assert parquet_audits[1].details["filters"] == {"sentiment": "negative"}


def test_the_parquet_export_streams_one_row_group_per_batch(runtime, traffic):
    count = len(next(iter_message_records(runtime.engine, LogFilters(), batch_size=10_000)))
    chunks = list(
        parquet_chunks(
            MESSAGE_COLUMNS,
            MESSAGE_TYPES,
            iter_message_records(runtime.engine, LogFilters(), batch_size=3),
        )
    )
    assert len(chunks) >= count // 3 + 1 and all(chunks[:-1])  # bytes go out while later batches are read
    data = b"".join(chunks)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == -(-count // 3)
    assert pq.read_table(io.BytesIO(data)).num_rows == count


def test_an_empty_parquet_export_is_a_valid_file_with_the_columns(client, traffic, marketer):
    _, token = marketer
    empty = client.post(
        "/api/v1/export/messages.parquet", params={"channel": "telegram"}, headers=bearer(token)
    )
    table = pq.read_table(io.BytesIO(empty.content))
    assert table.num_rows == 0 and table.column_names == list(MESSAGE_COLUMNS)
    assert table.schema.field("created_at").type == pa.timestamp("us", tz="UTC")


def test_agents_and_strangers_get_no_parquet_and_nothing_is_audited(client, runtime, traffic):
    _, agent_token = add_staff(runtime, "al@fernhill.example", "agent")
    assert client.post("/api/v1/export/messages.parquet").status_code == 401
    assert client.post("/api/v1/export/messages.parquet", headers=bearer(agent_token)).status_code == 403
    _, token = add_staff(runtime, "mo@fernhill.example", "marketer")
    assert client.post("/api/v1/export/people.parquet", headers=bearer(token)).status_code == 404
    bad = client.post("/api/v1/export/messages.parquet", params={"since": "soon"}, headers=bearer(token))
    assert bad.status_code == 422 and "since: expected YYYY-MM-DD" in bad.text
    with Session(runtime.engine) as session:
        assert session.exec(select(AuditEvent).where(AuditEvent.action.startswith("export."))).all() == []


def test_the_export_command_writes_parquet_like_its_csv_and_is_audited(tmp_path, make_settings):
    from bot.crm.db import create_db_engine, upgrade_database
    from tests.test_insights import insert_volume

    settings = make_settings()
    upgrade_database(settings.database_url)
    engine = create_db_engine(settings.database_url)

    insert_volume(SimpleNamespace(engine=engine), 12)
    engine.dispose()
    env = {**os.environ, "SOCIALBOT_DATA__DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}

    def export(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "bot", "export", *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )

    since = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    for kind in ("messages", "conversations"):
        parquet, csv_file = tmp_path / f"{kind}.parquet", tmp_path / f"{kind}.csv"
        made = export(kind, "--since", since, "--out", str(parquet))
        assert made.returncode == 0, made.stderr
        assert export(kind, "--since", since, "--out", str(csv_file)).returncode == 0
        table = pq.read_table(parquet)
        assert as_csv_cells(table) == read_csv(csv_file.read_text(encoding="utf-8"))
        assert table.num_rows == (12 if kind == "messages" else 1)
    explicit = export("messages", "--format", "parquet", "--out", str(tmp_path / "data.bin"))
    assert explicit.returncode == 0 and pq.read_table(tmp_path / "data.bin").num_rows == 12
    wrong = export("messages", "--format", "xlsx", "--out", str(tmp_path / "x.xlsx"))
    assert (
        wrong.returncode == 2
        and wrong.stderr.strip() == "socialbot: --format: expected csv or parquet, got 'xlsx'"
    )

    engine = create_db_engine(settings.database_url)
    with Session(engine) as session:
        audits = session.exec(select(AuditEvent).where(AuditEvent.action.startswith("export."))).all()
    engine.dispose()
    assert [(a.action, a.actor_kind, a.details["via"], a.details["format"]) for a in audits] == [
        ("export.messages", "operator", "cli", "parquet"),
        ("export.messages", "operator", "cli", "csv"),
        ("export.conversations", "operator", "cli", "parquet"),
        ("export.conversations", "operator", "cli", "csv"),
        ("export.messages", "operator", "cli", "parquet"),
    ]


def test_the_console_exports_parquet_with_the_page_filters_and_the_csrf_token(
    client, runtime, traffic, marketer
):
    staff_id, _ = marketer
    page = client.get("/console/log", params={"sentiment": "negative"}).text
    link = (
        re.search(r'action="(/console/export/messages.parquet\?[^"]+)"', page).group(1).replace("&amp;", "&")
    )
    assert "Export messages (Parquet)" in page and "Export conversations (Parquet)" in page
    assert client.get(link).status_code == 405  # an export is audited: never on a GET
    assert client.post(link, data={"csrf": "forged"}).status_code == 403
    response = client.post(link, data={"csrf": csrf_of(page)})
    assert response.status_code == 200
    rows = pq.read_table(io.BytesIO(response.content)).to_pylist()
    with Session(runtime.engine) as session:
        negative = session.exec(
            select(Message.id).where(Message.sentiment == "negative").order_by(Message.id)
        ).all()
        audits = session.exec(select(AuditEvent).where(AuditEvent.action.startswith("export."))).all()
    assert [r["message_id"] for r in rows] == list(negative) and negative
    assert [(a.actor_id, a.details) for a in audits] == [
        (staff_id, {"filters": {"sentiment": "negative"}, "via": "console", "format": "parquet"})
    ]
