"""A fake X API v2 for the few endpoints the X adapter uses, answering as the v2 reference documents.

- `GET /2/users/:id/mentions` and `GET /2/users/:id/tweets`: timelines newest first, `since_id` /
  `start_time` honoured, paged with `pagination_token` (`meta.next_token`).
- `GET /2/tweets/search/recent`: a small reading of the query (terms ORed in parentheses, `-is:retweet`,
  `-from:ID`), paged with `next_token`.
- `POST /2/tweets`: creates a post (201, `{"data": {"id", "text", "edit_history_tweet_ids"}}`).
- `GET /2/users/me`: the account the access token belongs to.

Posts are kept as the API returns them (string ids, ISO `created_at`); `expansions=author_id` adds
`includes.users`. Without `since_id` every post is served again, so a test can see the adapter send it.
"""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from oauthlib.oauth1.rfc5849 import signature as oauth_signature

from tests.fakes.server import FakeResponse, FakeServer, RecordedRequest

__all__ = ["FakeX"]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeX:
    """X's API on loopback. `mention(...)` and `post(...)` put posts on the timeline; `server` records calls.

    Args:
        brand_id, brand_username: the account the tokens belong to (whose mentions are served).
        page_size: the most posts per page, whatever `max_results` asks (X may return fewer), to test paging.
        consumer_secret, access_token_secret: the OAuth 1.0a secrets posts and `/2/users/me` must be signed
            with (a bad signature gets 401, as on X).
        refuse_duplicate_text: refuse a post whose text the brand posted before (403, as X does); off for a
            load test whose many customers get the same answer, so a reply sent twice shows as two posts.
    """

    def __init__(
        self,
        brand_id: str = "1000",
        brand_username: str = "fernhill",
        page_size: int = 100,
        consumer_secret: str = "consumer-secret",
        access_token_secret: str = "access-token-secret",
        refuse_duplicate_text: bool = True,
    ) -> None:
        self.refuse_duplicate_text = refuse_duplicate_text
        self.oauth_secrets = (consumer_secret, access_token_secret)
        self.brand = {"id": brand_id, "username": brand_username, "name": "Fernhill Outdoor"}
        self.users: dict[str, dict] = {brand_id: self.brand}
        self.tweets: list[dict] = []
        self.page_size = page_size
        self._posted_texts: set[str] = set()
        self._next_id = 1_800_000_000_000_000_000
        self._lock = threading.Lock()
        self.server = FakeServer()
        self.server.route("GET", "/2/users/*", self._users)
        self.server.route("GET", "/2/tweets/search/recent", self._search)
        self.server.route("POST", "/2/tweets", self._create)

    def __enter__(self) -> FakeX:
        self.server.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.base_url

    # Arranging the timeline

    def post(
        self,
        author_id: str,
        text: str,
        *,
        username: str | None = None,
        reply_to: dict | None = None,
        retweet_of: dict | None = None,
        created_at: str | None = None,
    ) -> dict:
        """Publish a post by `author_id` (registering the user) and return it as the API shows it."""
        with self._lock:  # requests arrive on many threads: the users table changes under a reader otherwise
            self._next_id += 1
            tweet_id = str(self._next_id)
            self.users.setdefault(
                author_id,
                {"id": author_id, "username": username or f"user{author_id}", "name": f"User {author_id}"},
            )
            users = list(self.users.values())
        mentions = [
            {"start": m.start(), "end": m.end(), "username": m.group(1), "id": user["id"]}
            for m in re.finditer(r"@(\w+)", text)
            for user in users
            if user["username"].lower() == m.group(1).lower()
        ]
        tweet: dict[str, Any] = {
            "id": tweet_id,
            "text": text,
            "author_id": author_id,
            "conversation_id": reply_to["conversation_id"] if reply_to else tweet_id,
            "created_at": created_at or _now_iso(),
            "edit_history_tweet_ids": [tweet_id],
        }
        if mentions:
            tweet["entities"] = {"mentions": mentions}
        if reply_to:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": reply_to["id"]}]
            tweet["in_reply_to_user_id"] = reply_to["author_id"]
        if retweet_of:
            tweet["referenced_tweets"] = [{"type": "retweeted", "id": retweet_of["id"]}]
        with self._lock:
            self.tweets.append(tweet)
        return tweet

    def mention(self, author_id: str, text: str, **kwargs: Any) -> dict:
        """A customer's post mentioning the brand."""
        assert f"@{self.brand['username']}" in text, "a mention names the brand"
        return self.post(author_id, text, **kwargs)

    def replies_by_brand(self) -> list[dict]:
        """The brand's posts created through `POST /2/tweets`."""
        return [t for t in self.tweets if t["author_id"] == self.brand["id"] and "referenced_tweets" in t]

    # Endpoints

    def _signed(self, request: RecordedRequest) -> bool:
        """Whether an OAuth 1.0a HMAC-SHA1 signature is valid for the public URL X would have seen
        (`https://api.twitter.com` + path: clients sign that, whatever host the bytes went to)."""
        header = request.headers.get("authorization", "")
        if not header.startswith("OAuth "):
            return False
        query = "&".join(f"{k}={v}" for k, values in request.query.items() for v in values)
        params = oauth_signature.collect_parameters(
            uri_query=query, headers={"Authorization": header}, exclude_oauth_signature=True
        )
        sent = dict(
            oauth_signature.collect_parameters(
                headers={"Authorization": header}, exclude_oauth_signature=False
            )
        )["oauth_signature"]
        base = oauth_signature.signature_base_string(
            request.method,
            oauth_signature.base_string_uri("https://api.twitter.com" + request.path),
            oauth_signature.normalize_parameters(params),
        )
        client_secret, resource_owner_secret = self.oauth_secrets
        keys = SimpleNamespace(client_secret=client_secret, resource_owner_secret=resource_owner_secret)
        return oauth_signature.sign_hmac_sha1_with_client(base, keys) == sent

    def _users(self, request: RecordedRequest) -> FakeResponse:
        parts = request.path.strip("/").split("/")  # 2, users, <id|me>, [mentions|tweets]
        if parts[2:] == ["me"]:
            if not self._signed(request):
                return FakeResponse(401, {"title": "Unauthorized", "status": 401})
            return FakeResponse(200, {"data": self.brand})
        if len(parts) == 4 and parts[3] == "mentions":
            user = self.users.get(parts[2], {})
            pattern = re.compile(rf"@{re.escape(user.get('username', '?'))}\b", re.IGNORECASE)
            return self._timeline(
                request, [t for t in self.tweets if pattern.search(t["text"])], "pagination_token"
            )
        if len(parts) == 4 and parts[3] == "tweets":
            return self._timeline(
                request, [t for t in self.tweets if t["author_id"] == parts[2]], "pagination_token"
            )
        return FakeResponse(404, {"title": "Not Found Error", "status": 404})

    def _search(self, request: RecordedRequest) -> FakeResponse:
        query = request.params["query"]
        terms = [term.strip('"').lower() for term in re.findall(r'"[^"]+"|[^\s()"]+', query.split(")")[0])]
        terms = [term for term in terms if term != "or"]
        excluded = re.findall(r"-from:(\S+)", query)
        no_retweets = "-is:retweet" in query
        matches = [
            t
            for t in self.tweets
            if any(term in t["text"].lower() for term in terms)
            and t["author_id"] not in excluded
            and not (no_retweets and any(r["type"] == "retweeted" for r in t.get("referenced_tweets", [])))
        ]
        return self._timeline(request, matches, "next_token")

    def _timeline(self, request: RecordedRequest, tweets: list[dict], token_param: str) -> FakeResponse:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return FakeResponse(401, {"title": "Unauthorized", "status": 401})
        params = request.params
        newest_first = sorted(tweets, key=lambda t: int(t["id"]), reverse=True)
        if "since_id" in params:
            newest_first = [t for t in newest_first if int(t["id"]) > int(params["since_id"])]
        if "start_time" in params:
            start = _parse(params["start_time"])
            newest_first = [t for t in newest_first if _parse(t["created_at"]) >= start]
        size = min(int(params.get("max_results", 10)), self.page_size)
        offset = int(params.get(token_param, 0))
        page = newest_first[offset : offset + size]
        fields = set(params.get("tweet.fields", "").split(",")) | {"id", "text", "edit_history_tweet_ids"}
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            body["data"] = [{k: v for k, v in t.items() if k in fields} for t in page]
            body["meta"].update(newest_id=page[0]["id"], oldest_id=page[-1]["id"])
            if "author_id" in params.get("expansions", ""):
                authors = {t["author_id"] for t in page}
                body["includes"] = {"users": [self.users[a] for a in sorted(authors)]}
        if offset + size < len(newest_first):
            body["meta"]["next_token"] = str(offset + size)
        return FakeResponse(200, body)

    def _create(self, request: RecordedRequest) -> FakeResponse:
        if not self._signed(request):
            return FakeResponse(401, {"title": "Unauthorized", "status": 401})
        payload = request.json
        reply_to_id = (payload.get("reply") or {}).get("in_reply_to_tweet_id")
        reply_to = next((t for t in self.tweets if t["id"] == reply_to_id), None)
        if reply_to_id and reply_to is None:
            return FakeResponse(
                400,
                {"errors": [{"message": "The Tweet you are replying to has been deleted"}], "status": 400},
            )
        if self.refuse_duplicate_text and payload["text"] in self._posted_texts:
            return FakeResponse(
                403,
                {"detail": "You are not allowed to create a Tweet with duplicate content.", "status": 403},
            )
        text = (
            f"@{self.users[reply_to['author_id']]['username']} {payload['text']}"
            if reply_to
            else payload["text"]
        )
        tweet = self.post(self.brand["id"], text, reply_to=reply_to)
        self._posted_texts.add(payload["text"])
        return FakeResponse(
            201, {"data": {"id": tweet["id"], "text": tweet["text"], "edit_history_tweet_ids": [tweet["id"]]}}
        )
