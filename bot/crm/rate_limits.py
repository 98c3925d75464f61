"""Rate limits kept in the database, so they hold across every worker process and restart.

A limit allows `hits` per `window_seconds` per key (a client address, an address and an account, an e-mail
address). `take` counts a hit and says whether it is allowed, in one atomic statement (an upsert): the hit is
reserved before the work it guards starts, so parallel requests cannot all slip through before any of them
is counted. A window starts at a key's first hit and ends `window_seconds` later. Keys are stored hashed (no
client address or e-mail address in this table); old windows are deleted by `forget_expired`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from sqlalchemy import Float, bindparam, case, delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from bot.crm.models import RateLimitWindow

__all__ = ["Limit", "forget_expired", "give_back", "take"]

#: Windows older than this are deleted (longer than the longest window of any limit).
KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `hits` per `window_seconds` for each key; `hits == 0` switches the limit off."""

    name: str
    hits: int
    window_seconds: float

    def key(self, *parts: str) -> str:
        """The stored key for `parts` (hashed: no addresses in the table)."""
        digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:40]
        return f"{self.name}:{digest}"


def _upsert(insert):
    """The statement `take` runs (built once per dialect: building it cost more than running it; the key and
    the moment are bound per hit)."""
    table = RateLimitWindow.__table__
    now = bindparam("now", type_=Float)
    expired = table.c.started <= bindparam("expired_before", type_=Float)
    return (
        insert(table)
        .values(key=bindparam("row_key"), started=now, hits=1)
        .on_conflict_do_update(
            index_elements=[table.c.key],
            set_={
                "hits": case((expired, 1), else_=table.c.hits + 1),
                "started": case((expired, now), else_=table.c.started),
            },
        )
        .returning(table.c.hits, table.c.started)
    )


#: `take`'s upsert on SQLite (False) and PostgreSQL (True).
_UPSERTS = {False: _upsert(sqlite.insert), True: _upsert(postgresql.insert)}


def take(session: Session, limit: Limit, *parts: str, now: float | None = None) -> float:
    """Count a hit for `parts` under `limit`; 0 if it is allowed, else the seconds until it would be.

    Runs in `session`'s transaction (on PostgreSQL the key's row stays locked until it ends).
    """
    if limit.hits <= 0:
        return 0.0
    now = time.time() if now is None else now
    statement = _UPSERTS[session.get_bind().dialect.name == "postgresql"]
    values = {"row_key": limit.key(*parts), "now": now, "expired_before": now - limit.window_seconds}
    hits, started = session.execute(statement, values).one()
    if hits <= limit.hits:
        return 0.0
    return max(started + limit.window_seconds - now, 0.001)


def give_back(session: Session, limit: Limit, *parts: str) -> None:
    """Uncount one hit (a login that succeeded does not count against its limits)."""
    if limit.hits <= 0:
        return
    table = RateLimitWindow.__table__
    session.execute(
        table.update().where(table.c.key == limit.key(*parts), table.c.hits > 0).values(hits=table.c.hits - 1)
    )


def forget_expired(session: Session, *, now: float | None = None) -> int:
    """Delete windows that ended long ago; how many."""
    now = time.time() if now is None else now
    table = RateLimitWindow.__table__
    return session.execute(delete(table).where(table.c.started < now - KEEP_SECONDS)).rowcount
