"""The same sentence encoder run by ONNX Runtime with 8-bit weights: several times faster on a CPU.

The model is exported from the packaged all-MiniLM-L6-v2 weights with `torch.onnx.export` (dynamic batch and
sequence axes), quantised and cached as a file named after a hash of the weights and of the export recipe,
so it is built once per installation (`socialbot intents export-onnx` does it ahead of time). Inference needs
neither torch nor transformers: the fast tokenizer (`tokenizers`) and an `onnxruntime.InferenceSession`;
pooling and normalisation are the torch path's (mean over the attention mask, then L2), in numpy.

Quantisation: every weight matrix to 8 bits in blocks of 32 values with a scale each (ONNX Runtime's
`MatMulNBits`), computed with int8 activations quantised per row and block at run time (`accuracy_level`
4). Dynamic int8 with one activation scale per tensor (`quantize_dynamic`, per-channel weights) was the first
recipe: it was faster on batches but the heads decided as with torch on only ~97 % of dev messages in every
variant measured (intents/MODEL_CARD.md), and a text's vector moved with the batch it was encoded in.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intents.encoder import DEFAULT_MAX_LENGTH, EncoderLoadError, _weights_fingerprint, default_model_path

__all__ = ["PRECISIONS", "OnnxSentenceEncoder", "cached_model_path", "ensure_exported", "export_onnx_model"]

log = logging.getLogger(__name__)

# Per precision, the export recipe; bump one when its export or quantisation changes: it is part of the
# cached file's name and of the encoder's name.
RECIPES = {"int8": "q8b32-1", "fp32": "fp32-1"}
# MatMulNBits quantisation: bits per weight, values per scale, and int8 compute.
WEIGHT_BITS, BLOCK_SIZE, ACCURACY_LEVEL = 8, 32, 4
PRECISIONS = tuple(RECIPES)
OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _weights_digest(model_path: Path) -> str:
    """sha256 over the weights, config and tokenizer files (12 hex digits)."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        file = model_path / name
        if not file.exists():
            raise EncoderLoadError(f"cannot export the encoder: {file} is missing")
        digest.update(name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


def _recipe(precision: str) -> str:
    if precision not in RECIPES:
        raise EncoderLoadError(f"unknown ONNX precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return RECIPES[precision]


def cached_model_path(cache_dir: Path, model_path: Path | None = None, *, precision: str = "int8") -> Path:
    """Where the exported model of these weights lives in `cache_dir` (it may not exist yet)."""
    model_path = model_path or default_model_path()
    return Path(cache_dir) / f"all-MiniLM-L6-v2-{_weights_digest(model_path)}-{_recipe(precision)}.onnx"


def export_onnx_model(out: Path, model_path: Path | None = None, *, precision: str = "int8") -> Path:
    """Export the packaged weights to ONNX, quantise them to 8 bits unless `precision` is "fp32", and write
    the result to `out`.

    The file is written next to `out` and renamed into place, so a reader never sees half a model.

    Args:
        out: the .onnx file to write (its folder is created).
        model_path: folder with the weights; the packaged all-MiniLM-L6-v2 by default.
        precision: "int8" (8-bit weights, int8 compute: the fast one) or "fp32" (the reference's numbers).

    Raises:
        EncoderLoadError: the weights cannot be loaded, the precision is unknown or the export fails.
    """
    _recipe(precision)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    model_path = model_path or default_model_path()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        model = AutoModel.from_pretrained(str(model_path), local_files_only=True)
    except OSError as error:
        raise EncoderLoadError(f"cannot load the sentence encoder from {model_path}: {error}") from error
    model.eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    # Two texts of different lengths, so padding and the mask are traced as they are used.
    sample = tokenizer(
        ["a short one", "and a somewhat longer example sentence"], padding=True, return_tensors="pt"
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "last_hidden_state")}
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        fp32 = Path(work) / "fp32.onnx"
        int8 = Path(work) / "int8.onnx"
        try:
            # The tracer warns about every Python branch on a shape in transformers' code; the dynamic axes
            # are checked by the parity tests instead (tests/test_encoder_onnx.py).
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    LastHiddenState(model),
                    tuple(sample[name] for name in _INPUTS),
                    str(fp32),
                    input_names=list(_INPUTS),
                    output_names=["last_hidden_state"],
                    dynamic_axes=dynamic,
                    opset_version=OPSET,
                    dynamo=False,
                )
            if precision == "fp32":
                os.replace(fp32, out)
                return out
            _quantise(fp32, int8)
        except Exception as error:  # the exporter and quantiser raise many kinds; all mean "no model"
            raise EncoderLoadError(f"exporting the encoder to ONNX failed: {error}") from error
        os.replace(int8, out)
    return out


def ensure_exported(cache_dir: Path, model_path: Path | None = None, *, precision: str = "int8") -> Path:
    """The exported model's path in `cache_dir`, exporting it first if it is not there yet."""
    onnx_path = cached_model_path(cache_dir, model_path, precision=precision)
    if not onnx_path.exists():
        log.info("exporting the sentence encoder to %s (once per installation)", onnx_path)
        export_onnx_model(onnx_path, model_path, precision=precision)
    return onnx_path


def _quantise(fp32: Path, out: Path) -> None:
    """Write `fp32`'s model to `out` with every constant weight matrix in 8-bit blocks (see the module)."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    config = DefaultWeightOnlyQuantConfig(
        block_size=BLOCK_SIZE,
        is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
        bits=WEIGHT_BITS,
        op_types_to_quantize=("MatMul",),
    )
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(fp32)),
        bits=WEIGHT_BITS,
        block_size=BLOCK_SIZE,
        is_symmetric=True,
        accuracy_level=ACCURACY_LEVEL,
        algo_config=config,
        op_types_to_quantize=("MatMul",),
    )
    # The quantiser logs a line per graph node at INFO.
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), False)


class OnnxSentenceEncoder:
    """Turns texts into unit-length 384-dimensional vectors with ONNX Runtime (8-bit or fp32 weights).

    A drop-in for `SentenceEncoder`: same `name`/`dim`/`encode`, vectors within cosine ~0.999 of it. Its
    `name` differs from the torch encoder's, so caches keyed on it (the knowledge index) are rebuilt.
    """

    def __init__(self, session, tokenizer, *, name: str, dim: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.name = name
        self.dim = dim

    @classmethod
    def load(
        cls,
        cache_dir: Path,
        *,
        model_path: Path | None = None,
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        precision: str = "int8",
    ) -> OnnxSentenceEncoder:
        """Load the exported model from `cache_dir`, exporting it first if it is not there.

        Args:
            cache_dir: folder of exported models (e.g. `<data dir>/cache/onnx`).
            model_path: folder with the weights; the packaged all-MiniLM-L6-v2 by default.
            threads: ONNX Runtime intra-op threads; None lets it use one per core.
            max_length: word pieces kept per text; longer texts are truncated.
            precision: "int8" (quantised) or "fp32" (same numbers as the torch reference).

        Raises:
            EncoderLoadError: the weights are missing, the export fails or the model file is unreadable.
        """
        import onnxruntime
        from tokenizers import Tokenizer

        model_path = model_path or default_model_path()
        onnx_path = ensure_exported(cache_dir, model_path, precision=precision)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        except Exception as error:  # onnxruntime raises its own untyped errors for a corrupt file
            raise EncoderLoadError(f"cannot load the ONNX encoder {onnx_path}: {error}") from error
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        dim = int(session.get_outputs()[0].shape[-1])
        name = f"{_weights_fingerprint(model_path)}:onnx-{_recipe(precision)}"
        return cls(session, tokenizer, name=name, dim=dim)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, one unit-length row per text."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Texts of similar length go together: less padding to compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        ordered = [texts[i] if texts[i] else " " for i in order]
        rows: list[np.ndarray] = []
        with self._lock:
            for start in range(0, len(ordered), batch_size):
                batch = ordered[start : start + batch_size]
                encodings = self._tokenizer.encode_batch(batch)
                feed = {
                    "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
                }
                output = self._session.run(None, feed)[0]
                mask = feed["attention_mask"][..., None].astype(np.float32)
                pooled = (output * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
                norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
                rows.append((pooled / norms).astype(np.float32))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        vectors[order] = np.concatenate(rows, axis=0)
        return vectors
