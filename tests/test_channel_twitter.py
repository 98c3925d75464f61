"""X (Twitter): the bot polls the brand's mentions through tweepy against a fake X API v2, answers each
mention once in its thread, remembers where it stopped across restarts, logs brand-listening matches without
answering them, and waits out rate limits instead of hammering."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.crm.models import Direction, Message, utcnow
from bot.delivery.outbox import deliver_due
from bot.worker.build import build_runtime
from channels.base import ChannelError, OutboundMessage
from channels.twitter import MENTIONS_CURSOR, SEARCH_CURSOR, TwitterChannel
from knowledge import format_reply
from tests.fakes.server import FakeResponse
from tests.fakes.twitter import FakeX

BRAND_ID = "1000"
CUSTOMER_ID = "2001"
DELIVERY_QUESTION = "@fernhill how long does delivery take?"
MENTIONS = f"/2/users/{BRAND_ID}/mentions"


@pytest.fixture
def x() -> Iterator[FakeX]:
    with FakeX(brand_id=BRAND_ID, brand_username="fernhill") as fake:
        yield fake


@pytest.fixture
def start_bot(make_settings: Callable[..., Any], models, x: FakeX) -> Iterator[Callable[..., Any]]:
    """Build a runtime with X enabled against the fake (same database every time it's called)."""
    runtimes = []

    def start(**twitter: Any):
        settings = make_settings(
            twitter={
                "enabled": True,
                "bearer_token": "app-bearer-token",
                "consumer_key": "consumer-key",
                "consumer_secret": "consumer-secret",
                "access_token": "access-token",
                "access_token_secret": "access-token-secret",
                "user_id": BRAND_ID,
                "api_base_url": x.base_url,
                "poll_interval_seconds": 60,
                **twitter,
            }
        )
        runtime = build_runtime(settings, models=models)
        runtimes.append(runtime)
        return runtime

    yield start
    for runtime in runtimes:
        runtime.close()


def poll(runtime) -> int:
    """One poll round of the X adapter, then wait for the pipeline to answer what it handed on."""
    accepted = runtime.channels["twitter"].poll_once()
    assert runtime.wait_idle()
    return accepted


def stored(runtime, external_id: str) -> Message:
    with Session(runtime.engine) as session:
        return session.exec(select(Message).where(Message.external_id == external_id)).one()


def inbound_ids(runtime) -> list[str]:
    with Session(runtime.engine) as session:
        rows = session.exec(
            select(Message).where(Message.direction == Direction.INBOUND.value).order_by(Message.id)
        ).all()
        return [row.external_id for row in rows]


def expected_reply(models, text: str) -> str:
    article = models.analyse(text).answer.article
    assert article is not None, "the sample knowledge base answers the delivery question"
    return format_reply(article, "twitter")


def test_a_mention_gets_one_reply_in_its_thread_with_the_knowledge_base_answer(start_bot, x, models):
    bot = start_bot()
    poll(bot)  # the bot is running (its first round sees nothing yet)

    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION, username="jane")
    assert poll(bot) == 1

    posts = x.server.calls("/2/tweets")
    assert len(posts) == 1
    sent = posts[0].json
    assert sent["reply"] == {"in_reply_to_tweet_id": mention["id"]}
    assert sent["text"] == expected_reply(models, DELIVERY_QUESTION)
    assert len(sent["text"]) <= 280
    assert posts[0].headers["authorization"].startswith("OAuth ")
    assert 'oauth_consumer_key="consumer-key"' in posts[0].headers["authorization"]
    assert x.server.calls(MENTIONS)[-1].headers["authorization"] == "Bearer app-bearer-token"

    message = stored(bot, mention["id"])
    assert (message.kind, message.action, message.public) == ("message", "answer", True)
    reply = x.replies_by_brand()[0]
    assert reply["conversation_id"] == mention["conversation_id"]
    with Session(bot.engine) as session:
        outbound = session.exec(select(Message).where(Message.reply_to_id == message.id)).one()
    assert (outbound.status, outbound.external_id) == ("sent", reply["id"])

    # The next round asks only for newer mentions and answers nothing twice.
    assert poll(bot) == 0
    assert x.server.calls(MENTIONS)[-1].query["since_id"] == [mention["id"]]
    assert len(x.server.calls("/2/tweets")) == 1


def test_the_first_run_answers_only_mentions_posted_after_it_started(start_bot, x):
    old = x.mention(CUSTOMER_ID, "@fernhill do you ship to Norway?", created_at="2024-01-01T10:00:00.000Z")
    bot = start_bot()

    assert poll(bot) == 0
    first = x.server.calls(MENTIONS)[0]
    assert "since_id" not in first.query and "start_time" in first.query
    new = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    assert poll(bot) == 1

    assert inbound_ids(bot) == [new["id"]]
    assert [p.json["reply"]["in_reply_to_tweet_id"] for p in x.server.calls("/2/tweets")] == [new["id"]]
    assert old["id"] not in inbound_ids(bot)


def test_a_restarted_poller_resumes_from_the_stored_since_id_and_never_re_answers(start_bot, x):
    bot = start_bot()
    poll(bot)
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    poll(bot)
    assert bot.channels["twitter"].cursors.get(MENTIONS_CURSOR) == mention["id"]
    bot.close()

    restarted = start_bot()  # a new process on the same database
    assert poll(restarted) == 0

    assert x.server.calls(MENTIONS)[-1].query["since_id"] == [mention["id"]]
    assert len(x.server.calls("/2/tweets")) == 1
    assert inbound_ids(restarted) == [mention["id"]]


def test_many_new_mentions_are_fetched_page_by_page_and_stored_oldest_first(start_bot, x):
    x.page_size = 2
    bot = start_bot()
    poll(bot)
    mentions = [x.mention(f"30{n}", f"@fernhill question number {n}: do you ship abroad?") for n in range(5)]

    assert poll(bot) == 5

    pages = x.server.calls(MENTIONS)[1:]
    assert [page.query.get("pagination_token") for page in pages] == [None, ["2"], ["4"]]
    assert inbound_ids(bot) == [m["id"] for m in mentions]
    assert bot.channels["twitter"].cursors.get(MENTIONS_CURSOR) == mentions[-1]["id"]


def test_the_brands_own_posts_and_retweets_of_mentions_are_ignored(start_bot, x):
    bot = start_bot()
    poll(bot)
    own = x.post(BRAND_ID, "@fernhill summer sale starts today!")
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    retweet = x.post("4004", f"RT @jane: {DELIVERY_QUESTION}", retweet_of=mention)

    assert poll(bot) == 1

    assert inbound_ids(bot) == [mention["id"]]
    assert [p.json["reply"]["in_reply_to_tweet_id"] for p in x.server.calls("/2/tweets")] == [mention["id"]]
    # The cursor still moves past what was skipped.
    assert bot.channels["twitter"].cursors.get(MENTIONS_CURSOR) == retweet["id"]
    assert own["id"] not in inbound_ids(bot)


def test_a_keyword_match_that_does_not_mention_the_brand_is_logged_as_listened_and_never_answered(
    start_bot, x
):
    bot = start_bot(keywords=["fernhill", "trail tent"])
    poll(bot)
    listened = x.post("5005", "my trail tent from Fernhill leaked all night")
    mention = x.mention("5006", "@fernhill my trail tent leaked, what now?")
    x.post(BRAND_ID, "Our new trail tent is here")

    poll(bot)

    search = x.server.calls("/2/tweets/search/recent")[-1]
    assert search.query["query"] == [f'(fernhill OR "trail tent") -is:retweet -from:{BRAND_ID}']
    message = stored(bot, listened["id"])
    assert (message.kind, message.action) == ("listened", "listen")
    assert stored(bot, mention["id"]).kind == "message"  # through the mentions poll, not listening
    replied_to = [p.json["reply"]["in_reply_to_tweet_id"] for p in x.server.calls("/2/tweets")]
    assert listened["id"] not in replied_to
    assert bot.channels["twitter"].cursors.get(SEARCH_CURSOR) == mention["id"]

    poll(bot)
    assert x.server.calls("/2/tweets/search/recent")[-1].query["since_id"] == [mention["id"]]


def test_listening_restarts_from_the_search_window_when_x_refuses_a_stale_since_id(start_bot, x):
    bot = start_bot(keywords=["fernhill"])
    bot.channels["twitter"].cursors.set(SEARCH_CURSOR, "1")  # from a bot that was off for weeks
    x.server.fail_next(
        "/2/tweets/search/recent",
        FakeResponse(400, {"errors": [{"message": "Invalid 'since_id'"}], "title": "Invalid Request"}),
    )
    poll(bot)
    listened = x.post("5005", "fernhill boots are comfy")
    poll(bot)

    searches = x.server.calls("/2/tweets/search/recent")
    assert searches[0].query["since_id"] == ["1"]
    assert "since_id" not in searches[1].query and "start_time" in searches[1].query
    assert stored(bot, listened["id"]).kind == "listened"


def test_a_429_on_posting_is_waited_out_until_the_reset_and_the_reply_goes_once(start_bot, x):
    bot = start_bot()
    poll(bot)
    reset = int(time.time()) + 120
    x.server.fail_next(
        "/2/tweets",
        FakeResponse(429, {"title": "Too Many Requests", "status": 429}, {"x-rate-limit-reset": str(reset)}),
    )
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    poll(bot)
    assert len(x.server.calls("/2/tweets")) == 1 and x.replies_by_brand() == []

    assert deliver_due(bot.engine, bot.channels, now=utcnow() + timedelta(seconds=60)).sent == []
    assert len(x.server.calls("/2/tweets")) == 1  # not before the reset
    assert len(deliver_due(bot.engine, bot.channels, now=utcnow() + timedelta(seconds=130)).sent) == 1
    assert deliver_due(bot.engine, bot.channels, now=utcnow() + timedelta(seconds=900)).sent == []

    assert len(x.server.calls("/2/tweets")) == 2
    assert [r["referenced_tweets"][0]["id"] for r in x.replies_by_brand()] == [mention["id"]]


def test_a_500_on_posting_is_retried(start_bot, x):
    bot = start_bot()
    poll(bot)
    x.server.fail_next("/2/tweets", FakeResponse(500, {"title": "Internal Server Error", "status": 500}))
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    poll(bot)
    assert x.replies_by_brand() == []

    report = deliver_due(bot.engine, bot.channels, now=utcnow() + timedelta(minutes=5))

    assert len(report.sent) == 1
    assert len(x.server.calls("/2/tweets")) == 2
    assert [r["referenced_tweets"][0]["id"] for r in x.replies_by_brand()] == [mention["id"]]


def test_a_post_x_refuses_for_good_is_not_retried(start_bot, x):
    bot = start_bot()
    poll(bot)
    x.server.fail_next(
        "/2/tweets",
        FakeResponse(403, {"detail": "You are not allowed to reply to this Tweet.", "status": 403}),
    )
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    poll(bot)

    assert deliver_due(bot.engine, bot.channels, now=utcnow() + timedelta(hours=1)).sent == []
    assert len(x.server.calls("/2/tweets")) == 1
    with Session(bot.engine) as session:
        reply = session.exec(
            select(Message).where(Message.reply_to_id == stored(bot, mention["id"]).id)
        ).one()
    assert reply.status == "failed"


def test_a_429_on_the_mentions_poll_pauses_polling_until_the_reset_then_it_continues(start_bot, x):
    bot = start_bot()
    channel: TwitterChannel = bot.channels["twitter"]
    now = [time.time()]
    channel.clock = lambda: now[0]
    poll(bot)
    reset = int(now[0]) + 300
    x.server.fail_next(
        MENTIONS,
        FakeResponse(429, {"title": "Too Many Requests", "status": 429}, {"x-rate-limit-reset": str(reset)}),
    )
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)

    assert poll(bot) == 0  # the 429
    assert channel.next_poll_delay() >= 300
    now[0] += 120
    assert poll(bot) == 0
    assert len(x.server.calls(MENTIONS)) == 2  # no request while the window is closed

    now[0] = reset + 2
    assert channel.next_poll_delay() == 60
    assert poll(bot) == 1
    assert [r["referenced_tweets"][0]["id"] for r in x.replies_by_brand()] == [mention["id"]]


def test_the_poller_thread_polls_on_its_interval_and_stops_promptly(start_bot, x):
    bot = start_bot(poll_interval_seconds=0.05)
    channel = bot.channels["twitter"]
    mention = None
    bot.start_channels()
    try:
        deadline = time.monotonic() + 10
        while not x.server.calls(MENTIONS) and time.monotonic() < deadline:
            time.sleep(0.02)
        mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
        while not x.replies_by_brand() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        started = time.monotonic()
        channel.stop()
        stopped_in = time.monotonic() - started
    assert stopped_in < 2
    assert [r["referenced_tweets"][0]["id"] for r in x.replies_by_brand()] == [mention["id"]]
    calls = len(x.server.calls(MENTIONS))
    time.sleep(0.2)
    assert len(x.server.calls(MENTIONS)) == calls  # stopped means stopped


def test_a_failing_poll_round_is_logged_without_secrets_and_the_next_round_goes_on(start_bot, x, caplog):
    bot = start_bot()
    poll(bot)
    x.server.fail_next(MENTIONS, FakeResponse(503, {"title": "Service Unavailable", "status": 503}))
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)

    with caplog.at_level("DEBUG"):  # tweepy's DEBUG lines print request headers
        assert poll(bot) == 0
    assert "HTTP 503" in caplog.text
    assert "Making API request" in caplog.text
    assert "app-bearer-token" not in caplog.text and "access-token" not in caplog.text

    assert poll(bot) == 1
    assert stored(bot, mention["id"]).action == "answer"


def test_find_sent_recognises_a_reply_that_already_went_out(start_bot, x):
    bot = start_bot()
    channel: TwitterChannel = bot.channels["twitter"]
    poll(bot)
    mention = x.mention(CUSTOMER_ID, DELIVERY_QUESTION)
    poll(bot)
    reply = x.replies_by_brand()[0]
    sent_text = x.server.calls("/2/tweets")[0].json["text"]
    same = OutboundMessage("twitter", mention["conversation_id"], sent_text, mention["id"], "reply:1")
    other = OutboundMessage("twitter", mention["conversation_id"], "Something else", mention["id"], "reply:2")

    assert channel.find_sent(same) == reply["id"]
    assert channel.find_sent(other) is None


def test_check_names_the_account_and_rejects_tokens_of_another_account(start_bot, x):
    assert start_bot().channels["twitter"].check() == f"@fernhill (id {BRAND_ID})"
    with pytest.raises(ChannelError, match="not to twitter.user_id 9999"):
        start_bot(user_id="9999").channels["twitter"].check()


def test_check_fails_with_a_clear_error_when_x_refuses_the_signature(start_bot, x):
    channel = start_bot(consumer_secret="a-wrong-secret").channels["twitter"]
    with pytest.raises(ChannelError, match="get_me failed: HTTP 401"):
        channel.check()
