"""The sentence encoder run by ONNX Runtime: what the product runs, with neither torch nor transformers.

The product ships the encoder exported and quantised (`intents/model/`, ~25 MB): the packaged
all-MiniLM-L6-v2 weights exported with `torch.onnx.export` (dynamic batch and sequence axes) by `socialbot
intents export-onnx`, a maintainers' command that needs the train extra (torch, transformers, the weights
package). At run time only the fast tokenizer (`tokenizers`, its file shipped beside the model) and an
`onnxruntime.InferenceSession` are used; pooling and normalisation are the torch path's (mean over the
attention mask, then L2), in numpy.

Quantisation: every weight matrix to 8 bits in blocks of 32 values with a scale each (ONNX Runtime's
`MatMulNBits`), computed with int8 activations quantised per row and block at run time (`accuracy_level`
4); the word-vector table as int8 with one scale per row. Dynamic int8 with one activation scale per tensor
(`quantize_dynamic`, per-channel weights) was the first recipe: it was faster on batches but the heads decided
as with torch on only ~97 % of dev messages in every variant measured (intents/MODEL_CARD.md), and a text's
vector moved with the batch it was encoded in.

The shipped graph is the ORIGINAL all-MiniLM-L6-v2 (Apache-2.0) exported this way: what the permissive
variant (`[intents] variant = "permissive"`) runs as it is. The default variant is the same graph with the
layers fine-tuning changed (`intents/model/fine_tuned_layers.safetensors`, float16) put in place of the
original's when the session is made (`SessionOptions.add_initializer`): their weight matrices quantised here
in numpy by the export's own rule (`quantise_8bit`, bit for bit what the quantiser writes), their biases and
layer norms as they are. One graph for both variants, one pass per message, no second model file; the export
names each weight's tensors after the weight (`bert.<weight>_Q8`, `bert.<weight>_scales`) so the fine-tuned
tensors find their place by name. tests/test_model_variants.py checks both variants against direct exports.

The "fp32" precision (the reference's numbers) is not shipped: it is exported from the weights into a cache
folder on first use, so it needs the train extra too.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from intents.encoder import (
    DEFAULT_MAX_LENGTH,
    FINE_TUNED_LAYERS,
    EncoderLoadError,
    _weights_fingerprint,
    check_variant,
    default_model_path,
    import_training_stack,
    starting_model_path,
)

__all__ = [
    "PRECISIONS",
    "SHIPPED_MODEL",
    "SHIPPED_TOKENIZER",
    "OnnxSentenceEncoder",
    "cached_model_path",
    "check_fits",
    "ensure_exported",
    "export_onnx_model",
    "export_shipped_model",
    "fine_tuned_tensors",
    "quantise_8bit",
]

log = logging.getLogger(__name__)

# Per precision, the export recipe; bump one when its export or quantisation changes: it is part of the
# cached file's name and of the encoder's name.
RECIPES = {"int8": "q8b32-3", "fp32": "fp32-1"}
# MatMulNBits quantisation: bits per weight, values per scale, and int8 compute.
WEIGHT_BITS, BLOCK_SIZE, ACCURACY_LEVEL = 8, 32, 4
PRECISIONS = tuple(RECIPES)
OPSET = 17
# Word pieces in one batch (texts x padded length): 16 tweets of 32, or 2 texts of the full 256. The int8
# model's working memory grows by ~100 KB a word piece in a batch (measured: 20 texts of 80 at once took a
# process from 112 to 304 MB), and larger batches were not faster on the 2-core machine (batches of 32 tweets:
# 46-49 msg/s with this cap, 26-38 without).
MAX_BATCH_TOKENS = 512
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# The int8 graph the product runs (the original weights; the default variant puts `FINE_TUNED_LAYERS` in
# place at load), and its tokenizer: in the package, built by `export_shipped_model`.
SHIPPED_DIR = Path(__file__).resolve().parent / "model"
SHIPPED_MODEL = SHIPPED_DIR / f"minilm-l6-{RECIPES['int8']}.onnx"
SHIPPED_TOKENIZER = SHIPPED_DIR / "tokenizer.json"
# The exported graph names a model weight `encoder.layer.3...` as its wrapper's: `bert.encoder.layer.3...`.
GRAPH_PREFIX = "bert."


def _weights_digest(model_path: Path) -> str:
    """sha256 over the weights, config and tokenizer files (12 hex digits)."""
    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        file = model_path / name
        if not file.exists():
            raise EncoderLoadError(f"cannot export the encoder: {file} is missing")
        digest.update(name.encode())
        _hash_file(digest, file)
    return digest.hexdigest()[:12]


def _recipe(precision: str) -> str:
    if precision not in RECIPES:
        raise EncoderLoadError(f"unknown ONNX precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return RECIPES[precision]


def cached_model_path(cache_dir: Path, model_path: Path | None = None, *, precision: str = "fp32") -> Path:
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
    torch, transformers = import_training_stack("exporting the encoder to ONNX")
    AutoModel, AutoTokenizer = transformers.AutoModel, transformers.AutoTokenizer
    transformers_logging = transformers.utils.logging

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
            matrices = {k: v.detach().numpy() for k, v in model.state_dict().items() if v.ndim == 2}
            _quantise(fp32, int8, matrices)
        except Exception as error:  # the exporter and quantiser raise many kinds; all mean "no model"
            raise EncoderLoadError(f"exporting the encoder to ONNX failed: {error}") from error
        os.replace(int8, out)
    return out


def export_shipped_model() -> Path:
    """Rebuild the shipped int8 graph and its tokenizer in `intents/model/` from the packaged original
    weights, and check that the shipped fine-tuned layers fit it (a maintainers' step: needs the train extra).
    Returns the model file's path.

    Raises:
        EncoderLoadError: the weights cannot be loaded, the export fails, or a fine-tuned tensor has no place
            in the graph.
    """
    original = starting_model_path()
    export_onnx_model(SHIPPED_MODEL, original, precision="int8")
    shutil.copyfile(original / "tokenizer.json", SHIPPED_TOKENIZER)
    if FINE_TUNED_LAYERS.is_file():
        check_fits(SHIPPED_MODEL, fine_tuned_tensors(FINE_TUNED_LAYERS))
    return SHIPPED_MODEL


def check_fits(onnx_path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Raise EncoderLoadError unless every tensor in `tensors` replaces one of the graph's of the same shape
    and type (ONNX Runtime ignores a tensor whose name the graph lacks). Needs the train extra (onnx)."""
    import onnx

    graph = {t.name: t for t in onnx.load(str(onnx_path), load_external_data=False).graph.initializer}
    for name, value in tensors.items():
        known = graph.get(name)
        if known is None or tuple(known.dims) != value.shape:
            raise EncoderLoadError(f"the fine-tuned tensor {name} {value.shape} has no place in {onnx_path}")
        if onnx.helper.tensor_dtype_to_np_dtype(known.data_type) != value.dtype:
            raise EncoderLoadError(f"the fine-tuned tensor {name} is {value.dtype}, not the graph's type")


def quantise_8bit(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A linear layer's weight (out x in, float) as MatMulNBits stores it with 8 bits in blocks of 32: codes
    (out, in / 32, 32) uint8 and scales (out, in / 32) float32. The quantiser's rule, reproduced bit for bit
    (in float32): a block's scale is its value of largest magnitude (the smaller one on a tie) over -128, and
    a code is floor(w * (1 / scale) + 128.5), clipped to 0..255."""
    blocks = np.asarray(weight, dtype=np.float32).reshape(weight.shape[0], -1, BLOCK_SIZE)
    low, high = blocks.min(axis=2), blocks.max(axis=2)
    extreme = np.where(np.abs(low) >= np.abs(high), low, high)
    scales = (extreme / np.float32(-128.0)).astype(np.float32)
    inverse = (np.float32(1.0) / np.where(scales == 0, np.float32(1.0), scales)).astype(np.float32)
    inverse = np.where(scales == 0, np.float32(0.0), inverse)
    codes = np.floor((blocks * inverse[..., None]).astype(np.float32) + np.float32(128.5))
    return np.clip(codes, 0, 255).astype(np.uint8), scales


def fine_tuned_tensors(path: Path) -> dict[str, np.ndarray]:
    """The shipped graph's tensors that the fine-tuned layers in the safetensors file `path` replace, by name:
    each weight matrix quantised (`quantise_8bit`), the others (biases, layer norms) as float32.

    Raises:
        EncoderLoadError: the file is not a safetensors file of float tensors.
    """
    tensors = {}
    for name, value in _read_safetensors(path).items():
        if value.ndim == 2:
            codes, scales = quantise_8bit(value)
            tensors[f"{GRAPH_PREFIX}{name}_Q{WEIGHT_BITS}"] = codes
            tensors[f"{GRAPH_PREFIX}{name}_scales"] = scales
        else:
            tensors[f"{GRAPH_PREFIX}{name}"] = value.astype(np.float32)
    return tensors


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """A safetensors file's tensors as numpy arrays (the `safetensors` package's numpy reader: no torch)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise EncoderLoadError(f"cannot read the fine-tuned layers {path}: {error}") from error


def ensure_exported(cache_dir: Path, model_path: Path | None = None, *, precision: str = "fp32") -> Path:
    """The exported model's path in `cache_dir`, exporting it first if it is not there yet."""
    onnx_path = cached_model_path(cache_dir, model_path, precision=precision)
    if not onnx_path.exists():
        log.info("exporting the sentence encoder to %s (once per installation)", onnx_path)
        export_onnx_model(onnx_path, model_path, precision=precision)
    return onnx_path


def _quantise(fp32: Path, out: Path, matrices: dict[str, np.ndarray]) -> None:
    """Write `fp32`'s model to `out` with every constant weight matrix in 8-bit blocks (see the module), its
    tensors named after the weight in `matrices` (the model's 2-D weights by name) they hold."""
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
    model = onnx.load(str(fp32))
    _name_weights(model, matrices)
    quantizer = MatMulNBitsQuantizer(
        model,
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
    model = quantizer.model.model
    _quantise_word_vectors(model)
    onnx.save_model(model, str(out))


def _name_weights(model, matrices: dict[str, np.ndarray]) -> None:
    """Rename the exporter's anonymous MatMul weights (`onnx::MatMul_940`, a linear weight transposed) after
    the weight they hold (`bert.encoder.layer.3.attention.self.query.weight`), in the graph's nodes too."""
    from onnx import numpy_helper

    by_shape: dict[tuple, list[str]] = {}
    for name, value in matrices.items():
        by_shape.setdefault(value.T.shape, []).append(name)
    renamed = {}
    for tensor in model.graph.initializer:
        if not tensor.name.startswith("onnx::MatMul"):
            continue
        value = numpy_helper.to_array(tensor)
        match = [n for n in by_shape.get(value.shape, []) if np.array_equal(matrices[n].T, value)]
        if len(match) == 1:
            renamed[tensor.name] = GRAPH_PREFIX + match[0]
            tensor.name = renamed[tensor.name]
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            if name in renamed:
                node.input[position] = renamed[name]


def _quantise_word_vectors(model) -> None:
    """Store the word-vector table (30,522 x 384: 47 MB of the 60 MB in fp32) as int8 with one scale per row.

    The quantiser's Gather support is 4-bit only, so this rewrites the lookup by hand: Gather(int8 table, ids)
    -> Cast to float -> Mul by Gather(row scales, ids). The vectors a row decodes to are within half a step
    (max |w| / 254) of the originals; what that costs the heads is measured with the rest of the export.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    initialisers = {tensor.name: tensor for tensor in graph.initializer}
    lookup = next(
        node
        for node in graph.node
        if node.op_type == "Gather" and node.input[0] == "bert.embeddings.word_embeddings.weight"
    )
    table = numpy_helper.to_array(initialisers[lookup.input[0]]).astype(np.float32)
    scales = np.maximum(np.abs(table).max(axis=1), 1e-12) / 127.0
    quantised = np.clip(np.rint(table / scales[:, None]), -127, 127).astype(np.int8)
    graph.initializer.remove(initialisers[lookup.input[0]])
    graph.initializer.extend(
        [
            numpy_helper.from_array(quantised, "word_vectors_int8"),
            numpy_helper.from_array(scales.astype(np.float32).reshape(-1, 1), "word_vector_scales"),
        ]
    )
    ids, out = lookup.input[1], lookup.output[0]
    nodes = [
        helper.make_node(
            "Gather", ["word_vectors_int8", ids], ["word_vectors_q"], name="word_vectors/Gather"
        ),
        helper.make_node("Cast", ["word_vectors_q"], ["word_vectors_f"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Gather", ["word_vector_scales", ids], ["word_vector_row_scales"]),
        helper.make_node("Mul", ["word_vectors_f", "word_vector_row_scales"], [out], name="word_vectors/Mul"),
    ]
    position = list(graph.node).index(lookup)
    graph.node.remove(lookup)
    for offset, node in enumerate(nodes):
        graph.node.insert(position + offset, node)


class OnnxSentenceEncoder:
    """Turns texts into unit-length 384-dimensional vectors with ONNX Runtime (8-bit or fp32 weights).

    A drop-in for `SentenceEncoder`: same `name`/`dim`/`encode`, vectors within cosine ~0.999 of it. Its
    `name` differs from the torch encoder's, so caches keyed on it (the knowledge index) are rebuilt.
    """

    def __init__(self, session, tokenizer, *, name: str, dim: int) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self._overrides: list = []
        self.name = name
        self.dim = dim

    @classmethod
    def load(
        cls,
        cache_dir: Path | None = None,
        *,
        model_path: Path | None = None,
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        precision: str = "int8",
        variant: str = "default",
    ) -> OnnxSentenceEncoder:
        """Load the shipped int8 encoder, or the fp32 export from `cache_dir` (exporting it first if needed).

        Args:
            cache_dir: folder of exported models (e.g. `<data dir>/cache/onnx`); only "fp32" uses it.
            model_path: the original weights, for "fp32" (the packaged all-MiniLM-L6-v2 by default).
            threads: ONNX Runtime intra-op threads; None lets it use one per core.
            max_length: word pieces kept per text; longer texts are truncated.
            precision: "int8" (the shipped model) or "fp32" (same numbers as the torch reference).
            variant: for "int8", "default" (the shipped graph with `FINE_TUNED_LAYERS` in place) or
                "permissive" (the shipped graph as it is: the original weights); "fp32" exports the weights
                in `model_path`.

        Raises:
            EncoderLoadError: a model file is missing or unreadable, or the fp32 export fails.
        """
        _recipe(precision)
        check_variant(variant)
        overrides = None
        if precision == "int8":
            onnx_path, tokenizer_path = SHIPPED_MODEL, SHIPPED_TOKENIZER
            for path in (onnx_path, tokenizer_path):
                if not path.is_file():
                    raise EncoderLoadError(
                        f"the shipped encoder file {path} is missing; rebuild it with `socialbot intents "
                        "export-onnx` (needs pip install 'socialbot[train]')"
                    )
            name = f"all-MiniLM-L6-v2:onnx-{_recipe(precision)}:{_file_digest(onnx_path)[:12]}"
            if variant == "default":
                # Without them the original's vectors would reach heads not trained on them.
                if not FINE_TUNED_LAYERS.is_file():
                    raise EncoderLoadError(
                        f"the default variant's fine-tuned layers are missing: {FINE_TUNED_LAYERS} "
                        '(reinstall socialbot, or set [intents] variant = "permissive")'
                    )
                overrides = fine_tuned_tensors(FINE_TUNED_LAYERS)
                name += f":fine-tuned-{_file_digest(FINE_TUNED_LAYERS)[:12]}"
        else:
            if cache_dir is None:
                raise EncoderLoadError("the onnx-fp32 encoder needs a cache folder for the exported model")
            model_path = model_path or default_model_path()
            onnx_path = ensure_exported(cache_dir, model_path, precision=precision)
            tokenizer_path = model_path / "tokenizer.json"
            name = f"{_weights_fingerprint(model_path)}:onnx-{_recipe(precision)}"
        return cls.from_files(
            onnx_path, tokenizer_path, name=name, threads=threads, max_length=max_length, overrides=overrides
        )

    @classmethod
    def from_files(
        cls,
        onnx_path: Path,
        tokenizer_path: Path,
        *,
        name: str,
        threads: int | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        overrides: dict[str, np.ndarray] | None = None,
    ) -> OnnxSentenceEncoder:
        """An encoder over one exported model file and its tokenizer file (what `load` finds for a precision),
        with the tensors in `overrides` in place of the graph's of the same names.

        Raises:
            EncoderLoadError: a file is unreadable or not a model.
        """
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # No memory arena: ONNX Runtime's arena keeps the largest batch's buffers for the life of the process
        # (measured: 32 long e-mails left a worker at 700 MB resident, 330 MB without the arena), and a
        # worker's batches vary in size; single-message latency is the same either way.
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
        # ONNX Runtime reads the overriding tensors' memory, without copying it, while the session lives.
        kept = []
        try:
            for tensor_name, value in (overrides or {}).items():
                kept.append(onnxruntime.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value)))
                options.add_initializer(tensor_name, kept[-1])
            session = onnxruntime.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as error:  # onnxruntime raises its own untyped errors for a corrupt file
            raise EncoderLoadError(f"cannot load the ONNX encoder {onnx_path}: {error}") from error
        tokenizer.enable_truncation(max_length=max_length)
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        dim = int(session.get_outputs()[0].shape[-1])
        encoder = cls(session, tokenizer, name=name, dim=dim)
        encoder._overrides = kept
        return encoder

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Return an array of shape (len(texts), dim), float32, one unit-length row per text.

        Texts are run in batches of at most `batch_size` texts and `MAX_BATCH_TOKENS` word pieces (padded):
        attention needs memory in the square of a text's length, so 32 long e-mails or articles at once would
        take hundreds of megabytes for a moment (and a process keeps the high-water mark)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        rows: list[np.ndarray] = []
        with self._lock:
            # Padded to the longest text; each batch is cut to its own longest (padding is on the right).
            encodings = self._tokenizer.encode_batch([text if text else " " for text in texts])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            attention = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            types = np.array([e.type_ids for e in encodings], dtype=np.int64)
            lengths = attention.sum(axis=1)
            order = np.argsort(lengths, kind="stable")  # texts of similar length together: less padding
            for batch in _batches(lengths[order], batch_size):
                chosen, width = order[batch], int(lengths[order[batch.stop - 1]])
                mask = attention[chosen, :width]
                feed = {
                    "input_ids": ids[chosen, :width],
                    "attention_mask": mask,
                    "token_type_ids": types[chosen, :width],
                }
                output = self._session.run(None, feed)[0]
                weights = mask[..., None].astype(np.float32)
                pooled = (output * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
                rows.append((pooled / norms).astype(np.float32))
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        vectors[order] = np.concatenate(rows, axis=0)
        return vectors


def _batches(sorted_lengths: np.ndarray, batch_size: int) -> list[slice]:
    """Consecutive slices of texts sorted by length (shortest first), each at most `batch_size` texts and
    `MAX_BATCH_TOKENS` padded word pieces (one text alone may exceed it)."""
    batches, start = [], 0
    for end in range(1, len(sorted_lengths) + 1):
        too_many = end - start > batch_size or (end - start) * int(sorted_lengths[end - 1]) > MAX_BATCH_TOKENS
        if too_many and end - 1 > start:
            batches.append(slice(start, end - 1))
            start = end - 1
    batches.append(slice(start, len(sorted_lengths)))
    return batches


def _hash_file(digest, path: Path) -> None:
    """Feed a file's bytes to `digest` (a hashlib object), a megabyte at a time."""
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def _file_digest(path: Path) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    _hash_file(digest, path)
    return digest.hexdigest()
