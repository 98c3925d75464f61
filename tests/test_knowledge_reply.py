"""Replies per channel: shortened to fit, in the platform's markup, never cutting a word or a link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge import CHAT_REPLY_LIMIT, X_REPLY_LIMIT, Article, format_reply, load_articles, x_length
from knowledge._markdown import plain_text

SAMPLE = load_articles(Path(__file__).resolve().parents[1] / "knowledge" / "sample" / "fernhill")
URL = "https://shop.example/help/returns-and-refunds-for-orders-placed-online"

LONG_BODY = """You can return anything within **60 days of delivery**, as long as it is unused & has its tags.

## Returning by post

1. Open [the returns portal at shop.example](https://shop.example/returns?utm_source=bot&utm_medium=reply) and enter your order number.
2. Print the label, or show the QR code at any [Post Office branch near you](https://postoffice.example/branch-finder).
3. Keep the proof of postage <until> your refund arrives.

Returning in store: bring the items and your order number to any of our stores; online and in-store purchases can both be returned there, and *exchanges* happen on the spot when your size is in stock.

Refunds are paid within 3 working days of your return reaching us, to the payment method you used. See https://shop.example/help/refund-timing for details about how long your bank takes to show the money.
"""  # noqa: E501

ARTICLE = Article(id="returns", title="Returns & refunds", body=LONG_BODY, url=URL)
NO_URL = Article(id="returns", title="Returns", body=LONG_BODY, url=None)
LINKS_IN_BODY = {
    "https://shop.example/returns?utm_source=bot&utm_medium=reply",
    "https://postoffice.example/branch-finder",
    "https://shop.example/help/refund-timing",
    URL,
}


def plain_words(text: str) -> set[str]:
    """Every word of the full plain-text rendering (with and without link targets), the reference a
    shortened reply must be cut from."""
    full = format_reply(Article(id="x", title="x", body=text), "cli")
    return set(full.split()) | set(plain_text(text).split())


@pytest.mark.parametrize("article", [ARTICLE, NO_URL, *SAMPLE], ids=lambda article: article.id)
def test_an_x_reply_fits_280_characters_including_the_article_url(article):
    reply = format_reply(article, "twitter")

    assert len(reply) <= X_REPLY_LIMIT and x_length(reply) <= X_REPLY_LIMIT
    if article.url:
        assert reply.endswith(" " + article.url)
    body = reply.removesuffix(" " + article.url) if article.url else reply
    allowed = plain_words(article.body)
    for word in body.split():
        assert word.removesuffix("…") in allowed or word == "•", f"{word!r} was cut: {reply!r}"


def test_x_counts_every_link_as_at_least_23_characters_and_emoji_as_two():
    assert x_length("see https://t.co/x") == 4 + 23
    assert x_length("see example.com/returns") == 4 + 23
    assert x_length(f"see {URL}") == 4 + len(URL)
    assert x_length("😀") == 2 and x_length("é") == 1


def test_a_tighter_limit_leaves_room_for_a_mention():
    reply = format_reply(ARTICLE, "twitter", max_length=X_REPLY_LIMIT - len("@somebody "))

    assert x_length("@somebody " + reply) <= X_REPLY_LIMIT


def test_a_body_of_emoji_is_shortened_by_its_x_weight():
    article = Article(id="party", title="Party", body="🎉 " * 300, url="https://shop.example/p")

    reply = format_reply(article, "twitter")

    assert x_length(reply) <= X_REPLY_LIMIT
    assert reply.endswith("… https://shop.example/p") and "🎉" in reply


@pytest.mark.parametrize("channel", ["slack", "telegram"])
def test_a_chat_reply_is_a_few_paragraphs_with_a_link_to_the_full_article(channel):
    reply = format_reply(ARTICLE, channel)

    assert len(reply) <= CHAT_REPLY_LIMIT
    assert reply.count("\n\n") >= 2
    assert URL in reply.splitlines()[-1]
    for url in re.findall(r"https?://[^\s|>)]+", reply):
        assert url in LINKS_IN_BODY, f"link cut: {url}"


def test_slack_uses_mrkdwn_and_escapes_what_slack_would_parse():
    reply = format_reply(ARTICLE, "slack")

    assert reply.startswith("*Returns &amp; refunds*\n\n")
    assert "*60 days of delivery*" in reply
    assert "unused &amp; has its tags" in reply
    portal = "https://shop.example/returns?utm_source=bot&utm_medium=reply"
    assert f"<{portal}|the returns portal at shop.example>" in reply
    assert "&lt;until&gt;" in reply
    assert reply.endswith(f"<{URL}|Read the full article>")
    assert reply.count("<") == reply.count(">")


def test_telegram_is_plain_text_with_links_spelled_out():
    reply = format_reply(ARTICLE, "telegram")

    assert reply.startswith("Returns & refunds\n\n")
    assert "**" not in reply and "](" not in reply
    assert "Post Office branch near you (https://postoffice.example/branch-finder)" in reply
    assert reply.endswith(f"Full article: {URL}")


def test_a_short_article_is_sent_whole_without_a_read_more_link():
    article = Article(
        id="hours", title="Opening hours", body="We open at 9:00.", url="https://shop.example/h"
    )

    assert format_reply(article, "slack") == "*Opening hours*\n\nWe open at 9:00."
    assert format_reply(article, "telegram") == "Opening hours\n\nWe open at 9:00."
    assert format_reply(article, "twitter") == "We open at 9:00. https://shop.example/h"


@pytest.mark.parametrize("channel", ["webchat", "email", "cli"])
def test_web_chat_email_and_cli_get_the_full_body(channel):
    reply = format_reply(ARTICLE, channel)

    assert "details about how long your bank takes to show the money." in reply
    if channel == "webchat":
        assert reply == LONG_BODY.strip()
    else:
        assert reply.endswith(f"Full article: {URL}")
        assert "**" not in reply


def test_a_word_longer_than_the_whole_reply_is_left_out_not_cut():
    article = Article(id="long", title="Long", body="Short start. " + "x" * 900 + " end.", url=None)

    for channel in ("twitter", "slack", "telegram"):
        reply = format_reply(article, channel)
        assert "xxx" not in reply
        assert "Short start." in reply


def test_an_unknown_channel_is_an_error():
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        format_reply(ARTICLE, "fax")
