"""Retrieval with the real encoder over a small knowledge base written by the test: the right article for
paraphrases, none for unrelated questions, an index cached on disk and refreshed when an article changes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from knowledge import DEFAULT_THRESHOLD, KnowledgeBase, KnowledgeBaseError

ARTICLES = {
    "returns": (
        "Returns",
        [
            "how do i return something",
            "can i send back a jacket",
            "whats your return policy",
            "how long do i have to return an item",
        ],
        "You can return unused items within 60 days of delivery. Start at shop.example/returns.",
    ),
    "delivery-times": (
        "Delivery times",
        ["how long does delivery take", "when will my order arrive", "do you do next day delivery"],
        "Standard delivery takes 3 to 5 working days; express arrives the next working day.",
    ),
    "password-reset": (
        "Reset your password",
        ["forgot my password", "cant log in to my account", "the reset email never came"],
        "Choose *Forgot your password?* on the sign-in page; the link expires after one hour.",
    ),
    "opening-hours": (
        "Store opening hours",
        ["what time do you open", "are you open on sunday", "when does the shop close"],
        "Our stores are open Monday to Saturday 9:00-18:00 and Sunday 10:00-16:00.",
    ),
    "gift-cards": (
        "Gift cards",
        ["do you sell gift cards", "how do i check my gift card balance", "does my gift card expire"],
        "Gift cards are valid for 24 months, online and in our stores.",
    ),
}


def write_article(directory: Path, article_id: str, title: str, questions: list[str], body: str) -> Path:
    lines = ["---", f"id: {article_id}", f"title: {title}", "questions:"]
    lines += [f"  - {question}" for question in questions]
    lines += [f"url: https://shop.example/help/{article_id}", "---", body, ""]
    path = directory / f"{article_id}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def kb_dir(tmp_path) -> Path:
    directory = tmp_path / "kb"
    directory.mkdir()
    for article_id, (title, questions, body) in ARTICLES.items():
        write_article(directory, article_id, title, questions, body)
    return directory


class CountingEncoder:
    """The real encoder, counting how many texts it is asked to encode."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.name = encoder.name
        self.texts = 0

    def encode(self, texts):
        self.texts += len(texts)
        return self._encoder.encode(texts)


@pytest.fixture
def knowledge_base(kb_dir, encoder) -> KnowledgeBase:
    return KnowledgeBase.build(kb_dir, encoder)


@pytest.mark.parametrize(
    ("question", "article_id"),
    [
        ("hi, I'd like to send my boots back, what do I do?", "returns"),
        ("how many days have i got to return stuff", "returns"),
        ("ordered yesterday, when is it going to get here?", "delivery-times"),
        ("I can't remember my login password", "password-reset"),
        ("is the store open on a Sunday afternoon?", "opening-hours"),
    ],
)
def test_a_paraphrased_question_gets_the_right_article(knowledge_base, question, article_id):
    answer = knowledge_base.answer_text(question)

    assert answer.article is not None, answer
    assert answer.article.id == article_id
    assert answer.best_article_id == article_id
    assert answer.score >= knowledge_base.threshold


def test_a_paraphrase_below_the_threshold_goes_to_a_person_not_to_another_article(knowledge_base):
    # 0.45 against three example questions that all say "gift card": under the default threshold (0.50)
    # with the fine-tuned encoder (0.52 with the original one), so a person answers it.
    answer = knowledge_base.answer_text("how much is left on my gift voucher")

    assert answer.best_article_id == "gift-cards", answer
    assert answer.article is None and answer.score < DEFAULT_THRESHOLD, answer


@pytest.mark.parametrize(
    "question",
    [
        "what's the capital of Peru?",
        "who won the football last night",
        "can you recommend a good pizza recipe",
        "my cat keeps sneezing, should I see a vet",
    ],
)
def test_an_unrelated_question_gets_no_article(knowledge_base, question):
    answer = knowledge_base.answer_text(question)

    assert answer.article is None, answer
    assert answer.score < knowledge_base.threshold
    assert answer.best_article_id in ARTICLES


def test_a_hand_over_article_gathers_its_questions_but_is_never_sent(kb_dir, encoder):
    """Questions for a person (here: jobs) match the hand-over article rather than a near one, and decline."""
    lines = [
        "---",
        "id: jobs",
        "title: Jobs at the shop",
        "questions:",
        "  - are you hiring",
        "  - how do i apply",
    ]
    lines += ["hand_over: true", "---", "A person from the team answers these.", ""]
    (kb_dir / "jobs.md").write_text("\n".join(lines), encoding="utf-8")
    knowledge_base = KnowledgeBase.build(kb_dir, encoder)

    answer = knowledge_base.answer_text("are you hiring at the moment?")

    assert answer.article is None and answer.best_article_id == "jobs"
    assert answer.score >= knowledge_base.threshold
    assert knowledge_base.answer_text("how do i return something").article.id == "returns"


def test_the_pipeline_embedding_is_used_as_given(knowledge_base, encoder):
    question = "when will my parcel arrive?"
    embedding = encoder.encode([question])[0]

    assert knowledge_base.answer(question, embedding) == knowledge_base.answer_text(question)
    with pytest.raises(ValueError, match="dimensions"):
        knowledge_base.answer(question, np.ones(10, dtype=np.float32))


def test_huge_and_emoji_only_questions_do_not_crash(knowledge_base):
    for question in ["returns " * 12_500, "😀🎉🔥" * 10, "", "   "]:
        answer = knowledge_base.answer_text(question)
        assert answer.score == answer.score  # a number, not NaN


def test_an_empty_knowledge_base_answers_nothing_and_warns(tmp_path, encoder, caplog):
    with caplog.at_level(logging.WARNING, logger="knowledge"):
        knowledge_base = KnowledgeBase.build(tmp_path, encoder)

    assert knowledge_base.articles == []
    assert "no articles" in caplog.text
    answer = knowledge_base.answer_text("how do I return something?")
    assert (answer.article, answer.score, answer.best_article_id) == (None, 0.0, None)


def test_the_threshold_is_a_setting_with_a_calibrated_default(kb_dir, encoder):
    assert KnowledgeBase.build(kb_dir, encoder).threshold == DEFAULT_THRESHOLD
    strict = KnowledgeBase.build(kb_dir, encoder, threshold=0.99)

    answer = strict.answer_text("hi, I'd like to send my boots back, what do I do?")

    assert answer.article is None and answer.best_article_id == "returns"


def test_a_restart_reuses_the_cached_index_without_encoding(kb_dir, encoder, tmp_path):
    cache = tmp_path / "cache"
    first_encoder = CountingEncoder(encoder)
    first = KnowledgeBase.build(kb_dir, first_encoder, cache_dir=cache)
    assert first_encoder.texts > 0

    restarted_encoder = CountingEncoder(encoder)
    restarted = KnowledgeBase.build(kb_dir, restarted_encoder, cache_dir=cache)

    assert restarted_encoder.texts == 0
    question = "when will my order arrive?"
    embedding = encoder.encode([question])[0]
    assert restarted.answer(question, embedding) == first.answer(question, embedding)


def test_a_changed_article_is_picked_up_by_refresh_encoding_only_the_new_texts(kb_dir, encoder, tmp_path):
    counting = CountingEncoder(encoder)
    knowledge_base = KnowledgeBase.build(kb_dir, counting, cache_dir=tmp_path / "cache")
    assert knowledge_base.answer_text("can I pay with PayPal?").article is None
    assert knowledge_base.refresh() is False

    before = counting.texts
    path = write_article(
        kb_dir,
        "payment-methods",
        "Payment methods",
        ["what payment methods do you accept", "can i pay with paypal", "do you take amex"],
        "We accept Visa, Mastercard, American Express and PayPal.",
    )
    assert knowledge_base.refresh() is True

    assert counting.texts - before == 5  # title, three questions, one body chunk
    answer = knowledge_base.answer_text("can I pay with PayPal?")
    assert answer.article is not None and answer.article.id == "payment-methods"
    assert knowledge_base.refresh() is False

    path.unlink()
    assert knowledge_base.refresh() is True
    assert "payment-methods" not in {article.id for article in knowledge_base.articles}


def test_a_touched_but_unchanged_article_is_not_a_change(kb_dir, encoder):
    knowledge_base = KnowledgeBase.build(kb_dir, encoder)
    path = kb_dir / "returns.md"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))

    assert knowledge_base.refresh() is False


def test_an_invalid_edit_keeps_the_previous_articles_in_service(kb_dir, encoder):
    knowledge_base = KnowledgeBase.build(kb_dir, encoder)
    (kb_dir / "broken.md").write_text("---\ntitle: [oops\n---\nbody\n", encoding="utf-8")

    with pytest.raises(KnowledgeBaseError, match=r"broken\.md:2"):
        knowledge_base.refresh()

    assert len(knowledge_base.articles) == len(ARTICLES)
    assert knowledge_base.answer_text("how long does delivery take?").article.id == "delivery-times"


def test_skip_mode_serves_the_valid_articles(kb_dir, encoder, caplog):
    (kb_dir / "broken.md").write_text("---\ntitle: Broken\n---\n", encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="knowledge"):
        knowledge_base = KnowledgeBase.build(kb_dir, encoder, on_invalid="skip")

    assert len(knowledge_base.articles) == len(ARTICLES)
    assert "broken.md:4: empty body" in caplog.text
