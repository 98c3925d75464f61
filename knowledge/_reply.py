"""An article as a reply on one channel: shortened to fit, in the markup the platform renders."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from knowledge._articles import CHANNELS, Article
from knowledge._markdown import Block, Style, is_sentence_end, parse_blocks, render_atom

__all__ = [
    "CHAT_REPLY_LIMIT",
    "X_REPLY_LIMIT",
    "X_URL_LENGTH",
    "format_reply",
    "x_length",
]

X_REPLY_LIMIT = 280
"""X counts a post's length by weighted characters; 280 is the limit for a standard account."""

X_URL_LENGTH = 23
"""X shortens every link to a t.co address and counts it as 23 characters, whatever its real length."""

CHAT_REPLY_LIMIT = 700
"""Slack and Telegram replies: a few short paragraphs; the full article is one click away."""

ELLIPSIS = "…"
# Anything X may turn into a link (with or without a scheme) is counted as one, to stay on the safe side.
_URL = re.compile(r"(?:https?://\S+|(?:[\w-]+\.)+[A-Za-z]{2,}(?:/\S*)?)")


def format_reply(article: Article, channel: str, *, max_length: int | None = None) -> str:
    """Render `article` as a reply on `channel`.

    - "twitter": plain text that fits X's 280-character limit including the article URL, which is always
      appended when the article has one. Length is counted conservatively: every link as
      max(23, its real length) — X counts 23, `len()` counts the real length, so the reply passes both —
      and characters outside Latin and general punctuation (emoji, CJK) as 2, as X does; a bare domain
      such as "example.com/x", which X turns into a link, counts as a link too.
    - "slack": mrkdwn (`*bold*`, `_italic_`, `<url|text>` links, `&`, `<`, `>` escaped), title in bold, at
      most 700 characters, plus a link to the full article when shortened.
    - "telegram": plain text (send it without a parse mode; clients make URLs clickable), title first, at
      most 700 characters, plus the article URL when shortened.
    - "webchat": the full body as written (Markdown).
    - "email", "cli": the full body as plain text, links written as "text (url)", then the article URL.

    Shortening keeps whole blocks, then whole sentences, and only then whole words followed by "…"; a
    word, a link or an emphasised phrase is never cut in half.

    Args:
        article: the article to send.
        channel: one of "webchat", "slack", "telegram", "twitter", "email", "cli".
        max_length: a tighter limit than the channel's (e.g. when the adapter prepends a mention).

    Raises:
        ValueError: unknown channel.
    """
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    blocks = parse_blocks(article.body)
    if channel == "twitter":
        return _x_reply(article, blocks, max_length or X_REPLY_LIMIT)
    if channel == "slack":
        title = f"*{render_atom(article.title, 'slack')}*"
        more = f"<{article.url}|Read the full article>" if article.url else None
        return _chat_reply(
            title, blocks, "slack", more, min(max_length or CHAT_REPLY_LIMIT, CHAT_REPLY_LIMIT)
        )
    if channel == "telegram":
        more = f"Full article: {article.url}" if article.url else None
        return _chat_reply(
            article.title, blocks, "plain_links", more, min(max_length or CHAT_REPLY_LIMIT, CHAT_REPLY_LIMIT)
        )
    if channel == "webchat":
        return article.body.strip()
    text = _join([_render_block(block, "plain_links") for block in blocks], blocks)
    return f"{text}\n\nFull article: {article.url}" if article.url else text


def x_length(text: str) -> int:
    """The length of `text` as counted for an X post, conservatively (see `format_reply`)."""
    total = 0
    position = 0
    for match in _URL.finditer(text):
        total += sum(_x_weight(char) for char in text[position : match.start()])
        total += max(X_URL_LENGTH, len(match.group()))
        position = match.end()
    return total + sum(_x_weight(char) for char in text[position:])


def _x_weight(char: str) -> int:
    # X's weighted ranges: Latin, general punctuation and a few more count 1, everything else 2.
    code = ord(char)
    if code <= 0x10FF or 0x2000 <= code <= 0x200D or 0x2010 <= code <= 0x201F or 0x2032 <= code <= 0x2037:
        return 1
    return 2


def _x_reply(article: Article, blocks: list[Block], limit: int) -> str:
    suffix = f" {article.url}" if article.url else ""
    # A heading in the middle of a one-line post reads as a stray phrase.
    blocks = [block for block in blocks if block.kind != "heading"]
    shortened = _fit(blocks, "plain", limit - x_length(suffix), x_length, separator="\n")
    return (shortened.text + suffix).strip()


def _chat_reply(title: str, blocks: list[Block], style: Style, more: str | None, limit: int) -> str:
    head = f"{title}\n\n"
    full = head + _join([_render_block(block, style) for block in blocks], blocks)
    if len(full) <= limit:
        return full
    tail = f"\n\n{more}" if more else ""
    shortened = _fit(blocks, style, limit - len(head) - len(tail), len)
    if not shortened.text:
        return (title + tail).strip()
    return head + shortened.text + tail


@dataclass(frozen=True)
class _Fitted:
    text: str
    cut: bool


def _fit(
    blocks: list[Block],
    style: Style,
    budget: int,
    measure: Callable[[str], int],
    separator: str | None = None,
) -> _Fitted:
    """The longest prefix of the body that fits `budget`, cut at a block, sentence or word boundary."""
    rendered = [_render_block(block, style) for block in blocks]
    full = _join(rendered, blocks, separator)
    if measure(full) <= budget:
        return _Fitted(full, cut=False)
    kept: list[str] = []
    for index, block in enumerate(blocks):
        candidate = _join([*kept, rendered[index]], blocks[: index + 1], separator)
        if measure(candidate) <= budget:
            kept.append(rendered[index])
            continue
        partial = _fit_block(block, style, kept, blocks[: index + 1], budget, measure, separator)
        if partial is not None:
            return _Fitted(partial, cut=True)
        break
    # "Returning by post:" without what follows promises something the reply doesn't give.
    while kept and kept[-1].rstrip().endswith(":"):
        kept.pop()
    return _Fitted(_join(kept, blocks[: len(kept)], separator), cut=True)


def _fit_block(
    block: Block,
    style: Style,
    kept: list[str],
    context: list[Block],
    budget: int,
    measure: Callable[[str], int],
    separator: str | None,
) -> str | None:
    """The kept blocks plus as much of `block` as fits: whole sentences if possible, else words + "…"."""
    atoms = [render_atom(atom, style) for atom in block.atoms]
    prefix = _block_prefix(block, style)

    def text_with(count: int, ellipsis: bool) -> str:
        body = prefix + " ".join(atoms[:count]) + (ELLIPSIS if ellipsis else "")
        return _join([*kept, body], context, separator)

    best_sentence = 0
    best_words = 0
    for count in range(1, len(atoms) + 1):
        if measure(text_with(count, ellipsis=False)) <= budget and is_sentence_end(atoms[count - 1]):
            best_sentence = count
        if measure(text_with(count, ellipsis=True)) <= budget:
            best_words = count
        elif measure(text_with(count, ellipsis=False)) > budget:
            break
    if block.kind == "heading":
        return None
    # A sentence much shorter than the room left reads worse than words + "…"; a few words + "…" after
    # whole blocks read worse than stopping after those blocks.
    if best_sentence and best_sentence * 2 >= best_words:
        return text_with(best_sentence, ellipsis=False)
    if best_words and (not kept or measure(_join(kept, context, separator)) * 2 < budget):
        return text_with(best_words, ellipsis=True)
    return None


def _render_block(block: Block, style: Style) -> str:
    text = " ".join(render_atom(atom, style) for atom in block.atoms)
    if block.kind == "heading" and style == "slack":
        return f"*{text.strip('*')}*"
    return _block_prefix(block, style) + text


def _block_prefix(block: Block, style: Style) -> str:
    return "• " if block.kind == "item" else ""


def _join(rendered: list[str], blocks: list[Block], separator: str | None = None) -> str:
    """Join rendered blocks: list items one per line, other blocks separated by a blank line."""
    parts: list[str] = []
    for index, text in enumerate(rendered):
        if index:
            if separator is not None:
                parts.append(separator)
            elif blocks[index].kind == "item" and blocks[index - 1].kind == "item":
                parts.append("\n")
            else:
                parts.append("\n\n")
        parts.append(text)
    return "".join(parts)
