"""`socialbot intents classify` against the raw torch fp32 encoder, on the same rows, in one run.

    python bench/classify.py [--rows 3000] [--threads N]

Rows: customers' tweets from ../shared/datasets/twcs_sample (cycled to `--rows`), else the sample brand posts.
It times, in this order and each once after a warm-up call:
  - the raw torch fp32 encoder (`load_encoder("torch")`, the train extra) over every row in batches of 32,
    vectors only;
  - the whole `socialbot intents classify --input rows.csv --output out.jsonl` as a user runs it (its own
    process: start-up, loading the shipped model and heads, reading the CSV, encoding, the heads, writing JSON
    Lines), wall time.
It prints both times and their ratio (issue 19's target: classify <= 0.5x the raw torch encoder), with the
1-minute load average at the start and at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline import load_messages  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=None, help="encoder threads (default: one per core)")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows: expected a positive number")
    texts, source = load_messages(args.rows)
    load_before = os.getloadavg()[0]
    print(f"{len(texts)} rows from {source}; {os.cpu_count()} CPUs; load average {load_before:.2f} at start")

    from intents.encoder import load_encoder

    torch_encoder = load_encoder("torch", threads=args.threads)
    torch_encoder.encode(texts[:32])
    started = time.perf_counter()
    for start in range(0, len(texts), 32):
        torch_encoder.encode(texts[start : start + 32])
    torch_seconds = time.perf_counter() - started
    del torch_encoder

    with tempfile.TemporaryDirectory(prefix="socialbot-bench-classify-") as folder:
        rows = Path(folder) / "rows.csv"
        with rows.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text"])
            writer.writerows([text] for text in texts)
        command = [sys.executable, "-m", "bot", "intents", "classify", "--input", str(rows)]
        command += ["--output", str(Path(folder) / "out.jsonl")]
        if args.threads:
            command += ["--threads", str(args.threads)]
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        classify_seconds = time.perf_counter() - started
        written = sum(1 for _ in (Path(folder) / "out.jsonl").open(encoding="utf-8"))
    assert written == len(texts), f"classify wrote {written} of {len(texts)} rows"

    rate = len(texts) / torch_seconds
    print(f"raw torch fp32 encoder, batches of 32: {torch_seconds:.1f} s ({rate:.0f} rows/s)")
    print(
        f"socialbot intents classify (whole command): {classify_seconds:.1f} s "
        f"({len(texts) / classify_seconds:.0f} rows/s)"
    )
    print(f"ratio classify / raw torch: {classify_seconds / torch_seconds:.2f}x")
    print(f"load average (1 min): {load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
    main()
