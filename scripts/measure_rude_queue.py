"""How many rude-but-legitimate customer messages (Bitext, flag `W`) would land in the moderation queue with
the shipped heads on the real encoder: policy routes a message the abuse head flags to `moderate`, and the
pipeline queues every `moderate` decision (bot/moderation/queue.py).

Run: HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 python scripts/measure_rude_queue.py
Prints the count on the held-out half of Bitext 20k's W rows (never trained on; see intents/corpus.py) and on
every W row of both releases (most of which the abuse head was trained on as "not abusive").
"""

from __future__ import annotations

from intents import Understander, public_data
from intents.corpus import rude_half
from intents.encoder import Encoder, load_encoder


def _queued(understander: Understander, encoder: Encoder, texts: list[str]) -> list[str]:
    flagged: list[str] = []
    for start in range(0, len(texts), 256):
        batch = texts[start : start + 256]
        results = understander.understand_batch(batch, encoder.encode(batch))
        flagged += [text for text, result in zip(batch, results, strict=True) if result.abusive]
    return flagged


def main() -> None:
    encoder, understander = load_encoder(), Understander.load()
    seen = set(public_data.bitext_abuse().texts)
    rude_20k = public_data.bitext_abuse("bitext_cs_20k.csv").subset(lambda t, lab, g: g == "W")
    held_out = [t for t in rude_20k.texts if t not in seen and rude_half(t) == 1]
    every = sorted(
        set(public_data.bitext_abuse().subset(lambda t, lab, g: g == "W").texts) | set(rude_20k.texts)
    )
    for name, texts in (("held-out half of 20k W rows", held_out), ("all W rows, 8k + 20k", every)):
        queued = _queued(understander, encoder, texts)
        print(f"{name}: {len(queued)} of {len(texts)} would be queued ({len(queued) / len(texts):.1%})")
        for text in queued[:5]:
            print(f"    e.g. {text!r}")


if __name__ == "__main__":
    main()
