"""The Slack support desk: what staff do from the support channel (bot/support/slack_posts.py posts it).

`SlackSupportDesk` is what the Slack adapter calls: a click on Take / Resolve becomes
`bot.support.conversations.apply_action`, a reply in a post's thread becomes
`bot.support.conversations.reply_as_staff`, both as the staff member linked to the Slack user
(`socialbot staff link`). Anyone else is told privately to link their account, and nothing changes.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from bot.crm.audit import audit
from bot.crm.db import session_scope
from bot.crm.models import Staff, SupportPost
from bot.delivery.outbox import deliver_due
from bot.runtime.container import Runtime
from bot.support.conversations import apply_action, reply_as_staff
from bot.support.handoff import ConversationNotFound
from bot.support.slack_posts import notify_support_channel
from bot.support.staff import StaffError, may

if TYPE_CHECKING:
    from channels.slack import SupportThreadReply

__all__ = ["SlackSupportDesk", "link_slack_user"]

log = logging.getLogger("socialbot.support_channel")

UNLINKED_NOTICE = (
    "Your Slack account is not linked to a socialbot staff account, so nothing was changed. "
    "An admin can link it with: socialbot staff link YOUR-EMAIL --slack-user-id {user}"
)
# Slack member ids: U... (or W... on Enterprise Grid), upper-case letters and digits.
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")

NOT_ALLOWED_NOTICE = "Your socialbot role ({role}) can't act on conversations, so nothing was changed."
GONE_NOTICE = "Conversation {id} no longer exists; nothing was changed."


class SlackSupportDesk:
    """What the Slack adapter calls for staff working in the support channel (its `staff_actions` and
    `staff_replies`). Each call is one quick transaction; Slack is updated in the background.

    Args:
        runtime: the worker's runtime (database, settings, channels, background executor).
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def staff_action(self, action: str, conversation_id: int, slack_user_id: str) -> str | None:
        """Take or resolve the conversation as the staff member linked to `slack_user_id`; returns a notice
        for that person when nothing was changed, else None."""
        staff_or_notice = self._staff(slack_user_id)
        if isinstance(staff_or_notice, str):
            return staff_or_notice
        try:
            state = apply_action(
                self.runtime.engine,
                conversation_id,
                action,
                staff_id=staff_or_notice,
                followup_settings=self.runtime.settings.followups,
            )
        except ConversationNotFound:
            return GONE_NOTICE.format(id=conversation_id)
        except ValueError as error:
            return f"{error}; nothing was changed."
        log.info(
            "slack: %s on conversation %s by staff %s -> %s", action, conversation_id, staff_or_notice, state
        )
        notify_support_channel(self.runtime)
        return None

    def staff_reply(self, reply: SupportThreadReply) -> str | None:
        """Send a reply written in an escalation's thread to the customer, on their channel, as the linked
        staff member; returns a notice for the writer when it was not sent, else None. The Slack message's
        ts is the idempotency key, so a redelivered event sends nothing twice."""
        with session_scope(self.runtime.engine, read_only=True) as session:
            conversation_id = session.exec(
                select(SupportPost.conversation_id).where(
                    SupportPost.support_channel == reply.support_channel, SupportPost.ts == reply.post_ts
                )
            ).first()
        if conversation_id is None:
            return None  # a thread that is not an escalation: colleagues talking
        staff_or_notice = self._staff(reply.slack_user_id)
        if isinstance(staff_or_notice, str):
            return staff_or_notice.replace("nothing was changed", "your message was not sent to the customer")
        if not reply.text.strip():
            return None
        try:
            reply_as_staff(
                self.runtime.engine,
                conversation_id,
                staff_id=staff_or_notice,
                text=reply.text,
                idempotency_key=f"slack-support:{reply.support_channel}:{reply.ts}",
            )
        except ConversationNotFound:
            return GONE_NOTICE.format(id=conversation_id).replace("nothing was changed", "not sent")
        channels = self.runtime.channels
        self.runtime.submit(deliver_due, self.runtime.engine, channels)
        notify_support_channel(self.runtime)
        return None

    def _staff(self, slack_user_id: str) -> int | str:
        """The id of the active staff member linked to `slack_user_id` who may act on conversations, or the
        notice telling them why not."""
        with session_scope(self.runtime.engine, read_only=True) as session:
            staff = session.exec(select(Staff).where(Staff.slack_user_id == slack_user_id)).first()
            if staff is None:
                return UNLINKED_NOTICE.format(user=slack_user_id)
            if not may(staff, "conversations.write"):
                role = staff.role if staff.active else "disabled account"
                return NOT_ALLOWED_NOTICE.format(role=role)
            return staff.id


def link_slack_user(session: Session, email: str, slack_user_id: str | None) -> Staff:
    """Link the staff member with `email` to a Slack member id (None: remove the link), audited.

    Raises:
        StaffError: no such staff member, a malformed id, or the id is linked to someone else already.
    """
    staff = session.exec(select(Staff).where(Staff.email == email.strip().lower())).first()
    if staff is None:
        raise StaffError(f"no staff account for {email}")
    if slack_user_id is not None:
        slack_user_id = slack_user_id.strip()
        if not SLACK_USER_ID.match(slack_user_id):
            raise StaffError(f"{slack_user_id!r} is not a Slack member id (U... or W..., e.g. U024BE7LH)")
        other = session.exec(
            select(Staff).where(Staff.slack_user_id == slack_user_id, Staff.id != staff.id)
        ).first()
        if other is not None:
            raise StaffError(f"Slack user {slack_user_id} is already linked to {other.email}")
    previous, staff.slack_user_id = staff.slack_user_id, slack_user_id
    session.add(staff)
    audit(
        session,
        "staff.slack_linked" if slack_user_id else "staff.slack_unlinked",
        "staff",
        staff.id,
        actor_kind="system",
        details={"from": previous, "to": slack_user_id},
    )
    return staff
