"""What the encoder learns from: the project's own examples plus mapped public data, per task.

`encoder_corpus()` returns the rows of the four training tasks (intent, sentiment, abusive, and pairs of
questions that mean the same for the sentence-similarity objective); `calibration_rows()` the rows thresholds
are chosen on. Which rows may be used for what is decided in `intents.splits`, never here. Every task records
the data sets it drew from and their licenses, so the model card and the head files can say what a head
inherits.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from intents import public_data
from intents.splits import CALIBRATE, TRAIN, split_of

__all__ = [
    "BRAND_ABUSE_EXAMPLES",
    "FERNHILL_TRAFFIC",
    "OWN_EXAMPLES",
    "OWN_LICENSE",
    "PERMISSIVE_LICENSES",
    "EncoderCorpus",
    "TrainingRows",
    "calibration_rows",
    "encoder_corpus",
    "held_out_texts",
    "own_examples",
]

DATA_DIR = Path(__file__).parent / "data"
OWN_EXAMPLES = DATA_DIR / "brand_posts.csv"
BRAND_ABUSE_EXAMPLES = DATA_DIR / "brand_abuse_examples.csv"
OFFENSIVE_RELABEL = DATA_DIR / "offensive_relabel.csv"
# Written traffic for the sample brand with the expected decision (tests/data; dev tunes, test reports).
FERNHILL_TRAFFIC = Path(__file__).resolve().parents[1] / "tests" / "data" / "fernhill_traffic.csv"
OWN_LICENSE = "Apache-2.0 (written for this project)"
# What the permissive-only variant may learn from: CC BY, CDLA and the project's own data.
PERMISSIVE_LICENSES = frozenset({"CC BY 4.0", "CC BY 3.0", "CDLA-Sharing-1.0", OWN_LICENSE})
# twitter_complaints' groups of general tweets, not addressed to a brand.
GENERAL_TWEETS = frozenset({"random_tweet", "random_reply"})
# Hand-written brand posts are few but exactly our domain: each is drawn this many times as often.
OWN_WEIGHT = 3.0


@dataclass
class TrainingRows:
    """Texts, labels and per-row sampling weights, plus which data sets (and licenses) they came from."""

    texts: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    licenses: dict[str, str] = field(default_factory=dict)

    def add(self, source: str, license: str, texts, labels, weight: float = 1.0) -> None:
        texts, labels = list(texts), list(labels)
        self.texts += texts
        self.labels += labels
        self.weights += [weight] * len(texts)
        self.sources += [source] * len(texts)
        if texts:
            self.licenses[source] = license

    def without(self, texts: set[str]) -> TrainingRows:
        """These rows except those whose text is in `texts`."""
        out = TrainingRows(licenses=dict(self.licenses))
        for row in zip(self.texts, self.labels, self.weights, self.sources, strict=True):
            if row[0] not in texts:
                out.add(row[3], self.licenses[row[3]], [row[0]], [row[1]], row[2])
        return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per data set and label."""
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for source, label in zip(self.sources, self.labels, strict=True):
            out[source][label] += 1
        return {source: dict(labels) for source, labels in out.items()}

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class EncoderCorpus:
    """The rows of every training task. `pairs` maps a group (an intent of Banking77 or Bitext) to
    questions that mean the same; `pair_licenses` the licenses of the sets they came from."""

    intent: TrainingRows
    sentiment: TrainingRows
    abusive: TrainingRows
    pairs: dict[str, list[str]]
    pair_licenses: dict[str, str]

    def describe(self) -> dict:
        """Rows per task, data set and label, and the licenses: for the model card and the head files."""
        return {
            "intent": {"rows": self.intent.counts(), "licenses": self.intent.licenses},
            "sentiment": {"rows": self.sentiment.counts(), "licenses": self.sentiment.licenses},
            "abusive": {"rows": self.abusive.counts(), "licenses": self.abusive.licenses},
            "similarity": {
                "groups": len(self.pairs),
                "texts": sum(map(len, self.pairs.values())),
                "licenses": self.pair_licenses,
            },
        }


def own_examples(path: Path = OWN_EXAMPLES) -> list[dict[str, str]]:
    """Written posts (default: the hand-written brand posts): columns text, intent, sentiment, abusive
    (yes/no), wants_human (yes/no)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _sample(items: public_data.LabelledSet, per_group: int, salt: str = "") -> public_data.LabelledSet:
    """At most `per_group` rows per group, chosen by a hash of the text (stable across runs)."""
    ranked = sorted(
        range(len(items)), key=lambda i: hashlib.sha1((salt + items.texts[i]).encode()).hexdigest()
    )
    taken: dict[str, int] = defaultdict(int)
    keep = set()
    for i in ranked:
        if taken[items.groups[i]] < per_group:
            taken[items.groups[i]] += 1
            keep.add(i)
    out = public_data.LabelledSet(items.name, items.license)
    for i in sorted(keep):
        out.texts.append(items.texts[i])
        out.labels.append(items.labels[i])
        out.groups.append(items.groups[i])
    return out


def _role(items: public_data.LabelledSet, role: str) -> public_data.LabelledSet:
    return items.subset(lambda t, lab, g: split_of(items.name, t, g) == role)


# The project's written examples: file, name (for `intents.splits` and the head files). Both have the columns
# text, intent, sentiment, abusive (yes/no), wants_human (yes/no).
WRITTEN = ((OWN_EXAMPLES, "own"), (BRAND_ABUSE_EXAMPLES, "brand_abuse_examples"))


def _written_rows(column: str, role: str) -> list[tuple[str, str, list[str], list[str]]]:
    """Per written file: (name, license, texts, labels of `column`) of its rows in `role`."""
    out = []
    for path, name in WRITTEN:
        rows = [r for r in own_examples(path) if split_of(name, r["text"]) == role]
        labels = [_abuse_label(r[column]) if column == "abusive" else r[column] for r in rows]
        out.append((name, OWN_LICENSE, [r["text"] for r in rows], labels))
    return out


def fernhill_traffic(column: str, role: str) -> tuple[list[str], list[str]]:
    """Texts and labels of `column` (intent, sentiment or abusive) of the sample brand's written traffic
    in `role` (dev rows calibrate, test rows report); empty when the file is absent."""
    if not FERNHILL_TRAFFIC.exists():
        return [], []
    rows = [
        r
        for r in own_examples(FERNHILL_TRAFFIC)
        if split_of("fernhill_traffic", r["text"], r["split"]) == role
    ]
    labels = [_abuse_label(r[column]) if column == "abusive" else r[column] for r in rows]
    return [r["text"] for r in rows], labels


def _abuse_label(flag: str) -> str:
    return "abusive" if flag.strip().lower() in ("yes", "1", "true") else "not_abusive"


def offensive_under_issue_25() -> public_data.LabelledSet:
    """TweetEval offensive with the offensive rows relabelled for "abuse aimed at people" (issue 25) where
    `data/offensive_relabel.csv` has them; rows it does not cover keep their original label."""
    items = public_data.offensive()
    relabel = _offensive_relabels()
    if not relabel:
        return items
    out = public_data.LabelledSet(items.name, items.license + "; relabelled for this project")
    for text, label, group in zip(items.texts, items.labels, items.groups, strict=True):
        out.texts.append(text)
        out.labels.append(relabel.get((group, text), label))
        out.groups.append(group)
    return out


def _offensive_relabels() -> dict[tuple[str, str], str]:
    """(split, text) -> abusive / not_abusive from `data/offensive_relabel.csv` (see OFFENSIVE_RELABEL.md),
    checked against the sha1 of the text it was written for (a row whose text changed is ignored)."""
    if not OFFENSIVE_RELABEL.exists():
        return {}
    texts: dict[tuple[str, int], str] = {}
    counters: dict[str, int] = defaultdict(int)
    items = public_data.offensive()
    for text, group in zip(items.texts, items.groups, strict=True):
        texts[(group, counters[group])] = text
        counters[group] += 1
    out = {}
    with OFFENSIVE_RELABEL.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            key = (row["split"], int(row["row"]))
            text = texts.get(key)
            if text is None or hashlib.sha1(text.encode()).hexdigest() != row["text_sha1"]:
                continue
            out[(row["split"], text)] = _abuse_label(row["abuse_at_people"])
    return out


def encoder_corpus(*, permissive_only: bool = False) -> EncoderCorpus:
    """The training rows of every task (only rows whose role in `intents.splits` is train).

    Args:
        permissive_only: only the project's own examples and CC BY / CDLA sets (the permissive variant).

    Raises:
        public_data.DatasetMissingError: a public data set is not in the shared folder.
    """
    intent, sentiment, abusive = TrainingRows(), TrainingRows(), TrainingRows()

    def allowed(items: public_data.LabelledSet) -> bool:
        return not permissive_only or items.license in PERMISSIVE_LICENSES

    def add(rows: TrainingRows, items: public_data.LabelledSet, label_map=None, weight: float = 1.0) -> None:
        if not allowed(items):
            return
        for text, label in zip(items.texts, items.labels, strict=True):
            mapped = label_map(label) if label_map else label
            if mapped is not None:
                rows.add(items.name, items.license, [text], [mapped], weight)

    # Intent: one-vs-rest; a label `not_<intent>` says only that the row is not that intent.
    for written in _written_rows("intent", TRAIN):
        intent.add(*written, OWN_WEIGHT)
    add(intent, _sample(_role(public_data.banking77_intent(), TRAIN), 20))
    add(intent, _sample(public_data.bitext_intent(), 25))
    complaints = _role(public_data.complaints(), TRAIN)
    if allowed(complaints):
        # General tweets not aimed at a brand are "other" (SOURCE.md); brand-domain rows say complaint or not.
        for text, label, group in zip(complaints.texts, complaints.labels, complaints.groups, strict=True):
            mapped = "other" if group in GENERAL_TWEETS else label
            intent.add(complaints.name, complaints.license, [text], [mapped])
    general = _role(public_data.offensive(), TRAIN).subset(lambda t, lab, g: lab == "not_abusive")
    add(intent, _sample(general, 1500, "general"), lambda lab: "not_complaint")
    airline = _role(public_data.airline_intent(), TRAIN)
    add(intent, _sample(airline.subset(lambda t, lab, g: lab == "praise"), 150, "praise"))
    add(intent, _sample(airline.subset(lambda t, lab, g: lab == "complaint"), 150, "complaint"))
    add(intent, airline.subset(lambda t, lab, g: lab == "question"))
    add(intent, _role(public_data.suggestions(), TRAIN))

    # Sentiment: three classes.
    for written in _written_rows("sentiment", TRAIN):
        sentiment.add(*written, OWN_WEIGHT)
    tweets = _role(public_data.tweeteval_sentiment(), TRAIN)
    add(sentiment, _sample(_regroup_by_label(tweets), 6000, "sentiment"))
    add(sentiment, _role(public_data.airline_sentiment(), TRAIN))
    add(sentiment, _role(public_data.tweeteval_emotion_sentiment(), TRAIN))

    # Abusive: abuse aimed at people (issue 25); swearing at a late parcel is not abuse.
    for written in _written_rows("abusive", TRAIN):
        abusive.add(*written, OWN_WEIGHT)
    add(abusive, _role(offensive_under_issue_25(), TRAIN))
    hateful = _role(public_data.hate(), TRAIN).subset(lambda t, lab, g: lab == "abusive")
    add(abusive, _sample(hateful, 1200, "hate"))
    bitext = _role(public_data.bitext_abuse(), TRAIN)
    add(abusive, bitext.subset(lambda t, lab, g: g == "W"), weight=2.0)
    add(abusive, _sample(bitext.subset(lambda t, lab, g: g == "-"), 600, "polite"))

    pairs, pair_licenses = _question_groups(allowed)
    # A text can sit in two data sets, or twice in one (TweetEval repeats some tweets across its splits):
    # a row that is held out or calibrates anywhere never trains, whatever its role in its own set.
    held = held_out_texts()
    pairs = {name: [t for t in texts if t not in held] for name, texts in pairs.items()}
    pairs = {name: texts for name, texts in pairs.items() if len(texts) >= 2}
    return EncoderCorpus(*(rows.without(held) for rows in (intent, sentiment, abusive)), pairs, pair_licenses)


def held_out_texts() -> set[str]:
    """Every text that calibrates a threshold or is reported on, in any data set (CLINC150 whole)."""
    held: set[str] = set()
    for items in (
        public_data.complaints(),
        public_data.suggestions(),
        public_data.offensive(),
        public_data.hate(),
        public_data.tweeteval_sentiment(),
        public_data.tweeteval_emotion_sentiment(),
        public_data.airline_sentiment(),
        public_data.airline_intent(),
        public_data.banking77_intent(),
        public_data.bitext_abuse(),
    ):
        held.update(
            t for t, g in zip(items.texts, items.groups, strict=True) if split_of(items.name, t, g) != TRAIN
        )
    with (public_data.datasets_dir() / "clinc150" / "clinc150.csv").open(encoding="utf-8", newline="") as f:
        held.update(row["text"] for row in csv.DictReader(f))
    for path, name in WRITTEN:
        held.update(r["text"] for r in own_examples(path) if split_of(name, r["text"]) != TRAIN)
    if FERNHILL_TRAFFIC.exists():
        held.update(r["text"] for r in own_examples(FERNHILL_TRAFFIC))
    return held


def _regroup_by_label(items: public_data.LabelledSet) -> public_data.LabelledSet:
    out = public_data.LabelledSet(items.name, items.license)
    out.texts, out.labels, out.groups = list(items.texts), list(items.labels), list(items.labels)
    return out


def _question_groups(allowed) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Questions grouped by what they ask (Banking77 and Bitext intents; never CLINC150)."""
    groups: dict[str, list[str]] = defaultdict(list)
    licenses = {}
    banking = _role(public_data.banking77_intent(), TRAIN)
    bitext_rows = []
    for file in ("bitext_cs_8k.csv", "bitext_cs_20k.csv"):
        bitext_rows.append(public_data.bitext_intent(file))
    held_out = set(public_data.bitext_abuse().subset(lambda t, lab, g: g == "W-test").texts)
    for items, prefix in ((banking, "banking77"), *((b, "bitext") for b in bitext_rows)):
        if not allowed(items):
            continue
        licenses[items.name] = items.license
        for text, group in zip(items.texts, items.groups, strict=True):
            if text not in held_out:
                groups[f"{prefix}:{group.lower().rstrip('s?')}"].append(text)
    return {name: sorted(set(texts)) for name, texts in groups.items() if len(set(texts)) >= 2}, licenses


def calibration_rows(head: str) -> TrainingRows:
    """The rows thresholds are chosen on (role calibrate in `intents.splits`): never trained on.

    Args:
        head: "intent" (complaint, recommendation and the other intents) or "abusive".

    Raises:
        ValueError: another head (sentiment takes the most probable class, it has no threshold).
    """
    rows = TrainingRows()
    if head == "intent":
        for written in _written_rows("intent", CALIBRATE):
            rows.add(*written)
        complaints = _role(public_data.complaints(), CALIBRATE)
        rows.add(
            complaints.name,
            complaints.license,
            complaints.texts,
            ["complaint" if lab == "complaint" else "not_complaint" for lab in complaints.labels],
        )
        suggestions = _role(public_data.suggestions(), CALIBRATE)
        rows.add(suggestions.name, suggestions.license, suggestions.texts, suggestions.labels)
        airline = _role(public_data.airline_intent(), CALIBRATE)
        rows.add(airline.name, airline.license, airline.texts, airline.labels)
        banking = _role(public_data.banking77_intent(), CALIBRATE)
        rows.add(banking.name, banking.license, banking.texts, banking.labels)
        rows.add("fernhill_traffic", OWN_LICENSE, *fernhill_traffic("intent", CALIBRATE))
    elif head == "abusive":
        for written in _written_rows("abusive", CALIBRATE):
            rows.add(*written)
        offensive = _role(offensive_under_issue_25(), CALIBRATE)
        rows.add(offensive.name, offensive.license, offensive.texts, offensive.labels)
        rows.add("fernhill_traffic", OWN_LICENSE, *fernhill_traffic("abusive", CALIBRATE))
    else:
        raise ValueError(f"head {head!r} has no threshold to calibrate")
    return rows
