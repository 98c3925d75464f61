"""The sentence encoder at run time: the fine-tuned MiniLM shipped in `intents/model/`, run by ONNX Runtime.

Needs only onnxruntime, tokenizers and numpy (no torch, no transformers). A model folder holds:
- `encoder.onnx`: the transformer with 8-bit weights; it takes the word vectors of the tokens and the
  attention mask and returns the mean-pooled, L2-normalised sentence vector;
- `model.json`: the name, the files (with their sha256) and how the model was trained;
- the heads (`intent.npz`, `sentiment.npz`, `abusive.npz`, see `intents.heads`).
The tokenizer (`tokenizer.json`) and the word-vector table (`word_embeddings.npz`: int8 rows with one scale
each) are shared by the variants, one folder up: both variants keep the original table (it is frozen while
fine-tuning), and the lookup is a numpy gather, not part of the ONNX graph.

Variants: "default" (trained on every data set; some are non-commercial) and "permissive" (CC BY, CDLA and
the project's own data only), see intents/MODEL_CARD.md.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "MODEL_ROOT",
    "VARIANTS",
    "Encoder",
    "EncoderLoadError",
    "SentenceEncoder",
    "load_encoder",
    "model_dir",
]

MODEL_ROOT = Path(__file__).parent / "model"
VARIANTS = ("default", "permissive")
# Word pieces kept per text at run time. The encoder was fine-tuned on at most 64; its position vectors go
# to 512, and knowledge-base body chunks (~400 characters) need about 100.
DEFAULT_MAX_LENGTH = 128


class EncoderLoadError(RuntimeError):
    """The encoder's files could not be found or loaded."""


class Encoder(Protocol):
    """What the bot and the knowledge base use: a `name` that changes whenever the vectors would, the width,
    `encode`."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, one unit-length row per text."""
        ...


def model_dir(variant: str = "default") -> Path:
    """The folder of a shipped model variant ("default" or "permissive").

    Raises:
        EncoderLoadError: an unknown variant.
    """
    if variant not in VARIANTS:
        raise EncoderLoadError(f"unknown model variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    return MODEL_ROOT / variant


def load_encoder(variant: str = "default", *, threads: int | None = None) -> SentenceEncoder:
    """Load a shipped encoder variant ("default" or "permissive", see intents/MODEL_CARD.md).

    Args:
        variant: which model folder of `intents/model/` to load.
        threads: CPU threads for one encoding call; None = one per core.

    Raises:
        EncoderLoadError: an unknown variant, or missing or corrupt model files.
    """
    return SentenceEncoder.load(model_dir(variant), threads=threads)


def file_digest(path: Path) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_model_json(folder: Path) -> dict:
    """The `model.json` of a model folder.

    Raises:
        EncoderLoadError: missing or not JSON.
    """
    path = Path(folder) / "model.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise EncoderLoadError(
            f"no encoder at {folder}: {path.name} is missing "
            "(train one with `python -m intents.train_encoder`)"
        ) from error
    except (OSError, ValueError) as error:
        raise EncoderLoadError(f"cannot read {path}: {error}") from error


class SentenceEncoder:
    """Turns texts into unit-length sentence vectors with the shipped ONNX model.

    Load it once per process with `SentenceEncoder.load()`. `encode` may be called from several threads
    (calls are serialised; ONNX Runtime already uses every core it is given for one batch). A text's
    vector does not depend on the other texts in its batch.
    """

    def __init__(
        self, session, tokenizer, table: np.ndarray, scales: np.ndarray | None, *, name: str
    ) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._table = table
        self._scales = scales
        self._lock = threading.Lock()
        self.name = name
        self.dim = int(table.shape[1])

    @classmethod
    def load(
        cls,
        folder: Path | None = None,
        *,
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> SentenceEncoder:
        """Load a model folder (default: the shipped default variant).

        Args:
            folder: a folder with `model.json` and `encoder.onnx` (`model_dir(variant)`).
            threads: ONNX Runtime intra-op threads; None lets it use one per core.
            max_length: word pieces kept per text; longer texts are truncated.

        Raises:
            EncoderLoadError: a file is missing, corrupt, or does not match the sha256 in `model.json`.
        """
        import onnxruntime
        from tokenizers import Tokenizer

        folder = Path(folder) if folder is not None else model_dir("default")
        meta = read_model_json(folder)
        try:
            files = {role: (folder / entry["path"]).resolve() for role, entry in meta["files"].items()}
            paths = [files["encoder"], files["tokenizer"], files["word_embeddings"]]
        except (KeyError, TypeError) as error:
            raise EncoderLoadError(f"{folder / 'model.json'} does not list the encoder's files") from error
        for path in paths:
            if not path.is_file():
                raise EncoderLoadError(f"the encoder file {path} is missing")
        digest = hashlib.sha256()
        for role, path in zip(("encoder", "tokenizer", "word_embeddings"), paths, strict=True):
            actual = file_digest(path)
            if actual != meta["files"][role].get("sha256"):
                raise EncoderLoadError(f"{path} does not match the sha256 in {folder / 'model.json'}")
            digest.update(actual.encode())
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(str(paths[0]), options, providers=["CPUExecutionProvider"])
            tokenizer = Tokenizer.from_file(str(paths[1]))
            with np.load(paths[2], allow_pickle=False) as data:
                table = data["table"]
                scales = data["scales"].astype(np.float32) if "scales" in data else None
        except Exception as error:  # onnxruntime raises its own untyped errors for a corrupt file
            raise EncoderLoadError(f"cannot load the encoder in {folder}: {error}") from error
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        name = f"{meta.get('name', folder.name)}:{digest.hexdigest()[:12]}"
        return cls(session, tokenizer, table, scales, name=name)

    def word_vectors(self, ids: np.ndarray) -> np.ndarray:
        """The (dequantised) word vectors of token ids, shape ids.shape + (dim,), float32."""
        rows = self._table[ids].astype(np.float32)
        if self._scales is not None:
            rows *= self._scales[ids][..., None]
        return rows

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
                encodings = self._tokenizer.encode_batch(ordered[start : start + batch_size])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                feed = {"inputs_embeds": self.word_vectors(ids), "attention_mask": mask}
                rows.append(self._session.run(None, feed)[0])
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        vectors[order] = np.concatenate(rows, axis=0)
        return vectors
