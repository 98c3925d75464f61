"""Knowledge gaps: the questions the knowledge base had no answer for, grouped, each one click from a draft
article an admin finishes and saves into the knowledge base (picked up without a restart).

A gap is a customer's *question* the bot handed to a person because no article scored above the threshold:
an inbound message read as a question (intent confidence at least `GAP_MIN_CONFIDENCE`), not abusive, not
asking for a person, escalated with no article. Small talk ("ok thanks"), data requests ("delete my data":
their own step), abuse, and questions the bot answered are not gaps. Gaps are grouped by the encoder's
vectors like complaint topics (bot/insights/clustering.py), biggest first.
"""

from __future__ import annotations

import re
import tempfile
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import yaml
from sqlalchemy import Engine, false, func
from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import AuthorKind, Direction, Message
from bot.crm.vectors import vectors_of
from bot.insights.clustering import group_messages
from bot.policy.routing import Action
from channels.base import InboundKind
from knowledge import Article, KnowledgeBase, KnowledgeBaseError, parse_article

__all__ = [
    "ANSWER_PLACEHOLDER",
    "ArticleRefused",
    "KnowledgeGap",
    "draft_article",
    "knowledge_gaps",
    "save_article",
    "unanswered_questions",
]

#: Questions read per period (grouping is quadratic in their number).
GAP_SAMPLE = 2000
#: The line a draft's body starts as; an article still holding it is not finished.
ANSWER_PLACEHOLDER = "Write the answer here."
#: How sure the intent head must be that a message is a question for it to count as a gap: the list is for
#: writing articles, so it keeps to questions (short thanks like "ok thanks" read as questions at ~0.6).
GAP_MIN_CONFIDENCE = 0.8
#: Example questions a draft carries into its front matter.
DRAFT_QUESTIONS = 12


class ArticleRefused(ValueError):
    """An article can't be saved into the knowledge base; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class KnowledgeGap:
    """Questions customers asked that no article answered, grouped by meaning.

    Args:
        label: the group's distinctive words.
        questions: how many questions it holds.
        examples: its distinct questions, the most typical first (at most 5).
        message_ids: every question in it (for the draft and the log).
        last_asked: when the newest of them was asked.
    """

    label: str
    words: list[str]
    questions: int
    examples: list[str]
    message_ids: list[int]
    last_asked: datetime


def unanswered_questions(since: datetime, until: datetime) -> list:
    """The WHERE conditions on `Message` that pick the knowledge gaps of a period (see the module doc)."""
    return [
        Message.direction == Direction.INBOUND.value,
        Message.author_kind == AuthorKind.CUSTOMER.value,
        Message.kind == InboundKind.MESSAGE.value,
        Message.created_at >= since,
        Message.created_at < until,
        Message.intent == "question",
        Message.intent_confidence >= GAP_MIN_CONFIDENCE,
        func.coalesce(Message.low_confidence, false()).is_(false()),
        func.coalesce(Message.abusive, false()).is_(false()),
        func.coalesce(Message.wants_human, false()).is_(false()),
        Message.action == Action.ESCALATE.value,
        Message.kb_article_id.is_(None),
    ]


def _distinct(texts: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for text in texts:
        seen.setdefault(" ".join(text.lower().split()), text.strip())
    return list(seen.values())


def knowledge_gaps(
    session: Session, *, since: datetime, until: datetime, encoder: str, top: int = 20
) -> list[KnowledgeGap]:
    """The period's unanswered questions in groups, biggest first (questions without a vector by `encoder`
    are left out)."""
    rows = session.exec(
        select(Message.id, Message.text, Message.created_at)
        .where(*unanswered_questions(since, until))
        .order_by(Message.id.desc())
        .limit(GAP_SAMPLE)
    ).all()
    vectors = vectors_of(session, (row.id for row in rows), encoder=encoder)
    rows = [row for row in rows if row.id in vectors]
    if not rows:
        return []
    groups = group_messages([row.text for row in rows], np.stack([vectors[row.id] for row in rows]))
    gaps = []
    for group in groups[:top]:
        members = [rows[i] for i in group.positions]
        gaps.append(
            KnowledgeGap(
                label=", ".join(group.words) if group.words else members[0].text[:60],
                words=group.words,
                questions=len(members),
                examples=_distinct([row.text for row in members])[:5],
                message_ids=sorted(row.id for row in members),
                last_asked=max(row.created_at for row in members),
            )
        )
    return gaps


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:60].strip("-") or "new-article"


def draft_article(session: Session, message_ids: list[int], *, words: list[str] | None = None) -> str:
    """A Markdown article prefilled from these questions, for an admin to finish: front matter with an id,
    the most typical question as the title and the distinct questions as `questions:`, and a body to write.

    Raises:
        ArticleRefused: none of the messages is there (any more).
    """
    texts = dict(session.exec(select(Message.id, Message.text).where(Message.id.in_(message_ids))).all())
    questions = _distinct([texts[i] for i in message_ids if i in texts])
    if not questions:
        raise ArticleRefused("none of these questions is stored any more: nothing to draft from")
    title = questions[0].strip().rstrip("?!. ")[:120]
    front = {
        "id": _slug("-".join(words) if words else title),
        "title": title[:1].upper() + title[1:],
        "questions": questions[:DRAFT_QUESTIONS],
        "tags": [],
    }
    header = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{header}---\n{ANSWER_PLACEHOLDER}\n"


def save_article(
    engine: Engine, knowledge: KnowledgeBase, markdown: str, *, staff_id: int, sample_dir: Path | None = None
) -> Article:
    """Check a finished article, write it into the knowledge base's folder as `<id>.md`, and reload the
    knowledge base (this worker at once; the others within `[knowledge] refresh_seconds`). Audited.

    Args:
        knowledge: the running knowledge base (its folder is written to).
        markdown: the whole article: front matter and body.
        sample_dir: the sample knowledge base shipped in the package, which is never written to.

    Raises:
        ArticleRefused: the article is invalid (the message names the line), still holds the placeholder,
            has the id of an existing article, or the knowledge base is the shipped sample.
    """
    directory = Path(knowledge.directory)
    if sample_dir is not None and directory.resolve() == Path(sample_dir).resolve():
        raise ArticleRefused(
            "the knowledge base is the sample shipped with socialbot: set [knowledge] dir to a folder of "
            "your own (copy the sample there to start from it) to add articles"
        )
    try:
        article = parse_article(Path("article.md"), markdown.replace("\r\n", "\n"))  # checked first
    except KnowledgeBaseError as error:
        raise ArticleRefused(f"the article is not valid: line {error.line}: {error.problem}") from None
    if ANSWER_PLACEHOLDER in article.body:
        raise ArticleRefused(f"write the answer in place of {ANSWER_PLACEHOLDER!r} before saving")
    if article.id != _slug(article.id):
        raise ArticleRefused(
            f"id {article.id!r}: use lower-case letters, digits and dashes (e.g. {_slug(article.id)})"
        )
    path = directory / f"{article.id}.md"
    taken = {a.id for a in knowledge.articles if a.language == article.language}
    if article.id in taken or path.exists():
        raise ArticleRefused(f"an article with id {article.id!r} exists already: choose another id")
    with tempfile.NamedTemporaryFile(
        "w", encoding="utf-8", dir=directory, suffix=".tmp", delete=False
    ) as out:
        out.write(markdown.replace("\r\n", "\n").rstrip("\n") + "\n")
    Path(out.name).replace(path)
    with session_scope(engine) as session:
        audit(
            session,
            "knowledge.article_added",
            "article",
            actor_kind="staff",
            actor_id=staff_id,
            details={"id": article.id, "title": article.title, "file": path.name},
        )
    knowledge.refresh()
    return parse_article(path, path.read_text(encoding="utf-8"))
