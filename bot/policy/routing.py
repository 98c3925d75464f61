"""Routing: what the bot does with a message it has understood. Data the operator can change.

The routing table maps each intent to an action; `settings.toml` `[policy] routes` overrides entries. Every
decision carries the reason it was taken, stored with the message so staff and marketers can see why the bot
did what it did, and names the template of its reply (the texts themselves are bot/policy/templates.py).

Abuse (aimed at people: tests/data/ABUSE_DEFINITION.md) never silences a service request: an abusive
message that is a complaint or a question, or asks for a person, goes to a person, flagged, with a neutral
reply that does not repeat its words; so does one whose intent is unsure when its words carry something to act
on (the customer's own order or item, a question an article answers). Only abuse with nothing to act on takes
the "abusive" route (held for moderation, no reply).

Beside the heads, the message's words (bot/policy/cues.py) settle what the heads can't: a complaint asked as
a question an article answers, naming no problem or asking what to do about a new one, is answered (sentiment
alone is not a complaint); thanks or praise naming no problem is thanked, never queued for staff, but only
when it asks, suggests and closes nothing (praise with a question is the question, with an idea the idea); a
suggestion not asked, or asked where no article answers, is recorded as an idea; a closing ("never mind,
sorted it", "thanks, that's all") is small talk; small talk near an article is not answered with it;
small talk read as strongly negative goes to a person. An unsure intent is answered only when the words ask
something an article answers; otherwise by its words, else by a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from bot.policy.cues import Cues, read_cues
from bot.policy.templates import PolicyError, Templates

__all__ = [
    "DEFAULT_ROUTES",
    "SERVICE_REQUEST_INTENTS",
    "Action",
    "Decision",
    "Policy",
    "PolicyError",
    "carries_an_idea",
]


class Action(StrEnum):
    """What the bot did with an inbound message."""

    ANSWER = "answer"  # replied with a knowledge-base article
    ESCALATE = "escalate"  # acknowledged and handed the conversation to staff
    THANK = "thank"  # thanked the customer (praise)
    RECORD_IDEA = "record_idea"  # thanked and recorded an idea
    SMALL_TALK = "small_talk"  # short friendly reply
    MODERATE = "moderate"  # no reply; flagged for moderation
    IGNORE = "ignore"  # no reply
    HUMAN_OWNS = "human_owns"  # a person owns the conversation; the bot stays silent
    LISTEN = "listen"  # found by brand listening: logged and understood, never answered
    GREET = "greet"  # the customer opened the conversation (Telegram /start): greeted
    VERIFY_EMAIL = "verify_email"  # an e-mail address or a code of the verification flow: answered
    RECORD_CSAT = "record_csat"  # a 1-5 answer to the rating question: recorded and thanked
    DATA_REQUEST = "data_request"  # "what do you know about me" / "delete my data": recorded, answered


#: The intents that ask the brand for something: an abusive message with one is still a service request.
SERVICE_REQUEST_INTENTS: frozenset[str] = frozenset({"complaint", "question"})

#: The routing table: intent -> action. "abusive" and "wants_human" are flags that win over the intent.
DEFAULT_ROUTES: dict[str, str] = {
    "abusive": Action.MODERATE,
    "wants_human": Action.ESCALATE,
    "complaint": Action.ESCALATE,
    "question": Action.ANSWER,
    "recommendation": Action.RECORD_IDEA,
    "praise": Action.THANK,
    "other": Action.SMALL_TALK,
}


class UnderstandingLike(Protocol):
    intent: str
    confidence: float
    low_confidence: bool
    abusive: bool
    abusive_score: float
    wants_human: bool
    sentiment: str
    sentiment_confidence: float


class ArticleLike(Protocol):
    id: str
    title: str
    url: str | None


class AnswerLike(Protocol):
    article: ArticleLike | None
    score: float
    best_article_id: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one message and why.

    Args:
        action: the `Action` taken.
        reason: a sentence saying why, stored with the message.
        template: the name of the reply template, or None when the reply is the article itself or there is
            no reply.
        article: the knowledge-base article used (answered with, or offered with an escalation).
        escalate: the conversation goes to staff.
        record_idea: the message becomes an Idea.
        language: the language to reply in (bot/runtime/languages.py); None for the brand's default.
        language_note: the reply starts with the "language_note" template (the customer wrote in a language
            the brand doesn't answer in).
        variables: what the template is given besides the brand's context and the article (e.g. the address
            a verification code was sent to).
    """

    action: Action
    reason: str
    template: str | None = None
    article: ArticleLike | None = None
    escalate: bool = False
    record_idea: bool = False
    language: str | None = None
    language_note: bool = False
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def replies(self) -> bool:
        """Whether the bot says something to the customer."""
        return self.action == Action.ANSWER or self.template is not None


class Policy:
    """The routing table and reply templates, checked once at start-up."""

    def __init__(
        self,
        *,
        brand: str,
        support_hours: str,
        human_reply_estimate: str,
        routes: dict[str, str] | None = None,
        templates: dict[str, str] | None = None,
        templates_by_language: dict[str, dict[str, str]] | None = None,
        strongly_negative_confidence: float | None = None,
    ) -> None:
        """`strongly_negative_confidence`: a message read as small talk whose sentiment is negative with at
        least this confidence goes to a person instead ("go to hell, never again" is no small talk); None:
        small talk is small talk (bot/worker/build.py passes `[moderation] strongly_negative_confidence`)."""
        self.routes = {**DEFAULT_ROUTES, **(routes or {})}
        self.strongly_negative_confidence = strongly_negative_confidence
        self.templates = Templates(
            {"brand": brand, "support_hours": support_hours, "human_reply_estimate": human_reply_estimate},
            templates,
            templates_by_language,
        )

    @property
    def languages(self) -> set[str]:
        """The languages with their own reply templates (besides the brand's default)."""
        return self.templates.languages

    def render(
        self,
        template: str,
        *,
        article: ArticleLike | None = None,
        language: str | None = None,
        **variables: Any,
    ) -> str:
        """Render a template in the brand's voice, in `language` when the brand wrote it in it (see
        bot/policy/templates.py)."""
        return self.templates.render(template, language=language, article=article, **variables)

    def decide(
        self, understanding: UnderstandingLike, answer: AnswerLike | None, *, public: bool, text: str
    ) -> Decision:
        """Route one understood message.

        Args:
            understanding: what the message is (intent, confidence, flags).
            answer: the knowledge base's best answer for it (its `article` is None below the threshold).
            public: whether the message was posted where others see it; small talk is not posted in public.
            text: the message's words, for what their form says beside the heads (bot/policy/cues.py).
        """
        article = answer.article if answer is not None else None
        cues = read_cues(text)
        if understanding.abusive and _polite_request(understanding, cues, article):
            # A plain question an article answers, or a suggestion, with no rude word, threat or spam in it:
            # the abusive read is the head's mistake, and the customer gets what they asked for.
            understanding = replace(understanding, abusive=False)
        if understanding.abusive:
            flagged = f"abusive (score {understanding.abusive_score:.2f})"
            request = _service_request(understanding, cues, article)
            if request is not None:
                return Decision(
                    Action.ESCALATE,
                    f"{flagged} and {request}: escalated to a person, flagged; the reply does not repeat it",
                    template="abusive_request",
                    escalate=True,
                )
            if carries_an_idea(understanding):
                # An idea is something to act on: it reaches the ideas board (where staff see it beside the
                # moderation queue); the message itself gets no reply.
                decision = self._route("abusive", f"{flagged} with an idea: recorded, no reply", article)
                return replace(decision, record_idea=True)
            return self._route("abusive", f"{flagged} with nothing to act on: no reply", article)
        if understanding.wants_human:
            return self._route("wants_human", "the customer asked for a person", article)
        intent = understanding.intent
        read = f"{intent} ({understanding.confidence:.2f})"
        if understanding.low_confidence:
            return self._unsure(understanding, cues, article, answer, public)
        if intent == "complaint":
            if (
                article is not None
                and cues.question
                and not cues.unresolved
                and (not cues.problem or cues.what_to_do)
            ):
                # Asked as a question the help pages answer, naming no problem ("do you fix zips out of
                # warranty?") or asking what to do about a new one ("a pole was missing, what should i
                # do?"): a question, however negative it reads; sentiment alone is not a complaint.
                return self._route(
                    "question", f"{read} but asked as a question with nothing left open", article, answer
                )
            if _only_praise(cues):
                # Praise must never wait in the staff queue; sarcasm names what went wrong, which `praise`
                # excludes.
                return self._route("praise", f"{read} but thanks or praise with no problem named", article)
            if cues.praise and cues.suggestion and not _asks(cues):
                # "brilliant, would be even better in green": praise with an idea and no problem is the idea.
                return self._route("recommendation", f"{read} but praise with a suggestion, no problem", None)
        if intent == "praise" and (cues.sarcasm or (cues.problem and cues.unresolved)):
            # "great, another 'sorry' e-mail and still no refund 🙃": praise words around a problem still
            # open, or said with a wink, are a complaint.
            return self._route("complaint", f"{read} but sarcastic or naming a problem still open", article)
        if intent == "praise":
            # Thanks beside something else is that something else: praise must ask, suggest and close nothing
            # to be only thanked. Praise is read as asking only when asked outright ("?" or a request): its
            # relative clauses ("Amira, who spent half an hour...") open like questions.
            asks_outright = _asks_outright(cues)
            if cues.closing and not asks_outright:
                return self._route("other", f"{read} but a closing", None, None, public)
            if asks_outright and not cues.suggestion:
                return self._route("question", f"{read} but it asks", article, answer)
            if cues.suggestion:
                return self._route("recommendation", f"{read} but it suggests", None)
        if intent == "recommendation" and article is not None and cues.question and not cues.suggestion:
            # "best tent ever! how should i store it?": a question the help pages answer, not an idea.
            return self._route("question", f"{read} but asked, not put as a suggestion", article, answer)
        if intent == "question" and cues.suggestion and (article is None or not _asks(cues)):
            return self._route("recommendation", f"{read} but put as a suggestion", None)
        if intent == "question" and cues.report and not _asks(cues):
            # "ordered a kids size 2 and got an adult size 2": telling what happened, not asking; the article
            # its words sit near is no answer.
            return self._unsure(understanding, cues, article, answer, public)
        if (
            intent == "other"
            and cues.problem
            and not (cues.closing or cues.praise)
            and (cues.own_matter or cues.unresolved or _asks(cues))
        ):
            # "been on hold 45 mins, is anyone working today": a problem of the customer's own, still open or
            # asked about, is no small talk.
            return self._route("complaint", f"{read} but it names a problem of the customer's", article)
        if intent == "other" and self._strongly_negative(understanding):
            # Hostility with no detail ("go to hell, never again") is a customer to win back, not small talk.
            why = f"{read} but strongly negative ({understanding.sentiment_confidence:.2f})"
            return self._route("complaint", why, article)
        if intent == "other" and article is not None and not _asks(cues) and not cues.own_matter:
            # "morning all": small talk that happens to sit near an article is not a question to answer.
            return self._route(
                "other", f"{read}, not a question: article {article.id} not sent", None, None, public
            )
        return self._route(intent, read, article, answer, public)

    def _strongly_negative(self, understanding: UnderstandingLike) -> bool:
        threshold = self.strongly_negative_confidence
        return (
            threshold is not None
            and understanding.sentiment == "negative"
            and understanding.sentiment_confidence >= threshold
        )

    def _unsure(
        self,
        understanding: UnderstandingLike,
        cues: Cues,
        article: ArticleLike | None,
        answer: AnswerLike | None,
        public: bool,
    ) -> Decision:
        """Route a message no intent head is sure of by what its words say, else to a person."""
        intent = understanding.intent
        why = f"intent unsure ({intent} {understanding.confidence:.2f})"
        # Praise asks only outright: its clauses open like questions ("can't recommend them enough, did the
        # whole route in them").
        asks = _asks_outright(cues) if cues.praise else _asks(cues)
        if article is not None and asks and not (intent == "complaint" and cues.unresolved):
            return Decision(
                Action.ANSWER,
                f"{why} but asked, and article {article.id} matches (score {answer.score:.2f})",
                article=article,
            )
        if cues.sarcasm and not cues.suggestion:
            return self._route("complaint", f"{why}; praise words said with a wink", article, answer, public)
        if not asks:
            if cues.suggestion or (intent == "recommendation" and not cues.problem):
                return self._route("recommendation", f"{why}; put as a suggestion", None)
            if cues.closing:
                return self._route("other", f"{why}; a closing with nothing left to do", None, None, public)
            if cues.praise or (intent == "praise" and not cues.problem):
                return self._route("praise", f"{why}; thanks or praise with no problem named", None)
        elif cues.suggestion and article is None:
            return self._route("recommendation", f"{why}; a suggestion asked as a question", None)
        if intent == "complaint":
            # An uncertain complaint is still treated as one: a person reading a non-complaint costs less
            # than a bot answering an upset customer with an article.
            return self._route(
                "complaint", f"complaint, unsure ({understanding.confidence:.2f})", article, answer, public
            )
        return Decision(
            Action.ESCALATE,
            f"{why} and no article answers it" if article is None else f"{why}, not asked: to a person",
            template="unsure",
            escalate=True,
        )

    def _route(
        self,
        key: str,
        why: str,
        article: ArticleLike | None,
        answer: AnswerLike | None = None,
        public: bool = False,
    ) -> Decision:
        action = Action(self.routes.get(key, Action.ESCALATE))
        if action == Action.ANSWER:
            if article is not None:
                return Decision(
                    Action.ANSWER, f"{why}: article {article.id} (score {answer.score:.2f})", article=article
                )
            best = (
                f"best {answer.best_article_id} at {answer.score:.2f}"
                if answer and answer.best_article_id
                else "the knowledge base is empty"
            )
            return Decision(
                Action.ESCALATE,
                f"{why}: no article answers it ({best})",
                template="no_answer",
                escalate=True,
            )
        if action == Action.ESCALATE:
            template = key if key in ("complaint", "wants_human") else "unsure"
            offered = article if key == "complaint" else None
            return Decision(
                Action.ESCALATE,
                f"{why}: escalated to staff",
                template=template,
                article=offered,
                escalate=True,
            )
        if action == Action.THANK:
            return Decision(Action.THANK, f"{why}: thanked", template="praise")
        if action == Action.RECORD_IDEA:
            return Decision(
                Action.RECORD_IDEA,
                f"{why}: thanked and recorded as an idea",
                template="recommendation",
                record_idea=True,
            )
        if action == Action.SMALL_TALK:
            if article is not None:
                return Decision(
                    Action.ANSWER,
                    f"{why}: article {article.id} matches (score {answer.score:.2f})",
                    article=article,
                )
            if public:
                return Decision(Action.IGNORE, f"{why}: small talk is not answered in public")
            return Decision(Action.SMALL_TALK, f"{why}: short friendly reply", template="small_talk")
        if action == Action.MODERATE:
            return Decision(Action.MODERATE, f"{why}; flagged for moderation")
        return Decision(Action.IGNORE, f"{why}: routed to ignore")


def carries_an_idea(understanding: UnderstandingLike) -> bool:
    """Whether the message is confidently an idea for the brand: recorded on the ideas board even where the
    bot says nothing (a person owns the conversation, or it is flagged abusive)."""
    return understanding.intent == "recommendation" and not understanding.low_confidence


def _only_praise(cues: Cues) -> bool:
    """Whether the words are thanks or praise and nothing else: no problem named, no question, request,
    suggestion or closing beside it."""
    return cues.praise and not (_asks_outright(cues) or cues.suggestion or cues.closing)


def _asks_outright(cues: Cues) -> bool:
    """Whether the words ask with a "?" or a request: relative and narrative clauses ("Amira, who spent half
    an hour...", "..., did the whole route in them") open like questions."""
    return cues.question_mark or cues.request


def _asks(cues: Cues) -> bool:
    """Whether the words ask for something the help pages may give: a question, or a request."""
    return cues.question or cues.request


def _polite_request(understanding: UnderstandingLike, cues: Cues, article: ArticleLike | None) -> bool:
    """Whether an abusive read sits on a plain request: confidently a question asked where an article answers
    it, or put as a suggestion, with no rude word, threat or mark of spam (`Cues.rude`)."""
    if cues.rude or understanding.low_confidence:
        return False
    if understanding.intent == "question":
        return article is not None and _asks(cues)
    return understanding.intent == "recommendation" and cues.suggestion


def _service_request(understanding: UnderstandingLike, cues: Cues, article: ArticleLike | None) -> str | None:
    """What an abusive message asks of the brand, in words for the decision's reason; None when it asks
    nothing: a confident intent outside `SERVICE_REQUEST_INTENTS` with no request for a person, or an unsure
    intent whose words carry nothing to act on (nothing of the customer's own such as "my order" or "sent me",
    no question an article answers: a threat or an advert the heads can't place). A confident complaint or
    question is a request whatever its words: real complaints insult the brand's people too ("the worlds
    dumbest driver"), and wrongly silencing a customer costs more than a person reading one more message."""
    if understanding.wants_human:
        return "asks for a person"
    if understanding.intent in SERVICE_REQUEST_INTENTS and not understanding.low_confidence:
        return f"a {understanding.intent}"
    unsure = f"an unsure intent ({understanding.intent} {understanding.confidence:.2f})"
    if not understanding.low_confidence:
        return None
    if cues.own_matter:
        return f"{unsure} about the customer's own matter"
    if cues.question and article is not None:
        return f"{unsure} asking what article {article.id} answers"
    return None
