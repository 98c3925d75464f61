"""The encoder's vectors of inbound messages, kept from the one pass that understood each message.

The pipeline stores a message's vector in the transaction that records its understanding
(`store_vector`); topics, knowledge gaps, ideas and the learning loop read them back (`vectors_of`) instead of
encoding again. Vectors are float16 (half the space; cosine similarities move by less than 1e-3) and
L2-normalised, tagged with the encoder's name: a vector of another encoder is never read as one of this one.
Erasing a customer's data or expiring old text deletes their vectors too (bot/crm/data_rights.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sqlalchemy import insert
from sqlmodel import Session, select

from bot.crm.models import MessageVector

__all__ = ["pack_vector", "store_vector", "unpack_vector", "vectors_of"]

#: Rows read per `IN (...)` query (SQLite allows a few thousand parameters).
CHUNK = 900
_INSERT = insert(MessageVector.__table__)


def pack_vector(vector: np.ndarray) -> bytes:
    """`vector`, L2-normalised, as little-endian float16 bytes."""
    vector = np.asarray(vector, dtype=np.float32).ravel()
    norm = float(np.linalg.norm(vector))
    if norm > 0:
        vector = vector / norm
    return vector.astype("<f2").tobytes()


def unpack_vector(data: bytes) -> np.ndarray:
    """The float32 vector `pack_vector` stored."""
    return np.frombuffer(data, dtype="<f2").astype(np.float32)


def store_vector(
    session: Session, message_id: int, vector: np.ndarray, *, encoder: str, new: bool = False
) -> None:
    """Keep `message_id`'s vector by `encoder` in the caller's transaction (replacing an older one, unless
    `new`: the message was just decided, so it has none to look up, and the row is inserted at once)."""
    if new:
        session.connection().execute(
            _INSERT, {"message_id": message_id, "encoder": encoder, "vector": pack_vector(vector)}
        )
        return
    row = session.get(MessageVector, message_id)
    if row is None:
        row = MessageVector(message_id=message_id, encoder=encoder, vector=pack_vector(vector))
    else:
        row.encoder, row.vector = encoder, pack_vector(vector)
    session.add(row)


def vectors_of(session: Session, message_ids: Iterable[int], *, encoder: str) -> dict[int, np.ndarray]:
    """The stored vectors by `encoder` of these messages (those without one are left out)."""
    ids = list(dict.fromkeys(message_ids))
    found: dict[int, np.ndarray] = {}
    for start in range(0, len(ids), CHUNK):
        rows = session.exec(
            select(MessageVector.message_id, MessageVector.vector).where(
                MessageVector.message_id.in_(ids[start : start + CHUNK]),
                MessageVector.encoder == encoder,
            )
        ).all()
        found.update((message_id, unpack_vector(data)) for message_id, data in rows)
    return found
