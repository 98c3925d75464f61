"""The permissive model variant (`[intents] variant = "permissive"`, issue 17 item 6): the original
all-MiniLM-L6-v2 run as the shipped graph with its fine-tuned tensors overridden, heads trained on
permissively licensed rows only, and everything model-dependent (heads, their learning-loop versions, the
answer threshold, idea grouping, caches) following the one setting. The worker on it without torch is in
test_encoder_onnx.py.
"""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest

from bot.crm.ideas import IDEA_SIMILARITIES
from bot.runtime.analysis import current_answer_threshold, head_versions, load_models
from bot.runtime.settings import IntentsSettings, SettingsError, load_settings
from intents.corpus import OWN_LICENSE, PERMISSIVE_LICENSES, own_examples
from intents.encoder import VARIANTS, EncoderLoadError, load_encoder, reference_model_path
from intents.onnx_encoder import (
    ORIGINAL_LAYERS,
    SHIPPED_MODEL,
    SHIPPED_TOKENIZER,
    OnnxSentenceEncoder,
    _same_tensors,
    export_onnx_model,
    graph_differences,
)
from intents.understand import SHIPPED_HEADS_DIR, Understander, shipped_heads_dir
from knowledge import ANSWER_THRESHOLDS

TEXTS = [row["text"] for row in own_examples()][:200] + ["", "ok", "word " * 400, "Ünïcödé 😀 @fernhill"]


@pytest.fixture(scope="module")
def permissive() -> OnnxSentenceEncoder:
    return load_encoder(variant="permissive")


def test_every_model_dependent_fact_has_a_value_for_each_variant() -> None:
    assert typing.get_args(IntentsSettings.model_fields["variant"].annotation) == VARIANTS
    assert set(ANSWER_THRESHOLDS) == set(VARIANTS) == set(IDEA_SIMILARITIES)
    for variant in VARIANTS:
        assert (shipped_heads_dir(variant) / "intent.npz").is_file()


def test_the_override_computes_the_original_models_int8_export(
    tmp_path: Path, permissive: OnnxSentenceEncoder
) -> None:
    """The shipped graph with `ORIGINAL_LAYERS` in place is the original weights exported with the shipped
    recipe: the same vectors, bit for bit (rebuild the file with `socialbot intents export-onnx --precision
    int8`, which a re-ship runs)."""
    original = export_onnx_model(tmp_path / "original.onnx", reference_model_path("permissive"))
    direct = OnnxSentenceEncoder.from_files(original, SHIPPED_TOKENIZER, name="original")
    np.testing.assert_allclose(permissive.encode(TEXTS), direct.encode(TEXTS), rtol=0, atol=1e-6)
    # What export_original_layers (run by every re-ship) would write is the shipped file, which it then keeps.
    assert _same_tensors(ORIGINAL_LAYERS, graph_differences(SHIPPED_MODEL, original))


def test_the_override_file_names_tensors_of_the_shipped_graph_with_their_shapes() -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    graph = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(SHIPPED_MODEL)).graph.initializer}
    with np.load(ORIGINAL_LAYERS, allow_pickle=False) as tensors:
        assert tensors.files, "no tensor to override"
        for name in tensors.files:
            assert name in graph, f"{name} is not a tensor of {SHIPPED_MODEL.name}"
            assert (tensors[name].shape, tensors[name].dtype) == (graph[name].shape, graph[name].dtype), name
    assert ORIGINAL_LAYERS.stat().st_size < 8e6  # the upper layers only, not a second model


def test_the_variants_have_their_own_names_and_vectors(permissive: OnnxSentenceEncoder) -> None:
    default = load_encoder()
    assert permissive.name != default.name and "original-" in permissive.name
    cosine = (permissive.encode(TEXTS[:20]) * default.encode(TEXTS[:20])).sum(axis=1)
    assert cosine.min() < 0.99  # really another model


def test_the_permissive_heads_learnt_only_from_permissive_data_on_its_vectors(
    permissive: OnnxSentenceEncoder,
) -> None:
    heads = Understander.load(variant="permissive")
    for head in (heads.intent_head, heads.sentiment_head, heads.abusive_head):
        assert head.metadata["permissive_only"] is True
        licenses = set(head.metadata["licenses"].values())
        assert licenses <= {OWN_LICENSE, *PERMISSIVE_LICENSES}, licenses
        assert head.metadata["encoder"] == permissive.name
    assert shipped_heads_dir("permissive") == SHIPPED_HEADS_DIR / "permissive"


def test_an_unknown_variant_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "settings.toml"
    config.write_text('[intents]\nvariant = "commercial"\n')
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("setting intents.variant: Input should be 'default' or 'permissive'")
    assert "SOCIALBOT_INTENTS__VARIANT" in message
    with pytest.raises(EncoderLoadError, match="unknown model variant 'commercial'"):
        load_encoder(variant="commercial")


def test_one_setting_switches_encoder_heads_versions_threshold_and_ideas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, permissive: OnnxSentenceEncoder
) -> None:
    config = tmp_path / "settings.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n[knowledge]\nrefresh_seconds = 0\n')
    monkeypatch.setenv("SOCIALBOT_INTENTS__VARIANT", "permissive")
    settings = load_settings(config)
    assert settings.intents.variant == "permissive"
    versions = head_versions(settings)
    assert versions.root == tmp_path / "data" / "heads-permissive"
    assert versions.folder("shipped") == SHIPPED_HEADS_DIR / "permissive"
    assert current_answer_threshold(settings) == ANSWER_THRESHOLDS["permissive"]
    models = load_models(settings)
    try:
        assert models.encoder.name == permissive.name
        assert models.variant == "permissive"
        assert models.understander.encoder_name == permissive.name
        assert models.knowledge.threshold == ANSWER_THRESHOLDS["permissive"]
        analysis = models.analyse("how long does delivery take?")
        assert analysis.encoder == permissive.name
    finally:
        models.batcher.close()
