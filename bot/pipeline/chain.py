"""The decision as one explicit chain: a message's `Turn` goes through `STEPS` in order.

A step that decides runs while nothing has been decided; the first that returns a decision wins. A step that
reviews runs after the steps it names have decided, and returns the decision to keep (the same or another).
Decisions of the steps no review names (a rating, the verification flow, a data request) are recorded as
they are. Adding a step is one function in bot/pipeline/steps/ and one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace

from bot.pipeline.steps import data_rights, engagement, language, moderation, routing
from bot.pipeline.turn import Turn
from bot.policy.routing import Decision

__all__ = ["STEPS", "Step", "decide"]


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the chain.

    Args:
        name: how the chain and the reviews name it.
        run: the step: reads the turn and returns a decision, or None to pass.
        reviews: the steps whose decisions this step reviews; empty for a step that decides.
    """

    name: str
    run: Callable[[Turn], Decision | None]
    reviews: frozenset[str] = frozenset()


#: What the bot does with a customer's message, in order.
STEPS: tuple[Step, ...] = (
    Step("rating", engagement.rating),
    Step("identity", engagement.identity),
    Step("data rights", data_rights.data_rights),
    Step("listening", routing.listening),
    Step("greeting", routing.greeting),
    Step("human owns", routing.human_owns),
    Step("policy", routing.policy),
    Step("language", language.language, reviews=frozenset({"policy"})),
    Step(
        "moderation",
        moderation.moderation,
        reviews=frozenset({"listening", "greeting", "human owns", "policy"}),
    ),
)


def decide(turn: Turn, *, only: Collection[str] | None = None) -> Turn:
    """Run `turn` through the chain and return it with its decision (`decision`, `decided_by` set).

    Args:
        only: run just the steps with these names (staff marking a flagged message fine re-run "policy" and
            "language"); every step when None.
    """
    for step in STEPS:
        if only is not None and step.name not in only:
            continue
        if step.reviews:
            if turn.decided_by not in step.reviews:
                continue
        elif turn.decision is not None:
            continue
        decision = step.run(turn)
        if decision is not None:
            turn = replace(turn, decision=decision, decided_by=turn.decided_by or step.name)
    return turn
