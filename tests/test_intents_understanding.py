"""The intents package: the encoder matches sentence-transformers, and the heads read obvious posts right."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from intents import INTENTS, SENTIMENTS, HeadFileError, HeadsError, Understander, Understanding
from tests.test_intents_support import shared_encoder, shared_understander


@pytest.fixture(scope="session")
def encoder():
    return shared_encoder()


@pytest.fixture(scope="session")
def understander():
    return shared_understander()


def read(encoder, understander, text: str) -> Understanding:
    return understander.understand(text, encoder.encode([text])[0])


def test_vectors_match_sentence_transformers(encoder):
    """The torch reference gives sentence-transformers' vectors; the shipped int8 model stays close."""
    import sentence_transformers

    from intents.encoder import SentenceEncoder, default_model_path

    texts = ["@fernhill my tent leaks 😡", "Do you ship to Ireland?", "", "x " * 400]
    reference = sentence_transformers.SentenceTransformer(str(default_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True
    )
    torch_vectors = SentenceEncoder.load().encode(texts)
    assert torch_vectors.shape == (4, 384) and torch_vectors.dtype == np.float32
    assert np.all(np.sum(torch_vectors * reference, axis=1) > 0.9999)
    shipped = np.sum(encoder.encode(texts) * reference, axis=1)
    assert np.all(shipped > 0.99), shipped


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("@fernhill my order is two weeks late and nobody answers my emails", "complaint"),
        ("@acme the app crashed again and I lost my basket, really annoying", "complaint"),
        ("@fernhill do you ship to Ireland?", "question"),
        ("@acme what time does the Leeds store open on Sunday?", "question"),
        ("@fernhill you should add Apple Pay at checkout", "recommendation"),
        ("@acme it would be great if the app had a dark mode", "recommendation"),
        ("@fernhill love my new boots, thank you so much!", "praise"),
        ("@acme brilliant service today, the staff were lovely", "praise"),
        ("@fernhill good morning", "other"),
    ],
)
def test_obvious_posts_get_their_intent(encoder, understander, text, intent):
    result = read(encoder, understander, text)
    assert result.intent == intent, result


def test_understanding_fields_and_types(encoder, understander):
    result = read(encoder, understander, "@fernhill love it!")
    data = result.to_dict()
    assert list(data) == [
        "intent",
        "confidence",
        "low_confidence",
        "sentiment",
        "sentiment_confidence",
        "abusive",
        "abusive_score",
        "wants_human",
    ]
    json.dumps(data)
    assert data["intent"] in INTENTS and data["sentiment"] in SENTIMENTS
    assert 0.0 <= data["confidence"] <= 1.0 and 0.0 <= data["abusive_score"] <= 1.0
    assert isinstance(data["abusive"], bool) and isinstance(data["low_confidence"], bool)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_other_with_low_confidence(encoder, understander, text):
    result = read(encoder, understander, text)
    assert result.intent == "other" and result.low_confidence and result.confidence == 0.0


def test_very_long_text_is_truncated_and_classified(encoder, understander):
    text = "@fernhill my parcel never arrived and support ignores me. " * 2000
    assert len(text) > 100_000
    result = read(encoder, understander, text)
    assert result.intent == "complaint"


def test_sentiment_and_abuse(encoder, understander):
    assert read(encoder, understander, "@fernhill best shop ever, thank you!").sentiment == "positive"
    assert (
        read(encoder, understander, "@fernhill worst service ever, still no refund").sentiment == "negative"
    )
    # Abuse is aimed at people (issue 25, tests/data/ABUSE_DEFINITION.md): name-calling at a member of staff.
    assert read(
        encoder, understander, "@fernhill the lad who answered your phones today is a spineless halfwit"
    ).abusive
    assert not read(encoder, understander, "@fernhill where can I change my damn address?").abusive


@pytest.mark.parametrize(
    ("text", "wanted"),
    [
        ("@fernhill can I talk to a human please", True),
        ("@fernhill I want to speak to a real person, not a bot", True),
        ("@fernhill put me through to an agent", True),
        ("@fernhill talk to you later!", False),
        ("@fernhill do you ship to Ireland?", False),
    ],
)
def test_explicit_request_for_a_person(encoder, understander, text, wanted):
    assert read(encoder, understander, text).wants_human is wanted


def test_batch_equals_single(encoder, understander):
    texts = ["@fernhill do you ship to Ireland?", "", "@fernhill love it", "@fernhill broken zip again"]
    vectors = encoder.encode(texts)
    batch = understander.understand_batch(texts, vectors)
    assert batch == [understander.understand(t, v) for t, v in zip(texts, vectors, strict=True)]


def test_mismatched_embeddings_are_refused(understander):
    with pytest.raises(ValueError, match="2 texts"):
        understander.understand_batch(["a", "b"], np.zeros((3, 384), dtype=np.float32))


def test_missing_head_file_is_named(tmp_path):
    from intents.understand import SHIPPED_HEADS_DIR

    for name in ("intent", "sentiment"):
        shutil.copyfile(SHIPPED_HEADS_DIR / f"{name}.npz", tmp_path / f"{name}.npz")
    with pytest.raises(HeadFileError, match="abusive.npz"):
        Understander.load(tmp_path)


def test_corrupt_head_file_is_named(tmp_path):
    from intents.understand import SHIPPED_HEADS_DIR

    for name in ("intent", "sentiment", "abusive"):
        shutil.copyfile(SHIPPED_HEADS_DIR / f"{name}.npz", tmp_path / f"{name}.npz")
    (tmp_path / "sentiment.npz").write_bytes(b"not a zip file")
    with pytest.raises(HeadsError, match="sentiment.npz"):
        Understander.load(tmp_path)


def test_missing_heads_folder(tmp_path: Path):
    with pytest.raises(HeadsError, match="not found"):
        Understander.load(tmp_path / "nowhere")


def test_shipped_heads_are_small():
    from intents.understand import SHIPPED_HEADS_DIR

    for path in SHIPPED_HEADS_DIR.glob("*.npz"):
        assert path.stat().st_size < 5_000_000, path


def test_ngram_features_are_deterministic():
    from intents.features import NgramConfig, hashed_ngrams

    first = hashed_ngrams("@Fernhill Sooooo GOOD!! 😍 order #123", NgramConfig())
    second = hashed_ngrams("@someone soo good!! 😍 order #999", NgramConfig())
    assert np.array_equal(first[0], second[0]) and np.allclose(first[1], second[1])
    assert abs(float(np.linalg.norm(first[1])) - 1.0) < 1e-5
