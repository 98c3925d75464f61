"""The customer's language: detected offline for every message, and what the bot does with it.

Detection uses lingua (`lingua-language-detector`, its models ship in the wheel: no network), restricted to
the brand's languages plus the most common ones, in lingua's low-accuracy (trigram) mode, which keeps it
fast and small; a language's model loads on first use. Short or ambiguous texts ("ok", "👍") get no language
(treated as the brand's default); text in a script none of those languages uses gets "und" (undetermined).

The intent heads are English-only, so `apply_language` makes the policy's decision safer for other
languages: an unsure intent escalates instead of guessing, replies use the language's templates
(`[policy] templates_by_language`) and the knowledge base's translation, and a language the brand doesn't
answer in either gets the default language with a note saying so, or a person (`[languages] on_unsupported`).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

from bot.policy import Action, Decision

if TYPE_CHECKING:
    from bot.runtime import Analysis, Runtime

__all__ = [
    "COMMON_LANGUAGES",
    "UNDETERMINED",
    "apply_language",
    "brand_languages",
    "detect_language",
]

#: Detected besides the brand's own languages: the most used languages on social media.
COMMON_LANGUAGES: tuple[str, ...] = (
    "en", "fr", "de", "es", "it", "nl", "pt", "pl", "sv",
    "da", "tr", "ru", "uk", "ar", "zh", "ja", "ko", "hi",
)  # fmt: skip

UNDETERMINED = "und"

# Below this many letters a guess is noise ("ok", "thx"); below this confidence it is a coin toss.
_MIN_LETTERS = 4
_MIN_CONFIDENCE = 0.5
# Switching away from the brand's default language needs more: trigram models misread short texts
# ("Do you sell tent pegs?" scores German 0.91, English 0.06), and a wrong switch escalates a question the
# bot could answer. Short texts must be near-certain; longer ones clearly ahead.
_SHORT_TEXT_LETTERS = 40
_MIN_CONFIDENCE_OTHER_SHORT = 0.95
_MIN_CONFIDENCE_OTHER = 0.7
_NOISE = re.compile(r"https?://\S+|[@#]\w+|\d+")
_lock = threading.Lock()
# The encoder reads English best: an article matched by a foreign question must match clearly.
FOREIGN_MIN_SCORE = 0.6


@functools.lru_cache(maxsize=4)
def _detector(languages: frozenset[str]) -> LanguageDetector:
    known = []
    for code in sorted(languages):
        try:
            known.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
        except (AttributeError, ValueError):
            continue  # a code lingua doesn't know: nothing to detect it with
    # Low-accuracy mode uses trigram models only: measured on tests/data/multilingual.csv, 28 MB and 1.4 s
    # for the first pass over 18 languages instead of 350 MB and 20 s, as accurate on sentence-long texts.
    return LanguageDetectorBuilder.from_languages(*known).with_low_accuracy_mode().build()


def detect_language(text: str, extra: Iterable[str] = (), *, default: str = "en") -> str | None:
    """The ISO 639-1 code of `text`'s language, None when too short or unsure, "und" for an unknown script.

    Args:
        extra: languages to detect besides `COMMON_LANGUAGES` (the brand's).
        default: the brand's default language; another language is reported only when clearly ahead.
    """
    cleaned = _NOISE.sub(" ", text)
    letters = [c for c in cleaned if c.isalpha()]
    if len(letters) < _MIN_LETTERS and not any(ord(c) > 0x2E80 for c in letters):
        return None
    detector = _detector(frozenset(COMMON_LANGUAGES) | frozenset(extra))
    with _lock:  # lingua's lazy model loading is not documented as thread-safe
        values = detector.compute_language_confidence_values(cleaned)
    if values and values[0].value >= _MIN_CONFIDENCE:
        best = values[0].language.iso_code_639_1.name.lower()
        if best == default:
            return best
        needed = _MIN_CONFIDENCE_OTHER_SHORT if len(letters) < _SHORT_TEXT_LETTERS else _MIN_CONFIDENCE_OTHER
        return best if values[0].value >= needed else None
    latin = sum(1 for c in letters if c.isascii() or "\u00c0" <= c <= "\u024f")
    if latin < len(letters) / 2:
        return UNDETERMINED
    return None


def brand_languages(runtime: Runtime) -> set[str]:
    """The languages the brand answers in: the default, `[languages] supported`, and those it has reply
    templates or knowledge-base articles in."""
    settings = runtime.settings
    return (
        {settings.brand.default_language}
        | set(settings.languages.supported)
        | runtime.policy.languages
        | runtime.models.knowledge.languages
    )


def apply_language(runtime: Runtime, decision: Decision, analysis: Analysis, *, public: bool) -> Decision:
    """Adjust the policy's `decision` to the customer's language (`analysis.language`).

    - the brand's default language, or no language detected: unchanged;
    - an unknown script: escalated (nothing can be read or answered);
    - another language with an unsure intent: escalated (the heads are English-only: no guessing);
    - a language the brand answers in: the reply in that language (templates and the article's
      translation; an article without one escalates rather than answer in another language);
    - any other language: `[languages] on_unsupported` decides: the default language with a note, or a person.
    """
    language, default = analysis.language, runtime.settings.brand.default_language
    if language is None or language == default or decision.action == Action.HUMAN_OWNS:
        return decision
    if language == UNDETERMINED:
        return _escalate(decision, "written in a script the bot can't read")
    understanding = analysis.understanding
    if understanding.low_confidence and decision.action not in (Action.MODERATE, Action.ESCALATE):
        return _escalate(
            decision,
            f"written in {language} and the intent is unsure ({understanding.intent} "
            f"{understanding.confidence:.2f}); the intent heads read English",
        )
    if decision.action == Action.SMALL_TALK:
        # "other" from English-only heads on a foreign message mostly means "not understood".
        return _escalate(
            decision, f"written in {language} and read as small talk; the intent heads read English"
        )
    if decision.action == Action.ANSWER and analysis.answer.score < FOREIGN_MIN_SCORE:
        return _escalate(
            decision,
            f"written in {language}; article {decision.article.id} matches only at "
            f"{analysis.answer.score:.2f} (below {FOREIGN_MIN_SCORE} for other languages)",
        )
    if not decision.replies:
        return decision
    supported = language in brand_languages(runtime)
    if supported:
        article = decision.article
        if decision.action == Action.ANSWER and article is not None and article.language != language:
            return _escalate(decision, f"written in {language}; article {article.id} is not translated")
        return replace(decision, language=language, reason=f"{decision.reason}; replied in {language}")
    if runtime.settings.languages.on_unsupported == "escalate":
        return _escalate(decision, f"written in {language}, which the brand doesn't answer in")
    return replace(
        decision,
        language=default,
        language_note=True,
        reason=f"{decision.reason}; written in {language}: answered in {default}, saying so",
    )


def _escalate(decision: Decision, why: str) -> Decision:
    if decision.escalate:
        return replace(decision, reason=f"{decision.reason}; {why}")
    return Decision(Action.ESCALATE, f"{why}: escalated to staff", template="unsure", escalate=True)
