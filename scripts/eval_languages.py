"""How often does a non-English message get a wrong automatic answer, without and with the language step
(bot/pipeline/steps/language.py)?

Reads tests/data/multilingual.csv (text, language, expected: "answer:<article id>", "escalate", "thank" or
"idea"), runs each message through the shipped models and the default policy, and counts:
- language detection accuracy ("und" counts as right for scripts outside the detected set: ka, am);
- wrong automatic answers: the bot replied on its own (answer, thank, idea, small talk) and the reply is not
  the expected one (another article, a thank-you to a complaint, small talk to a question...);
- escalations: messages handed to a person (safe, but not automated).
"Before" is the policy alone with a language-blind knowledge base; "after" adds `apply_language`.

Usage: HF_HUB_OFFLINE=1 python scripts/eval_languages.py [--verbose]
"""

from __future__ import annotations

import csv
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from bot.pipeline.steps.language import apply_language
from bot.policy.routing import Action
from bot.runtime.analysis import Analysis, load_models
from bot.runtime.languages import detect_language
from bot.runtime.settings import load_settings
from bot.worker.build import build_policy

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "multilingual.csv"
# The project's own English brand-directed posts: none should be read as another language (a wrong switch
# escalates a message the bot could have answered).
ENGLISH = Path(__file__).resolve().parent.parent / "intents" / "data" / "brand_posts.csv"
AUTOMATIC = {Action.ANSWER, Action.THANK, Action.RECORD_IDEA, Action.SMALL_TALK}
OUTSIDE_DETECTED_SET = {"ka", "am"}


def _right(decision, expected: str) -> bool:
    if expected.startswith("answer:"):
        return decision.action == Action.ANSWER and decision.article.id == expected.split(":", 1)[1]
    return {"thank": Action.THANK, "idea": Action.RECORD_IDEA}.get(expected) == decision.action


def main(verbose: bool = False) -> None:
    settings = load_settings()
    models = load_models(settings)
    policy = build_policy(settings)
    runtime = SimpleNamespace(settings=settings, policy=policy, models=models)
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))

    started = time.perf_counter()
    detect_language("warm-up")
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    detected = {row["text"]: detect_language(row["text"]) for row in rows}
    detect_seconds = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    correct = sum(
        detected[row["text"]] == row["language"]
        or (row["language"] in OUTSIDE_DETECTED_SET and detected[row["text"]] == "und")
        for row in rows
    )

    counts = {"before": [0, 0, 0], "after": [0, 0, 0]}  # wrong automatic, right automatic, escalated
    for row in rows:
        text, expected = row["text"], row["expected"]
        embedding = models.encoder.encode([text])[0]
        understanding = models.understander.understand(text, embedding)
        blind = models.knowledge.answer(text, embedding)
        before = policy.decide(understanding, blind, public=False, text=text)
        language = detected[text]
        aware = models.knowledge.answer(text, embedding, language=language)
        after = apply_language(
            runtime,
            policy.decide(understanding, aware, public=False, text=text),
            Analysis(understanding, aware, language),
            public=False,
        )
        for name, decision in (("before", before), ("after", after)):
            automatic = decision.action in AUTOMATIC
            slot = 2 if not automatic else (1 if _right(decision, expected) else 0)
            counts[name][slot] += 1
        if verbose:
            print(
                f"{row['language']} {language!s:4} {expected:28} before={before.action:11}"
                f" after={after.action:11} {aware.score:.2f}"
                f" {text[:50]}"
            )
    n = len(rows)
    print(f"messages: {n} non-English ({len({r['language'] for r in rows})} languages)")
    print(
        f"language detection: {correct}/{n} right ({correct / n:.0%}); "
        f"{detect_seconds * 1000 / n:.2f} ms per message including first-use model loads; "
        f"max RSS grew {(rss_after - rss_before) / 1024:.0f} MB"
    )
    english = [row["text"] for row in csv.DictReader(ENGLISH.open(encoding="utf-8"))]
    misread = sum(
        detect_language(text, default=settings.brand.default_language) not in (None, "en") for text in english
    )
    print(
        f"English brand posts read as another language: {misread}/{len(english)} "
        f"({misread / len(english):.1%})"
    )
    for name, (wrong, right, escalated) in counts.items():
        print(
            f"{name:6}: wrong automatic answers {wrong}/{n} ({wrong / n:.0%}), right automatic {right}, "
            f"escalated {escalated}"
        )


if __name__ == "__main__":
    main(verbose="--verbose" in sys.argv)
