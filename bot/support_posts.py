"""The support channel's rows in the CRM: an escalation writes its `SupportPost` in the same transaction, and
every change of hands marks the conversation's posts for an update. Posting is bot/support_channel.py's job.

Kept apart from bot/support_channel.py (which uses bot.conversations) so that bot/handoff.py can call it.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session

from bot.crm.models import Conversation, SupportPost
from bot.settings import Settings

__all__ = ["record_support_post", "support_channel_of", "support_posts_changed"]


def support_channel_of(settings: Settings) -> str:
    """The Slack channel id escalations are posted to, or "" when there is none (Slack off or unset)."""
    return settings.slack.support_channel.strip() if settings.slack.enabled else ""


def record_support_post(
    session: Session, conversation: Conversation, *, support_channel: str, message_id: int | None
) -> SupportPost:
    """Record, in the caller's transaction, that this escalation is to be posted to `support_channel`."""
    post = SupportPost(
        conversation_id=conversation.id, message_id=message_id, support_channel=support_channel
    )
    session.add(post)
    session.flush()
    return post


def support_posts_changed(session: Session, conversation_id: int) -> None:
    """The conversation changed hands: its posts are to show it (the update goes out after this commits)."""
    session.exec(
        update(SupportPost)
        .where(SupportPost.conversation_id == conversation_id)
        .values(version=SupportPost.version + 1)
    )
