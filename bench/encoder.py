"""Throughput and latency of the encoder alone and of encoder + heads, single messages and batches of 32.

    python bench/encoder.py [--seconds 20] [--threads N] [--heads DIR]

Texts are the project's hand-written brand posts (short, informal), cycled. The heads must add < 10 %.
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="per measurement")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--heads", type=Path, default=None)
    args = parser.parse_args()
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
