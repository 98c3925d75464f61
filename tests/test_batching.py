"""Micro-batching of encoder calls: messages analysed at the same moment share one encoder pass, each caller
gets its own vector (the one it would get alone), and a lone message is not held back."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from bot.runtime.batching import BatcherClosedError, MicroBatcher

POSTS = [
    "@fernhill my order never arrived",
    "do you ship to Norway?",
    "love the new Ridge 40 backpack!",
    "you should sell gas canisters in store",
    "how do I return a tent?",
    "worst customer service ever, 3 weeks waiting",
    "thanks for the quick help yesterday",
    "is the Summit jacket waterproof?",
]


class CountingEncoder:
    """The real encoder, recording the texts of each call."""

    def __init__(self, encoder) -> None:
        self.encoder = encoder
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return self.encoder.encode(texts)


def _all_at_once(batcher: MicroBatcher, texts: list[str]) -> list[np.ndarray]:
    start = threading.Barrier(len(texts))

    def one(text: str) -> np.ndarray:
        start.wait()
        return batcher.encode(text, timeout=60)

    with ThreadPoolExecutor(len(texts)) as pool:
        return list(pool.map(one, texts))


def test_messages_arriving_together_are_encoded_in_one_batch_with_their_own_vectors(encoder) -> None:
    counting = CountingEncoder(encoder)
    # A generous wait, so eight threads on a busy 2-core machine all make it into the first batch.
    batcher = MicroBatcher(counting.encode, max_batch=32, max_wait_ms=300)
    try:
        vectors = _all_at_once(batcher, POSTS)
    finally:
        batcher.close()

    assert len(counting.calls) == 1
    assert sorted(counting.calls[0]) == sorted(POSTS)
    assert list(batcher.batch_sizes) == [len(POSTS)]
    for text, vector in zip(POSTS, vectors, strict=True):
        np.testing.assert_allclose(vector, encoder.encode([text])[0], atol=1e-5)


def test_a_burst_larger_than_max_batch_is_split(encoder) -> None:
    counting = CountingEncoder(encoder)
    batcher = MicroBatcher(counting.encode, max_batch=3, max_wait_ms=300)
    try:
        vectors = _all_at_once(batcher, POSTS)
    finally:
        batcher.close()
    assert all(len(call) <= 3 for call in counting.calls)
    assert sorted(text for call in counting.calls for text in call) == sorted(POSTS)
    for text, vector in zip(POSTS, vectors, strict=True):
        np.testing.assert_allclose(vector, encoder.encode([text])[0], atol=1e-5)


def test_a_lone_message_waits_at_most_max_wait() -> None:
    batcher = MicroBatcher(lambda texts: np.ones((len(texts), 4), dtype=np.float32), max_wait_ms=50)
    try:
        batcher.encode("warm up the worker thread")
        started = time.perf_counter()
        vector = batcher.encode("hello")
        waited = time.perf_counter() - started
    finally:
        batcher.close()
    assert vector.shape == (4,)
    assert waited < 0.05 + 0.25  # the wait, plus slack for a busy machine; never a second batch's wait
    assert list(batcher.batch_sizes) == [1, 1]


def test_an_encoder_error_reaches_every_caller_of_the_batch_and_the_next_batch_works() -> None:
    calls = {"n": 0}

    def flaky(texts):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("out of memory")
        return np.zeros((len(texts), 2), dtype=np.float32)

    batcher = MicroBatcher(flaky, max_wait_ms=300)
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(batcher.encode, text, 30) for text in ("a", "b", "c")]
            errors = [f.exception(timeout=30) for f in futures]
        assert calls["n"] == 1
        assert all(isinstance(e, RuntimeError) and "out of memory" in str(e) for e in errors)
        assert batcher.encode("d", timeout=30).shape == (2,)
    finally:
        batcher.close()


def test_a_closed_batcher_refuses_new_texts() -> None:
    batcher = MicroBatcher(lambda texts: np.zeros((len(texts), 2), dtype=np.float32))
    batcher.encode("x")
    batcher.close()
    with pytest.raises(BatcherClosedError):
        batcher.encode("y")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda texts: texts, max_batch=0)
    with pytest.raises(ValueError, match="max_wait_ms"):
        MicroBatcher(lambda texts: texts, max_wait_ms=-1)


def test_concurrent_analyses_match_one_at_a_time(models) -> None:
    expected = [models.analyse(text) for text in POSTS]
    start = threading.Barrier(len(POSTS))

    def one(text: str):
        start.wait()
        return models.analyse(text)

    with ThreadPoolExecutor(len(POSTS)) as pool:
        together = list(pool.map(one, POSTS))
    for alone, batched in zip(expected, together, strict=True):
        assert batched.understanding.intent == alone.understanding.intent
        assert batched.understanding.sentiment == alone.understanding.sentiment
        assert batched.understanding.confidence == pytest.approx(alone.understanding.confidence, abs=1e-3)
        assert batched.answer.best_article_id == alone.answer.best_article_id
        assert batched.answer.score == pytest.approx(alone.answer.score, abs=1e-3)
