"""The staff JSON API for contacts (one customer across channels) and their follow-ups, and the public
e-mail unsubscribe page.

- `GET /api/v1/contacts/{id}`: the contact with every identity and conversation.
- `GET /api/v1/contacts/{id}/followups`: their follow-ups (scheduled, sent, cancelled, failed).
- `POST /api/v1/contacts/{id}/followups`: schedule one by hand (`{"text", "due_at", "conversation_id"?,
  "channels"?}`).
- `POST /api/v1/followups/{id}/cancel`: cancel one that has not gone out.
- `POST /api/v1/contacts/{id}/merge` (`{"other_contact_id", "reason"}`) and `POST /api/v1/merges/{id}/undo`.
- `GET|POST /email/unsubscribe?token=...`: the signed link from every mail (GET shows a confirm button, so
  a mail scanner that follows links does not opt anyone out; POST, as RFC 8058 one-click, does).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, select

from bot.crm.db import session_scope
from bot.crm.models import Contact, ContactMerge, Conversation, FollowUp, Identity, Staff
from bot.engagement.followups import (
    CUSTOM,
    FollowupError,
    cancel_followup,
    read_unsubscribe_token,
    schedule_followup,
    unsubscribe,
)
from bot.engagement.identity import MergeConflict, merge_contacts, unmerge_contacts
from bot.web.auth import api_staff
from bot.web.dependencies import RuntimeDep

__all__ = ["router"]


class IdentityOut(BaseModel):
    id: int
    channel: str
    external_user_id: str
    handle: str | None
    verified: bool


class ContactConversationOut(BaseModel):
    id: int
    channel: str
    state: str
    csat: int | None
    last_message_at: datetime


class ContactOut(BaseModel):
    id: int
    display_name: str | None
    email: str | None
    opted_out: bool
    ladder_stage: str
    identities: list[IdentityOut]
    conversations: list[ContactConversationOut]


class FollowupOut(BaseModel):
    id: int
    conversation_id: int
    channel: str
    template: str
    due_at: datetime
    status: str
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    text: str | None

    @classmethod
    def of(cls, row: FollowUp) -> FollowupOut:
        return cls(**{name: getattr(row, name) for name in cls.model_fields})


class FollowupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=2000, description="what the customer receives")
    due_at: datetime = Field(description="when to send it (ISO 8601 with a time zone)")
    conversation_id: int | None = Field(
        default=None, description="the conversation it is about; default: latest"
    )
    channels: list[str] | None = Field(default=None, description="default: every channel that reaches them")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("must not be empty or only whitespace")
        return text.strip()

    @field_validator("due_at")
    @classmethod
    def _aware(cls, due_at: datetime) -> datetime:
        if due_at.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2026-11-24T09:00:00Z)")
        return due_at.astimezone(UTC)


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_contact_id: int = Field(description="the contact folded into this one")
    reason: str = Field(min_length=3, max_length=500, description="why they are the same person (audited)")


class MergeOut(BaseModel):
    id: int
    into_contact_id: int
    from_contact_id: int
    merged_at: datetime
    undone_at: datetime | None


def _contact_out(session: Session, contact: Contact) -> ContactOut:
    identities = session.exec(select(Identity).where(Identity.contact_id == contact.id).order_by(Identity.id))
    conversations = session.exec(
        select(Conversation).where(Conversation.contact_id == contact.id).order_by(Conversation.id)
    )
    return ContactOut(
        id=contact.id,
        display_name=contact.display_name,
        email=contact.email,
        opted_out=contact.opted_out,
        ladder_stage=contact.ladder_stage,
        identities=[
            IdentityOut(
                id=i.id,
                channel=i.channel,
                external_user_id=i.external_user_id,
                handle=i.handle,
                verified=i.verified,
            )
            for i in identities
        ],
        conversations=[
            ContactConversationOut(
                id=c.id, channel=c.channel, state=c.state, csat=c.csat, last_message_at=c.last_message_at
            )
            for c in conversations
        ],
    )


def _unsubscribe_page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>",
        status_code=status,
    )


router = APIRouter()
Reader = Annotated[Staff, Depends(api_staff("conversations.read"))]
Writer = Annotated[Staff, Depends(api_staff("conversations.write"))]


def _load_contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise HTTPException(404, f"contact {contact_id} does not exist")
    return contact


@router.get("/api/v1/contacts/{contact_id}", response_model=ContactOut, tags=["staff"])
def get_contact(contact_id: int, runtime: RuntimeDep, staff: Reader) -> ContactOut:
    """One customer: every identity (channel account) and every conversation."""
    with session_scope(runtime.engine) as session:
        return _contact_out(session, _load_contact(session, contact_id))


@router.get("/api/v1/contacts/{contact_id}/followups", response_model=list[FollowupOut], tags=["staff"])
def get_followups(
    contact_id: int,
    runtime: RuntimeDep,
    staff: Reader,
    status: Annotated[str | None, Query(pattern="^(pending|sent|cancelled|failed)$")] = None,
) -> list[FollowupOut]:
    """The contact's follow-ups, soonest first (`status` filters)."""
    with session_scope(runtime.engine) as session:
        _load_contact(session, contact_id)
        query = select(FollowUp).where(FollowUp.contact_id == contact_id, FollowUp.channel != "staff")
        if status:
            query = query.where(FollowUp.status == status)
        return [FollowupOut.of(row) for row in session.exec(query.order_by(FollowUp.due_at, FollowUp.id))]


@router.post(
    "/api/v1/contacts/{contact_id}/followups",
    response_model=list[FollowupOut],
    status_code=201,
    tags=["staff"],
)
def post_followup(contact_id: int, body: FollowupIn, runtime: RuntimeDep, staff: Writer) -> list[FollowupOut]:
    """Schedule a follow-up written by hand (one row per channel)."""
    with session_scope(runtime.engine) as session:
        _load_contact(session, contact_id)
        query = select(Conversation).where(Conversation.contact_id == contact_id)
        if body.conversation_id is not None:
            query = query.where(Conversation.id == body.conversation_id)
        conversation = session.exec(query.order_by(Conversation.last_message_at.desc())).first()
        if conversation is None:
            raise HTTPException(422, "the contact has no such conversation")
        try:
            rows = schedule_followup(
                session,
                conversation,
                template=CUSTOM,
                due_at=body.due_at,
                channels=body.channels,
                text=body.text,
                staff_id=staff.id,
            )
        except FollowupError as error:
            raise HTTPException(422, str(error)) from None
        return [FollowupOut.of(row) for row in rows]


@router.post("/api/v1/followups/{followup_id}/cancel", response_model=FollowupOut, tags=["staff"])
def post_cancel(followup_id: int, runtime: RuntimeDep, staff: Writer) -> FollowupOut:
    """Cancel a follow-up that has not gone out yet (409 if it has)."""
    with session_scope(runtime.engine) as session:
        row = session.get(FollowUp, followup_id)
        if row is None:
            raise HTTPException(404, f"follow-up {followup_id} does not exist")
        try:
            return FollowupOut.of(cancel_followup(session, followup_id, staff_id=staff.id))
        except FollowupError as error:
            raise HTTPException(409, str(error)) from None


@router.post("/api/v1/contacts/{contact_id}/merge", response_model=MergeOut, tags=["staff"])
def post_merge(contact_id: int, body: MergeIn, runtime: RuntimeDep, staff: Writer) -> MergeOut:
    """Fold another contact into this one (audited; undo with /api/v1/merges/{id}/undo). 409 when their
    verified identities conflict."""
    with session_scope(runtime.engine) as session:
        _load_contact(session, contact_id)
        _load_contact(session, body.other_contact_id)
        try:
            merge = merge_contacts(
                session,
                into_contact_id=contact_id,
                from_contact_id=body.other_contact_id,
                reason=body.reason,
                staff_id=staff.id,
            )
        except MergeConflict as error:
            raise HTTPException(409, str(error)) from None
        return MergeOut.model_validate(merge, from_attributes=True)


@router.post("/api/v1/merges/{merge_id}/undo", response_model=MergeOut, tags=["staff"])
def post_unmerge(merge_id: int, runtime: RuntimeDep, staff: Writer) -> MergeOut:
    """Undo a merge: the other contact gets back its identities, conversations and messages."""
    with session_scope(runtime.engine) as session:
        if session.get(ContactMerge, merge_id) is None:
            raise HTTPException(404, f"merge {merge_id} does not exist")
        try:
            merge = unmerge_contacts(session, merge_id, staff_id=staff.id)
        except MergeConflict as error:
            raise HTTPException(409, str(error)) from None
        return MergeOut.model_validate(merge, from_attributes=True)


@router.get("/email/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_page(token: Annotated[str, Query(max_length=500)], runtime: RuntimeDep) -> HTMLResponse:
    try:
        address = read_unsubscribe_token(runtime.settings, token)
    except FollowupError as error:
        return _unsubscribe_page("Link not valid", f"<p>{html.escape(str(error))}</p>", 400)
    return _unsubscribe_page(
        "Unsubscribe",
        f"<p>Stop follow-up e-mails and messages to {html.escape(address)}?</p>"
        f"<form method='post' action='/email/unsubscribe?token={html.escape(token)}'>"
        "<button type='submit'>Unsubscribe</button></form>",
    )


@router.post("/email/unsubscribe", response_class=HTMLResponse, include_in_schema=False)
def unsubscribe_now(token: Annotated[str, Query(max_length=500)], runtime: RuntimeDep) -> HTMLResponse:
    try:
        address = read_unsubscribe_token(runtime.settings, token)
    except FollowupError as error:
        return _unsubscribe_page("Link not valid", f"<p>{html.escape(str(error))}</p>", 400)
    with session_scope(runtime.engine) as session:
        unsubscribe(session, address)
    return _unsubscribe_page(
        "Unsubscribed", f"<p>{html.escape(address)} will get no more follow-ups from us.</p>"
    )
