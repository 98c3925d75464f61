"""The model variants (`[intents] variant`, issue 17 item 6): one shipped graph, the original
all-MiniLM-L6-v2 (the permissive variant, with heads trained on permissively licensed rows only), with the
fine-tuned layers put in place at load for the default one; and everything model-dependent (heads, their
learning-loop versions, the answer threshold, idea grouping, caches) following the one setting. The worker
on either without torch is in test_encoder_onnx.py.
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
from intents.encoder import (
    FINE_TUNED_LAYERS,
    VARIANTS,
    EncoderLoadError,
    load_encoder,
    reference_model_path,
)
from intents.onnx_encoder import (
    SHIPPED_DIR,
    SHIPPED_MODEL,
    SHIPPED_TOKENIZER,
    OnnxSentenceEncoder,
    check_fits,
    export_onnx_model,
    fine_tuned_tensors,
    quantise_8bit,
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


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_computes_its_weights_exported_with_the_shipped_recipe(
    tmp_path: Path, variant: str
) -> None:
    """The shipped graph is the original weights' export (the permissive variant as it is); with the
    fine-tuned layers quantised at load in place (the default variant) it computes the fine-tuned reference's
    export: the same vectors, bit for bit."""
    exported = export_onnx_model(tmp_path / f"{variant}.onnx", reference_model_path(variant))
    direct = OnnxSentenceEncoder.from_files(exported, SHIPPED_TOKENIZER, name=variant)
    encoder = load_encoder(variant=variant)
    np.testing.assert_allclose(encoder.encode(TEXTS), direct.encode(TEXTS), rtol=0, atol=1e-6)


def test_the_fine_tuned_layers_fit_the_shipped_graph() -> None:
    tensors = fine_tuned_tensors(FINE_TUNED_LAYERS)
    check_fits(SHIPPED_MODEL, tensors)  # every name and shape is the graph's (ONNX Runtime ignores others)
    assert any(name.endswith("_Q8") for name in tensors) and any(name.endswith(".bias") for name in tensors)


def test_the_8_bit_rule_on_ties_and_zero_blocks() -> None:
    weight = np.zeros((2, 64), dtype=np.float32)
    weight[0, :32] = np.linspace(-1.0, 1.0, 32)  # -1 and 1: a tie, the smaller one sets the scale
    codes, scales = quantise_8bit(weight)
    assert codes.shape == (2, 2, 32) and scales.shape == (2, 2)
    assert scales[0, 0] == np.float32(1 / 128) and codes[0, 0, 0] == 0 and codes[0, 0, -1] == 255
    assert scales[1].tolist() == [0.0, 0.0] and (codes[1] == 128).all()


def test_the_shipped_model_files_fit_the_40_mb_budget() -> None:
    files = [*SHIPPED_DIR.iterdir(), *SHIPPED_HEADS_DIR.rglob("*.npz")]
    assert sum(f.stat().st_size for f in files if f.is_file()) <= 40e6


def test_the_variants_have_their_own_names_and_vectors(permissive: OnnxSentenceEncoder) -> None:
    default = load_encoder()
    assert permissive.name != default.name and "fine-tuned-" in default.name
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


def test_missing_or_broken_fine_tuned_layers_are_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default variant never runs the original weights under heads trained on the fine-tuned ones."""
    import intents.onnx_encoder as onnx_encoder

    monkeypatch.setattr(onnx_encoder, "FINE_TUNED_LAYERS", tmp_path / "missing.safetensors")
    with pytest.raises(EncoderLoadError, match="fine-tuned layers are missing") as missing:
        OnnxSentenceEncoder.load(variant="default")
    assert "\n" not in str(missing.value)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    monkeypatch.setattr(onnx_encoder, "FINE_TUNED_LAYERS", broken)
    with pytest.raises(EncoderLoadError, match="cannot read the fine-tuned layers"):
        OnnxSentenceEncoder.load(variant="default")
    assert OnnxSentenceEncoder.load(variant="permissive").encode(["still fine"]).shape == (1, 384)
