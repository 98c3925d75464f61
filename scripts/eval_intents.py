"""Print the understanding figures of issue 17 (and 25) for a model folder, on held-out rows only.

    python scripts/eval_intents.py [--model intents/model/default] [--only complaint,recommendation,...]
                                   [--json] [--threads N]

Uses the shipped runtime (ONNX Runtime + tokenizers + numpy). Which rows are held out is decided in
intents/splits.py; vectors are cached by the model's name, so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from intents.encoder import SentenceEncoder, model_dir  # noqa: E402
from intents.quality import (  # noqa: E402
    abusive_figures,
    complaint_figures,
    fernhill_figures,
    intent_mix_figures,
    recommendation_figures,
    sentiment_figures,
    twcs_figures,
)
from intents.understand import Understander  # noqa: E402

GROUPS = {
    "complaint": complaint_figures,
    "recommendation": recommendation_figures,
    "intent_mix": intent_mix_figures,
    "abusive": abusive_figures,
    "twcs": twcs_figures,
    "fernhill": fernhill_figures,
    "sentiment": sentiment_figures,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=model_dir("default"), help="a model folder")
    parser.add_argument("--only", default=",".join(GROUPS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    unknown = set(args.only.split(",")) - set(GROUPS)
    if unknown:
        parser.error(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    encoder = SentenceEncoder.load(args.model, threads=args.threads)
    understander = Understander.load(args.model)
    print(f"model {encoder.name} ({args.model})", file=sys.stderr)
    figures = []
    for name in args.only.split(","):
        started = time.perf_counter()
        for figure in GROUPS[name](encoder, understander):
            figures.append(figure)
            if not args.json:
                verdict = (
                    "" if figure.bar is None else (" PASS" if figure.passed else f" MISS (bar {figure.bar})")
                )
                print(f"{figure.name:<40} {figure.value:.3f}{verdict}  — {figure.detail}", flush=True)
        print(f"  ({name}: {time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"model": encoder.name, "figures": [f.to_dict() for f in figures]}, indent=2))


if __name__ == "__main__":
    main()
