"""The customer's language, detected offline for every message.

Detection uses lingua (`lingua-language-detector`, its models ship in the wheel: no network), restricted to
the brand's languages plus the most common ones, in lingua's low-accuracy (trigram) mode, which keeps it
fast and small; a language's model loads on first use. Short or ambiguous texts ("👍") get no language
(treated as the brand's default); text in a script none of those languages uses gets "und" (undetermined).

What the bot does with the language is the pipeline's language step (bot/pipeline/steps/language.py).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder

__all__ = ["COMMON_LANGUAGES", "ENGLISH_WORDS", "UNDETERMINED", "WORD", "detect_language"]

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
# Trigram models can be near-certain and wrong on a short text ("how do i reset my password": Italian 0.996).
# A switch away from the default on a text shorter than this is confirmed first. From English (the default of
# most brands, and the only language the encoder reads well) by its words: a text with at least
# _MIN_ENGLISH_WORDS of ENGLISH_WORDS, making up at least _MIN_ENGLISH_SHARE of its words, stays English.
# From another default by lingua's high-accuracy models of just the two languages in question, needing
# _MIN_CONFIDENCE_CONFIRMED; those models take about 20 MB a language, kept for the life of the process,
# which is why English, where the words settle it, doesn't load them (a worker's memory: issue 19).
_CONFIRM_BELOW_LETTERS = 120
_MIN_CONFIDENCE_CONFIRMED = 0.8
_MIN_ENGLISH_WORDS = 2
_MIN_ENGLISH_SHARE = 0.2
#: Frequent English words that are not also frequent words of the other COMMON_LANGUAGES written in Latin
#: script (so not "a", "an", "in", "is", "so", "die", "was", "will", "for", "of", "to", "me", "no", "on",
#: "am", "im", "u", "kind", "best", "sent", "ok": Italian, German, Dutch, Danish, Polish, Spanish or French
#: words too, or words of every language).
ENGLISH_WORDS = frozenset({
    "the", "and", "you", "your", "yours", "my", "mine", "our", "we", "they", "them", "their", "this",
    "that", "these", "those", "what", "when", "where", "why", "how", "which", "who", "whom", "whose",
    "with", "from", "into", "about", "after", "before", "there", "here", "have", "has", "had", "having",
    "does", "did", "doing", "done", "can", "could", "would", "should", "shall", "must", "not", "don't",
    "doesn't", "didn't", "can't", "won't", "isn't", "aren't", "wasn't", "it", "it's", "its", "i'm", "i've",
    "i'll", "i'd", "you're", "we're", "they're", "just", "still", "yet", "been", "being", "were", "are",
    "be", "get", "got", "getting", "please", "thanks", "thank", "thx", "hi", "hello", "hey", "any", "some",
    "every", "all", "only", "also", "very", "really", "too", "more", "most", "much", "many", "if", "or",
    "but", "than", "then", "out", "up", "down", "over", "off", "again", "back", "way", "ever", "never",
    "always", "order", "ordered", "delivery", "refund", "account", "password", "help", "need", "want",
    "know", "think", "like", "tried", "trying", "today", "yesterday", "tomorrow", "week", "day", "time",
    "hours", "one", "two", "use", "used", "make", "made", "go", "going", "went", "come", "coming", "see",
    "look", "looking", "say", "said", "tell", "told", "give", "take", "new", "good", "great", "bad", "love",
    "sorry", "yes", "now", "because", "since", "without", "through", "while", "work", "working",
    "send", "received", "waiting", "wait", "phone", "call", "called", "email", "ur", "pls", "plz", "dont",
    "cant", "wont", "didnt", "doesnt", "wow", "lol", "omg", "guys",
})  # fmt: skip
#: A word: letters, with one inner apostrophe ("don't"); also what `Models.abuse_words` tries out.
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# Not words of any language: links, e-mail addresses, @mentions and #tags, numbers.
_NOISE = re.compile(r"https?://\S+|\S+@\S+|[@#]\w+|\d+")
_lock = threading.Lock()


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


@functools.lru_cache(maxsize=8)
def _pair_detector(default: Language, other: Language) -> LanguageDetector:
    return LanguageDetectorBuilder.from_languages(default, other).build()


def _confirmed(text: str, default: str, other: Language) -> bool:
    """Whether `text`, which the trigram models read as `other`, is not in `default` after all: for English
    by its words, for another default by the high-accuracy models of `default` and `other` alone."""
    if default == "en":
        words = [word.lower() for word in WORD.findall(text.replace("\u2019", "'"))]
        english = sum(word in ENGLISH_WORDS for word in words)
        return english < _MIN_ENGLISH_WORDS or english < _MIN_ENGLISH_SHARE * len(words)
    try:
        default_language = Language.from_iso_code_639_1(getattr(IsoCode639_1, default.upper()))
    except (AttributeError, ValueError):
        return True  # no model for the default language: nothing to confirm against
    detector = _pair_detector(default_language, other)
    with _lock:
        return detector.compute_language_confidence(text, other) >= _MIN_CONFIDENCE_CONFIRMED


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
        if values[0].value < needed:
            return None
        if len(letters) < _CONFIRM_BELOW_LETTERS and not _confirmed(cleaned, default, values[0].language):
            return None
        return best
    latin = sum(1 for c in letters if c.isascii() or "\u00c0" <= c <= "\u024f")
    if latin < len(letters) / 2:
        return UNDETERMINED
    return None
