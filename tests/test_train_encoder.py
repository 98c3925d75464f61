"""Shipping a stopped training run: `--export-only` exports the model of the latest checkpoint (needs the
train extra: torch, transformers and the starting weights)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from intents.encoder import EncoderLoadError, SentenceEncoder, read_model_json
from intents.heads import Head
from tests.conftest import REPO
from tests.parts import missing_part

torch = pytest.importorskip("torch", reason="the train extra is not installed")
DATASETS = REPO.parent / "shared" / "datasets"


def test_export_only_ships_the_checkpoint_as_it_stands(tmp_path: Path) -> None:
    if not DATASETS.is_dir():
        missing_part("datasets", f"{DATASETS} is absent (shared datasets)")
    from intents import train_encoder as training

    config = training.TrainConfig(steps=40)
    _, bert, heads = training._load_start(config)
    optimiser, scheduler = training._optimiser(bert, heads, config)
    with torch.no_grad():
        heads["intent"].bias.fill_(0.25)  # a mark the exported head must carry
    checkpoint = training._checkpoint_path(tmp_path / "work", config)
    checkpoint.parent.mkdir(parents=True)
    training._save_checkpoint(checkpoint, config, bert, heads, optimiser, scheduler, 7, 90.0)
    lines: list[str] = []

    folder = training.export_checkpoint(
        config, work_dir=tmp_path / "work", out_root=tmp_path / "model", calibrate=False, log=lines.append
    )

    assert folder == tmp_path / "model" / "default"
    meta = read_model_json(folder)
    assert meta["training"]["steps_trained"] == 7 and meta["training"]["config"]["steps"] == 40
    np.testing.assert_allclose(Head.load(folder / "intent.npz").bias, 0.25)
    vectors = SentenceEncoder.load(folder, threads=1).encode(["where is my parcel", "hi"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert any("step 7 of 40" in line for line in lines), lines
    with pytest.raises(EncoderLoadError, match="other settings"):
        training.export_checkpoint(
            training.TrainConfig(steps=41), work_dir=tmp_path / "work", out_root=tmp_path / "other"
        )


def test_export_only_without_a_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "intents", "train-encoder", "--export-only"]
        + ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "model")],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr, result.stderr
    assert "no checkpoint at" in result.stderr, result.stderr
    assert not (tmp_path / "model").exists()
