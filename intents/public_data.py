"""Readers for the public labelled data in `../shared/datasets/`, mapped onto our labels.

Each function returns a `LabelledSet`: texts, our labels, and a group per row (the original split or domain)
so evaluation can hold rows out the way the issue asks. The mapping from each set's own labels to ours is the
one described in that set's `SOURCE.md`; the files themselves are never copied into the project.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BANKING77_PROBLEMS",
    "DatasetMissingError",
    "LabelledSet",
    "airline_intent",
    "airline_sentiment",
    "banking77_halves",
    "banking77_intent",
    "bitext_abuse",
    "bitext_intent",
    "clinc_intent",
    "complaints",
    "datasets_dir",
    "offensive",
    "offensive_at_people",
    "suggestions",
    "tweeteval_emotion_sentiment",
    "tweeteval_sentiment",
]

# Banking77 intents that describe a problem the customer has (SOURCE.md): complaints on a social channel.
BANKING77_PROBLEMS = frozenset(
    {
        "card_not_working",
        "contactless_not_working",
        "virtual_card_not_working",
        "compromised_card",
        "card_swallowed",
        "declined_card_payment",
        "declined_transfer",
        "declined_cash_withdrawal",
        "failed_transfer",
        "top_up_failed",
        "top_up_reverted",
        "transaction_charged_twice",
        "extra_charge_on_statement",
        "wrong_amount_of_cash_received",
        "card_payment_wrong_exchange_rate",
        "wrong_exchange_rate_for_cash_withdrawal",
        "card_payment_not_recognised",
        "cash_withdrawal_not_recognised",
        "direct_debit_payment_not_recognised",
        "Refund_not_showing_up",
        "transfer_not_received_by_recipient",
    }
)
CLINC_PRAISE = frozenset({"thank_you"})
CLINC_OTHER = frozenset(
    {
        "greeting",
        "goodbye",
        "are_you_a_bot",
        "what_is_your_name",
        "who_made_you",
        "tell_joke",
        "fun_fact",
        "meaning_of_life",
        "what_are_your_hobbies",
        "how_old_are_you",
        "where_are_you_from",
        "do_you_have_pets",
        "who_do_you_work_for",
        "maybe",
        "yes",
        "no",
        "oos",
    }
)


class DatasetMissingError(FileNotFoundError):
    """A public data set is not where it should be (the shared folder is absent on this machine)."""


@dataclass
class LabelledSet:
    """Rows of one public data set with our labels; `groups` holds the split or domain of each row."""

    name: str
    license: str
    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def subset(self, keep: Callable[[str, str, str], bool], name: str | None = None) -> LabelledSet:
        """Rows for which `keep(text, label, group)` is true."""
        out = LabelledSet(name or self.name, self.license)
        for text, label, group in zip(self.texts, self.labels, self.groups, strict=True):
            if keep(text, label, group):
                out.texts.append(text)
                out.labels.append(label)
                out.groups.append(group)
        return out

    def __len__(self) -> int:
        return len(self.texts)


def datasets_dir() -> Path:
    """The shared data folder: `$SOCIALBOT_DATASETS`, else `../shared/datasets` beside the checkout."""
    configured = os.environ.get("SOCIALBOT_DATASETS")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "shared" / "datasets"


def _rows(relative: str) -> Iterable[dict[str, str]]:
    path = datasets_dir() / relative
    if not path.exists():
        raise DatasetMissingError(f"public data set not found: {path}")
    with path.open(encoding="utf-8", newline="") as handle:
        yield from csv.DictReader(handle)


def _build(name: str, license: str, relative: str, mapper) -> LabelledSet:
    out = LabelledSet(name, license)
    for row in _rows(relative):
        mapped = mapper(row)
        if mapped is None:
            continue
        label, group = mapped
        out.texts.append(row["text"])
        out.labels.append(label)
        out.groups.append(group)
    return out


def complaints() -> LabelledSet:
    """Twitter complaints (no license stated): complaint / not_complaint; group = domain."""
    return _build(
        "twitter_complaints",
        "none stated (academic release)",
        "twitter_complaints/complaints.csv",
        lambda r: ("complaint" if r["label"] == "1" else "not_complaint", r["domain"]),
    )


def suggestions() -> LabelledSet:
    """SemEval-2019 task 9 (CC BY-NC-SA 4.0): recommendation / not_recommendation; group = split."""
    return _build(
        "semeval2019_task9_suggestions",
        "CC BY-NC-SA 4.0",
        "semeval2019_task9_suggestions/suggestions.csv",
        lambda r: ("recommendation" if r["label"] == "1" else "not_recommendation", r["split"]),
    )


def offensive() -> LabelledSet:
    """TweetEval offensive (OffensEval 2019): abusive / not_abusive; group = split."""
    return _build(
        "tweeteval_offensive",
        "TweetEval: no restrictions stated; OLID and Twitter terms apply",
        "tweeteval/offensive.csv",
        lambda r: ("abusive" if r["label"] == "1" else "not_abusive", r["split"]),
    )


OFFENSIVE_RELABEL = Path(__file__).parent / "data" / "offensive_relabel.csv"


def offensive_at_people() -> LabelledSet:
    """TweetEval offensive under issue 25's definition: abusive only when the row is abuse aimed at people.

    Rows TweetEval labels offensive take the project's relabel (`intents/data/offensive_relabel.csv`, see
    OFFENSIVE_RELABEL.md): swearing and criticism become not_abusive. Rows it labels not offensive stay
    not_abusive. Group = split.
    """
    with OFFENSIVE_RELABEL.open(encoding="utf-8", newline="") as handle:
        relabel = {(r["split"], int(r["row"])): r for r in csv.DictReader(handle)}
    out = LabelledSet("tweeteval_offensive_at_people", offensive().license)
    position: dict[str, int] = {}
    for row in _rows("tweeteval/offensive.csv"):
        split, text = row["split"], row["text"]
        index = position.get(split, 0)
        position[split] = index + 1
        label = "not_abusive"
        if row["label"] == "1":
            new = relabel[(split, index)]
            if new["text_sha1"] != hashlib.sha1(text.encode("utf-8")).hexdigest():
                raise ValueError(f"offensive_relabel.csv row {split} {index} does not match its text")
            label = "abusive" if new["abuse_at_people"] == "yes" else "not_abusive"
        out.texts.append(text)
        out.labels.append(label)
        out.groups.append(split)
    return out


_TWEETEVAL_SENTIMENT = {"0": "negative", "1": "neutral", "2": "positive"}


def tweeteval_sentiment() -> LabelledSet:
    """TweetEval sentiment, val only here (SemEval-2017 task 4): negative / neutral / positive."""
    return _build(
        "tweeteval_sentiment",
        "TweetEval: no restrictions stated; SemEval-2017 and Twitter terms apply",
        "tweeteval/sentiment.csv",
        lambda r: (_TWEETEVAL_SENTIMENT[r["label"]], r["split"]),
    )


_EMOTION_SENTIMENT = {"0": "negative", "1": "positive", "2": "positive", "3": "negative"}


def tweeteval_emotion_sentiment() -> LabelledSet:
    """TweetEval emotion as sentiment: anger, sadness -> negative; joy, optimism -> positive."""
    return _build(
        "tweeteval_emotion",
        "TweetEval: no restrictions stated; SemEval-2018 and Twitter terms apply",
        "tweeteval/emotion.csv",
        lambda r: (_EMOTION_SENTIMENT[r["label"]], r["split"]),
    )


def airline_sentiment() -> LabelledSet:
    """Airline tweets (CC BY-NC-SA 4.0): negative / neutral / positive; group = airline."""
    return _build(
        "airline_tweets",
        "CC BY-NC-SA 4.0",
        "airline_tweets/airline_tweets.csv",
        lambda r: (r["label"], r["airline"]),
    )


def airline_intent() -> LabelledSet:
    """Airline tweets as intents: negative with a concrete reason -> complaint, positive -> praise.

    Neutral and "Can't Tell" tweets are left out: they mix questions, complaints and chatter.
    """

    def mapper(row: dict[str, str]):
        if row["label"] == "negative" and row["negativereason"] not in ("", "Can't Tell"):
            return "complaint", row["airline"]
        if row["label"] == "positive":
            return "praise", row["airline"]
        if row["label"] == "neutral" and "?" in row["text"]:
            return "question", row["airline"]
        return None

    return _build("airline_tweets", "CC BY-NC-SA 4.0", "airline_tweets/airline_tweets.csv", mapper)


def banking77_intent() -> LabelledSet:
    """Banking77 (CC BY 4.0): problem intents -> complaint, the rest -> question; group = original label."""
    return _build(
        "banking77",
        "CC BY 4.0",
        "banking77/banking77.csv",
        lambda r: ("complaint" if r["label"] in BANKING77_PROBLEMS else "question", r["label"]),
    )


# Banking77's knowledge-base figure (scripts/eval_knowledge.py) builds its articles from half of each label's
# rows and asks the other half; the encoder's training may only see the first half.
BANKING77_KB_SEED, BANKING77_KB_FRACTION = 5, 0.5


def banking77_halves() -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Banking77 split per label by a seeded shuffle: (label -> the article's example questions, [(question,
    label)] the figure is measured on)."""
    by_label: dict[str, list[str]] = {}
    for row in _rows("banking77/banking77.csv"):
        if row["split"] == "train":
            by_label.setdefault(row["label"], []).append(row["text"])
    shuffler = random.Random(BANKING77_KB_SEED)
    articles, asked = {}, []
    for label, texts in sorted(by_label.items()):
        shuffled = texts[:]
        shuffler.shuffle(shuffled)
        cut = round(len(shuffled) * BANKING77_KB_FRACTION)
        articles[label] = shuffled[:cut]
        asked += [(text, label) for text in shuffled[cut:]]
    return articles, asked


def clinc_intent() -> LabelledSet:
    """CLINC150 (CC BY 3.0): thank_you -> praise, small talk and out-of-scope -> other, rest -> question."""

    def mapper(row: dict[str, str]):
        if row["label"] in CLINC_PRAISE:
            return "praise", row["label"]
        if row["label"] in CLINC_OTHER:
            return "other", row["label"]
        return "question", row["label"]

    return _build("clinc150", "CC BY 3.0", "clinc150/clinc150.csv", mapper)


_BITEXT_SKIP = {"review", "contact_human_agent", "contact_customer_service"}


def bitext_intent(file: str = "bitext_cs_8k.csv") -> LabelledSet:
    """Bitext (CDLA-Sharing-1.0): complaint / payment_issue / registration_problems -> complaint, the
    question-like intents -> question; group = original label. `review` and the human-contact intents are
    left out (they are meta-requests, see SOURCE.md)."""

    def mapper(row: dict[str, str]):
        label = row["label"]
        if label in _BITEXT_SKIP:
            return None
        if label in ("complaint", "payment_issue", "registration_problems"):
            return "complaint", label
        return "question", label

    return _build("bitext_customer_support", "CDLA-Sharing-1.0", f"bitext_customer_support/{file}", mapper)


def bitext_abuse(file: str = "bitext_cs_8k.csv") -> LabelledSet:
    """Bitext rows with and without the `W` (offensive-language) flag, all labelled not_abusive: rude but
    legitimate customer requests. Group = `W` or `-`."""
    return _build(
        "bitext_customer_support",
        "CDLA-Sharing-1.0",
        f"bitext_customer_support/{file}",
        lambda r: ("not_abusive", "W" if "W" in r["flags"] else "-"),
    )
