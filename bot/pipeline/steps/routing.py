"""The steps that route by what a message is and who owns its conversation: a post found by brand listening is
logged, never answered; a customer opening the conversation is greeted; in a conversation a person owns the
bot stays silent (an idea in it is still recorded); everything else the policy routes by its intent
(bot/policy/routing.py).
"""

from __future__ import annotations

from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision, carries_an_idea
from channels.base import InboundKind

__all__ = ["greeting", "human_owns", "listening", "policy"]


def listening(turn: Turn) -> Decision | None:
    """A post found by brand listening does not address us: logged and understood, not answered."""
    if turn.message.kind != InboundKind.LISTENED:
        return None
    return Decision(
        Action.LISTEN, "found by brand listening: logged, not answered (the post does not address us)"
    )


def greeting(turn: Turn) -> Decision | None:
    """The customer opened the conversation (Telegram /start): greeted, where the bot may speak."""
    if turn.message.kind != InboundKind.GREETING or not turn.bot_may_reply:
        return None
    return Decision(Action.GREET, "the customer opened the conversation: greeted", "greeting")


def human_owns(turn: Turn) -> Decision | None:
    """A person owns the conversation: the bot stays silent; an idea in it still reaches the ideas board."""
    if turn.bot_may_reply:
        return None
    silent = f"conversation is {turn.conversation.state}: the bot stays silent"
    if carries_an_idea(turn.analysis.understanding):  # also when flagged abusive: something to act on
        return Decision(Action.HUMAN_OWNS, f"{silent}; recorded as an idea", record_idea=True)
    return Decision(Action.HUMAN_OWNS, silent)


def policy(turn: Turn) -> Decision:
    """The policy routes the understood message by its intent (answer, escalate, thank, ...)."""
    analysis = turn.analysis
    return turn.runtime.policy.decide(
        analysis.understanding, analysis.answer, public=turn.message.public, text=turn.message.text
    )
