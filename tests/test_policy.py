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


FOUND = Answer(Article())
NOT_FOUND = Answer(None, 0.2)


@pytest.fixture
def policy() -> Policy:
    return Policy(brand="Fernhill Outdoor", support_hours="9-5", human_reply_estimate="soon")


@pytest.mark.parametrize(
    ("understood", "answer", "action", "escalate", "template"),
    [
        (Understood("question"), FOUND, Action.ANSWER, False, None),
        (Understood("question"), NOT_FOUND, Action.ESCALATE, True, "no_answer"),
        (Understood("complaint"), NOT_FOUND, Action.ESCALATE, True, "complaint"),
        (Understood("praise"), NOT_FOUND, Action.THANK, False, "praise"),
        (Understood("recommendation"), NOT_FOUND, Action.RECORD_IDEA, False, "recommendation"),
        (Understood("other"), NOT_FOUND, Action.SMALL_TALK, False, "small_talk"),
        (Understood("praise", abusive=True, abusive_score=0.97), FOUND, Action.MODERATE, False, None),
        (Understood("other", abusive=True, abusive_score=0.97), FOUND, Action.MODERATE, False, None),
        # Abuse never silences a service request: it goes to a person with a reply that doesn't repeat it.
        (Understood("complaint", abusive=True), NOT_FOUND, Action.ESCALATE, True, "abusive_request"),
        (Understood("question", abusive=True), FOUND, Action.ESCALATE, True, "abusive_request"),
        (
            Understood("other", abusive=True, wants_human=True),
            FOUND,
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        (
            Understood("other", abusive=True, low_confidence=True, confidence=0.3),
            NOT_FOUND,
            Action.ESCALATE,
            True,
            "abusive_request",
        ),
        (Understood("question", wants_human=True), FOUND, Action.ESCALATE, True, "wants_human"),
        (
            Understood("question", low_confidence=True, confidence=0.3),
            NOT_FOUND,
            Action.ESCALATE,
            True,
            "unsure",
        ),
        (Understood("praise", low_confidence=True, confidence=0.3), FOUND, Action.ANSWER, False, None),
        (
            Understood("complaint", low_confidence=True, confidence=0.5),
            FOUND,
            Action.ESCALATE,
            True,
            "complaint",
        ),
    ],
)
def test_routing(policy, understood, answer, action, escalate, template):
    decision = policy.decide(understood, answer, public=False)
    assert decision.action == action
    assert decision.escalate is escalate
    assert decision.template == template
    assert decision.reason


def test_no_route_for_abuse_silences_a_service_request():
    policy = Policy(brand="B", support_hours="h", human_reply_estimate="e", routes={"abusive": "ignore"})
    complaint = policy.decide(Understood("complaint", abusive=True), NOT_FOUND, public=True)
    assert complaint.action == Action.ESCALATE and complaint.escalate and "flagged" in complaint.reason
    assert "person" in policy.render(complaint.template)
    insult = policy.decide(Understood("other", abusive=True), NOT_FOUND, public=True)
    assert insult.action == Action.IGNORE and not insult.replies


def test_an_idea_flagged_abusive_is_held_without_a_reply_but_reaches_the_ideas_board(policy):
    """The abuse head also flags some polite suggestions ("You should sell spare tent poles on your website,
    I'd buy them" scores 0.65): an idea is something to act on, so it is recorded either way."""
    flagged = Understood("recommendation", abusive=True, abusive_score=0.65)
    idea = policy.decide(flagged, NOT_FOUND, public=False)
    assert idea.action == Action.MODERATE and not idea.replies and idea.record_idea
    unsure = Understood("recommendation", abusive=True, low_confidence=True, confidence=0.3)
    assert not policy.decide(unsure, NOT_FOUND, public=False).record_idea


def test_small_talk_is_not_posted_in_public(policy):
    assert policy.decide(Understood("other"), NOT_FOUND, public=True).action == Action.IGNORE


def test_a_complaint_offers_a_matching_article_while_escalating(policy):
    decision = policy.decide(Understood("complaint"), FOUND, public=False)
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
    assert policy.decide(Understood("other"), NOT_FOUND, public=False).action == Action.IGNORE
    assert policy.render("praise") == "Cheers from B!"


@pytest.mark.parametrize(
    ("templates", "message"),
    [({"praise": "Thanks {{ brand "}, "policy.templates.praise"), ({"praise": "Hi {{ nobody }}"}, "nobody")],
)
def test_a_broken_template_is_named_at_start(templates, message):
    with pytest.raises(PolicyError, match=message):
        Policy(brand="B", support_hours="h", human_reply_estimate="e", templates=templates)
