"""Customers writing in other languages: detected offline, answered in their language when the brand wrote
the answer in it, otherwise in the default language with a note or by a person; never guessed at."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.crm.models import Message
from bot.pipeline.steps.language import apply_language
from bot.policy.routing import Action, Decision, Policy, PolicyError
from bot.runtime.languages import UNDETERMINED, detect_language
from channels.base import Author, InboundMessage

DATA = Path(__file__).parent / "data" / "multilingual.csv"


def _say(runtime, text: str, *, session_id: str = "lang-session-1", n: int = 0):
    from bot.pipeline.inbound import handle_inbound

    return handle_inbound(
        runtime,
        InboundMessage(
            channel="webchat",
            external_id=f"{session_id}-{n}",
            thread_id=session_id,
            author=Author(session_id),
            text=text,
        ),
    )


def test_the_language_of_each_message_in_the_written_set_is_detected():
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))
    assert len(rows) >= 60
    wrong = [
        (row["text"], row["language"], detect_language(row["text"]))
        for row in rows
        if detect_language(row["text"]) != row["language"]
        and not (row["language"] in ("ka", "am") and detect_language(row["text"]) == UNDETERMINED)
    ]
    assert len(wrong) <= len(rows) * 0.05, wrong


@pytest.mark.parametrize("text", ["ok", "👍", "thx", "", "12345 !!!"])
def test_short_or_empty_texts_get_no_language(text):
    assert detect_language(text) is None


def test_english_is_english():
    assert detect_language("where is my order? it's been two weeks") == "en"


@pytest.mark.parametrize(
    "text",
    [
        "Do you sell tent pegs?",
        "Is there a store in Manchester?",
        "where is my order",
        # trigram models alone read these as Italian 0.996 and Danish: the pair's full models overrule them
        "how do i reset my password",
        "charged me twice for the same order, sort it out pls",
        "do u have the storm shell in XXL",
    ],
)
def test_a_short_english_question_is_not_switched_to_another_language(text):
    assert detect_language(text, default="en") in (None, "en")


def test_english_is_confirmed_by_its_words_without_loading_the_large_models():
    """Confirming a switch away from English must not load lingua's high-accuracy models (about 20 MB a
    language, kept for the life of the worker): English words settle it."""
    from bot.runtime import languages

    languages._pair_detector.cache_clear()
    assert detect_language("how do i reset my password", default="en") in (None, "en")
    assert detect_language("Comment retourner un article ?", default="en") == "fr"
    assert languages._pair_detector.cache_info().currsize == 0
    # Another default is still confirmed by the two languages' full models.
    assert detect_language("Wo ist meine Bestellung?", default="fr") == "de"


def test_a_french_question_gets_the_french_article(runtime):
    result = _say(runtime, "Comment retourner un article ?")
    assert result.action == "answer"
    (reply,) = result.replies
    assert "60 jours" in reply.text and "60 days" not in reply.text
    with Session(runtime.engine) as session:
        message = session.get(Message, result.message_id)
        assert message.language == "fr" and message.kb_article_id == "returns"


def test_the_same_question_in_english_still_gets_the_english_article(runtime):
    result = _say(runtime, "how do i return something?")
    assert result.action == "answer" and "60 days" in result.replies[0].text


def test_knowledge_prefers_the_customers_language_when_translated(models):
    english = models.knowledge.answer_text("how do i return something")
    embedding = models.encoder.encode(["how do i return something"])[0]
    french = models.knowledge.answer("how do i return something", embedding, language="fr")
    german = models.knowledge.answer("how do i return something", embedding, language="de")
    assert english.article.id == french.article.id == german.article.id == "returns"
    assert (english.article.language, french.article.language, german.article.language) == ("en", "fr", "en")
    assert models.knowledge.article("returns").language == "en"
    assert models.knowledge.article("returns", "fr").language == "fr"


def test_an_unreadable_script_is_escalated_without_a_crash(runtime):
    result = _say(runtime, "გამარჯობა, სად არის ჩემი შეკვეთა?")
    assert result.state == "human" and result.action == "escalate"
    with Session(runtime.engine) as session:
        assert session.get(Message, result.message_id).language == UNDETERMINED


def test_a_german_complaint_is_escalated(runtime):
    result = _say(
        runtime, "Meine Jacke ist nach zwei Wochen kaputt gegangen und niemand antwortet. Unverschämt!"
    )
    assert result.state == "human"


@dataclass
class _Understanding:
    intent: str = "question"
    confidence: float = 0.95
    low_confidence: bool = False
    abusive: bool = False
    abusive_score: float = 0.0
    wants_human: bool = False
    sentiment: str = "neutral"
    sentiment_confidence: float = 0.5


@dataclass
class _Answer:
    article: object
    score: float
    best_article_id: str | None


def _analysis(runtime, language: str, *, low_confidence: bool = False, score: float = 0.9, article="returns"):
    from bot.runtime.analysis import Analysis

    found = runtime.models.knowledge.article(article, language)
    return Analysis(_Understanding(low_confidence=low_confidence), _Answer(found, score, article), language)


def _decide(runtime, analysis, text="how do i send something back?"):
    decision = runtime.policy.decide(analysis.understanding, analysis.answer, public=False, text=text)
    return apply_language(runtime, decision, analysis, public=False)


def test_an_unsure_intent_in_another_language_escalates_instead_of_guessing(runtime):
    decision = _decide(runtime, _analysis(runtime, "fr", low_confidence=True))
    assert decision.action == Action.ESCALATE and "unsure" in decision.reason
    english = _decide(runtime, _analysis(runtime, "en", low_confidence=True))
    assert english.action == Action.ANSWER  # English keeps the policy's own rule (a matching article answers)


def test_an_unsupported_language_is_answered_in_the_default_language_saying_so(runtime):
    from bot.pipeline.outcome import reply_text

    decision = _decide(runtime, _analysis(runtime, "de"))
    assert decision.action == Action.ANSWER and decision.language_note and decision.article.language == "en"
    text = reply_text(runtime, decision, "webchat")
    assert text.startswith("(I can't write in your language yet") and "60 days" in text


def test_an_unsupported_language_escalates_when_the_brand_says_so(make_settings, models):
    from bot.worker.build import build_runtime

    runtime = build_runtime(make_settings(languages={"on_unsupported": "escalate"}), models=models)
    try:
        decision = _decide(runtime, _analysis(runtime, "de"))
        assert decision.action == Action.ESCALATE and "doesn't answer in" in decision.reason
        assert _decide(runtime, _analysis(runtime, "fr")).action == Action.ANSWER  # French is provided
    finally:
        runtime.close()


def test_a_weak_match_in_another_language_escalates(runtime):
    decision = _decide(runtime, _analysis(runtime, "de", score=0.5))
    assert decision.action == Action.ESCALATE and "matches only at 0.50" in decision.reason


def test_reply_templates_per_language():
    policy = Policy(
        brand="Fernhill",
        support_hours="9-5",
        human_reply_estimate="soon",
        templates_by_language={"fr": {"praise": "Merci beaucoup de la part de {{ brand }} !"}},
    )
    assert policy.render("praise", language="fr") == "Merci beaucoup de la part de Fernhill !"
    assert policy.render("praise", language="de").startswith("Thank you so much")  # no German: default
    assert policy.render("unsure", language="fr").startswith("Thanks for your message")  # falls back
    assert policy.languages == {"fr"}
    with pytest.raises(PolicyError, match="templates_by_language.fr.praise"):
        Policy(
            brand="b",
            support_hours="s",
            human_reply_estimate="h",
            templates_by_language={"fr": {"praise": "{{ nope }}"}},
        )


def test_french_praise_is_thanked_in_french_when_the_brand_wrote_it(make_settings, models):
    from bot.worker.build import build_runtime

    settings = make_settings(policy={"templates_by_language": {"fr": {"praise": "Merci beaucoup !"}}})
    runtime = build_runtime(settings, models=models)
    try:
        analysis = _analysis(runtime, "fr")
        analysis.understanding.intent = "praise"
        decision = _decide(runtime, analysis, text="merci, votre équipe est formidable !")
        assert decision.action == Action.THANK and decision.language == "fr"
        assert runtime.policy.render(decision.template, language=decision.language) == "Merci beaucoup !"
    finally:
        runtime.close()


def test_decisions_with_nothing_to_say_are_left_alone(runtime):
    analysis = _analysis(runtime, "fr")
    moderate = Decision(Action.MODERATE, "abusive")
    assert apply_language(runtime, moderate, analysis, public=True) is moderate
