"""Outgoing webhooks: integrations (a helpdesk, a CRM, a warehouse) hear what happens, signed and retried.

Events are recorded in the same transaction as the change they describe: `capture_webhook_events` installs a
SQLAlchemy `after_flush` hook that sees new inbound messages, sent replies, escalations, resolutions, ideas,
ladder changes and sent follow-ups, and writes one `WebhookEvent` plus one `WebhookDelivery` per subscribed,
active endpoint. Nothing in the pipeline waits for a receiver: the scheduler's `deliver_webhooks` job claims
due deliveries (on PostgreSQL with `FOR UPDATE SKIP LOCKED`) and POSTs them with a short timeout.

Delivery is at least once: a receiver deduplicates on the event id (`X-Socialbot-Event-Id`). Each request is
signed: `X-Socialbot-Signature: sha256=HMAC_SHA256(secret, f"{timestamp}.{body}")` with the
`X-Socialbot-Timestamp` header's value. A non-2xx answer or a timeout is retried with exponential backoff; an
endpoint failing `disable_after_failures` times in a row is disabled until an admin enables it again.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, delete, event, insert, inspect, or_, select, update
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

from bot import __version__
from bot.crm.db import session_scope
from bot.crm.models import (
    AuditEvent,
    AuthorKind,
    ComplaintSpike,
    Direction,
    FollowUp,
    Idea,
    LadderChange,
    Message,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from bot.delivery.outbound_http import (
    AddressNotAllowed,
    AddressPolicy,
    NameNotResolved,
    PinnedTransport,
    Resolver,
    default_port,
    system_resolver,
)
from bot.delivery.outbox import backoff_seconds
from bot.runtime.settings import Settings, WebhooksSettings

__all__ = [
    "EVENT_TYPES",
    "MESSAGE_COLUMNS",
    "DeliveryReport",
    "WebhookError",
    "add_endpoint",
    "address_policy",
    "capture_webhook_events",
    "deliver_webhooks",
    "ladder_change_event",
    "list_deliveries",
    "list_endpoints",
    "message_data",
    "payload",
    "record_events",
    "remove_endpoint",
    "set_endpoint_active",
    "sign",
    "validate_url",
    "verify_signature",
]

log = logging.getLogger("socialbot.webhooks")

#: Every event type an endpoint can subscribe to.
EVENT_TYPES: tuple[str, ...] = (
    "message.received",
    "message.sent",
    "conversation.escalated",
    "conversation.resolved",
    "idea.created",
    "contact.ladder_changed",
    "followup.sent",
    "complaints.spike",
)

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


class WebhookError(Exception):
    """An endpoint can't be registered or found; the message says why."""


# Registering endpoints


def validate_url(url: str, settings: Settings, *, resolve: Resolver = system_resolver) -> str:
    """Check that `url` may receive webhooks and return it stripped.

    A host that does not resolve yet is accepted: every delivery checks it again.

    Args:
        resolve: how host names are resolved (tests pass their own).

    Raises:
        WebhookError: not http(s), no host, credentials in it, a host that is or resolves to an address
            that is not public (`bot.delivery.outbound_http`), or this server itself (its `[server]
            public_url`, or a loopback address on its port): a loop of events.
    """
    url = url.strip()
    try:
        parsed = httpx.URL(url)
        port = default_port(parsed)
    except (httpx.InvalidURL, ValueError):
        raise WebhookError(f"{url!r} is not a valid URL") from None
    if parsed.scheme not in ("http", "https"):
        raise WebhookError(f"{url!r} is not an http:// or https:// URL")
    if not parsed.host:
        raise WebhookError(f"{url!r} has no host")
    if parsed.userinfo:
        raise WebhookError("the URL must not carry a user or password; receivers check the signature instead")
    host, server = parsed.host.lower(), settings.server
    public = httpx.URL(server.public_url)
    if host == public.host.lower() and port == default_port(public):
        raise WebhookError(f"{url!r} points at this server itself ([server] public_url {server.public_url})")
    if _is_local(host) and port == server.port:
        raise WebhookError(f"{url!r} points at this server itself (a local address on port {server.port})")
    try:
        address_policy(settings.webhooks).check(host, port, resolve)
    except NameNotResolved:
        log.info("webhook host %s does not resolve yet; each delivery checks it", host)
    except AddressNotAllowed as error:
        raise WebhookError(f"{url!r}: {error}") from None
    return url


def address_policy(settings: WebhooksSettings) -> AddressPolicy:
    """Where deliveries may connect: public addresses and `[webhooks] allowed_networks`."""
    return AddressPolicy.allowing(settings.allowed_networks)


def _is_local(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def add_endpoint(
    session: Session,
    url: str,
    events: list[str],
    *,
    settings: Settings,
    secret: str | None = None,
    resolve: Resolver = system_resolver,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its signing secret (generated unless given).

    Args:
        events: event types from `EVENT_TYPES` ("*" for all of them).
        settings: the server's address (no loops) and which networks receivers may be on.
        secret: the signing secret (at least 16 characters); None generates one.
        resolve: how host names are resolved (tests pass their own).

    Raises:
        WebhookError: the URL is refused (`validate_url`), an event type is unknown, or the secret is short.
    """
    url = validate_url(url, settings, resolve=resolve)
    if "*" in events:
        events = list(EVENT_TYPES)
    unknown = sorted({name.strip() for name in events if name.strip()} - set(EVENT_TYPES))
    if unknown:
        raise WebhookError(f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    chosen = [name for name in EVENT_TYPES if name in {e.strip() for e in events}]
    if not chosen:
        raise WebhookError(f"choose at least one event type: {', '.join(EVENT_TYPES)}")
    if secret is None:
        secret = "whsec_" + secrets.token_urlsafe(32)
    elif len(secret.strip()) < 16:
        raise WebhookError("the secret must be at least 16 characters")
    endpoint = WebhookEndpoint(url=url, secret=secret.strip(), events=chosen)
    session.add(endpoint)
    session.flush()
    log.info("webhook endpoint %s added for %s", endpoint.id, ", ".join(chosen))
    return endpoint, endpoint.secret


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every registered endpoint, oldest first."""
    return list(session.exec(select(WebhookEndpoint).order_by(WebhookEndpoint.id)).scalars())


def _endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookError(f"webhook endpoint {endpoint_id} does not exist")
    return endpoint


def remove_endpoint(session: Session, endpoint_id: int) -> None:
    """Delete an endpoint and its delivery log.

    Raises:
        WebhookError: no such endpoint.
    """
    endpoint = _endpoint(session, endpoint_id)
    session.exec(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)


def set_endpoint_active(session: Session, endpoint_id: int, active: bool) -> WebhookEndpoint:
    """Enable (its failure count starts again) or disable an endpoint.

    Raises:
        WebhookError: no such endpoint.
    """
    endpoint = _endpoint(session, endpoint_id)
    endpoint.active = active
    endpoint.disabled_reason = None if active else "disabled by an admin"
    if active:
        endpoint.consecutive_failures = 0
    session.add(endpoint)
    return endpoint


@dataclass(frozen=True, slots=True)
class DeliveryLogEntry:
    """One line of the delivery log admins see."""

    id: int
    endpoint_id: int
    url: str
    event_id: str
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    delivered_at: datetime | None


def list_deliveries(
    session: Session, *, endpoint_id: int | None = None, limit: int = 50
) -> list[DeliveryLogEntry]:
    """The newest deliveries first (optionally of one endpoint)."""
    query = (
        select(WebhookDelivery, WebhookEvent.type, WebhookEndpoint.url)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return [
        DeliveryLogEntry(
            d.id,
            d.endpoint_id,
            url,
            d.event_id,
            event_type,
            d.status,
            d.attempts,
            d.last_status_code,
            d.last_error,
            d.created_at,
            d.next_attempt_at,
            d.delivered_at,
        )
        for d, event_type, url in session.exec(query).all()
    ]


# Signatures


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Socialbot-Signature` value: "sha256=" + hex HMAC-SHA256 of f"{timestamp}.{body}"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_seconds: float = 300
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent (no replays)."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_seconds and hmac.compare_digest(sign(secret, timestamp, body), signature)


# Capturing events in the transaction of the change


def capture_webhook_events() -> None:
    """Record webhook events from every ORM flush in this process (idempotent; build_runtime calls it)."""
    if not event.contains(OrmSession, "after_flush", _after_flush):
        event.listen(OrmSession, "after_flush", _after_flush)


def _changed(obj: object, attribute: str) -> bool:
    return inspect(obj).attrs[attribute].history.has_changes()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _events_in(session: OrmSession) -> Iterator[tuple[str, dict[str, Any]]]:
    for obj in session.new:
        if (
            isinstance(obj, Message)
            and obj.direction == Direction.INBOUND
            and obj.author_kind == AuthorKind.CUSTOMER
        ):
            yield "message.received", _message_data(obj)
        elif isinstance(obj, Message) and obj.direction == Direction.OUTBOUND and obj.status == "sent":
            yield "message.sent", _message_data(obj)  # sent as it was stored (web chat: outbox.enqueue)
        elif isinstance(obj, Idea):
            yield (
                "idea.created",
                {
                    "idea_id": obj.id,
                    "message_id": obj.message_id,
                    "contact_id": obj.contact_id,
                    "text": obj.text,
                },
            )
        elif isinstance(obj, ComplaintSpike):
            yield (
                "complaints.spike",
                {
                    "spike_id": obj.id,
                    "day": obj.day,
                    "topic": obj.label,
                    "words": list(obj.words),
                    "article_id": obj.article_id,
                    "complaints_today": obj.today,
                    "daily_average": obj.daily_average,
                    "message_ids": list(obj.message_ids),
                    "text": obj.text,
                },
            )
        elif isinstance(obj, LadderChange):
            yield ladder_change_event(obj)
        elif isinstance(obj, AuditEvent) and obj.action in (
            "conversation.escalated",
            "conversation.resolved",
        ):
            details = dict(obj.details or {})
            yield (
                obj.action,
                {
                    "conversation_id": obj.subject_id,
                    "by": obj.actor_kind,
                    "staff_id": obj.actor_id,
                    "from_state": details.get("from"),
                    **({"reason": details["reason"]} if "reason" in details else {}),
                    **({"message_id": details["message_id"]} if details.get("message_id") else {}),
                },
            )
    for obj in session.dirty:
        if (
            isinstance(obj, Message)
            and obj.direction == Direction.OUTBOUND
            and obj.status == "sent"
            and _changed(obj, "status")
        ):
            yield "message.sent", _message_data(obj)
        elif isinstance(obj, FollowUp) and obj.status == "sent" and _changed(obj, "status"):
            yield (
                "followup.sent",
                {
                    "followup_id": obj.id,
                    "conversation_id": obj.conversation_id,
                    "contact_id": obj.contact_id,
                    "channel": obj.channel,
                    "template": obj.template,
                    "message_id": obj.message_id,
                    "sent_at": _iso(obj.sent_at),
                },
            )


#: The columns of a message an event carries (`message_data`).
MESSAGE_COLUMNS = (
    "id",
    "conversation_id",
    "contact_id",
    "channel",
    "direction",
    "author_kind",
    "staff_id",
    "text",
    "public",
    "reply_to_id",
    "created_at",
)


def message_data(values: Mapping[str, Any]) -> dict[str, Any]:
    """A message event's data from the message's `MESSAGE_COLUMNS` (a row written without the ORM)."""
    return {
        "message_id": values["id"],
        "conversation_id": values["conversation_id"],
        "contact_id": values["contact_id"],
        "channel": values["channel"],
        "direction": values["direction"],
        "author": values["author_kind"],
        "staff_id": values["staff_id"],
        "text": values["text"],
        "public": values["public"],
        "reply_to_id": values["reply_to_id"],
        "created_at": _iso(values["created_at"]),
    }


def ladder_change_event(change: LadderChange) -> tuple[str, dict[str, Any]]:
    """The `contact.ladder_changed` event of a change (`update_ladder` writes it without the ORM)."""
    return (
        "contact.ladder_changed",
        {
            "contact_id": change.contact_id,
            "from_stage": change.from_stage,
            "to_stage": change.to_stage,
            "reason": change.reason,
            "message_id": change.message_id,
        },
    )


def _message_data(message: Message) -> dict[str, Any]:
    return message_data({column: getattr(message, column) for column in MESSAGE_COLUMNS})


_ready_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _tables_exist(connection: Connection) -> bool:
    """False on a database not yet migrated to 0005e (tests of older revisions): nothing to record into."""
    if connection.engine in _ready_engines:
        return True
    if inspect(connection).has_table(WebhookEndpoint.__tablename__):
        _ready_engines.add(connection.engine)
        return True
    return False


def _after_flush(session: OrmSession, _flush_context: object) -> None:
    if any(isinstance(obj, WebhookEndpoint) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.connection().info.pop(_SUBSCRIPTIONS, None)  # read them again in this transaction
    found = list(_events_in(session))
    if found:
        record_events(session.connection(), found)


_SUBSCRIBED = select(WebhookEndpoint.id, WebhookEndpoint.events).where(WebhookEndpoint.active.is_(True))
#: Where a connection keeps the endpoints it read, with the transaction they were read in.
_SUBSCRIPTIONS = "socialbot.webhook_subscriptions"


def _subscribed(connection: Connection) -> Sequence[tuple[int, list[str] | None]]:
    """The active endpoints and their events, read once per transaction (the message path records events
    when it stores a message and again for its ladder change or escalation)."""
    transaction = connection.get_transaction()
    kept = connection.info.get(_SUBSCRIPTIONS)
    if kept is not None and transaction is not None and kept[0] is transaction:
        return kept[1]
    subscribed = connection.execute(_SUBSCRIBED).all()
    if transaction is not None:
        connection.info[_SUBSCRIPTIONS] = (transaction, subscribed)
    return subscribed


def record_events(connection: Connection, found: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Record events (type, data) in `connection`'s transaction, one delivery per subscribed active endpoint.

    The ORM's flushes record theirs by themselves (`capture_webhook_events`); a change written with a plain
    SQL statement (the pipeline's storing of a message) records its events with this."""
    if not _tables_exist(connection):
        return
    subscribed = _subscribed(connection)
    if not subscribed:
        return
    now = utcnow()
    for event_type, data in found:
        targets = [endpoint_id for endpoint_id, types in subscribed if event_type in (types or ())]
        if not targets:
            continue
        event_id = "evt_" + secrets.token_hex(12)
        connection.execute(
            insert(WebhookEvent.__table__).values(id=event_id, type=event_type, created_at=now, data=data)
        )
        connection.execute(
            insert(WebhookDelivery.__table__),
            [
                {
                    "event_id": event_id,
                    "endpoint_id": endpoint_id,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for endpoint_id in targets
            ],
        )


# Delivering


@dataclass
class DeliveryReport:
    """What one run of `deliver_webhooks` did (delivery ids)."""

    delivered: list[int] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    disabled_endpoints: list[int] = field(default_factory=list)


def payload(event: WebhookEvent) -> bytes:
    """The JSON body of a delivery: {id, type, created_at, data}."""
    document = {"id": event.id, "type": event.type, "created_at": _iso(event.created_at), "data": event.data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _claim(engine: Engine, now: datetime, limit: int, hold_seconds: float) -> list[int]:
    with session_scope(engine) as session:
        query = (
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(
                WebhookDelivery.status == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
                WebhookEndpoint.active.is_(True),
            )
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
        if engine.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=WebhookDelivery)
        ids = list(session.exec(query).scalars())
        if ids:
            session.exec(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(claimed_until=now + timedelta(seconds=hold_seconds))
            )
    return ids


def deliver_webhooks(
    engine: Engine,
    settings: WebhooksSettings,
    *,
    now: datetime | None = None,
    limit: int = 50,
    resolve: Resolver = system_resolver,
) -> DeliveryReport:
    """POST the due deliveries to their endpoints (the scheduler's job); safe to run in several workers.

    Each request connects only to the address its host resolved to and passed `address_policy`, resolved
    once per request (a name re-pointed inside after registration, or between check and connect, is
    refused). After an endpoint fails once in a run, its other deliveries wait for the next run (a dead
    receiver costs one timeout per run, not one per event).

    Args:
        now: the time to consider (tests); None for now.
        resolve: how host names are resolved (tests pass their own).
    """
    now = now or utcnow()
    report = DeliveryReport()
    ids = _claim(engine, now, limit, hold_seconds=settings.timeout_seconds * 2 + 30)
    if not ids:
        return report
    failed_endpoints: set[int] = set()
    transport = PinnedTransport(address_policy(settings), resolve=resolve)
    # No proxies from the environment: the connection must go to the checked address.
    with httpx.Client(
        timeout=settings.timeout_seconds, transport=transport, follow_redirects=False, trust_env=False
    ) as client:
        for delivery_id in ids:
            with session_scope(engine) as session:
                delivery = session.get(WebhookDelivery, delivery_id)
                endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
                if endpoint.id in failed_endpoints or not endpoint.active:
                    delivery.claimed_until = None
                    session.add(delivery)
                    continue
                body = payload(session.get(WebhookEvent, delivery.event_id))
                url, secret, event_id = endpoint.url, endpoint.secret, delivery.event_id
            status_code, error = _post(client, url, secret, event_id, body)
            ok = status_code is not None and 200 <= status_code < 300
            if not ok:
                failed_endpoints.add(endpoint.id)
            _record(engine, delivery_id, ok, status_code, error, settings, report)
    return report


def _post(
    client: httpx.Client, url: str, secret: str, event_id: str, body: bytes
) -> tuple[int | None, str | None]:
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"socialbot-webhooks/{__version__}",
        "X-Socialbot-Event-Id": event_id,
        "X-Socialbot-Timestamp": timestamp,
        "X-Socialbot-Signature": sign(secret, timestamp, body),
    }
    try:
        response = client.post(url, content=body, headers=headers)
    except (AddressNotAllowed, NameNotResolved, httpx.HTTPError) as error:
        return None, _error_class(error)
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}"


def _error_class(error: Exception) -> str:
    """What went wrong, in a few fixed words: the log never carries a socket's own message (which would
    tell an admin which internal ports are open)."""
    if isinstance(error, AddressNotAllowed):
        return "address not allowed"
    if isinstance(error, NameNotResolved):
        return "name does not resolve"
    if isinstance(error, httpx.TimeoutException):
        return "timed out"
    if isinstance(error, httpx.ProtocolError | httpx.DecodingError | httpx.TooManyRedirects):
        return "invalid response"
    return "connection failed"


def _record(
    engine: Engine,
    delivery_id: int,
    ok: bool,
    status_code: int | None,
    error: str | None,
    settings: WebhooksSettings,
    report: DeliveryReport,
) -> None:
    now = utcnow()
    with session_scope(engine) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        delivery.attempts += 1
        delivery.claimed_until = None
        delivery.last_status_code, delivery.last_error = status_code, error
        if ok:
            delivery.status, delivery.delivered_at = DELIVERED, now
            endpoint.consecutive_failures = 0
            report.delivered.append(delivery_id)
        else:
            endpoint.consecutive_failures += 1
            if delivery.attempts >= settings.max_attempts:
                delivery.status = FAILED
                report.failed.append(delivery_id)
            else:
                delay = backoff_seconds(
                    delivery.attempts, base=settings.backoff_base_seconds, cap=settings.backoff_cap_seconds
                )
                delivery.next_attempt_at = now + timedelta(seconds=delay)
                report.retried.append(delivery_id)
            log.info("webhook delivery %s to endpoint %s failed: %s", delivery_id, endpoint.id, error)
            if endpoint.active and endpoint.consecutive_failures >= settings.disable_after_failures:
                endpoint.active = False
                failures = endpoint.consecutive_failures
                endpoint.disabled_reason = f"disabled after {failures} failures in a row (last: {error})"
                report.disabled_endpoints.append(endpoint.id)
                log.warning("webhook endpoint %s disabled: %s", endpoint.id, endpoint.disabled_reason)
        session.add_all([delivery, endpoint])
