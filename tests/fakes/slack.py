"""A fake Slack: the few Web API methods socialbot calls, and Events API deliveries signed like Slack's.

Web API (https://docs.slack.dev/reference/methods): `auth.test`, `chat.postMessage`, `chat.update`,
`chat.postEphemeral`, `conversations.replies`, `conversations.history` and `apps.connections.open`, served
under `/api/` with Slack's envelope (`{"ok": true, ...}` or `{"ok": false, "error": "..."}`, HTTP 200 either
way; a rate limit is HTTP 429 with `Retry-After`). Posted messages are kept per channel, so the bot's replies
can be read back the way Slack returns them (message metadata only with `include_all_metadata`).

Socket Mode (https://docs.slack.dev/apis/events-api/using-socket-mode): `apps.connections.open` with the app
token answers with the URL of a WebSocket on loopback that says `hello` and keeps the connection open.

Events API (https://docs.slack.dev/apis/events-api): `event_callback` envelopes and the `v0` request
signature (`v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}` with the signing secret). Interactivity
(https://docs.slack.dev/reference/interaction-payloads/block_actions-payload): a `block_actions` payload,
posted form-encoded as `payload=<json>` and signed the same way.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from tests.fakes.server import FakeResponse, FakeServer, RecordedRequest

__all__ = [
    "BOT_ID",
    "BOT_USER_ID",
    "Ephemeral",
    "FakeSlack",
    "PostedMessage",
    "block_actions",
    "event_callback",
    "signed_headers",
]

TEAM_ID = "T0FERNHILL"
BOT_USER_ID = "U0SOCIALBOT"
BOT_ID = "B0SOCIALBOT"


@dataclass
class PostedMessage:
    channel: str
    ts: str
    text: str
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    user: str = BOT_USER_ID
    bot_id: str | None = BOT_ID
    blocks: list[dict[str, Any]] | None = None
    edits: int = 0  # how many times chat.update changed it

    def as_slack(self, *, with_metadata: bool) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "message", "user": self.user, "text": self.text, "ts": self.ts}
        if self.bot_id:
            message["bot_id"] = self.bot_id
        if self.thread_ts:
            message["thread_ts"] = self.thread_ts
        if self.blocks:
            message["blocks"] = self.blocks
        if with_metadata and self.metadata:
            message["metadata"] = self.metadata
        return message

    def buttons(self) -> dict[str, dict[str, Any]]:
        """The message's buttons by `action_id`."""
        return {
            element["action_id"]: element
            for block in self.blocks or []
            if block.get("type") == "actions"
            for element in block.get("elements", [])
        }

    def mrkdwn(self) -> str:
        """Every mrkdwn text in the blocks, one per line (what a person reads, still escaped)."""
        texts = []
        for block in self.blocks or []:
            if isinstance(block.get("text"), dict):
                texts.append(block["text"].get("text", ""))
            texts += [e.get("text", "") for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
        return "\n".join(texts)


@dataclass
class Ephemeral:
    """A message shown to one person only (`chat.postEphemeral`)."""

    channel: str
    user: str
    text: str
    thread_ts: str | None = None


@dataclass
class FakeSlack:
    """A Slack workspace on loopback. `api_base_url` is what the bot's `slack.api_base_url` should be."""

    bot_token: str = "xoxb-fake-token"
    app_token: str = "xapp-fake-token"
    server: FakeServer = field(default_factory=FakeServer)
    messages: list[PostedMessage] = field(default_factory=list)
    #: Channels `chat.postMessage` answers with the given error (e.g. {"C0GONE": "channel_not_found"}).
    refused_channels: dict[str, str] = field(default_factory=dict)
    ephemerals: list[Ephemeral] = field(default_factory=list)
    #: Seconds `chat.postMessage` takes (a slow Slack, to let workers race).
    post_delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self.server.route("POST", "/api/auth.test", self._auth_test)
        self.server.route("POST", "/api/chat.postMessage", self._post_message)
        self.server.route("POST", "/api/chat.update", self._update)
        self.server.route("POST", "/api/chat.postEphemeral", self._post_ephemeral)
        for method in ("GET", "POST"):
            self.server.route(method, "/api/conversations.replies", self._replies)
            self.server.route(method, "/api/conversations.history", self._history)
        self.server.route("POST", "/api/apps.connections.open", self._open_connection)
        self._socket_server: Server | None = None
        #: Socket Mode connections opened so far.
        self.socket_connections = 0

    def __enter__(self) -> FakeSlack:
        self.server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._socket_server is not None:
            self._socket_server.shutdown()
        self.server.stop()

    @property
    def api_base_url(self) -> str:
        return f"{self.server.base_url}/api/"

    def posted(self) -> list[RecordedRequest]:
        """Every `chat.postMessage` request received (including refused ones)."""
        return self.server.calls("/api/chat.postMessage")

    def bot_replies(self) -> list[PostedMessage]:
        """The messages the bot did post."""
        return [message for message in self.messages if message.user == BOT_USER_ID]

    def in_channel(self, channel: str) -> list[PostedMessage]:
        """The top-level messages of `channel`, oldest first."""
        with self._lock:
            return [m for m in self.messages if m.channel == channel and not m.thread_ts]

    def next_ts(self) -> str:
        with self._lock:
            return f"{int(time.time())}.{next(self._ts):06d}"

    # Web API methods

    def _authorized(self, request: RecordedRequest, token: str) -> bool:
        return request.headers.get("authorization") == f"Bearer {token}"

    def _auth_test(self, request: RecordedRequest) -> FakeResponse:
        if not self._authorized(request, self.bot_token):
            return FakeResponse(200, {"ok": False, "error": "invalid_auth"})
        return FakeResponse(
            200,
            {
                "ok": True,
                "url": "https://fernhill.slack.com/",
                "team": "Fernhill Outdoor",
                "user": "socialbot",
                "team_id": TEAM_ID,
                "user_id": BOT_USER_ID,
                "bot_id": BOT_ID,
                "is_enterprise_install": False,
            },
        )

    def _post_message(self, request: RecordedRequest) -> FakeResponse:
        if not self._authorized(request, self.bot_token):
            return FakeResponse(200, {"ok": False, "error": "invalid_auth"})
        if self.post_delay_seconds:
            time.sleep(self.post_delay_seconds)
        params = request.params
        channel, text = params.get("channel"), params.get("text")
        if not channel:
            return FakeResponse(200, {"ok": False, "error": "channel_not_found"})
        if channel in self.refused_channels:
            return FakeResponse(200, {"ok": False, "error": self.refused_channels[channel]})
        if not text:
            return FakeResponse(200, {"ok": False, "error": "no_text"})
        message = PostedMessage(
            channel=channel,
            ts=self.next_ts(),
            text=text,
            thread_ts=params.get("thread_ts") or None,
            metadata=_json_param(params.get("metadata")),
            blocks=_json_param(params.get("blocks")),
        )
        with self._lock:
            self.messages.append(message)
        return FakeResponse(
            200,
            {
                "ok": True,
                "channel": channel,
                "ts": message.ts,
                "message": message.as_slack(with_metadata=True),
            },
        )

    def _update(self, request: RecordedRequest) -> FakeResponse:
        if not self._authorized(request, self.bot_token):
            return FakeResponse(200, {"ok": False, "error": "invalid_auth"})
        params = request.params
        channel, ts = params.get("channel"), params.get("ts")
        with self._lock:
            found = [m for m in self.messages if m.channel == channel and m.ts == ts]
            if not found:
                return FakeResponse(200, {"ok": False, "error": "message_not_found"})
            message = found[0]
            if message.user != BOT_USER_ID:
                return FakeResponse(200, {"ok": False, "error": "cant_update_message"})
            if params.get("text"):
                message.text = params["text"]
            if params.get("blocks") is not None:
                message.blocks = _json_param(params["blocks"])
            if params.get("metadata") is not None:
                message.metadata = _json_param(params["metadata"])
            message.edits += 1
        return FakeResponse(200, {"ok": True, "channel": channel, "ts": ts, "text": message.text})

    def _post_ephemeral(self, request: RecordedRequest) -> FakeResponse:
        if not self._authorized(request, self.bot_token):
            return FakeResponse(200, {"ok": False, "error": "invalid_auth"})
        params = request.params
        if not params.get("channel") or not params.get("user"):
            return FakeResponse(200, {"ok": False, "error": "invalid_arguments"})
        if not params.get("text"):
            return FakeResponse(200, {"ok": False, "error": "no_text"})
        with self._lock:
            self.ephemerals.append(
                Ephemeral(params["channel"], params["user"], params["text"], params.get("thread_ts") or None)
            )
        return FakeResponse(200, {"ok": True, "message_ts": self.next_ts()})

    def _replies(self, request: RecordedRequest) -> FakeResponse:
        params = request.params
        channel, ts = params.get("channel"), params.get("ts")
        if not channel or not ts:
            return FakeResponse(200, {"ok": False, "error": "invalid_arguments"})
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        thread = [m for m in self.messages if m.channel == channel and (m.ts == ts or m.thread_ts == ts)]
        return FakeResponse(
            200,
            {
                "ok": True,
                "messages": [m.as_slack(with_metadata=with_metadata) for m in thread],
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            },
        )

    def _history(self, request: RecordedRequest) -> FakeResponse:
        params = request.params
        with_metadata = str(params.get("include_all_metadata")).lower() in ("1", "true")
        top_level = [m for m in self.messages if m.channel == params.get("channel") and not m.thread_ts]
        return FakeResponse(
            200,
            {
                "ok": True,
                "messages": [m.as_slack(with_metadata=with_metadata) for m in reversed(top_level)],
                "has_more": False,
                "response_metadata": {"next_cursor": ""},
            },
        )

    def _open_connection(self, request: RecordedRequest) -> FakeResponse:
        if not self._authorized(request, self.app_token):
            return FakeResponse(200, {"ok": False, "error": "invalid_auth"})
        with self._lock:
            if self._socket_server is None:
                self._socket_server = serve(self._socket_session, "127.0.0.1", 0)
                threading.Thread(target=self._socket_server.serve_forever, daemon=True).start()
            port = self._socket_server.socket.getsockname()[1]
        return FakeResponse(200, {"ok": True, "url": f"ws://127.0.0.1:{port}/link"})

    def _socket_session(self, connection: ServerConnection) -> None:
        """One Socket Mode connection: Slack's `hello`, then whatever the client sends is read and dropped."""
        with self._lock:
            self.socket_connections += 1
        connection.send(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {}}))
        try:
            for _ in connection:
                pass
        except ConnectionClosed:
            pass


def _json_param(value: Any) -> Any:
    """A structured parameter, sent as JSON text in a form or as a value in a JSON body."""
    return json.loads(value) if isinstance(value, str) else value


# Events API


def event_callback(event: dict[str, Any], *, event_id: str = "Ev0001") -> dict[str, Any]:
    """The envelope Slack posts to the Request URL for one event."""
    return {
        "token": "deprecated-verification-token",
        "team_id": TEAM_ID,
        "api_app_id": "A0SOCIALBOT",
        "event": event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
    }


def block_actions(
    message: PostedMessage, action_id: str, *, user: str, trigger_id: str = "13345224609.738474920.8088930"
) -> bytes:
    """The form body Slack posts to the Request URL when `user` clicks the button `action_id` of `message`."""
    button = message.buttons()[action_id]
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "fernhill"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0SOCIALBOT",
        "token": "deprecated-verification-token",
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "trigger_id": trigger_id,
        "channel": {"id": message.channel, "name": "support"},
        "message": message.as_slack(with_metadata=False),
        "response_url": "https://hooks.slack.com/actions/T0FERNHILL/1/abc",
        "actions": [
            {
                "action_id": action_id,
                "block_id": next(
                    block.get("block_id", "")
                    for block in message.blocks or []
                    if button in block.get("elements", [])
                ),
                "text": button["text"],
                "value": button.get("value", ""),
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def signed_headers(body: bytes, signing_secret: str, *, timestamp: int | None = None) -> dict[str, str]:
    """The headers Slack sends with `body`: its timestamp and the v0 signature over both."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    base = b"v0:" + str(timestamp).encode() + b":" + body
    signature = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    form = body.startswith(b"payload=")
    return {
        "content-type": "application/x-www-form-urlencoded" if form else "application/json",
        "x-slack-request-timestamp": str(timestamp),
        "x-slack-signature": signature,
    }
