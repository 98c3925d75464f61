"""Shared fixtures: the repository root, the real encoder and models (loaded once per session), settings in
a temporary data folder, a runtime over them and a web client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from intents.encoder import SentenceEncoder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    """The real sentence encoder, loaded once per test session."""
    return SentenceEncoder.load()


@pytest.fixture(scope="session")
def models(encoder: SentenceEncoder, tmp_path_factory: pytest.TempPathFactory):
    """The encoder, the shipped heads and the sample knowledge base, shared by every test."""
    from bot.runtime import Models, sample_knowledge_dir
    from intents import Understander
    from knowledge import KnowledgeBase

    knowledge = KnowledgeBase.build(
        sample_knowledge_dir(), encoder, cache_dir=tmp_path_factory.mktemp("knowledge-cache")
    )
    return Models(encoder, Understander.load(), knowledge, refresh_seconds=0)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Any]:
    """Settings with the data folder in `tmp_path`; keyword arguments override sections."""
    from bot.settings import load_settings

    def make(**overrides: Any):
        data = {"dir": tmp_path / "data", **overrides.pop("data", {})}
        return load_settings(data=data, **overrides)

    return make


@pytest.fixture
def runtime(make_settings: Callable[..., Any], models) -> Iterator[Any]:
    from bot.runtime import build_runtime

    built = build_runtime(make_settings(), models=models)
    yield built
    built.close()


@pytest.fixture
def client(runtime) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from bot.web.app import create_app

    with TestClient(create_app(runtime)) as test_client:
        yield test_client
