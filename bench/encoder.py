"""Throughput and latency of the encoder alone and of encoder + heads, single messages and batches of 32.

    python bench/encoder.py [--seconds 20] [--threads N] [--heads DIR]
    python bench/encoder.py --onnx A.onnx B.onnx [--rounds 3]

Texts are the project's hand-written brand posts (short, informal), cycled. The heads must add < 10 %.
With --onnx: int8 ONNX encoders side by side in one run (e.g. the shipped model and the one it replaced,
`git show REV:intents/model/FILE > old.onnx`), alternating in rounds so a change in the machine's load hits
both: single-message p50 and batch-of-32 throughput, the median over the rounds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intents.corpus import own_examples  # noqa: E402
from intents.encoder import SentenceEncoder  # noqa: E402
from intents.understand import Understander  # noqa: E402


def measure(run, batches: list[list[str]], seconds: float) -> tuple[float, float, float]:
    """Run batches (cycling) for about `seconds`; return (messages/s, p50 ms, p99 ms) per call."""
    for batch in batches[:3]:
        run(batch)
    timings, messages, started, i = [], 0, time.perf_counter(), 0
    while time.perf_counter() - started < seconds or len(timings) < 20:
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        run(batch)
        timings.append(time.perf_counter() - t0)
        messages += len(batch)
        i += 1
    total = sum(timings)
    return messages / total, float(np.percentile(timings, 50) * 1e3), float(np.percentile(timings, 99) * 1e3)


def compare_onnx(files: list[Path], seconds: float, rounds: int, threads: int | None) -> None:
    """Single-message p50 and batch-32 throughput of each ONNX file, alternating in `rounds`."""
    from intents.onnx_encoder import SHIPPED_TOKENIZER, OnnxSentenceEncoder

    for file in files:
        if not file.is_file():
            raise SystemExit(f"error: {file}: no such file")
    encoders = [
        OnnxSentenceEncoder.from_files(file, SHIPPED_TOKENIZER, name=file.name, threads=threads)
        for file in files
    ]
    texts = [row["text"] for row in own_examples()]
    singles = [[text] for text in texts]
    batches = [texts[i : i + 32] for i in range(0, len(texts) - 31, 32)]
    results: dict[str, list[tuple[float, float]]] = {str(file): [] for file in files}
    print(f"load at start {os.getloadavg()[0]:.2f}; {rounds} rounds of {seconds:.0f} s per case")
    for _ in range(rounds):
        for file, encoder in zip(files, encoders, strict=True):
            single = measure(lambda batch, e=encoder: e.encode(batch), singles, seconds)
            batch = measure(lambda batch, e=encoder: e.encode(batch), batches, seconds)
            results[str(file)].append((single[1], batch[0]))
    print(f"{'model':<40}{'single p50 ms':>15}{'batch-32 msg/s':>16}")
    for name, rows in results.items():
        p50 = float(np.median([row[0] for row in rows]))
        rate = float(np.median([row[1] for row in rows]))
        print(f"{name:<40}{p50:>15.2f}{rate:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--heads", type=Path, default=None)
    parser.add_argument("--onnx", type=Path, nargs="+", default=None, help="compare these ONNX files")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be at least 1 and --seconds above 0")
    if args.onnx:
        compare_onnx(args.onnx, args.seconds, args.rounds, args.threads)
        return
    encoder = SentenceEncoder.load(threads=args.threads)
    understander = Understander.load(args.heads)
    texts = [row["text"] for row in own_examples()]

    def encoder_only(batch: list[str]) -> None:
        encoder.encode(batch)

    def encoder_and_heads(batch: list[str]) -> None:
        understander.understand_batch(batch, encoder.encode(batch))

    print(f"encoder {encoder.name}, torch threads {args.threads or 'default'}, {len(texts)} distinct texts")
    print(f"{'case':<28}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'heads add':>10}")
    for size in (1, 32):
        batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
        base = measure(encoder_only, batches, args.seconds)
        full = measure(encoder_and_heads, batches, args.seconds)
        # Overhead from the heads alone, timed on precomputed embeddings: steadier than a difference of
        # two noisy end-to-end runs on a shared machine.
        vectors = [encoder.encode(b) for b in batches]
        pairs = list(zip(batches, vectors, strict=True))
        heads_only = measure(
            lambda pair: understander.understand_batch(pair[0], pair[1]),
            [[p] for p in pairs],
            args.seconds / 3,
        )
        heads_ms_per_call = 1e3 / heads_only[0]
        encoder_ms_per_call = 1e3 * size / base[0]
        overhead = heads_ms_per_call / encoder_ms_per_call * 100
        print(
            f"{'encoder alone, batch ' + str(size):<28}"
            f"{base[0]:>10.1f}{base[1]:>10.2f}{base[2]:>10.2f}{'':>10}"
        )
        print(
            f"{'encoder + heads, batch ' + str(size):<28}{full[0]:>10.1f}{full[1]:>10.2f}{full[2]:>10.2f}"
            f"{overhead:>9.1f}%"
        )


if __name__ == "__main__":
    main()
