"""How closely the shipped int8 ONNX encoder follows the torch reference, on every dev row the parity test
(tests/test_encoder_onnx.py) samples from: cosine of the vectors, and how often the heads decide the same.

    python scripts/measure_onnx_agreement.py [--threads N]

Needs the train extra (torch) for the reference. Rows: TweetEval offensive val, SemEval A_trial_test,
TweetEval sentiment val, twitter_complaints (none of them trained the heads' thresholds).
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

from intents import public_data  # noqa: E402
from intents.encoder import SentenceEncoder, load_encoder  # noqa: E402
from intents.understand import Understander  # noqa: E402


def dev_rows() -> list[str]:
    """The distinct texts of the four dev sets, in a fixed order."""
    sources = [
        (public_data.offensive(), "val"),
        (public_data.suggestions(), "A_trial_test"),
        (public_data.tweeteval_sentiment(), "val"),
        (public_data.complaints(), None),
    ]
    texts: list[str] = []
    for labelled, split in sources:
        rows = {t for t, g in zip(labelled.texts, labelled.groups, strict=True) if split in (None, g)}
        texts += sorted(rows)
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    texts = dev_rows()
    understander = Understander.load()
    started = time.perf_counter()
    reference = SentenceEncoder.load(threads=args.threads).encode(texts)
    shipped = load_encoder("onnx", threads=args.threads).encode(texts)
    cosine = (reference * shipped).sum(axis=1)
    torch_says = understander.understand_batch(texts, reference)
    onnx_says = understander.understand_batch(texts, shipped)
    print(f"{len(texts)} dev rows; cosine to torch mean {cosine.mean():.4f}, worst {cosine.min():.4f}")
    for field in ("intent", "sentiment", "abusive"):
        same = np.mean(
            [getattr(a, field) == getattr(b, field) for a, b in zip(torch_says, onnx_says, strict=True)]
        )
        print(f"same {field}: {same:.1%}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
