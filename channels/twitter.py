"""X (Twitter): poll the brand account's mentions and reply to them, with tweepy's API v2 `Client`.

- Mentions of the brand (`GET /2/users/:id/mentions`) are polled every `poll_interval_seconds` from the
  persisted `since_id`, handed to the sink oldest first, and the cursor moves only after the whole batch is
  stored: a crash re-fetches (the store drops duplicates), a restart resumes and never re-answers.
- Brand listening (optional `keywords`): recent posts matching them (`GET /2/tweets/search/recent`) that do
  not address the brand are handed on as `InboundKind.LISTENED` - logged, never answered, because X only
  allows replies to posts that mention or quote the account. Matches that mention the brand arrive through
  the mentions poll instead.
- Replies go out with `POST /2/tweets` and `in_reply_to_tweet_id`, as the brand (OAuth 1.0a user context).
- A 429 pauses that endpoint until its `x-rate-limit-reset`; the poll thread sleeps on an event, so `stop()`
  is prompt, and the outbox gets the reset as `retry_after`.
"""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import tweepy
from requests.adapters import HTTPAdapter
from requests.utils import should_bypass_proxies

from channels.base import (
    Author,
    Channel,
    ChannelError,
    CursorStore,
    InboundKind,
    InboundMessage,
    InboundSink,
    OutboundMessage,
    PermanentSendError,
    TemporarySendError,
)

__all__ = ["TwitterChannel"]

log = logging.getLogger("socialbot.channels.twitter")

#: The host tweepy's `Client` prefixes to every route (fixed in tweepy; see `tweepy/client.py`).
X_API_HOST = "https://api.twitter.com"
MENTIONS_CURSOR = "twitter:mentions_since_id"
SEARCH_CURSOR = "twitter:search_since_id"
#: When the poller first ran, so the first poll answers only what was posted since (see `poll_once`).
FIRST_POLL_CURSOR = "twitter:first_poll_at"
#: Seconds a request may take before it is abandoned (tweepy sets no timeout of its own).
REQUEST_TIMEOUT_SECONDS = 30.0
#: Pages fetched per poll round (100 posts each); the mentions timeline serves at most 800 anyway.
MAX_PAGES = 10
#: How long to pause an endpoint after a 429 that didn't say when its window resets.
DEFAULT_RATE_LIMIT_PAUSE_SECONDS = 60.0
#: Recent search only reaches back 7 days; stay a little inside that.
SEARCH_WINDOW = timedelta(days=7) - timedelta(minutes=5)

_TWEET_FIELDS = ["conversation_id", "created_at", "author_id", "referenced_tweets", "entities"]
_USER_FIELDS = ["username", "name"]
_X_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_URL = re.compile(r"https?://\S+")
_LEADING_MENTIONS = re.compile(r"^(?:@\w+\s+)+")


class _ForwardingAdapter(HTTPAdapter):
    """A requests transport adapter for tweepy's session: sends `https://api.twitter.com/...` requests to
    `base_url` instead (tests, staging) and gives every request a timeout.

    `Session.mount(prefix, adapter)` is requests' documented extension point, so tweepy runs unmodified:
    it still builds `https://api.twitter.com` + route, signs that URL (OAuth 1.0a signatures are computed
    before the transport sees the request), and the adapter only changes where the bytes go.
    """

    def __init__(self, base_url: str | None, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/") if base_url else None
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if self.base_url and request.url and request.url.startswith(X_API_HOST):
            request.url = self.base_url + request.url[len(X_API_HOST) :]
            # Proxies were chosen for api.twitter.com; a loopback or internal base usually bypasses them.
            if should_bypass_proxies(request.url, no_proxy=None):
                kwargs["proxies"] = {}
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class _RedactSecrets(logging.Filter):
    """Blank our tokens out of tweepy's DEBUG log lines (they print request headers, bearer token too)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "[redacted]")
            record.msg, record.args = message, ()
        return True


_redact = _RedactSecrets()
logging.getLogger("tweepy.client").addFilter(_redact)


def _reset_time(error: tweepy.TooManyRequests) -> float | None:
    """The epoch second the rate-limit window resets, from the 429's `x-rate-limit-reset` header."""
    value = error.response.headers.get("x-rate-limit-reset") if error.response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _describe(error: Exception) -> str:
    """An error as a log line: status and the API's messages, never the request (it carries tokens)."""
    if isinstance(error, tweepy.HTTPException):
        messages = "; ".join(error.api_messages) or error.response.reason
        return f"HTTP {error.response.status_code}: {messages}"
    return f"{type(error).__name__}: {error}"


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _comparable(text: str) -> str:
    """Text as X stores it, made comparable with what we sent: entities unescaped, the reply's leading
    @mentions dropped, links reduced to a placeholder (X rewrites them to t.co)."""
    text = _LEADING_MENTIONS.sub("", html.unescape(text).strip())
    return " ".join(_URL.sub("<link>", text).split())


def _search_term(keyword: str) -> str:
    keyword = keyword.strip().replace('"', "")
    return f'"{keyword}"' if " " in keyword or not keyword.replace("@", "").isalnum() else keyword


class TwitterChannel(Channel):
    """The X adapter: a poller for mentions (and brand listening) and a sender of replies.

    Two tweepy clients, neither with `wait_on_rate_limit`: tweepy would then `time.sleep` until the reset
    inside the call, which would block the outbox worker (posting) and make `stop()` hang for up to 15
    minutes (reading). Instead a 429 pauses the endpoint and the poll thread waits on an event. Reading uses
    the app's bearer token; posting and `check` use the brand's OAuth 1.0a user context. Separate clients
    mean separate `requests` sessions for the poll thread and the outbox thread.

    Args:
        bearer_token: the app's bearer token (reading mentions and search).
        consumer_key, consumer_secret, access_token, access_token_secret: OAuth 1.0a keys of the brand
            account (posting replies).
        user_id: the brand account's numeric id; its mentions are polled and its own posts are ignored.
        keywords: brand-listening terms; empty turns listening off.
        poll_interval_seconds: seconds between poll rounds.
        api_base_url: X's API base; anything other than `https://api.twitter.com` (a fake, staging)
            receives the requests instead.
        sink: where every inbound post goes (stores it; False for a duplicate).
        cursors: where `since_id` and the first-poll time are kept across restarts.
        clock: the current epoch time (tests pass a fake one to step past rate-limit resets).
    """

    name = "twitter"

    def __init__(
        self,
        *,
        bearer_token: str | None,
        consumer_key: str | None,
        consumer_secret: str | None,
        access_token: str | None,
        access_token_secret: str | None,
        user_id: str,
        keywords: list[str],
        poll_interval_seconds: float,
        api_base_url: str,
        sink: InboundSink,
        cursors: CursorStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.user_id = str(user_id)
        self.keywords = [keyword for keyword in keywords if keyword.strip()]
        self.poll_interval_seconds = poll_interval_seconds
        self.sink = sink
        self.cursors = cursors
        self.clock = clock
        _redact.secrets.update(
            secret
            for secret in (bearer_token, consumer_key, consumer_secret, access_token, access_token_secret)
            if secret
        )
        forward_to = None if api_base_url.rstrip("/") == X_API_HOST else api_base_url
        self.reader = self._client(bearer_token, None, None, None, None, forward_to)
        self.poster = self._client(
            None, consumer_key, consumer_secret, access_token, access_token_secret, forward_to
        )
        self._paused_until: dict[str, float] = {}
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _client(
        bearer_token: str | None,
        consumer_key: str | None,
        consumer_secret: str | None,
        access_token: str | None,
        access_token_secret: str | None,
        forward_to: str | None,
    ) -> tweepy.Client:
        client = tweepy.Client(
            bearer_token=bearer_token,
            consumer_key=consumer_key,
            consumer_secret=consumer_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            return_type=dict,
            wait_on_rate_limit=False,
        )
        client.session.mount(X_API_HOST, _ForwardingAdapter(forward_to, REQUEST_TIMEOUT_SECONDS))
        return client

    # Polling

    def start(self) -> None:
        """Poll in a daemon thread until `stop()`; returns at once."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="twitter-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling; waits for a round in progress to finish."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_SECONDS * 2)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # the loop must outlive one bad round (the DB busy, a bug on odd input)
                log.exception("X poll round failed; trying again in %.0fs", self.poll_interval_seconds)
            self._stopping.wait(self.next_poll_delay())

    def next_poll_delay(self) -> float:
        """Seconds until the next round: the poll interval, or longer while every endpoint is rate limited."""
        endpoints = ["mentions", "search"] if self.keywords else ["mentions"]
        resume = min(self._paused_until.get(endpoint, 0.0) for endpoint in endpoints)
        return max(self.poll_interval_seconds, resume - self.clock())

    def poll_once(self) -> int:
        """One round: new mentions, then (with keywords) new listening matches, each handed to the sink.

        The first round ever (no `since_id` stored) answers only mentions posted since that round, never
        the account's backlog: its time is stored and used as `start_time` until the first mention gives a
        `since_id`. An endpoint that answered 429 is skipped until its reset; any other error is logged
        and the round goes on. Returns how many new messages the sink accepted.

        Raises:
            Exception: whatever the sink raises (the store is down); nothing is skipped, the cursor stays.
        """
        first_poll_at = self.cursors.get(FIRST_POLL_CURSOR)
        if first_poll_at is None:
            first_poll_at = datetime.fromtimestamp(self.clock(), UTC).strftime(_X_TIME_FORMAT)
            self.cursors.set(FIRST_POLL_CURSOR, first_poll_at)
        accepted = self._poll_endpoint("mentions", self._poll_mentions, first_poll_at)
        if self.keywords:
            accepted += self._poll_endpoint("search", self._poll_search, first_poll_at)
        return accepted

    def _poll_endpoint(self, endpoint: str, poll: Callable[[str], int], first_poll_at: str) -> int:
        if self.clock() < self._paused_until.get(endpoint, 0.0):
            return 0
        try:
            return poll(first_poll_at)
        except tweepy.TooManyRequests as error:
            reset = _reset_time(error)
            resume_at = reset + 1 if reset is not None else self.clock() + DEFAULT_RATE_LIMIT_PAUSE_SECONDS
            self._paused_until[endpoint] = resume_at
            log.warning("X %s rate limited; pausing %.0fs", endpoint, max(0.0, resume_at - self.clock()))
        except (tweepy.TweepyException, requests.RequestException) as error:
            log.error("X %s poll failed: %s", endpoint, _describe(error))
        return 0

    def _pages(self, fetch: Callable[..., dict], token_param: str, **params: Any) -> Iterator[dict]:
        token = None
        for _ in range(MAX_PAGES):
            page = fetch(**params, **({token_param: token} if token else {}))
            yield page
            token = (page.get("meta") or {}).get("next_token")
            if not token:
                return
        log.warning("X: more than %d pages of new posts; the oldest are skipped", MAX_PAGES)

    def _fetch_all(self, fetch: Callable[..., dict], token_param: str, **params: Any) -> list[dict]:
        """Every page of new posts, oldest first, each with its author (from `includes.users`) attached."""
        tweets: dict[str, dict] = {}
        users: dict[str, dict] = {}
        for page in self._pages(fetch, token_param, **params):
            for user in (page.get("includes") or {}).get("users", []):
                users[user["id"]] = user
            for tweet in page.get("data") or []:
                tweets[tweet["id"]] = tweet
        ordered = sorted(tweets.values(), key=lambda tweet: int(tweet["id"]))
        return [{**tweet, "_author": users.get(tweet.get("author_id", ""), {})} for tweet in ordered]

    def _since(self, cursor: str, first_poll_at: str, *, window: timedelta | None = None) -> dict[str, str]:
        since_id = self.cursors.get(cursor)
        if since_id:
            return {"since_id": since_id}
        start = _parse_time(first_poll_at)
        if window is not None:
            start = max(start, datetime.fromtimestamp(self.clock(), UTC) - window)
        return {"start_time": start.strftime(_X_TIME_FORMAT)}

    def _poll_mentions(self, first_poll_at: str) -> int:
        tweets = self._fetch_all(
            self.reader.get_users_mentions,
            "pagination_token",
            id=self.user_id,
            expansions=["author_id"],
            user_fields=_USER_FIELDS,
            tweet_fields=_TWEET_FIELDS,
            max_results=100,
            **self._since(MENTIONS_CURSOR, first_poll_at),
        )
        accepted = sum(
            self.sink(self._inbound(tweet, InboundKind.MESSAGE))
            for tweet in tweets
            if self._answerable(tweet)
        )
        if tweets:
            self.cursors.set(MENTIONS_CURSOR, tweets[-1]["id"])
        return accepted

    def _poll_search(self, first_poll_at: str) -> int:
        terms = " OR ".join(_search_term(keyword) for keyword in self.keywords)
        since = self._since(SEARCH_CURSOR, first_poll_at, window=SEARCH_WINDOW)
        try:
            tweets = self._fetch_all(
                self.reader.search_recent_tweets,
                "next_token",
                query=f"({terms}) -is:retweet -from:{self.user_id}",
                expansions=["author_id"],
                user_fields=_USER_FIELDS,
                tweet_fields=[*_TWEET_FIELDS, "in_reply_to_user_id"],
                max_results=100,
                **since,
            )
        except tweepy.BadRequest:
            if "since_id" in since:
                # Recent search refuses a since_id older than its 7-day window (listening was off or the
                # bot down that long): restart from the window's edge instead of failing every round.
                log.warning(
                    "X search refused since_id %s; listening resumes from 7 days ago", since["since_id"]
                )
                self.cursors.set(SEARCH_CURSOR, "")
            raise
        accepted = sum(
            self.sink(self._inbound(tweet, InboundKind.LISTENED))
            for tweet in tweets
            if tweet.get("author_id") != self.user_id and not self._addresses_brand(tweet)
        )
        if tweets:
            self.cursors.set(SEARCH_CURSOR, tweets[-1]["id"])
        return accepted

    def _answerable(self, tweet: dict) -> bool:
        """A mention we may answer: not the brand's own post, not a retweet of someone else's mention."""
        if tweet.get("author_id") == self.user_id:
            return False
        return not any(ref.get("type") == "retweeted" for ref in tweet.get("referenced_tweets") or [])

    def _addresses_brand(self, tweet: dict) -> bool:
        """Whether the post mentions or replies to the brand (then the mentions poll answers it)."""
        mentions = (tweet.get("entities") or {}).get("mentions") or []
        return tweet.get("in_reply_to_user_id") == self.user_id or any(
            mention.get("id") == self.user_id for mention in mentions
        )

    def _inbound(self, tweet: dict, kind: InboundKind) -> InboundMessage:
        author = tweet.pop("_author")
        return InboundMessage(
            channel=self.name,
            external_id=tweet["id"],
            thread_id=tweet.get("conversation_id") or tweet["id"],
            author=Author(
                external_id=tweet.get("author_id") or author.get("id", ""),
                handle=author.get("username"),
                display_name=author.get("name"),
            ),
            text=tweet.get("text", ""),
            public=True,
            received_at=_parse_time(tweet.get("created_at")),
            raw={"tweet": tweet, "author": author},
            kind=kind,
        )

    # Sending

    def send(self, message: OutboundMessage) -> str:
        """Post `message` as the brand, as a reply to `reply_to_external_id`; return the new post's id.

        Raises:
            TemporarySendError: 429 (with `retry_after` until the rate-limit reset), 5xx, network trouble.
            PermanentSendError: X refused the post (duplicate text, replying not allowed, the post to answer
                is gone, bad credentials).
        """
        try:
            response = self.poster.create_tweet(
                text=message.text, in_reply_to_tweet_id=message.reply_to_external_id, user_auth=True
            )
        except tweepy.TooManyRequests as error:
            reset = _reset_time(error)
            retry_after = max(0.0, reset - self.clock()) if reset is not None else None
            raise TemporarySendError(f"X rate limit: {_describe(error)}", retry_after=retry_after) from error
        except tweepy.TwitterServerError as error:
            raise TemporarySendError(f"X server error: {_describe(error)}") from error
        except requests.RequestException as error:
            raise TemporarySendError(f"X unreachable: {_describe(error)}") from error
        except tweepy.HTTPException as error:
            raise PermanentSendError(f"X refused the post: {_describe(error)}") from error
        return str(response["data"]["id"])

    def find_sent(self, message: OutboundMessage) -> str | None:
        """The id of a brand post that already answers `reply_to_external_id` with this text, if any.

        Reads the brand's posts newer than the post being answered (one request) and matches the replied-to
        id and the text (ignoring the @mention X adds and its t.co link rewriting).

        Raises:
            TemporarySendError: X couldn't be asked; the outbox tries again later rather than risk a double.
        """
        if not message.reply_to_external_id:
            return None
        try:
            response = self.reader.get_users_tweets(
                id=self.user_id,
                since_id=message.reply_to_external_id,
                tweet_fields=["referenced_tweets"],
                exclude=["retweets"],
                max_results=100,
            )
        except (tweepy.TweepyException, requests.RequestException) as error:
            raise TemporarySendError(
                f"X: could not check for an earlier reply: {_describe(error)}"
            ) from error
        wanted = _comparable(message.text)
        for tweet in response.get("data") or []:
            replied_to = {
                ref.get("id")
                for ref in tweet.get("referenced_tweets") or []
                if ref.get("type") == "replied_to"
            }
            if message.reply_to_external_id in replied_to and _comparable(tweet.get("text", "")) == wanted:
                return str(tweet["id"])
        return None

    def check(self) -> str:
        """Ask X who the posting credentials belong to; describe the account.

        Raises:
            ChannelError: X is unreachable, refuses the credentials, or they belong to another account than
                `user_id`.
        """
        try:
            me = self.poster.get_me(user_auth=True)["data"]
        except (tweepy.TweepyException, requests.RequestException) as error:
            raise ChannelError(f"twitter: get_me failed: {_describe(error)}") from error
        if str(me["id"]) != self.user_id:
            raise ChannelError(
                f"twitter: the access token belongs to @{me.get('username')} (id {me['id']}), "
                f"not to twitter.user_id {self.user_id}"
            )
        return f"@{me.get('username')} (id {me['id']})"
