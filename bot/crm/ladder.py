"""The advocacy ladder: where a customer stands, decided by rules over their whole history, each move
explained in a sentence ("recommended us to friends in a public post on 12 Mar").

The rungs are about behaviour over time; the first rule that holds decides:
1. **detractor** - turned against us: warned others off ("don't buy from them", "avoid", "never again")
   in the last 180 days with nothing positive since; or two or more complaints in the last 90 days, more
   negative messages than positive ones in them, and nothing positive since the last complaint;
2. **advocate** - recommended us to other people ("I told my sister to shop here", "@sam get the Fernhill
   boots", "highly recommend") or defended us in a public thread another customer started, in the last
   year; never while abusive (abuse aimed at people in the last 90 days) or with a complaint waiting for
   staff, and never for praise alone, an idea for the brand, or for having been recommended to us;
3. **loyal** - keeps coming back: signs of having bought on three separate occasions in the last year
   (occasions 30 days apart), or positive about what they bought on two occasions, or says so ("my third
   pair", "customer for years", "back again");
4. **owner** - has bought: talks about their order, parcel, refund, return or a product of theirs ("my
   boots"), or recommends or defends us (speaking from experience);
5. **tire-kicker** - anyone else: general and pre-purchase questions, small talk.
What the words mean is decided by the patterns below (English); intent, sentiment and abuse come from the
models. The patterns read each message once: `text_signs` when it is decided, kept on the message
(`Message.ladder_signs`), so deciding the stage again on every inbound message reads the history's rows in
one query and matches no pattern against an old message again. Each change is a `LadderChange` with its
reason. Measured against hand-labelled histories: `socialbot ladder eval` (README "Insights").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntFlag

from sqlalchemy import and_, bindparam, func, insert, or_, update
from sqlmodel import Session, select

from bot.crm.models import (
    AuthorKind,
    Contact,
    Conversation,
    ConversationState,
    Direction,
    LadderChange,
    LadderStage,
    Message,
    utcnow,
)

__all__ = [
    "Placement",
    "Said",
    "Sign",
    "Standing",
    "count_by_stage",
    "decide_stage",
    "load_history",
    "standing",
    "text_signs",
    "update_ladder",
]

#: Inbound messages a decision reads (the newest); far more than any customer writes in a year.
HISTORY_LIMIT = 1000
DETRACTOR_WARNING_DAYS = 180
DETRACTOR_COMPLAINT_DAYS = 90
ABUSE_BLOCKS_ADVOCACY_DAYS = 90
ADVOCACY_DAYS = 365
LOYALTY_DAYS = 365
#: Signs of buying at least this far apart are separate occasions (one order's messages are one occasion).
OCCASION_GAP_DAYS = 30

_PEOPLE = (
    r"friends?|mates?|family|everyone|everybody|people|sister|brother|mum|mom|dad|wife|husband|partner|"
    r"colleagues?|club|group|team|neighbou?rs?|kids|son|daughter|boss|others"
)
#: Saying outright that they recommend us to other people: clear whatever the models read into it.
REFERRAL = re.compile(
    rf"\b(i|we)(?:'ve| have| always| keep| just| already| often)*\s+"
    rf"(recommend(?:ed|ing)?|told|tell|telling|sen[dt])\b(?:\W+\w+){{0,6}}?\W+({_PEOPLE})\b"
    r"|\b(highly|definitely|totally|thoroughly|strongly|100%|would|fully) recommend\b"
    r"|\bcan'?t recommend (?:\S+ ){0,2}enough\b",
    re.IGNORECASE,
)
#: Telling someone to buy from us ("you should get the boots", "get yourself a pair from ..."): a
#: recommendation unless the message reads negative or as an idea for the brand.
NUDGE = re.compile(
    r"\byou (?:all |guys )?(?:should|need to|have to|must|won't regret(?: it)?) "
    r"(?:get|buy|try|order|go to|check out|shop)\b"
    r"|\bget (?:yourself|yours|one|a pair)\b.*\bfrom\b",
    re.IGNORECASE,
)
#: "recommend you add ...": an idea for the brand, not a recommendation of it.
SUGGESTION = re.compile(
    r"\brecommend (?:that )?(?:you|u) "
    r"(?:add|make|sell|offer|stock|bring|do|start|open|consider|put|use|try)\b",
    re.IGNORECASE,
)
#: Telling someone else (an @handle that is not the brand) to buy from us.
_NUDGE = re.compile(r"\b(get|buy|try|order|head to|go to|check out|shop)\b", re.IGNORECASE)
_HANDLE = re.compile(r"(?<![\w@])@(\w+)")
#: Warning others off.
WARNING = re.compile(
    r"\b(don'?t|do not|never) (buy|order|shop|waste your money)\b|\bavoid\b|\bstay away\b"
    r"|\bwarning to (everyone|all|others)\b|\bnever (again|buying|ordering|shopping)\b"
    r"|\b(i'?ll|i will|i'?m) never (buy|order|shop)\w*\b|\b(taking|take) my (business|money) elsewhere\b"
    r"|\b(buy|order|shop|get it|go)\b[^.!?]*\binstead\b",
    re.IGNORECASE,
)
#: Saying they come back: "my third pair", "customer for years", "back again".
REPEAT = re.compile(
    r"\bmy (second|third|fourth|fifth|sixth|seventh|\d+(st|nd|rd|th)) \w+"
    r"|\b(customer|shopping|shopped|buying|bought)\b[^.!?]{0,20}\b(for|since) "
    r"(years|ages|decades|a decade|\w+ years)\b"
    r"|\b(loyal|long[- ]?time|regular|repeat) customer\b"
    r"|\b(every|each) (year|season|winter|summer|spring|autumn)\b"
    r"|\bback again\b|\b(ordered|bought|buying|ordering)\b[^.!?]{0,15}\bagain\b"
    r"|\balways (buy|order|shop|get)\b",
    re.IGNORECASE,
)
_NOT_BOUGHT = (
    r"friends?|family|mum|mom|dad|sister|brother|wife|husband|partner|kids?|children|son|daughter|dog|cat|"
    r"opinion|view|experience|goodness|god|size|question|mind|life|own|way|name|mates?|money's|bad"
)
#: Signs of having bought: "my order", "I ordered", "sent me", "my new boots".
BOUGHT = re.compile(
    r"\b(i|we)(?:'ve| have| just)? (bought|ordered|purchased|received|got)\b"
    r"|\b(sent|delivered|shipped|sold|charged|refunded) (me|us)\b|\barrived\b|\bdelivered\b"
    r"|\b(i|we) (?:\w+ )?(bought|ordered)\b|\b(ordered|bought) (a|an|the|some|my|another|two|three)\b"
    rf"|\b(my|our) (?:new |brand new |old )?(?!(?:{_NOT_BOUGHT})\b)[a-z]+",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Said:
    """One inbound message of a contact, as the ladder reads it.

    Args:
        in_others_thread: posted in a public thread another customer started.
        waiting_for_staff: its conversation waits for a person (a complaint in it is still open).
        sure: the intent head was sure of `intent` (an unsure "praise" or "complaint" only counts through the
            sentiment).
        signs: what the patterns found in `text` (`text_signs`), when they were matched already; None: match
            them now.
    """

    at: datetime
    text: str
    intent: str | None
    sentiment: str | None
    abusive: bool = False
    public: bool = False
    in_others_thread: bool = False
    waiting_for_staff: bool = False
    sure: bool = True
    signs: int | None = None

    @property
    def positive(self) -> bool:
        return self.sentiment == "positive" or (self.intent == "praise" and self.sure)

    @property
    def negative(self) -> bool:
        return self.sentiment == "negative" or (self.intent == "complaint" and self.sure)


@dataclass(frozen=True, slots=True)
class Placement:
    """A stage and the sentence that explains it."""

    stage: LadderStage
    reason: str


def _day(moment: datetime) -> str:
    return f"{moment.day} {moment.strftime('%b')}"


def _quote(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return f'"{text}"' if len(text) <= limit else f'"{text[: limit - 1].rstrip()}..."'


class Sign(IntFlag):
    """What a message's words say, as the patterns above read them (`text_signs`; none of it depends on the
    models or the brand's settings, so it is found once per message)."""

    WARNING = 1  # WARNING
    REFERRAL = 2  # REFERRAL, and not a SUGGESTION
    NUDGE = 4  # NUDGE
    HANDLE_NUDGE = 8  # an @handle and a nudge word: telling someone to buy unless every handle is the brand's
    REPEAT = 16  # REPEAT
    BOUGHT = 32  # BOUGHT


def text_signs(text: str) -> int:
    """The `Sign`s the patterns find in `text`."""
    signs = Sign(0)
    if WARNING.search(text):
        signs |= Sign.WARNING
    if REFERRAL.search(text) and not SUGGESTION.search(text):
        signs |= Sign.REFERRAL
    if NUDGE.search(text):
        signs |= Sign.NUDGE
    if _HANDLE.search(text) and _NUDGE.search(text):
        signs |= Sign.HANDLE_NUDGE
    if REPEAT.search(text):
        signs |= Sign.REPEAT
    if BOUGHT.search(text):
        signs |= Sign.BOUGHT
    return int(signs)


def _signs(said: Said) -> int:
    return said.signs if said.signs is not None else text_signs(said.text)


def recommends_us(said: Said, brand_handles: Iterable[str] = ()) -> bool:
    """Whether the message recommends the brand to other people (not an idea for it, not a complaint)."""
    signs = _signs(said)
    if said.abusive or signs & Sign.WARNING or (said.intent == "complaint" and said.sure):
        return False
    if signs & Sign.REFERRAL:
        return True
    if said.intent == "recommendation" or said.negative:
        return False
    if signs & Sign.NUDGE:
        return True
    if not signs & Sign.HANDLE_NUDGE:
        return False
    brands = {handle.lower().lstrip("@") for handle in brand_handles}
    return any(handle.lower() not in brands for handle in _HANDLE.findall(said.text))


def defends_us(said: Said) -> bool:
    """Whether the message takes our side in a public thread another customer started."""
    sure_complaint = said.intent == "complaint" and said.sure
    return said.public and said.in_others_thread and said.positive and not sure_complaint


def warns_others_off(said: Said) -> bool:
    return said.negative and bool(_signs(said) & Sign.WARNING)


def shows_purchase(said: Said, brand_handles: Iterable[str] = ()) -> bool:
    """Whether the message shows the customer has bought from us."""
    return (
        bool(_signs(said) & (Sign.BOUGHT | Sign.REPEAT))
        or recommends_us(said, brand_handles)
        or defends_us(said)
    )


def _occasions(moments: Sequence[datetime]) -> list[datetime]:
    """The first moment of each occasion: moments less than OCCASION_GAP_DAYS apart are one occasion."""
    starts: list[datetime] = []
    last: datetime | None = None
    for moment in sorted(moments):
        if last is None or moment - last >= timedelta(days=OCCASION_GAP_DAYS):
            starts.append(moment)
        last = moment
    return starts


_ORDINAL = {2: "second", 3: "third", 4: "fourth", 5: "fifth"}


def _detractor(history: Sequence[Said], now: datetime) -> str | None:
    for said in reversed(history):  # newest warning first
        if now - said.at > timedelta(days=DETRACTOR_WARNING_DAYS):
            break
        if warns_others_off(said) and not any(s.positive for s in history if s.at > said.at):
            where = " in public" if said.public else ""
            return f"warned others off us{where} on {_day(said.at)}: {_quote(said.text)}"
    recent = [s for s in history if now - s.at <= timedelta(days=DETRACTOR_COMPLAINT_DAYS)]
    complaints = [s for s in recent if s.intent == "complaint"]
    if len(complaints) < 2:
        return None
    negative, positive = sum(s.negative for s in recent), sum(s.positive for s in recent)
    last = complaints[-1]
    if negative > positive and not any(s.positive for s in history if s.at > last.at):
        return (
            f"{len(complaints)} complaints in the last {DETRACTOR_COMPLAINT_DAYS} days, the latest on "
            f"{_day(last.at)}, and nothing positive since"
        )
    return None


def _advocacy(history: Sequence[Said], now: datetime, brands: Sequence[str]) -> str | None:
    for said in reversed(history):
        if now - said.at > timedelta(days=ADVOCACY_DAYS):
            break
        where = " in a public post" if said.public else ""
        if defends_us(said):
            return f"defended us in a public thread another customer started, on {_day(said.at)}"
        if recommends_us(said, brands):
            return f"recommended us to others{where} on {_day(said.at)}: {_quote(said.text)}"
    return None


def _guard(history: Sequence[Said], now: datetime) -> str | None:
    """Why an advocate can't be one now, or None."""
    abusive = [s for s in history if s.abusive and now - s.at <= timedelta(days=ABUSE_BLOCKS_ADVOCACY_DAYS)]
    if abusive:
        return f"abusive on {_day(abusive[-1].at)}"
    waiting = [s for s in history if s.intent == "complaint" and s.waiting_for_staff]
    if waiting:
        return f"a complaint from {_day(waiting[-1].at)} is waiting for staff"
    return None


def _loyalty(history: Sequence[Said], now: datetime, brands: Sequence[str]) -> str | None:
    repeat = next((s for s in reversed(history) if _signs(s) & Sign.REPEAT and not s.negative), None)
    if repeat is not None:
        return f"says they keep coming back ({_day(repeat.at)}): {_quote(repeat.text)}"
    year = [s for s in history if now - s.at <= timedelta(days=LOYALTY_DAYS)]
    bought = _occasions([s.at for s in year if shows_purchase(s, brands)])
    if len(bought) >= 3:
        nth = _ORDINAL.get(len(bought), f"{len(bought)}th")
        return f"{nth} occasion this year with an order of theirs, the latest on {_day(bought[-1])}"
    happy = _occasions([s.at for s in year if shows_purchase(s, brands) and s.positive])
    if len(happy) >= 2:
        latest = _day(happy[-1])
        return f"happy with what they bought on {len(happy)} occasions this year, the latest on {latest}"
    return None


def decide_stage(
    history: Sequence[Said], *, now: datetime | None = None, brand_handles: Sequence[str] = ()
) -> Placement:
    """The contact's stage from their inbound messages (any order), and the sentence explaining it.

    Args:
        now: the moment the windows (90 days, a year) end at.
        brand_handles: the brand's own handles (an @mention of the brand is not a nudge to someone else).
    """
    now = now or utcnow()
    # Each message's words are read once here (or were when it was decided: `Said.signs`).
    history = sorted(
        (said if said.signs is not None else replace(said, signs=text_signs(said.text)) for said in history),
        key=lambda said: said.at,
    )
    reason = _detractor(history, now)
    if reason:
        return Placement(LadderStage.DETRACTOR, reason)
    blocked = ""
    advocacy = _advocacy(history, now, brand_handles)
    if advocacy:
        guard = _guard(history, now)
        if guard is None:
            return Placement(LadderStage.ADVOCATE, advocacy)
        blocked = f" (not an advocate while {guard}, though they {advocacy})"
    reason = _loyalty(history, now, brand_handles)
    if reason:
        return Placement(LadderStage.LOYAL, reason + blocked)
    bought = next((s for s in reversed(history) if shows_purchase(s, brand_handles)), None)
    if bought is not None:
        return Placement(
            LadderStage.OWNER, f"has bought from us ({_day(bought.at)}): {_quote(bought.text)}" + blocked
        )
    if not history:
        return Placement(LadderStage.TIRE_KICKER, "no messages yet")
    return Placement(
        LadderStage.TIRE_KICKER,
        f"no sign of a purchase yet: general questions and small talk, the latest on {_day(history[-1].at)}",
    )


_message, _conversation = Message.__table__.c, Conversation.__table__.c
# Built once (the values are bound per read).
_HISTORY = (
    select(
        _message.created_at,
        _message.text,
        _message.intent,
        _message.sentiment,
        _message.abusive,
        _message.public,
        _message.low_confidence,
        _message.ladder_signs,
        _conversation.contact_id,
        _conversation.state,
    )
    .join_from(Message.__table__, Conversation.__table__, _conversation.id == _message.conversation_id)
    .where(
        _message.contact_id == bindparam("contact_id"),
        _message.direction == Direction.INBOUND.value,
        _message.author_kind == AuthorKind.CUSTOMER.value,
    )
    .order_by(_message.id.desc())
    .limit(HISTORY_LIMIT)
)


#: The longest window a rule looks back over; older messages count only through `_LASTING`.
WINDOW_DAYS = max(
    DETRACTOR_WARNING_DAYS, DETRACTOR_COMPLAINT_DAYS, ABUSE_BLOCKS_ADVOCACY_DAYS, ADVOCACY_DAYS, LOYALTY_DAYS
)
#: The words that count at any age: coming back and buying (loyal, owner), recommending (owner).
_LASTING_SIGNS = int(Sign.REPEAT | Sign.BOUGHT | Sign.REFERRAL | Sign.NUDGE | Sign.HANDLE_NUDGE)
_WAITING = (ConversationState.HUMAN.value, ConversationState.SNOOZED.value)
_newest = Message.__table__.alias("newest")
# What a decision at `since` + WINDOW_DAYS reads: every message inside the windows, and of the older ones
# only those a rule reads at any age (see `decide_stage`): words of buying, coming back or recommending (or
# not read yet), a public post (defending us), a complaint still waiting for staff (the advocate's guard),
# and the newest message (the tire-kicker's sentence). A long-standing customer's decision reads tens of
# rows instead of up to `HISTORY_LIMIT`, and places them the same (tests/test_ladder.py).
_RECENT_HISTORY = _HISTORY.where(
    or_(
        _message.created_at >= bindparam("since"),
        _message.ladder_signs.is_(None),
        _message.ladder_signs.op("&")(_LASTING_SIGNS) != 0,
        _message.public.is_(True),
        and_(_message.intent == "complaint", _conversation.state.in_(_WAITING)),
        _message.created_at
        >= select(func.max(_newest.c.created_at))
        .where(
            _newest.c.contact_id == bindparam("contact_id"),
            _newest.c.direction == Direction.INBOUND.value,
            _newest.c.author_kind == AuthorKind.CUSTOMER.value,
        )
        .scalar_subquery(),
    )
)


def load_history(session: Session, contact_id: int, *, at: datetime | None = None) -> list[Said]:
    """The contact's inbound messages as the ladder reads them (the newest `HISTORY_LIMIT`), in one query.

    Args:
        at: read only what a decision at this moment reads (`_RECENT_HISTORY`); every message if None.

    Reads what the session has flushed: the caller flushes a message it just decided."""
    connection = session.connection()
    if at is None:
        rows = connection.execute(_HISTORY, {"contact_id": contact_id}).all()
    else:
        since = at - timedelta(days=WINDOW_DAYS)
        rows = connection.execute(_RECENT_HISTORY, {"contact_id": contact_id, "since": since}).all()
    return [
        Said(
            at=said_at if said_at.tzinfo else said_at.replace(tzinfo=UTC),
            text=text,
            intent=intent,
            sentiment=sentiment,
            abusive=bool(abusive),
            public=bool(public),
            in_others_thread=bool(public) and owner_id != contact_id,
            waiting_for_staff=state in _WAITING,
            sure=not low_confidence,
            signs=signs,
        )
        for said_at, text, intent, sentiment, abusive, public, low_confidence, signs, owner_id, state in rows
    ]


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a contact stands on the ladder: their stage, and when it was last decided (None: never)."""

    stage: str
    updated_at: datetime | None


_contact = Contact.__table__.c
_STANDING = select(_contact.ladder_stage, _contact.ladder_updated_at).where(
    _contact.id == bindparam("contact_id")
)
_STANDING_LOCKED = _STANDING.with_for_update()
_RECORD_CHANGE = insert(LadderChange.__table__)
_CHANGE_COLUMNS = ("contact_id", "from_stage", "to_stage", "reason", "message_id", "changed_at")
_MOVE = (
    update(Contact.__table__)
    .where(_contact.id == bindparam("contact_id"))
    .values(ladder_stage=bindparam("stage"), ladder_updated_at=bindparam("at"))
)


def standing(session: Session, contact_id: int, *, lock: bool = False) -> Standing:
    """Where `contact_id` stands; `lock`: take the contact's row lock too (PostgreSQL's FOR UPDATE), so no
    other transaction moves them before this one commits."""
    stage, updated_at = (
        session.connection()
        .execute(_STANDING_LOCKED if lock else _STANDING, {"contact_id": contact_id})
        .one()
    )
    return Standing(stage, updated_at)


def update_ladder(
    session: Session,
    contact_id: int,
    *,
    brand_handles: Sequence[str] = (),
    message_id: int | None = None,
    now: datetime | None = None,
    stood: Standing | None = None,
) -> LadderChange | None:
    """Decide `contact_id`'s stage again from their history; record and return the change (its row inserted,
    not in the session), or None if the stage is unchanged. The caller records its webhook event.

    Args:
        stood: where they stood, when the caller read it already (with the row's lock); read here if None.
    """
    stood = stood or standing(session, contact_id)
    session.flush()  # the history is read with a plain query, which doesn't flush
    now = now or utcnow()
    history = load_history(session, contact_id, at=now)
    placement = decide_stage(history, now=now, brand_handles=brand_handles)
    if placement.stage.value == stood.stage and stood.updated_at is not None:
        return None
    moved_at = utcnow()
    change = LadderChange(
        contact_id=contact_id,
        from_stage=stood.stage if stood.updated_at is not None else None,
        to_stage=placement.stage.value,
        reason=placement.reason,
        message_id=message_id,
        changed_at=moved_at,
    )
    connection = session.connection()
    connection.execute(_MOVE, {"contact_id": contact_id, "stage": placement.stage.value, "at": moved_at})
    # Plain INSERTs: the ORM's unit of work cost more than the statements here. The caller records the
    # `contact.ladder_changed` webhook event (bot/pipeline/inbound.py; the CRM is below the webhooks).
    change.id = connection.execute(
        _RECORD_CHANGE,
        {column: getattr(change, column) for column in _CHANGE_COLUMNS},
    ).inserted_primary_key[0]
    return change


def count_by_stage(session: Session) -> dict[str, int]:
    """How many contacts stand on each rung."""
    rows = session.exec(select(Contact.ladder_stage, func.count()).group_by(Contact.ladder_stage)).all()
    counts = {stage.value: 0 for stage in LadderStage}
    counts.update({stage: count for stage, count in rows})
    return counts
