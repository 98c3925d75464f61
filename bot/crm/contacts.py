"""What staff call a customer: the best name the CRM has for them, never a bare row number.

The contact's own name, else a name or @handle one of their channels gave, else their e-mail address, else
"<channel> customer" with a short stable tag (a web chat visitor who gave no name), else "erased customer"
for a contact whose personal data was erased.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from sqlmodel import Session, select

from bot.crm.models import Contact, Identity

__all__ = ["addressed_as", "best_name", "contact_names"]

CHANNEL_LABELS = {
    "webchat": "Web chat visitor",
    "email": "E-mail customer",
    "slack": "Slack user",
    "telegram": "Telegram user",
    "twitter": "X user",
}


def _tag(value: str) -> str:
    """A short stable tag telling unnamed customers apart without showing their account id."""
    return hashlib.sha1(value.encode()).hexdigest()[:4]


def addressed_as(contact: Contact | None, identities: Sequence[Identity]) -> str | None:
    """The name or @handle the customer gave us, to address them by; None when they gave none."""
    if contact is not None and contact.display_name:
        return contact.display_name
    ordered = sorted(identities, key=lambda identity: identity.id or 0)
    for identity in ordered:
        if identity.display_name:
            return identity.display_name
    for identity in ordered:
        if identity.handle:
            return identity.handle if identity.handle.startswith("@") else f"@{identity.handle}"
    return None


def best_name(contact: Contact | None, identities: Sequence[Identity]) -> str:
    """The name staff see for `contact`, from the contact row and its channel identities."""
    name = addressed_as(contact, identities)
    if name:
        return name
    ordered = sorted(identities, key=lambda identity: identity.id or 0)
    if contact is not None and contact.email:
        return contact.email
    for identity in ordered:
        if identity.channel == "email" and identity.external_user_id:
            return identity.external_user_id
    for identity in ordered:
        if identity.external_user_id:
            label = CHANNEL_LABELS.get(identity.channel, f"{identity.channel} customer")
            return f"{label} {_tag(identity.external_user_id)}"
    return "Erased customer" if contact is not None and contact.opted_out else "Unnamed customer"


def contact_names(session: Session, contact_ids: Iterable[int]) -> dict[int, str]:
    """`best_name` of each contact in `contact_ids`, in two queries."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    contacts = {c.id: c for c in session.exec(select(Contact).where(Contact.id.in_(ids))).all()}
    identities: dict[int, list[Identity]] = {contact_id: [] for contact_id in ids}
    for identity in session.exec(select(Identity).where(Identity.contact_id.in_(ids))).all():
        identities[identity.contact_id].append(identity)
    return {contact_id: best_name(contacts.get(contact_id), identities[contact_id]) for contact_id in ids}
