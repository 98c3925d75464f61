"""`Turn`: one customer message on its way through the pipeline's steps (bot/pipeline/chain.py), the one
value every step is given. A step reads it and returns a decision; the chain carries the decision on in a new
`Turn`, so a step never needs the pipeline that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from bot.crm.languages import reply_language
from bot.crm.models import Conversation, Message
from bot.policy.routing import Decision
from bot.runtime.analysis import Analysis
from bot.runtime.container import Runtime
from bot.support.handoff import bot_may_reply

__all__ = ["Turn"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message being decided, in the transaction that records the decision.

    Args:
        runtime: the worker's settings, policy, models and channels.
        session: the deciding transaction; what a step writes commits with the decision.
        message: the stored inbound message (its contact and conversation rows are locked).
        conversation: the conversation it belongs to.
        analysis: what the models said about the message (intent, answer, language).
        decision: what was decided so far; None until a step decides.
        decided_by: the name of the step that decided (reviews look at it).
    """

    runtime: Runtime
    session: Session
    message: Message
    conversation: Conversation
    analysis: Analysis
    decision: Decision | None = None
    decided_by: str | None = None

    @property
    def language(self) -> str | None:
        """The language to answer in when the policy did not choose one: this message's, else the one the
        customer wrote in last in this conversation (a code or an e-mail address says nothing about it)."""
        return reply_language(self.session, self.conversation.id, self.analysis.language)

    @property
    def bot_may_reply(self) -> bool:
        """Whether the bot may speak in the conversation (it owns it; bot/support/handoff.py)."""
        return bot_may_reply(self.conversation)
