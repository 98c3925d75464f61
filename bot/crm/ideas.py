"""Recording ideas: a customer's suggestion becomes a mention of the idea it repeats, or a new idea.

A suggestion joins an idea when it says much the same (cosine similarity of the encoder's vectors at least
`IDEA_SIMILARITY` to one of that idea's suggestions); an idea's votes are its distinct customers, so a
customer repeating an idea does not vote twice. The pipeline records ideas wherever they arrive, also in
conversations a person owns; the board marketers work is bot/insights/ideas.py.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func
from sqlmodel import Session, select

from bot.crm.models import Idea, IdeaMention, Message
from bot.crm.vectors import vectors_of

__all__ = ["IDEA_SIMILARITIES", "IDEA_SIMILARITY", "record_idea"]

#: Cosine similarity at which a suggestion joins an idea. Chosen on the dev groups of
#: tests/data/idea_groups.yaml (best pairwise F1, no two different ideas merged); the test groups measure
#: it (tests/test_ideas.py). For the fine-tuned encoder: 0.45-0.55 all give dev precision 1.0, recall 0.909
#: (0.40 merges different ideas), so the middle of that range; test: precision 1.0, recall 0.955 (0.55, the
#: original encoder's value, gave 0.68 there with the fine-tuned encoder).
IDEA_SIMILARITY = 0.50
#: The same per model variant (`[intents] variant`), chosen the same way: for the permissive variant (the
#: original encoder, int8) dev gives precision 1.0, recall 0.909 at 0.50 only (0.45 merges different ideas,
#: 0.55 recall 0.818); test: precision 1.0, recall 0.818.
IDEA_SIMILARITIES = {"default": IDEA_SIMILARITY, "permissive": 0.50}
#: Suggestions compared with a new one (the newest; ideas older than this many suggestions are not joined).
CANDIDATES = 5000


def record_idea(
    session: Session, message: Message, *, encoder: str, join_at: float = IDEA_SIMILARITY
) -> Idea:
    """Record `message` as a suggestion, in the caller's transaction: a mention of the idea it repeats (a
    suggestion at cosine `join_at` or more: the encoder's value in `IDEA_SIMILARITIES`), or a new idea. Its
    vector by `encoder` must be stored already (bot/crm/vectors.py); without one it is a new idea. Recording
    the same message again returns its idea.
    """
    known = session.exec(select(IdeaMention).where(IdeaMention.message_id == message.id)).first()
    if known is not None:
        return session.get(Idea, known.idea_id)
    idea, similarity = _closest_idea(session, message, encoder=encoder, join_at=join_at)
    if idea is None:
        idea = Idea(
            message_id=message.id,
            contact_id=message.contact_id,
            text=message.text,
            votes=1,
            created_at=message.created_at,
        )
        session.add(idea)
        session.flush()
    session.add(
        IdeaMention(
            idea_id=idea.id,
            message_id=message.id,
            contact_id=message.contact_id,
            similarity=None if similarity is None else round(similarity, 4),
            created_at=message.created_at,
        )
    )
    session.flush()
    idea.votes = session.exec(
        select(func.count(func.distinct(IdeaMention.contact_id))).where(IdeaMention.idea_id == idea.id)
    ).one()
    session.add(idea)
    return idea


def _closest_idea(
    session: Session, message: Message, *, encoder: str, join_at: float
) -> tuple[Idea | None, float | None]:
    own = vectors_of(session, [message.id], encoder=encoder).get(message.id)
    if own is None:
        return None, None
    mentions = session.exec(
        select(IdeaMention.message_id, IdeaMention.idea_id).order_by(IdeaMention.id.desc()).limit(CANDIDATES)
    ).all()
    vectors = vectors_of(session, [m for m, _ in mentions], encoder=encoder)
    scored = [(idea_id, vectors[m]) for m, idea_id in mentions if m in vectors]
    if not scored:
        return None, None
    similarities = np.stack([vector for _, vector in scored]) @ own
    best = int(np.argmax(similarities))
    if similarities[best] < join_at:
        return None, None
    return session.get(Idea, scored[best][0]), float(similarities[best])
