"""Just enough Markdown for FAQ articles: blocks, unbreakable inline atoms, and per-platform rendering.

An article body is split into blocks (paragraphs, list items, headings). Each block is split into atoms
at whitespace that is not inside a link, an emphasis span or inline code, so a link or a bold phrase is
one atom and shortening a reply can never cut one in half.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = ["Block", "parse_blocks", "plain_text", "render_atom", "Style"]

Style = Literal["plain", "plain_links", "slack"]
"""plain: markup and link targets dropped; plain_links: links kept as "text (url)"; slack: mrkdwn."""

_INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?P<link>\[(?P<link_text>[^\]\n]+)\]\((?P<link_url>[^)\s]+)\))"
    r"|(?P<autolink><(?P<autolink_url>https?://[^>\s]+)>)"
    r"|(?P<bold>(?:\*\*|__)(?P<bold_text>\S(?:.*?\S)?)(?:\*\*|__))"
    r"|(?P<italic>(?<![\w*])[*_](?P<italic_text>[^\s*_](?:[^*_\n]*?[^\s*_])?)[*_](?![\w*]))"
    r"|(?P<url>https?://[^\s<>()]+[^\s<>().,;:!?'\"])"
)
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")


@dataclass(frozen=True)
class Block:
    """A paragraph, list item or heading, as a tuple of unbreakable Markdown atoms."""

    kind: Literal["paragraph", "item", "heading"]
    atoms: tuple[str, ...]


def parse_blocks(markdown: str) -> list[Block]:
    """Split a Markdown body into blocks of atoms."""
    blocks: list[Block] = []
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        nonlocal kind, lines
        if kind is not None and lines:
            atoms = split_atoms(" ".join(lines))
            if atoms:
                blocks.append(Block(kind, atoms))  # type: ignore[arg-type]
        kind, lines = None, []

    for raw in markdown.splitlines():
        line = raw.strip()
        if not line or line.startswith("```"):
            flush()
            continue
        heading = _HEADING.match(raw)
        item = _ITEM.match(raw)
        if heading:
            flush()
            kind, lines = "heading", [heading.group(2)]
            flush()
        elif item:
            flush()
            kind, lines = "item", [item.group(1)]
        elif kind is None:
            kind, lines = "paragraph", [line]
        else:
            lines.append(line)
    flush()
    return blocks


def split_atoms(text: str) -> tuple[str, ...]:
    """Split at whitespace outside inline markup."""
    protected = [(match.start(), match.end()) for match in _INLINE.finditer(text)]
    atoms: list[str] = []
    start = 0
    position = 0
    span_index = 0
    length = len(text)
    while position < length:
        while span_index < len(protected) and protected[span_index][1] <= position:
            span_index += 1
        if span_index < len(protected) and protected[span_index][0] <= position < protected[span_index][1]:
            position = protected[span_index][1]
            continue
        if text[position].isspace():
            if position > start:
                atoms.append(text[start:position])
            start = position + 1
        position += 1
    if start < length:
        atoms.append(text[start:])
    return tuple(atom for atom in atoms if atom)


def render_atom(atom: str, style: Style) -> str:
    """Render one Markdown atom as plain text or Slack mrkdwn."""
    escape: Callable[[str], str] = _slack_escape if style == "slack" else _identity
    pieces: list[str] = []
    position = 0
    for match in _INLINE.finditer(atom):
        pieces.append(escape(atom[position : match.start()]))
        pieces.append(_render_match(match, style))
        position = match.end()
    pieces.append(escape(atom[position:]))
    return "".join(pieces)


def is_sentence_end(rendered_atom: str) -> bool:
    return bool(_SENTENCE_END.search(rendered_atom))


def plain_text(markdown: str) -> str:
    """The body as plain prose (for embedding): markup and link targets removed, one line per block."""
    return "\n".join(
        " ".join(render_atom(atom, "plain") for atom in block.atoms) for block in parse_blocks(markdown)
    )


def _render_match(match: re.Match[str], style: Style) -> str:
    if match.group("code"):
        inner = match.group("code")[1:-1]
        return f"`{_slack_escape(inner)}`" if style == "slack" else inner
    if match.group("link"):
        text, url = match.group("link_text"), match.group("link_url")
        text = _strip_emphasis(text)
        if style == "slack":
            return f"<{url}|{_slack_escape(text).replace('|', '/')}>"
        if style == "plain_links" and _without_scheme(text) != _without_scheme(url):
            return f"{text} ({url})"
        return text if style == "plain" else url
    if match.group("autolink"):
        url = match.group("autolink_url")
        return f"<{url}>" if style == "slack" else url
    if match.group("bold"):
        inner = _strip_emphasis(match.group("bold_text"))
        return f"*{_slack_escape(inner)}*" if style == "slack" else inner
    if match.group("italic"):
        inner = match.group("italic_text")
        return f"_{_slack_escape(inner)}_" if style == "slack" else inner
    url = match.group("url")
    return f"<{url}>" if style == "slack" else url


def _without_scheme(url: str) -> str:
    return re.sub(r"^https?://(www\.)?", "", url).rstrip("/")


def _strip_emphasis(text: str) -> str:
    return re.sub(r"(\*\*|__|\*|_)(\S(?:.*?\S)?)\1", r"\2", text)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _identity(text: str) -> str:
    return text
