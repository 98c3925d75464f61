"""One customer across channels: e-mail verification by one-time code (`link_email`, which the pipeline's
identity step calls for a customer's message) and contact merges (undoable).

Linking: the customer tells the bot their e-mail address on any channel -> the bot mails a 6-digit code
(only its salted hash is stored; the mail's text is redacted once the code is used up) -> the customer sends
the code back in the same conversation -> the address becomes a verified `email` identity of their contact. If
another contact already owns that address, the two contacts are merged, unless their verified identities
conflict (both have a different verified account on the same channel): then nothing is merged and the
refusal is audited for staff. Wrong codes are limited (`MAX_CODE_ATTEMPTS`); an invalid address makes the bot
ask again.

Merges move every row of one contact onto the other and record exactly which rows moved (`ContactMerge`),
so `unmerge_contacts` puts them back. Both are audited.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update
from sqlmodel import Session, SQLModel, select

from bot.crm.audit import audit
from bot.crm.languages import reply_language
from bot.crm.models import (
    Contact,
    ContactMerge,
    Conversation,
    DataRequest,
    FollowUp,
    Idea,
    Identity,
    IdentityVerification,
    LadderChange,
    Message,
    Outbox,
    utcnow,
)
from bot.crm.rate_limits import Limit, take
from bot.delivery.outbox import enqueue
from bot.engagement.followups import email_conversation
from bot.policy.routing import Action, Decision
from bot.runtime.container import Runtime

__all__ = [
    "MAX_CODE_ATTEMPTS",
    "MergeConflict",
    "link_email",
    "mail_request_code",
    "merge_contacts",
    "request_confirmed_by_code",
    "unmerge_contacts",
]

MAX_CODE_ATTEMPTS = 5
CODE_TTL = timedelta(minutes=15)
ASK_AGAIN_TTL = timedelta(minutes=30)
MAX_CODES_PER_HOUR = 3
# An address is taken as "here is my e-mail" only in a short message (a question that merely mentions an
# address goes to policy as usual).
MAX_WORDS_AROUND_ADDRESS = 6

_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\],;:\"']+@[^\s<>()\[\],;:\"']*")
_CODE = re.compile(r"^\s*(?:(?:my |the )?code(?: is)?:?\s*)?(\d{3})[\s-]?(\d{3})\s*[.!]?\s*$", re.IGNORECASE)


class MergeConflict(ValueError):
    """Two contacts can't be merged: their verified identities conflict, or the merge makes no sense."""


# Recognising what the customer sent


def _address_attempt(text: str) -> str | None:
    """The address-looking token of a short "this is my e-mail" message, if it is one."""
    tokens = _ADDRESS_LIKE.findall(text)
    if len(tokens) != 1:
        return None
    others = len(text.replace(tokens[0], " ").split())
    return tokens[0].rstrip(".!?") if others <= MAX_WORDS_AROUND_ADDRESS else None


def _hash_code(code: str, salt: str | None = None) -> str:
    salt = salt or secrets.token_hex(16)
    digest = hmac.new(salt.encode(), code.encode(), hashlib.sha256).hexdigest()
    return f"{salt}${digest}"


def _code_matches(code: str, stored: str) -> bool:
    salt, _, _ = stored.partition("$")
    return hmac.compare_digest(_hash_code(code, salt), stored)


def _mask(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


# The pipeline's identity step


def link_email(
    runtime: Runtime,
    session: Session,
    message: Message,
    conversation: Conversation,
    text: str,
    *,
    detected_language: str | None,
    now: datetime | None = None,
) -> Decision | None:
    """Answer a verification code or an e-mail address the customer sent as `text` (`message`'s text without
    leading @mentions), in the pipeline's transaction; None when it is neither (or no e-mail channel can
    mail a code), so the next step decides. The replies and the mailed code are in the customer's language
    (`detected_language` on this message, else their last one) where the brand has the words.
    """
    now = now or utcnow()
    if "email" not in runtime.channels:
        return None  # no way to mail a code: addresses and codes are ordinary messages
    pending = _open_verification(session, conversation.id)
    code_expected = pending is not None and pending.status == "pending" and _CODE.match(text)
    attempt = None if code_expected else _address_attempt(text)
    if not code_expected and attempt is None:
        if pending is not None and pending.status == "awaiting_email":
            pending.status, pending.completed_at = "expired", now  # they moved on
            session.add(pending)
        return None
    language = reply_language(session, conversation.id, detected_language)
    if code_expected:
        return _check_code(runtime, session, text, message, pending, now, language)
    try:
        address = validate_email(attempt, check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        return _ask_again(session, message, conversation, pending, str(error), now, language)
    if address.rpartition("@")[2] == runtime.settings.email.from_address.rpartition("@")[2].lower():
        return None  # the brand's own address, mentioned in passing
    return _send_code(runtime, session, message, conversation, address, now, language)


def _open_verification(session: Session, conversation_id: int) -> IdentityVerification | None:
    return session.exec(
        select(IdentityVerification)
        .where(
            IdentityVerification.conversation_id == conversation_id,
            IdentityVerification.status.in_(("awaiting_email", "pending")),
        )
        .order_by(IdentityVerification.id.desc())
    ).first()


def _ask_again(
    session: Session,
    message: Message,
    conversation: Conversation,
    pending: IdentityVerification | None,
    error: str,
    now: datetime,
    language: str | None,
) -> Decision:
    if pending is None or pending.status != "awaiting_email":
        pending = IdentityVerification(
            contact_id=message.contact_id,
            conversation_id=conversation.id,
            status="awaiting_email",
            expires_at=now + ASK_AGAIN_TTL,
        )
    pending.attempts += 1
    session.add(pending)
    return Decision(
        Action.VERIFY_EMAIL,
        "an invalid e-mail address: asked again",
        template="invalid_address",
        language=language,
        variables={"error": error.rstrip(".")},
    )


def mail_request_code(
    runtime: Runtime,
    session: Session,
    message: Message,
    conversation: Conversation,
    request: DataRequest,
    address: str,
    language: str | None,
) -> Decision | None:
    """A data request from a sender nobody vouched for (an unauthenticated e-mail): mail a code to `address`
    in `language` (None: the brand's default). The request goes ahead when the code comes back
    (`request_confirmed_by_code`). Returns None when the code is on its way, or the refusal to answer when
    the hourly limit of codes is reached."""
    decision = _send_code(
        runtime, session, message, conversation, address, utcnow(), language, request=request
    )
    return decision if decision.reason == _CODE_LIMIT else None


def request_confirmed_by_code(session: Session, conversation_id: int) -> DataRequest | None:
    """The data request whose code was just verified in this conversation and still waits, if any."""
    return session.exec(
        select(DataRequest)
        .join(IdentityVerification, IdentityVerification.data_request_id == DataRequest.id)
        .where(
            IdentityVerification.conversation_id == conversation_id,
            IdentityVerification.status == "verified",
            DataRequest.status == "unverified",
        )
        .order_by(IdentityVerification.id.desc())
    ).first()


_CODE_LIMIT = "code limit per hour reached"


def _send_code(
    runtime: Runtime,
    session: Session,
    message: Message,
    conversation: Conversation,
    address: str,
    now: datetime,
    language: str | None,
    *,
    request: DataRequest | None = None,
) -> Decision:
    recent = session.exec(
        select(IdentityVerification).where(
            IdentityVerification.contact_id == message.contact_id,
            IdentityVerification.code_hash.is_not(None),
            IdentityVerification.created_at >= now - timedelta(hours=1),
        )
    ).all()
    if len(recent) >= MAX_CODES_PER_HOUR or _over_code_limits(runtime, session, message, address):
        return Decision(Action.VERIFY_EMAIL, _CODE_LIMIT, template="too_many_codes", language=language)
    for earlier in session.exec(
        select(IdentityVerification).where(
            IdentityVerification.contact_id == message.contact_id,
            IdentityVerification.status.in_(("awaiting_email", "pending")),
        )
    ).all():
        earlier.status, earlier.completed_at = "expired", now  # a new code replaces it
        session.add(earlier)
        _redact_code_mail(session, earlier)
    code = f"{secrets.randbelow(10**6):06d}"
    verification = IdentityVerification(
        contact_id=message.contact_id,
        conversation_id=conversation.id,
        status="pending",
        email=address,
        code_hash=_hash_code(code),
        expires_at=now + CODE_TTL,
        data_request_id=request.id if request is not None else None,
    )
    session.add(verification)
    session.flush()
    owner = session.exec(
        select(Identity).where(Identity.channel == "email", Identity.external_user_id == address)
    ).first()
    mail_thread = email_conversation(session, owner.contact_id if owner else message.contact_id, address)
    if request is None:
        text = runtime.policy.render("code_mail", language=language, code=code)
    else:
        text = runtime.policy.render(
            "request_code_mail", language=language, code=code, id=request.id, kind=request.kind
        )
    enqueue(session, conversation=mail_thread, text=text, idempotency_key=f"verify:{verification.id}")
    audit(
        session,
        "identity.code_sent",
        "contact",
        message.contact_id,
        actor_kind="customer",
        details={"email": _mask(address)},
    )
    return Decision(
        Action.VERIFY_EMAIL,
        f"e-mail address given: code {verification.id} sent",
        template="code_sent",
        language=language,
        variables={"address": address},
    )


def _over_code_limits(runtime: Runtime, session: Session, message: Message, address: str) -> bool:
    """Count a code for `address` and for the client address the message came from (the web chat gives
    it); True when either has had its hour's codes (`[verification]`): a stranger's address can't be
    flooded with codes from many anonymous chats, nor many addresses from one client."""
    limits = runtime.settings.verification
    per_address = Limit("verify:address", limits.codes_per_address_per_hour, 3600)
    waits = [take(session, per_address, address)]
    client = (message.raw or {}).get("client_ip")
    if client:
        waits.append(take(session, Limit("verify:client", limits.codes_per_ip_per_hour, 3600), client))
    return any(waits)


def _redact_code_mail(session: Session, verification: IdentityVerification) -> None:
    """The mailed code is no use once the verification is over; don't keep it readable."""
    outbox = session.exec(select(Outbox).where(Outbox.idempotency_key == f"verify:{verification.id}")).first()
    if outbox is None:
        return
    outbox.text = "[confirmation code, removed after use]"
    mail = session.get(Message, outbox.message_id)
    mail.text = outbox.text
    session.add_all([outbox, mail])


def _check_code(
    runtime: Runtime,
    session: Session,
    text: str,
    message: Message,
    verification: IdentityVerification,
    now: datetime,
    language: str | None,
) -> Decision:
    code = "".join(_CODE.match(text).groups())
    if verification.expires_at < now:
        verification.status, verification.completed_at = "expired", now
        _redact_code_mail(session, verification)
        session.add(verification)
        return Decision(
            Action.VERIFY_EMAIL, "verification code expired", template="code_expired", language=language
        )
    if not _code_matches(code, verification.code_hash):
        verification.attempts += 1
        session.add(verification)
        left = MAX_CODE_ATTEMPTS - verification.attempts
        if left <= 0:
            verification.status, verification.completed_at = "failed", now
            _redact_code_mail(session, verification)
            audit(
                session,
                "identity.verification_failed",
                "contact",
                verification.contact_id,
                actor_kind="customer",
            )
            return Decision(
                Action.VERIFY_EMAIL,
                "too many wrong codes",
                template="too_many_wrong_codes",
                language=language,
            )
        return Decision(
            Action.VERIFY_EMAIL,
            f"wrong verification code ({verification.attempts}/{MAX_CODE_ATTEMPTS})",
            template="wrong_code",
            language=language,
            variables={"tries": left},
        )
    verification.status, verification.completed_at = "verified", now
    session.add(verification)
    _redact_code_mail(session, verification)
    address = verification.email
    contact = session.get(Contact, message.contact_id)
    identity = session.exec(
        select(Identity).where(Identity.channel == "email", Identity.external_user_id == address)
    ).first()
    if identity is None:
        identity = Identity(
            contact_id=contact.id, channel="email", external_user_id=address, handle=address, verified=True
        )
    elif identity.contact_id != contact.id:
        try:
            merge_contacts(
                session,
                into_contact_id=min(contact.id, identity.contact_id),
                from_contact_id=max(contact.id, identity.contact_id),
                reason=f"the customer proved they own {address} (verification {verification.id})",
                actor_kind="customer",
            )
        except MergeConflict as error:
            audit(
                session,
                "contact.merge_refused",
                "contact",
                contact.id,
                actor_kind="customer",
                details={"other": identity.contact_id, "why": str(error)},
            )
            return Decision(
                Action.VERIFY_EMAIL,
                f"verified but not merged: {error}",
                template="email_conflict",
                language=language,
                variables={"address": address},
            )
        contact = session.get(Contact, min(contact.id, identity.contact_id))
    identity.verified = True
    session.add(identity)
    if not contact.email:
        contact.email = address
        session.add(contact)
    audit(
        session,
        "identity.verified",
        "contact",
        contact.id,
        actor_kind="customer",
        details={"channel": "email", "email": _mask(address)},
    )
    return Decision(
        Action.VERIFY_EMAIL,
        "e-mail address verified",
        template="email_verified",
        language=language,
        variables={"address": address},
    )


# Merging


#: Tables whose rows belong to a contact, moved by a merge (model, column).
_OWNED: tuple[tuple[type[SQLModel], str], ...] = (
    (Identity, "identity"),
    (Conversation, "conversation"),
    (Message, "message"),
    (FollowUp, "followup"),
    (Idea, "idea"),
    (LadderChange, "ladderchange"),
    (IdentityVerification, "identityverification"),
)


def _conflicts(session: Session, a: int, b: int) -> list[str]:
    def verified(contact_id: int) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for identity in session.exec(
            select(Identity).where(Identity.contact_id == contact_id, Identity.verified)
        ).all():
            found.setdefault(identity.channel, set()).add(identity.external_user_id)
        return found

    mine, theirs = verified(a), verified(b)
    return sorted(channel for channel in set(mine) & set(theirs) if mine[channel] != theirs[channel])


def merge_contacts(
    session: Session,
    *,
    into_contact_id: int,
    from_contact_id: int,
    reason: str,
    staff_id: int | None = None,
    actor_kind: str = "staff",
) -> ContactMerge:
    """Fold `from_contact` into `into_contact`: every identity, conversation, message, follow-up, idea and
    ladder change moves; the record of what moved makes it undoable.

    Raises:
        MergeConflict: same contact, a contact missing, or both have different verified identities on the same
            channel (two different people, as far as the platforms can tell).
    """
    if into_contact_id == from_contact_id:
        raise MergeConflict("a contact can't be merged with itself")
    into, other = session.get(Contact, into_contact_id), session.get(Contact, from_contact_id)
    if into is None or other is None:
        raise MergeConflict(f"contact {from_contact_id if into else into_contact_id} does not exist")
    conflicts = _conflicts(session, into_contact_id, from_contact_id)
    if conflicts:
        raise MergeConflict(
            f"contacts {into_contact_id} and {from_contact_id} have different verified identities on "
            f"{', '.join(conflicts)}"
        )
    moved: dict[str, Any] = {
        "into_before": {"email": into.email, "opted_out": into.opted_out, "display_name": into.display_name}
    }
    for model, name in _OWNED:
        ids = list(session.exec(select(model.id).where(model.contact_id == from_contact_id)).all())
        if ids:
            session.exec(update(model).where(model.id.in_(ids)).values(contact_id=into_contact_id))
        moved[name] = ids
    into.email = into.email or other.email
    into.opted_out = into.opted_out or other.opted_out  # an opt-out is never lost by merging
    into.display_name = into.display_name or other.display_name
    session.add(into)
    merge = ContactMerge(
        into_contact_id=into_contact_id,
        from_contact_id=from_contact_id,
        moved=moved,
        reason=reason,
        staff_id=staff_id,
    )
    session.add(merge)
    session.flush()
    audit(
        session,
        "contact.merged",
        "contact",
        into_contact_id,
        actor_kind=actor_kind,
        actor_id=staff_id,
        details={"merge_id": merge.id, "from_contact_id": from_contact_id, "reason": reason},
    )
    return merge


def unmerge_contacts(session: Session, merge_id: int, *, staff_id: int | None = None) -> ContactMerge:
    """Undo a merge: the rows that moved go back, with the messages and follow-ups written since in the
    conversations that go back.

    Raises:
        MergeConflict: no such merge, or it was undone already.
    """
    merge = session.get(ContactMerge, merge_id)
    if merge is None:
        raise MergeConflict(f"merge {merge_id} does not exist")
    if merge.undone_at is not None:
        raise MergeConflict(f"merge {merge_id} was undone already at {merge.undone_at.isoformat()}")
    back, into_id = merge.from_contact_id, merge.into_contact_id
    conversations = merge.moved.get("conversation", [])
    for model, name in _OWNED:
        ids = merge.moved.get(name, [])
        if ids:
            session.exec(
                update(model).where(model.id.in_(ids), model.contact_id == into_id).values(contact_id=back)
            )
        if conversations and model in (Message, FollowUp):
            session.exec(
                update(model)
                .where(model.conversation_id.in_(conversations), model.contact_id == into_id)
                .values(contact_id=back)
            )
    into = session.get(Contact, into_id)
    before = merge.moved.get("into_before", {})
    # An opt-out given since the merge stays (never re-subscribe anyone by undoing a merge).
    into.email, into.display_name = before.get("email"), before.get("display_name", into.display_name)
    merge.undone_at, merge.undone_by_staff_id = utcnow(), staff_id
    session.add_all([into, merge])
    audit(
        session,
        "contact.unmerged",
        "contact",
        into_id,
        actor_kind="staff" if staff_id else "system",
        actor_id=staff_id,
        details={"merge_id": merge.id, "from_contact_id": back},
    )
    return merge
