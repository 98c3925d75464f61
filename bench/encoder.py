"""Throughput and latency of the encoder alone and of encoder + heads, single messages and batches of 32.

    python bench/encoder.py [--model DIR ...] [--baseline-onnx FILE] [--seconds 10] [--rounds 3] [--threads N]

Texts are the project's hand-written brand posts (short, informal), cycled. Every model (default: the shipped
default variant) is measured in the same run, in interleaved rounds (medians are printed), so load from
other processes hits them alike; the 1-minute load average is printed before and after.

`--baseline-onnx` adds the encoder as it ran before issue 17: an ONNX file exported by the earlier recipe
(`torch.onnx.export` of all-MiniLM-L6-v2 with inputs input_ids, attention_mask, token_type_ids and output
last_hidden_state, 8-bit MatMulNBits weights), pooled in numpy, 256 word pieces; it uses the shipped
tokenizer. The heads must add < 10 %.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intents.corpus import own_examples  # noqa: E402
from intents.encoder import MODEL_ROOT, SentenceEncoder, model_dir  # noqa: E402
from intents.understand import Understander  # noqa: E402


class BaselineEncoder:
    """The pre-issue-17 runtime: last_hidden_state from ONNX Runtime, mean pooling and L2 in numpy."""

    def __init__(self, onnx_file: Path, threads: int | None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(onnx_file), options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer = Tokenizer.from_file(str(MODEL_ROOT / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=256)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self.name = f"baseline {onnx_file.name}"

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
        }
        output = self.session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (output * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


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
    return (
        messages / sum(timings),
        float(np.percentile(timings, 50) * 1e3),
        float(np.percentile(timings, 99) * 1e3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, action="append", help="model folder (repeatable)")
    parser.add_argument("--baseline-onnx", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    texts = [row["text"] for row in own_examples()]
    understander = Understander.load()
    encoders = [SentenceEncoder.load(folder, threads=args.threads) for folder in args.model or [model_dir()]]
    if args.baseline_onnx:
        encoders.insert(0, BaselineEncoder(args.baseline_onnx, args.threads))
    print(
        f"load average before: {os.getloadavg()[0]:.1f}; threads {args.threads or 'default'}; "
        f"{len(texts)} texts"
    )
    cases = []
    for encoder in encoders:
        for size in (1, 32):
            batches = [texts[i : i + size] for i in range(0, len(texts) - size + 1, size)]
            cases.append((f"{encoder.name}, batch {size}", lambda b, e=encoder: e.encode(b), batches))
        if isinstance(encoder, SentenceEncoder):
            batches = [texts[i : i + 1] for i in range(len(texts))]
            cases.append(
                (
                    f"{encoder.name} + heads, batch 1",
                    lambda b, e=encoder: understander.understand_batch(b, e.encode(b)),
                    batches,
                )
            )
    results: dict[str, list[tuple[float, float, float]]] = {name: [] for name, _, _ in cases}
    for _ in range(args.rounds):
        for name, run, batches in cases:
            results[name].append(measure(run, batches, args.seconds))
    print(f"{'case':<62}{'msg/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, rows in results.items():
        rate, p50, p99 = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"{name:<62}{rate:>10.1f}{p50:>10.2f}{p99:>10.2f}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
