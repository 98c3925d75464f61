"""The shipped encoder as the runtime loads it: ONNX Runtime + tokenizers + numpy, never torch.

Unit-length vectors that do not depend on the batch, clear errors for missing or altered files, the shipped
files as the model card lists them (sha256, size), and a process that understands messages and answers from
the knowledge base, and a served worker (`socialbot serve`) that answers the web chat, both with `torch` and
`transformers` made impossible to import.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from intents.encoder import (
    MODEL_ROOT,
    VARIANTS,
    EncoderLoadError,
    SentenceEncoder,
    file_digest,
    load_encoder,
    model_dir,
)
from tests.conftest import REPO, free_port

EDGE_CASES = ["", " ", "ok", "aaaaaaaaaa", "word " * 400, "Ünïcödé 😀 日本語 @fernhill #help"]


def test_vectors_are_unit_length_and_the_batch_does_not_move_them(encoder: SentenceEncoder) -> None:
    texts = ["@fernhill my order never arrived", "hi", "do you ship the Ridge 40 backpack to Norway?"]
    texts += EDGE_CASES
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    assert together.shape == (len(texts), encoder.dim) == (len(texts), 384)
    assert together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    # Activations are quantised per row and block, so a text's companions don't move its vector.
    assert (together * alone).sum(axis=1).min() >= 0.9999
    assert encoder.encode([]).shape == (0, 384)


def test_paraphrases_are_nearer_than_unrelated_questions(encoder: SentenceEncoder) -> None:
    a, b, c = encoder.encode(
        [
            "how do i send back a jacket that doesn't fit",
            "what's your returns policy",
            "is the shop open on sunday",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.1


def test_the_shipped_files_match_their_sha256_and_fit_the_size_budget() -> None:
    total = 0
    shared = set()
    for variant in VARIANTS:
        folder = model_dir(variant)
        if not (folder / "model.json").exists():
            assert variant != "default", "the default model must ship"
            continue
        meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
        for role in ("encoder", "tokenizer", "word_embeddings", "intent", "sentiment", "abusive"):
            entry = meta["files"][role]
            path = (folder / entry["path"]).resolve()
            assert file_digest(path) == entry["sha256"], path
            if path not in shared:
                shared.add(path)
                total += path.stat().st_size
    assert total <= 40_000_000, f"{total / 1e6:.1f} MB shipped"


def test_the_name_changes_with_the_files(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(MODEL_ROOT, copy)
    original = SentenceEncoder.load(copy / "default")
    assert original.name == SentenceEncoder.load(model_dir("default")).name
    heads_only = json.loads((copy / "default" / "model.json").read_text())
    assert "sha256" in heads_only["files"]["intent"]
    other = VARIANTS[1]
    if (copy / other / "model.json").exists():
        assert SentenceEncoder.load(copy / other).name != original.name


def test_missing_or_altered_files_are_one_clear_error(tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(MODEL_ROOT, copy)
    folder = copy / "default"
    with pytest.raises(EncoderLoadError, match="model.json is missing"):
        SentenceEncoder.load(tmp_path / "nowhere")
    data = bytearray((folder / "encoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "encoder.onnx").write_bytes(bytes(data))
    with pytest.raises(EncoderLoadError, match="does not match the sha256"):
        SentenceEncoder.load(folder)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(EncoderLoadError, match="tokenizer.json is missing"):
        SentenceEncoder.load(folder)


def test_load_encoder_refuses_an_unknown_variant() -> None:
    with pytest.raises(EncoderLoadError, match="unknown model variant 'tiny'"):
        load_encoder("tiny")


def _fake_torch(
    tmp_path: Path, error: str = "RuntimeError('{name} must not be imported at run time')"
) -> Path:
    """A folder with fake `torch` and `transformers` packages that raise `error` when imported: put first on
    the path, any import of them, by us or by a library, fails the process."""
    fakes = tmp_path / "fakes"
    for name in ("torch", "transformers", "sentence_transformers"):
        (fakes / name).mkdir(parents=True, exist_ok=True)
        (fakes / name / "__init__.py").write_text(f"raise {error.format(name=name)}\n", encoding="utf-8")
    return fakes


def _run_without_torch(tmp_path: Path, code: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where torch and transformers cannot be imported."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_fake_torch(tmp_path)), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_understanding_and_knowledge_run_without_torch(tmp_path: Path) -> None:
    result = _run_without_torch(
        tmp_path,
        """
        import sys
        from pathlib import Path
        try:
            import torch
        except RuntimeError:
            pass
        else:
            raise SystemExit("the fake torch did not raise")
        import knowledge
        from intents import SentenceEncoder, Understander
        from knowledge import KnowledgeBase
        encoder, understander = SentenceEncoder.load(threads=1), Understander.load()
        kb = KnowledgeBase.build(Path(knowledge.__file__).parent / "sample" / "fernhill", encoder)
        texts = ("@fernhill my parcel is two weeks late and nobody answers", "how do i reset my password")
        for text in texts:
            vector = encoder.encode([text])[0]
            answer = kb.answer(text, vector)
            print(understander.understand(text, vector).intent, answer.article.id if answer.article else None)
        """,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().split("\n")
    assert lines[0].startswith("complaint"), result.stdout
    assert lines[1] == "question password-reset", result.stdout


@pytest.mark.timeout(300)
def test_a_served_worker_never_imports_torch(tmp_path: Path) -> None:
    port = free_port()
    fakes = _fake_torch(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(fakes), str(REPO)]),
        "SOCIALBOT_DATA__DIR": str(tmp_path / "data"),
        "SOCIALBOT_INTENTS__THREADS": "1",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the worker did not become ready"
            try:
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        reply = httpx.post(
            f"{base}/api/v1/chat",
            json={"session_id": "no-torch", "text": "how do i reset my password"},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["replies"], reply.json()
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=60)[0]
    assert "must not be imported" not in output, output[-2000:]


def test_train_encoder_without_the_train_extra_is_one_clear_line(tmp_path: Path) -> None:
    fakes = _fake_torch(tmp_path, error="ModuleNotFoundError(\"No module named '{name}'\")")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "intents",
            "train-encoder",
            "--steps",
            "1",
            "--out",
            str(tmp_path / "m"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(fakes), str(REPO)])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr
    assert "needs the train extra" in result.stderr
    assert not (tmp_path / "m").exists()


def test_the_model_setting_chooses_the_shipped_variant(make_settings) -> None:
    from bot.runtime.analysis import load_models

    settings = make_settings(intents={"model": "permissive", "threads": 1}, knowledge={"refresh_seconds": 0})
    if not (model_dir("permissive") / "model.json").exists():
        with pytest.raises(EncoderLoadError, match="permissive"):
            load_models(settings)
        return
    models = load_models(settings)
    assert models.encoder.name.startswith("socialbot-minilm-l6-permissive:")
    assert models.understander.intent_head.metadata["variant"] == "permissive"
