"""Print every quality figure of issue 4 on the dev splits of ../shared/datasets.

    python scripts/eval_intents.py [--heads DIR] [--only complaint,recommendation,abusive,sentiment] [--json]
                                   [--backend torch|onnx|onnx-fp32] [--variant default|permissive]

Cross-validated figures retrain heads per fold (a few minutes on 2 cores with cached embeddings).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intents.encoder import BACKENDS, VARIANTS, cache_root, load_encoder  # noqa: E402
from intents.quality import (  # noqa: E402
    abusive_figures,
    complaint_figures,
    recommendation_figures,
    sentiment_figures,
)
from intents.understand import Understander  # noqa: E402

GROUPS = {
    "complaint": complaint_figures,
    "recommendation": recommendation_figures,
    "abusive": abusive_figures,
    "sentiment": sentiment_figures,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heads", type=Path, default=None)
    parser.add_argument("--only", default=",".join(GROUPS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--backend", choices=BACKENDS, default="onnx", help="encoder runtime (default: the shipped one)"
    )
    parser.add_argument(
        "--variant", choices=VARIANTS, default="default", help="model variant (encoder + heads)"
    )
    args = parser.parse_args()
    encoder = load_encoder(args.backend, variant=args.variant, cache_dir=cache_root() / "onnx")
    understander = Understander.load(args.heads, variant=args.variant)
    figures = []
    for name in args.only.split(","):
        started = time.perf_counter()
        function = GROUPS[name]
        kwargs = (
            {
                "log": lambda m: print(m, file=sys.stderr, flush=True),
                "permissive_only": args.variant == "permissive",
            }
            if name in ("complaint", "sentiment")
            else {}
        )
        for figure in function(encoder, understander, **kwargs):
            figures.append(figure)
            if not args.json:
                verdict = (
                    "" if figure.bar is None else (" PASS" if figure.passed else f" MISS (bar {figure.bar})")
                )
                print(f"{figure.name:<44} {figure.value:.3f}{verdict}  — {figure.detail}", flush=True)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps([f.to_dict() for f in figures], indent=2))


if __name__ == "__main__":
    main()
