"""Slack: the Events API (or Socket Mode) in through a slack-bolt `App`, replies out with `chat.postMessage`.

In: app mentions, direct messages, and messages in the channels the bot is in that name one of the brand's
keywords. Out: a reply in the customer's thread (in a direct message, in the conversation itself). The bot's
own messages, other bots' messages and message subtypes (edits, deletions, joins) are acknowledged and
dropped. The same Slack message can arrive twice (as `app_mention` and as `message`, or as a retry with
`X-Slack-Retry-Num`): its id is `channel:ts`, so the store keeps one.

Bolt verifies the signing secret (a bad or stale signature gets 401), answers `url_verification`, and runs
the listener inside the request (`process_before_response`): the listener only hands the message to the
sink, which stores it, so Slack's 200 goes out after the message is safe and well within its 3 seconds.

Retries belong to the outbox: the Web API client has no retry handlers, so `send` never sleeps; a rate limit
or a 5xx becomes a `TemporarySendError` (with Slack's `Retry-After`) and the outbox tries again later.

The support channel (optional) is where staff work, never customer intake: the bot posts escalations there
(`post_escalation`, kept current with `update_escalation`) with Block Kit buttons **Take** and **Resolve**;
a click arrives as a signed `block_actions` payload at the same URL and becomes a neutral call of the
`staff_actions` callback, and a staff member's reply in a post's thread becomes a call of `staff_replies`.
When a callback answers with a notice (an unlinked Slack account, say), the person who clicked or wrote sees
it privately (`chat.postEphemeral`). The adapter knows nothing of staff accounts or conversations' states.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from channels.base import (
    Author,
    ChannelError,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentSendError,
    TemporarySendError,
    WebhookChannel,
    WebhookResponse,
)

__all__ = [
    "ESCALATION_EVENT_TYPE",
    "REPLY_EVENT_TYPE",
    "EscalationCard",
    "SlackChannel",
    "StaffActionSink",
    "StaffReplySink",
    "SupportThreadReply",
]

log = logging.getLogger("socialbot.channels.slack")

#: The `metadata.event_type` on every message the bot posts; its payload carries the outbox's idempotency
#: key, so `find_sent` can recognise a reply that was posted but not recorded.
REPLY_EVENT_TYPE = "socialbot_reply"
#: The `metadata.event_type` of an escalation posted to the support channel (payload: its `key`).
ESCALATION_EVENT_TYPE = "socialbot_escalation"

#: The buttons on an escalation post; the action's value is the conversation id.
TAKE_ACTION = "support_take"
RESOLVE_ACTION = "support_resolve"
OPEN_ACTION = "support_open"  # the link to the console: Slack reports the click, there is nothing to do

# Slack refuses a section text over 3000 characters; the customer's message is cut well below that.
_CARD_TEXT_LIMIT = 2500


@dataclass(frozen=True, slots=True)
class EscalationCard:
    """What a support-channel post about one escalated conversation shows (plain, untrusted text: the
    adapter escapes it).

    Args:
        conversation_id: the conversation; the buttons carry it back in `staff_actions`.
        key: unique per post, kept in the post's metadata so `find_escalation` can recognise it.
        channel: the customer's channel (telegram, twitter, ...).
        customer: the customer's name or handle.
        reason: why the bot escalated.
        text: the customer's message.
        status: who has the thread now, as a sentence ("Waiting for someone to take it", "Taken by Ana").
        open: whether staff can still act (Take / Resolve buttons shown).
        console_url: the conversation's page in the staff console.
        latest: the customer's latest message, when they wrote again after `text` ("" if not).
    """

    conversation_id: int
    key: str
    channel: str
    customer: str
    reason: str
    text: str
    status: str
    open: bool
    console_url: str
    latest: str = ""


@dataclass(frozen=True, slots=True)
class SupportThreadReply:
    """A person's message in the thread of an escalation post.

    Args:
        support_channel: the support channel's id.
        post_ts: the `ts` of the escalation post (the thread).
        slack_user_id: who wrote it.
        text: the message as plain text (Slack's mrkdwn escapes and link syntax undone).
        ts: the message's own `ts` (unique in the channel: an idempotency key).
    """

    support_channel: str
    post_ts: str
    slack_user_id: str
    text: str
    ts: str


#: A click on Take or Resolve: (action "take" | "resolve", conversation id, Slack user id) -> a notice to show
#: that person privately, or None.
StaffActionSink = Callable[[str, int, str], "str | None"]
#: A reply in an escalation's thread -> a notice to show its author privately, or None.
StaffReplySink = Callable[[SupportThreadReply], "str | None"]

# Subtypes that are still a person writing something new; every other subtype (message_changed,
# message_deleted, channel_join, bot_message, ...) is not a message to answer.
_USER_SUBTYPES = frozenset({"file_share", "thread_broadcast"})

# Web API errors worth trying again; any other error means the request itself can't succeed.
_TEMPORARY_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

# How far back `find_sent` looks in a conversation for a reply posted before an interruption.
_FIND_SENT_PAGES = 5
_FIND_SENT_PAGE_SIZE = 200


class SlackChannel(WebhookChannel):
    """The Slack adapter: a Bolt app for events in, a Web API client for replies out.

    Args:
        bot_token: the bot token (`xoxb-...`) used for every Web API call.
        signing_secret: the app's signing secret; deliveries to `webhook_path` must be signed with it.
            May be None in Socket Mode, in which case the webhook answers 404.
        app_token: the app-level token (`xapp-...`) that opens the Socket Mode connection.
        socket_mode: receive events over a WebSocket opened by `start()` instead of at `webhook_path`.
        api_base_url: Slack's Web API base (`https://slack.com/api/`), or a local fake in tests.
        keywords: words that make a channel message about the brand (matched case-insensitively as whole
            words); mentions and direct messages are taken whatever they say.
        sink: where every accepted message goes; it stores the message before it returns.
        timeout_seconds: how long one Web API call may take.
        support_channel: the channel id (C...) where escalations are posted; its messages are never taken
            as customers' messages. Empty: no support channel.
        staff_actions: called for a click on an escalation's Take or Resolve button.
        staff_replies: called for a person's message in an escalation's thread.

    Raises:
        ChannelError: the bot token is missing.
    """

    name = "slack"
    webhook_path = "/slack/events"

    def __init__(
        self,
        *,
        bot_token: str | None,
        signing_secret: str | None,
        app_token: str | None = None,
        socket_mode: bool = False,
        api_base_url: str = "https://slack.com/api/",
        keywords: Iterable[str] = (),
        sink: InboundSink,
        timeout_seconds: int = 10,
        support_channel: str = "",
        staff_actions: StaffActionSink | None = None,
        staff_replies: StaffReplySink | None = None,
    ) -> None:
        if not bot_token:
            raise ChannelError("slack: a bot token (xoxb-...) is required")
        self.signing_secret = signing_secret
        self.app_token = app_token
        self.socket_mode = socket_mode
        self.sink = sink
        self.support_channel = support_channel
        self.staff_actions = staff_actions
        self.staff_replies = staff_replies
        self._keyword_pattern = _keyword_pattern(keywords)
        # No retry handlers: the outbox retries with backoff, so a call never sleeps inside `send`.
        self.client = WebClient(
            token=bot_token, base_url=api_base_url, timeout=timeout_seconds, retry_handlers=[]
        )
        self._identity: SlackResponse | None = None
        self._identity_lock = threading.Lock()
        self._socket_handler: Any = None
        # Idempotency keys whose last attempt may have reached Slack unrecorded: `send` looks before posting.
        self._unconfirmed: set[str] = set()
        self._notices: list[threading.Thread] = []
        self._notices_lock = threading.Lock()
        self.app = App(
            # Bolt's own client has no token: each request's client gets it from `_authorize`.
            client=WebClient(base_url=api_base_url, timeout=timeout_seconds, retry_handlers=[]),
            signing_secret=signing_secret or "",
            # A lambda, not the bound method: Bolt injects arguments by parameter name and trips on `self`.
            authorize=lambda: self._authorize(),
            process_before_response=True,
            # Every HTTP delivery is checked against the signing secret, whatever the mode (Bolt does not
            # check Socket Mode deliveries: the WebSocket authenticated them).
            request_verification_enabled=True,
            logger=log,
        )
        self.app.event(re.compile(".*"))(self._on_event)
        self.app.action(re.compile(f"^(?:{TAKE_ACTION}|{RESOLVE_ACTION})$"))(self._on_staff_action)
        self.app.action(OPEN_ACTION)(lambda ack: ack())

    # Inbound

    @property
    def receives_webhooks(self) -> bool:
        """Events come to `webhook_path` (Events API, signed) only, never in Socket Mode."""
        return not self.socket_mode and bool(self.signing_secret)

    def handle_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookResponse:
        """Verify one Events API delivery, store the message it carries, and say what to answer Slack.

        Malformed bodies get 400, bad or stale signatures 401 (from Bolt), events that are not for the
        bot 200 with nothing stored, and a failure to store 500 (so Slack delivers again). In Socket Mode, or
        without a signing secret, nothing is taken over HTTP (404).
        """
        if not self.receives_webhooks:
            return WebhookResponse(404, json.dumps({"error": "the Slack Events API is not configured"}))
        try:
            text = body.decode("utf-8")
            if headers.get("content-type", "").startswith("application/json") or text.startswith("{"):
                _check_envelope(json.loads(text))
            request = BoltRequest(body=text, headers=dict(headers))
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            log.warning("slack webhook: malformed delivery refused: %s", error)
            return WebhookResponse(400, json.dumps({"error": f"malformed delivery: {error}"}))
        response = self.app.dispatch(request)
        return WebhookResponse(
            status=response.status,
            body=response.body,
            headers={key: values[0] for key, values in response.headers.items() if values},
        )

    def _authorize(self) -> AuthorizeResult:
        """Who the bot is (for Bolt to drop the bot's own events), from `auth.test` on first need, cached.

        Raising anything but `SlackApiError` makes Bolt answer 500, so Slack delivers the event again
        instead of it being acknowledged and lost.
        """
        try:
            identity = self._bot_identity()
        except SlackApiError as error:
            raise ChannelError(f"slack: auth.test failed: {_error_code(error)}") from error
        return AuthorizeResult.from_auth_test_response(
            auth_test_response=identity, bot_token=self.client.token
        )

    def _bot_identity(self) -> SlackResponse:
        with self._identity_lock:
            if self._identity is None:
                self._identity = self.client.auth_test()
            return self._identity

    def _on_event(self, event: dict[str, Any], context: Any) -> None:
        if self.support_channel and event.get("channel") == self.support_channel:
            self._on_support_channel_event(event, bot_user_id=context.bot_user_id)
            return
        inbound = self._to_inbound(event, bot_user_id=context.bot_user_id)
        if inbound is not None:
            self.sink(inbound)

    def _to_inbound(self, event: dict[str, Any], *, bot_user_id: str | None) -> InboundMessage | None:
        """The message in `event`, or None when it is not one for the bot (logged at debug level)."""
        kind, subtype = event.get("type"), event.get("subtype")
        channel_type = event.get("channel_type")
        if kind not in ("app_mention", "message"):
            return _ignored(event, "not a message event")
        if subtype is not None and subtype not in _USER_SUBTYPES:
            return _ignored(event, f"subtype {subtype}")
        if event.get("bot_id") or event.get("bot_profile"):
            return _ignored(event, "written by a bot")
        channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
        text = event.get("text") if isinstance(event.get("text"), str) else ""
        if not all(isinstance(value, str) and value for value in (channel, ts, user)):
            log.warning("slack: ignored a %s event without channel, ts or user", kind)
            return None
        if bot_user_id is not None and user == bot_user_id:
            return _ignored(event, "the bot's own message")
        direct = kind == "message" and channel_type == "im"
        if kind == "message" and not direct and not self._names_the_brand(text):
            return _ignored(event, "a channel message that does not name the brand")
        thread_ts = event.get("thread_ts")
        if isinstance(thread_ts, str) and thread_ts:
            thread_id = f"{channel}:{thread_ts}"
        elif direct:
            # A direct message is one conversation with the customer: the bot answers in it, not in threads.
            thread_id = channel
        else:
            thread_id = f"{channel}:{ts}"
        profile = event.get("user_profile") if isinstance(event.get("user_profile"), dict) else {}
        return InboundMessage(
            channel=self.name,
            external_id=f"{channel}:{ts}",
            thread_id=thread_id,
            author=Author(
                external_id=user,
                handle=profile.get("name"),
                display_name=profile.get("display_name") or profile.get("real_name") or None,
            ),
            text=_without_mention(text, bot_user_id),
            public=channel_type != "im",
            received_at=_ts_to_datetime(ts),
            raw=event,
        )

    # The support channel

    def _on_staff_action(self, ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        """A click on Take or Resolve: acknowledged at once, handed to `staff_actions` (a quick database
        change), and its notice, if any, shown to the clicker alone."""
        ack()
        user = (body.get("user") or {}).get("id")
        channel = (body.get("channel") or {}).get("id")
        verb = str(action.get("action_id", "")).removeprefix("support_")
        try:
            conversation_id = int(action.get("value", ""))
        except (TypeError, ValueError):
            log.warning("slack: ignored a %s click without a conversation id", verb)
            return
        if self.staff_actions is None or not isinstance(user, str):
            log.warning("slack: ignored a %s click (no support desk, or no user)", verb)
            return
        notice = self.staff_actions(verb, conversation_id, user)
        if notice and isinstance(channel, str):
            self._tell(channel, user, notice)

    def _on_support_channel_event(self, event: dict[str, Any], *, bot_user_id: str | None) -> None:
        """A message in the support channel: a reply in an escalation's thread goes to `staff_replies`;
        anything else (staff talking among themselves, the bot's own posts) is left alone."""
        if event.get("type") != "message" or event.get("bot_id") or event.get("bot_profile"):
            return
        subtype = event.get("subtype")
        if subtype is not None and subtype not in _USER_SUBTYPES:
            return
        user, ts, thread_ts = event.get("user"), event.get("ts"), event.get("thread_ts")
        if not all(isinstance(value, str) and value for value in (user, ts, thread_ts)) or thread_ts == ts:
            return
        if user == bot_user_id or self.staff_replies is None:
            return
        text = event.get("text") if isinstance(event.get("text"), str) else ""
        reply = SupportThreadReply(
            support_channel=self.support_channel,
            post_ts=thread_ts,
            slack_user_id=user,
            text=plain_text(text),
            ts=ts,
        )
        notice = self.staff_replies(reply)
        if notice:
            self._tell(self.support_channel, user, notice, thread_ts=thread_ts)

    def _tell(self, channel: str, user: str, text: str, *, thread_ts: str | None = None) -> None:
        """Show `text` to `user` alone (`chat.postEphemeral`) from a short-lived thread, so a slow Slack
        can't hold up the acknowledgement (Slack's 3 seconds; a late one makes Slack deliver the event
        again). A failure is logged, not raised: the click or message it answers has been handled."""
        thread = threading.Thread(
            target=self._post_notice,
            args=(channel, user, text, thread_ts),
            name="slack-notice",
            daemon=True,
        )
        with self._notices_lock:
            self._notices = [t for t in self._notices if t.is_alive()] + [thread]
        thread.start()

    def wait_for_notices(self, timeout: float = 10.0) -> None:
        """Wait until the private notices being posted are out (tests; `stop`)."""
        with self._notices_lock:
            pending = list(self._notices)
        for thread in pending:
            thread.join(timeout)

    def _post_notice(self, channel: str, user: str, text: str, thread_ts: str | None) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, thread_ts=thread_ts)
        except (SlackClientError, OSError, http.client.HTTPException) as error:
            log.warning("slack: could not show a notice to %s: %s", user, error)

    def post_escalation(self, card: EscalationCard) -> str:
        """Post an escalation to the support channel with Take / Resolve buttons; return the post's ts.

        Raises:
            TemporarySendError: rate limited, a 5xx, or no connection (try again; ask `find_escalation`
                first, the post may have gone out).
            PermanentSendError: Slack refused (channel_not_found, not_in_channel, invalid_auth, ...).
        """
        with _send_errors("chat.postMessage"):
            response = self.client.chat_postMessage(
                channel=self.support_channel,
                text=_card_fallback(card),
                blocks=_card_blocks(card),
                unfurl_links=False,
                metadata={"event_type": ESCALATION_EVENT_TYPE, "event_payload": {"key": card.key}},
            )
        return str(response["ts"])

    def post_alert(self, key: str, text: str) -> str:
        """Post an alert for staff (e.g. a complaint spike) to the support channel; return the post's ts.

        `text` is shown as written, with Slack's control characters escaped; `key` finds the post again with
        `find_escalation` after an interrupted attempt.

        Raises:
            TemporarySendError: rate limited, a 5xx, or no connection.
            PermanentSendError: Slack refused (channel_not_found, not_in_channel, invalid_auth, ...).
        """
        with _send_errors("chat.postMessage"):
            response = self.client.chat_postMessage(
                channel=self.support_channel,
                text=escape_mrkdwn(text),
                unfurl_links=False,
                metadata={"event_type": ESCALATION_EVENT_TYPE, "event_payload": {"key": key}},
            )
        return str(response["ts"])

    def update_escalation(self, ts: str, card: EscalationCard) -> None:
        """Show `card` in the escalation post `ts` (who has the thread now, which buttons remain).

        Raises:
            TemporarySendError: rate limited, a 5xx, or no connection.
            PermanentSendError: Slack refused (message_not_found, cant_update_message, ...).
        """
        with _send_errors("chat.update"):
            self.client.chat_update(
                channel=self.support_channel,
                ts=ts,
                text=_card_fallback(card),
                blocks=_card_blocks(card),
                metadata={"event_type": ESCALATION_EVENT_TYPE, "event_payload": {"key": card.key}},
            )

    def find_escalation(self, key: str) -> str | None:
        """The ts of an escalation post made with `key` (one whose posting was interrupted), else None.

        Raises:
            TemporarySendError: Slack could not be asked for now.
            PermanentSendError: Slack refuses to show the channel (e.g. a missing `channels:history` scope).
        """
        with _send_errors("find_escalation"):
            for posted in self._recent_messages(self.support_channel, None):
                metadata = posted.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if metadata.get("event_type") == ESCALATION_EVENT_TYPE and payload.get("key") == key:
                    return str(posted["ts"])
        return None

    def _names_the_brand(self, text: str) -> bool:
        return self._keyword_pattern is not None and self._keyword_pattern.search(text) is not None

    # Outbound

    def send(self, message: OutboundMessage) -> str:
        """Post `message` in its thread with `chat.postMessage`; return `channel:ts` of the posted message.

        If an earlier attempt with the same idempotency key failed in a way that may still have posted it
        (a 5xx, a dropped connection), or `find_sent` could not tell, the thread is searched first and an
        earlier post is returned instead of posting again.

        Raises:
            TemporarySendError: rate limited (with Slack's `Retry-After`), a 5xx, or no connection.
            PermanentSendError: Slack refused the request (channel_not_found, not_in_channel, is_archived,
                invalid_auth, ...).
        """
        key = message.idempotency_key
        if key and key in self._unconfirmed:
            earlier = self.find_sent(message)
            if earlier is not None:
                return earlier
        channel, thread_ts = _split_thread(message.thread_id)
        try:
            with _send_errors("chat.postMessage"):
                response = self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    text=message.text,
                    metadata={"event_type": REPLY_EVENT_TYPE, "event_payload": {"idempotency_key": key}},
                )
        except TemporarySendError as error:
            if key and _may_have_posted(error):
                self._unconfirmed.add(key)
            raise
        self._unconfirmed.discard(key)
        return f"{response.get('channel') or channel}:{response['ts']}"

    def find_sent(self, message: OutboundMessage) -> str | None:
        """Look in the thread (or, for a direct message, the conversation) for a reply the bot posted with
        `message`'s idempotency key; return its `channel:ts`, else None.

        When Slack refuses to show the conversation (a missing `*:history` scope, the bot was removed), the
        answer is None: sending again risks a duplicate, not asking would lose the reply.

        Raises:
            TemporarySendError: Slack could not be asked for now (rate limit, 5xx, no connection); the outbox
                tries again later, and the next `send` of this message asks again before posting.
        """
        key = message.idempotency_key
        if not key:
            return None
        channel, thread_ts = _split_thread(message.thread_id)
        try:
            with _send_errors("find_sent"):
                for posted in self._recent_messages(channel, thread_ts):
                    metadata = posted.get("metadata") or {}
                    payload = metadata.get("event_payload") or {}
                    if (
                        metadata.get("event_type") == REPLY_EVENT_TYPE
                        and payload.get("idempotency_key") == key
                    ):
                        self._unconfirmed.discard(key)
                        return f"{channel}:{posted['ts']}"
        except TemporarySendError:
            # The outbox forgets that this row may have been sent once this attempt is recorded as failed;
            # remember it here so the next `send` asks before posting.
            self._unconfirmed.add(key)
            raise
        except PermanentSendError as error:
            log.warning("slack: can't look for an earlier reply (%s); sending it again", error)
        self._unconfirmed.discard(key)
        return None

    def _recent_messages(self, channel: str, thread_ts: str | None) -> Iterator[dict[str, Any]]:
        cursor = None
        for _ in range(_FIND_SENT_PAGES):
            arguments = {
                "channel": channel,
                "include_all_metadata": True,
                "limit": _FIND_SENT_PAGE_SIZE,
                "cursor": cursor,
            }
            if thread_ts is not None:
                page = self.client.conversations_replies(ts=thread_ts, **arguments)
            else:
                page = self.client.conversations_history(**arguments)
            yield from page.get("messages") or []
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return

    # Identity and lifecycle

    def check(self) -> str:
        """Ask `auth.test` who the bot is.

        Raises:
            ChannelError: Slack can't be reached or refuses the token; the message has Slack's error code.
        """
        try:
            identity = self.client.auth_test()
        except SlackApiError as error:
            raise ChannelError(f"slack: auth.test failed: {_error_code(error)}") from error
        except (SlackClientError, OSError, http.client.HTTPException) as error:
            raise ChannelError(f"slack: can't reach {self.client.base_url}: {error}") from error
        return f"slack: team {identity.get('team')} as @{identity.get('user')} ({identity.get('user_id')})"

    def start(self) -> None:
        """Open the Socket Mode connection when `socket_mode` is on (the Events API needs nothing started).

        Raises:
            ChannelError: no app token, or Slack refused to open the connection.
        """
        if not self.socket_mode or self._socket_handler is not None:
            return
        if not self.app_token:
            raise ChannelError("slack: Socket Mode needs an app-level token (xapp-...)")
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        handler = SocketModeHandler(self.app, app_token=self.app_token, web_client=self.app.client)
        try:
            handler.connect()
        except SlackApiError as error:
            raise ChannelError(f"slack: Socket Mode connection refused: {_error_code(error)}") from error
        except (SlackClientError, OSError, http.client.HTTPException) as error:
            raise ChannelError(f"slack: Socket Mode connection failed: {error}") from error
        self._socket_handler = handler

    def stop(self) -> None:
        """Close the Socket Mode connection, if one is open, and let the last private notices go out."""
        handler, self._socket_handler = self._socket_handler, None
        if handler is not None:
            handler.close()
        self.wait_for_notices()


def _check_envelope(payload: object) -> None:
    """Refuse JSON that is not an Events API envelope Bolt can read (it expects objects all the way down)."""
    if not isinstance(payload, dict):
        raise ValueError("the body is not a JSON object")
    if payload.get("type") == "event_callback" and not isinstance(payload.get("event"), dict):
        raise ValueError("an event_callback without an event object")


def escape_mrkdwn(text: str) -> str:
    """`text` with Slack's control characters escaped, so it shows as typed: no mentions (`<!channel>`), no
    links (`<https://evil|x>`), no entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_SLACK_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def plain_text(text: str) -> str:
    """A Slack message's text as a person would read it: links as `label (url)`, mentions and channel
    references by their label, and `&amp;` / `&lt;` / `&gt;` undone."""

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith(("@", "#", "!")):
            return label or target.split("^")[0]
        target = target.removeprefix("mailto:")
        if label and label != target:
            return f"{label} ({target})"
        return target

    return _SLACK_LINK.sub(link, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _card_fallback(card: EscalationCard) -> str:
    """The post's plain `text` (notifications, clients without blocks)."""
    return escape_mrkdwn(f"Escalated ({card.channel}, {card.customer}): {card.reason}. {card.status}.")


def _quoted(text: str) -> str:
    """`text` escaped, cut to fit a section, as a mrkdwn block quote."""
    text = text if len(text) <= _CARD_TEXT_LIMIT else text[:_CARD_TEXT_LIMIT] + "…"
    return "\n".join(f">{line}" for line in escape_mrkdwn(text).splitlines() or [""])


def _card_blocks(card: EscalationCard) -> list[dict[str, Any]]:
    elements: list[dict[str, Any]] = []
    if card.open:
        elements += [
            {
                "type": "button",
                "action_id": TAKE_ACTION,
                "text": {"type": "plain_text", "text": "Take"},
                "value": str(card.conversation_id),
                "style": "primary",
            },
            {
                "type": "button",
                "action_id": RESOLVE_ACTION,
                "text": {"type": "plain_text", "text": "Resolve"},
                "value": str(card.conversation_id),
            },
        ]
    elements.append(
        {
            "type": "button",
            "action_id": OPEN_ACTION,
            "text": {"type": "plain_text", "text": "Open in console"},
            "url": card.console_url,
        }
    )
    heading = f"*Escalated on {escape_mrkdwn(card.channel)}* from {escape_mrkdwn(card.customer)}"
    latest = (
        [{"type": "section", "text": {"type": "mrkdwn", "text": "*Then wrote:*\n" + _quoted(card.latest)}}]
        if card.latest
        else []
    )
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": heading}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _quoted(card.text)}},
        *latest,
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"Reason: {escape_mrkdwn(card.reason)}"},
                {"type": "mrkdwn", "text": f"*{escape_mrkdwn(card.status)}*"},
            ],
        },
        {"type": "actions", "block_id": f"support:{card.conversation_id}", "elements": elements},
    ]


def _keyword_pattern(keywords: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({word.strip() for word in keywords if word and word.strip()}, key=len, reverse=True)
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def _without_mention(text: str, bot_user_id: str | None) -> str:
    """The text without the `<@BOT>` mention that addressed it (it says nothing about the question)."""
    if bot_user_id is None:
        return text
    return re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text).strip() or text


def _ts_to_datetime(ts: str) -> datetime:
    try:
        return datetime.fromtimestamp(float(ts), UTC)
    except (ValueError, OverflowError):
        return datetime.now(UTC)


def _split_thread(thread_id: str) -> tuple[str, str | None]:
    channel, _, thread_ts = thread_id.partition(":")
    return channel, thread_ts or None


def _ignored(event: Mapping[str, Any], reason: str) -> None:
    log.debug("slack: ignored %s event %s: %s", event.get("type"), event.get("ts") or "", reason)
    return None


def _error_code(error: SlackApiError) -> str:
    data = error.response.data if error.response is not None else None
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    return f"HTTP {error.response.status_code}" if error.response is not None else str(error)


@contextlib.contextmanager
def _send_errors(what: str) -> Iterator[None]:
    """Turn slack_sdk's exceptions into the outbox's temporary / permanent send errors."""
    try:
        yield
    except SlackApiError as error:
        code, status = _error_code(error), error.response.status_code
        if status == 429 or code == "ratelimited":
            raise TemporarySendError(
                f"slack {what}: rate limited", retry_after=_retry_after(error.response)
            ) from error
        if status >= 500 or code in _TEMPORARY_ERRORS:
            raise TemporarySendError(f"slack {what}: {code} (HTTP {status})") from error
        raise PermanentSendError(f"slack {what}: {code}") from error
    except (OSError, http.client.HTTPException) as error:
        raise TemporarySendError(f"slack {what}: connection failed: {error}") from error
    except SlackClientError as error:
        raise PermanentSendError(f"slack {what}: {error}") from error


def _may_have_posted(error: TemporarySendError) -> bool:
    """Whether the failed request may still have been carried out (anything but a rate limit may)."""
    cause = error.__cause__
    rate_limited = isinstance(cause, SlackApiError) and (
        cause.response.status_code == 429 or _error_code(cause) == "ratelimited"
    )
    return not rate_limited


def _retry_after(response: SlackResponse) -> float | None:
    headers = {key.lower(): value for key, value in (response.headers or {}).items()}
    value = headers.get("retry-after")
    if isinstance(value, list):
        value = value[0] if value else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
