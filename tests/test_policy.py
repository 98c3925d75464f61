"""The routing table: each intent and flag leads to its action, with a reason; operators can change it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bot.policy.routing import Action, Policy, PolicyError


@dataclass
class Understood:
    intent: str
    confidence: float = 0.9
    low_confidence: bool = False
    abusive: bool = False
    abusive_score: float = 0.0
    wants_human: bool = False
    sentiment: str = "neutral"
    sentiment_confidence: float = 0.5


@dataclass
class Article:
    id: str = "delivery-times"
    title: str = "Delivery times"
    url: str | None = "https://fernhill.example/help/delivery-times"


@dataclass
class Answer:
    article: Article | None
    score: float = 0.8
    best_article_id: str | None = "delivery-times"


def unsure(intent: str, confidence: float) -> Understood:
    return Understood(intent, confidence=confidence, low_confidence=True)


FOUND = Answer(Article())
NOT_FOUND = Answer(None, 0.2)


@pytest.fixture
def policy() -> Policy:
    return Policy(brand="Fernhill Outdoor", support_hours="9-5", human_reply_estimate="soon")


@pytest.mark.parametrize(
    ("understood", "answer", "text", "action", "escalate", "template"),
    [
        (Understood("question"), FOUND, "how long does delivery take?", Action.ANSWER, False, None),
        (Understood("question"), NOT_FOUND, "do you do tent hire?", Action.ESCALATE, True, "no_answer"),
        (Understood("complaint"), NOT_FOUND, "my parcel never came", Action.ESCALATE, True, "complaint"),
        (Understood("praise"), NOT_FOUND, "love my new boots", Action.THANK, False, "praise"),
        (
            Understood("recommendation"),
            NOT_FOUND,
            "sell tent pegs",
            Action.RECORD_IDEA,
            False,
            "recommendation",
        ),
        (Understood("other"), NOT_FOUND, "hiya", Action.SMALL_TALK, False, "small_talk"),
        (Understood("praise", abusive=True, abusive_score=0.97), FOUND, "x", Action.MODERATE, False, None),
        (Understood("other", abusive=True, abusive_score=0.97), FOUND, "x", Action.MODERATE, False, None),
        # Abuse never silences a service request: it goes to a person with a reply that doesn't repeat it.
        (
            Understood("complaint", abusive=True),
            NOT_FOUND,
            "you idiots sent me the wrong size",
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        (
            Understood("question", abusive=True),
            FOUND,
            "how long does delivery take, morons?",
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        (
            Understood("other", abusive=True, wants_human=True),
            FOUND,
            "get me a person, idiot",
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        (
            Understood("other", abusive=True, low_confidence=True, confidence=0.3),
            NOT_FOUND,
            "where is my order FH-1234, you clowns",
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        # A confident complaint is a request whatever its words (real complaints insult staff too); an unsure
        # read of words with nothing of the customer's own and no question an article answers is held.
        (
            Understood("complaint", abusive=True),
            NOT_FOUND,
            "the lad on your tills is a waste of oxygen",
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        (
            Understood("complaint", abusive=True, low_confidence=True, confidence=0.4),
            NOT_FOUND,
            "imagine buying their boots, you absolute muppet",
            Action.MODERATE,
            False,
            None,
        ),
        (
            Understood("other", abusive=True, low_confidence=True, confidence=0.3),
            FOUND,
            "CHEAP GEAR 80% OFF visit deals.example",
            Action.MODERATE,
            False,
            None,
        ),
        (
            Understood("question", wants_human=True),
            FOUND,
            "a person please",
            Action.ESCALATE,
            True,
            "wants_human",
        ),
        (
            Understood("question", low_confidence=True, confidence=0.3),
            NOT_FOUND,
            "what about the thing",
            Action.ESCALATE,
            True,
            "unsure",
        ),
        (
            Understood("praise", low_confidence=True, confidence=0.3),
            FOUND,
            "can i return it?",
            Action.ANSWER,
            False,
            None,
        ),
        (
            Understood("complaint", low_confidence=True, confidence=0.5),
            FOUND,
            "the box was soaked when it came",
            Action.ESCALATE,
            True,
            "complaint",
        ),
    ],
)
def test_routing(policy, understood, answer, text, action, escalate, template):
    decision = policy.decide(understood, answer, public=False, text=text)
    assert decision.action == action
    assert decision.escalate is escalate
    assert decision.template == template
    assert decision.reason


@pytest.mark.parametrize(
    ("understood", "answer", "text", "action"),
    [
        # Asked as a question an article answers, with no problem left open: answered, however upset.
        (Understood("complaint"), FOUND, "why does my card keep getting declined?", Action.ANSWER),
        (unsure("complaint", 0.4), FOUND, "what if it arrives damaged?", Action.ANSWER),
        # ... a problem already open (a wait, something done to the customer) stays a complaint.
        (Understood("complaint"), FOUND, "where is my refund? i sent it back 3 weeks ago", Action.ESCALATE),
        (Understood("complaint"), FOUND, "why have you sent me the wrong jacket?", Action.ESCALATE),
        # Praise never waits in the staff queue; sarcasm names what went wrong, and stays a complaint.
        (Understood("complaint"), NOT_FOUND, "your Leeds team were brilliant, thank you", Action.THANK),
        (
            Understood("complaint"),
            NOT_FOUND,
            "2 hours on hold then cut off. amazing service 👏",
            Action.ESCALATE,
        ),
        (Understood("complaint"), NOT_FOUND, "great, still no parcel. brilliant.", Action.ESCALATE),
        (unsure("praise", 0.4), NOT_FOUND, "the tent was superb", Action.THANK),
        # A suggestion is recorded, whether the heads are unsure or read a question no article answers.
        (Understood("question"), NOT_FOUND, "how about a repair kit in every tent?", Action.RECORD_IDEA),
        (unsure("other", 0.3), NOT_FOUND, "it would be great if you sold spare poles", Action.RECORD_IDEA),
        # A closing needs nothing; small talk near an article is not answered with it.
        (unsure("other", 0.2), NOT_FOUND, "never mind, sorted it", Action.SMALL_TALK),
        (Understood("other"), FOUND, "good morning all", Action.SMALL_TALK),
        (Understood("other"), FOUND, "do you do student discount?", Action.ANSWER),
        # An unsure read that is neither asked nor anything else goes to a person, even near an article.
        (unsure("question", 0.5), FOUND, "ordered a 2 got a 12", Action.ESCALATE),
        # A new problem asked as "what should i do?" is answered with the procedure; one left open is not.
        (Understood("complaint"), FOUND, "my stove arrived dented, what should i do?", Action.ANSWER),
        (Understood("complaint"), FOUND, "still no stove, what should i do?", Action.ESCALATE),
        # Rudely put is not a problem: "cut off" as a time is not a call cut off.
        (Understood("complaint"), FOUND, "wtf is the cut off time for ordering", Action.ANSWER),
        (Understood("complaint"), FOUND, "on the phone an hour and got cut off", Action.ESCALATE),
        # Praise beside something else is that something else, never only thanked.
        (Understood("praise"), FOUND, "love the shop! can i pay with paypal?", Action.ANSWER),
        (Understood("praise"), NOT_FOUND, "great staff. do you do a loyalty card?", Action.ESCALATE),
        (Understood("praise"), NOT_FOUND, "great stoves, pls bring back the blue one", Action.RECORD_IDEA),
        (Understood("praise"), NOT_FOUND, "cheers, that's all i needed", Action.SMALL_TALK),
        (Understood("praise"), NOT_FOUND, "thanks to Jo, who stayed late to help me", Action.THANK),
        (
            Understood("complaint"),
            NOT_FOUND,
            "brilliant, it would be even better in green",
            Action.RECORD_IDEA,
        ),
        (
            unsure("praise", 0.5),
            NOT_FOUND,
            "thanks for the blog, would be better with maps",
            Action.RECORD_IDEA,
        ),
        # An idea the heads read right stays one; a question read as an idea is answered.
        (Understood("recommendation"), FOUND, "best boots ever, how do i clean them?", Action.ANSWER),
        (Understood("recommendation"), FOUND, "could you add a size filter?", Action.RECORD_IDEA),
        (Understood("question"), FOUND, "wud be gud if u sold spare pegs", Action.RECORD_IDEA),
        # Praise said with a negation is praise, whatever the heads read; its clauses don't make it asked.
        (Understood("complaint"), NOT_FOUND, "couldn't be happier with my tent", Action.THANK),
        (unsure("question", 0.3), FOUND, "can't rate them enough, did the coast path in them", Action.THANK),
        # Praise words said with a wink, or around a problem still open, are a complaint.
        (Understood("praise"), NOT_FOUND, "oh great, delivery missed again 🙃", Action.ESCALATE),
        (Understood("praise"), NOT_FOUND, "great, still no refund, thanks a lot", Action.ESCALATE),
        (unsure("praise", 0.5), FOUND, 'cheers for the "express" delivery, 9 days', Action.ESCALATE),
        (Understood("praise"), NOT_FOUND, "ordered monday, here tuesday. impressive 👏", Action.THANK),
        # Telling what happened is not asking: the article its words sit near is no answer.
        (Understood("question"), FOUND, "ordered a medium and got a large", Action.ESCALATE),
        (Understood("question"), FOUND, "ordered a medium, can i swap it for a large?", Action.ANSWER),
        # An abusive read of a plain question or suggestion, with no rude word, threat or spam, is the head's
        # mistake; a threat beside a question stays a flagged request for a person.
        (Understood("question", abusive=True), FOUND, "where's your nearest shop to leeds?", Action.ANSWER),
        (Understood("recommendation", abusive=True), NOT_FOUND, "you need a wide fit", Action.RECORD_IDEA),
        (Understood("question", abusive=True), FOUND, "where is it? i'll break your legs", Action.ESCALATE),
        # Small talk that names a problem of the customer's own is no small talk.
        (Understood("other"), NOT_FOUND, "on hold an hour, is anyone working today", Action.ESCALATE),
    ],
)
def test_the_words_decide_where_the_heads_are_unsure_or_the_form_says_otherwise(
    policy, understood, answer, text, action
):
    decision = policy.decide(understood, answer, public=False, text=text)
    assert decision.action == action, decision.reason


def test_strongly_negative_small_talk_goes_to_a_person():
    policy = Policy(brand="B", support_hours="h", human_reply_estimate="e", strongly_negative_confidence=0.9)
    angry = Understood("other", sentiment="negative", sentiment_confidence=0.95)
    assert policy.decide(angry, NOT_FOUND, public=True, text="go away, never again").action == Action.ESCALATE
    calm = Understood("other", sentiment="negative", sentiment_confidence=0.6)
    assert policy.decide(calm, NOT_FOUND, public=False, text="meh").action == Action.SMALL_TALK


def test_no_route_for_abuse_silences_a_service_request():
    policy = Policy(brand="B", support_hours="h", human_reply_estimate="e", routes={"abusive": "ignore"})
    complaint = policy.decide(
        Understood("complaint", abusive=True), NOT_FOUND, public=True, text="my order, idiots"
    )
    assert complaint.action == Action.ESCALATE and complaint.escalate and "flagged" in complaint.reason
    assert "person" in policy.render(complaint.template)
    insult = policy.decide(Understood("other", abusive=True), NOT_FOUND, public=True, text="idiots")
    assert insult.action == Action.IGNORE and not insult.replies


def test_an_idea_flagged_abusive_is_held_without_a_reply_but_reaches_the_ideas_board(policy):
    """The abuse head also flags some polite suggestions ("You should sell spare tent poles on your website,
    I'd buy them" scores 0.65): an idea is something to act on, so it is recorded either way."""
    flagged = Understood("recommendation", abusive=True, abusive_score=0.65)
    idea = policy.decide(flagged, NOT_FOUND, public=False, text="sell tent poles")
    assert idea.action == Action.MODERATE and not idea.replies and idea.record_idea
    unsure = Understood("recommendation", abusive=True, low_confidence=True, confidence=0.3)
    assert not policy.decide(unsure, NOT_FOUND, public=False, text="sell tent poles").record_idea


def test_small_talk_is_not_posted_in_public(policy):
    assert policy.decide(Understood("other"), NOT_FOUND, public=True, text="hiya").action == Action.IGNORE


def test_a_complaint_offers_a_matching_article_while_escalating(policy):
    decision = policy.decide(Understood("complaint"), FOUND, public=False, text="the parcel is late")
    text = policy.render(decision.template, article=decision.article)
    assert "sorry" in text.lower() and "https://fernhill.example/help/delivery-times" in text
    assert "Fernhill Outdoor" in text and "9-5" in text


def test_the_operator_can_change_a_route_and_a_template():
    policy = Policy(
        brand="B",
        support_hours="h",
        human_reply_estimate="e",
        routes={"other": "ignore"},
        templates={"praise": "Cheers from {{ brand }}!"},
    )
    assert policy.decide(Understood("other"), NOT_FOUND, public=False, text="hiya").action == Action.IGNORE
    assert policy.render("praise") == "Cheers from B!"


@pytest.mark.parametrize(
    ("templates", "message"),
    [({"praise": "Thanks {{ brand "}, "policy.templates.praise"), ({"praise": "Hi {{ nobody }}"}, "nobody")],
)
def test_a_broken_template_is_named_at_start(templates, message):
    with pytest.raises(PolicyError, match=message):
        Policy(brand="B", support_hours="h", human_reply_estimate="e", templates=templates)
