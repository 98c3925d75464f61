"""The language step: review the policy's decision for the customer's language (detected for every message by
bot/runtime/languages.py).

The intent heads are English-only, so `apply_language` makes the policy's decision safer for other
languages: an unsure intent escalates instead of guessing, replies use the language's templates
(`[policy] templates_by_language`) and the knowledge base's translation, and a language the brand doesn't
answer in either gets the default language with a note saying so, or a person (`[languages] on_unsupported`).
"""

from __future__ import annotations

from dataclasses import replace

from bot.pipeline.turn import Turn
from bot.policy.routing import Action, Decision
from bot.runtime.analysis import Analysis
from bot.runtime.container import Runtime
from bot.runtime.languages import UNDETERMINED

__all__ = ["FOREIGN_MIN_SCORE", "apply_language", "brand_languages", "language"]

# The encoder reads English best: an article matched by a foreign question must match clearly.
FOREIGN_MIN_SCORE = 0.6


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


def language(turn: Turn) -> Decision:
    """Review the policy's decision for the language the customer wrote in (see `apply_language`)."""
    return apply_language(turn.runtime, turn.decision, turn.analysis, public=turn.message.public)


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
