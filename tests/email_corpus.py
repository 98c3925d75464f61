"""How well are e-mail replies stripped to the customer's own words? Scores `channels.email.parse_mail` on the
replies in tests/data/email_replies/ (Gmail, Outlook, Apple Mail, Thunderbird; English, French, German; plain,
HTML-only and both; with signatures, sign-offs, disclaimers and quoted history), against the text written
down for each in `expected.yaml` (what the sender wrote, without quote, sign-off, signature or disclaimer).

The cases marked `held_out` were added after the parser's set-up was settled on the others and never tuned
on; their figure is printed apart. Two figures, whitespace-insensitive:
- exact: the stripped text is exactly the expected text;
- clean and complete: every expected word is kept (nothing the customer wrote is lost) and the quoted mail's
  sentence is gone. A leftover sign-off ("Merci, Marie") fails `exact` but not this one.

Usage: PYTHONPATH=. python -m tests.email_corpus [--verbose]
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from channels.email import parse_mail

CORPUS = Path(__file__).resolve().parent / "data" / "email_replies"


@dataclass(frozen=True)
class CaseResult:
    name: str
    expected: str
    stripped: str
    exact: bool
    clean_and_complete: bool
    held_out: bool = False


def _words(text: str) -> str:
    return " ".join(text.split())


def score_case(name: str, expected: str, quoted: str | None, held_out: bool = False) -> CaseResult:
    """Strip one mail of the corpus and compare it with what its sender wrote."""
    stripped = parse_mail((CORPUS / name).read_bytes()).reply
    exact = _words(stripped) == _words(expected)
    complete = _words(expected) in _words(stripped)
    clean = quoted is None or quoted not in stripped
    return CaseResult(name, expected, stripped, exact, complete and clean, held_out)


def score_corpus() -> list[CaseResult]:
    """Every case of the corpus, scored, in file order."""
    expected = yaml.safe_load((CORPUS / "expected.yaml").read_text(encoding="utf-8"))
    return [
        score_case(name, case["reply"], case["quoted"], case.get("held_out", False))
        for name, case in sorted(expected.items())
    ]


def summary(results: list[CaseResult]) -> str:
    """`exact: a/n (p%); clean and complete: b/n (q%)` for `results`."""
    total = len(results)
    exact = sum(result.exact for result in results)
    usable = sum(result.clean_and_complete for result in results)
    return (
        f"exact: {exact}/{total} ({exact / total:.0%}); "
        f"clean and complete: {usable}/{total} ({usable / total:.0%})"
    )


def main(argv: list[str]) -> int:
    results = score_corpus()
    for result in results:
        if not result.exact:
            verdict = "clean+complete" if result.clean_and_complete else "WRONG"
            print(f"{result.name}: not exact ({verdict})")
            if "--verbose" in argv:
                print(f"  expected: {_words(result.expected)!r}\n  stripped: {_words(result.stripped)!r}")
    print(f"all {summary(results)}")
    print(f"held out: {summary([result for result in results if result.held_out])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
