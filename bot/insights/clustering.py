"""Grouping messages by meaning: clusters of the encoder's vectors, named by their distinctive words.

`cluster_vectors` is Ward's agglomerative clustering (scikit-learn) of the L2-normalised vectors into about
sqrt(n/2) groups (the usual rule of thumb; at most `MAX_GROUPS`): a few broad groups for a quiet week, finer
ones for a busy month. `distinctive_words` is c-TF-IDF (the class-based TF-IDF of BERTopic): a word names a
group when it is frequent in the group and rare in the others, so "late, delayed, hours" names the delays and
not "flight". `group_messages` puts the two together and lets the knowledge base have the last word: groups
whose messages mostly matched the same article are one group (the encoder may part "parcel late" from
"delivery late"; the article both matched says they are one topic). Complaint topics and knowledge gaps
group with it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_GROUPS",
    "Group",
    "cluster_vectors",
    "distinctive_words",
    "dominant",
    "group_count",
    "group_messages",
]

#: The most groups `cluster_vectors` makes (a dashboard shows the biggest ten; the rest is "other").
MAX_GROUPS = 30
#: Handles, links and contractions ("hasn't", "I'm"): nothing a topic is named by.
_NOISE = re.compile(r"@\w+|https?://\S+|www\.\S+|\b\w+['’]\w*")
#: Words, at least three letters (numbers, handles and links say nothing about a topic).
_TOKEN = r"(?u)\b[^\W\d_][^\W\d_']{2,}\b"


def group_count(n: int) -> int:
    """How many groups `n` messages are cut into: ceil(sqrt(n / 2)), between 1 and MAX_GROUPS."""
    return max(1, min(MAX_GROUPS, math.ceil(math.sqrt(n / 2))))


def cluster_vectors(vectors: np.ndarray, *, groups: int | None = None) -> np.ndarray:
    """A group number per row of `vectors`, numbered by size (0 is the biggest group).

    Args:
        vectors: (n, dim), one message per row.
        groups: how many groups to make (default `group_count(n)`).
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    groups = min(groups or group_count(len(vectors)), len(vectors))
    if groups <= 1:
        return np.zeros(len(vectors), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    labels = AgglomerativeClustering(n_clusters=groups, linkage="ward").fit_predict(unit)
    by_size = [label for label, _ in Counter(labels.tolist()).most_common()]
    renumber = {label: rank for rank, label in enumerate(by_size)}
    return np.array([renumber[label] for label in labels.tolist()], dtype=int)


def distinctive_words(
    texts: Sequence[str], labels: Sequence[int], *, top: int = 3, background: Sequence[str] = ()
) -> dict[int, list[str]]:
    """The `top` words that set each cluster apart (c-TF-IDF), most telling first.

    Args:
        texts: one text per message; `labels[i]` is the cluster of `texts[i]` (-1: in none, it only makes
            its words less telling).
        background: other texts (e.g. earlier weeks) that only make common words less telling.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    clusters = sorted(set(labels) - {-1})
    pairs = list(zip(texts, labels, strict=True))
    documents = [" ".join(_NOISE.sub(" ", t) for t, label in pairs if label == c) for c in clusters]
    rest = [*background, *(t for t, label in pairs if label == -1)]
    if rest:
        documents.append(" ".join(_NOISE.sub(" ", text) for text in rest))
    vectorizer = CountVectorizer(stop_words="english", token_pattern=_TOKEN, lowercase=True)
    try:
        counts = vectorizer.fit_transform(documents).toarray().astype(np.float64)
    except ValueError:  # nothing but stop words
        return {c: [] for c in clusters}
    words = vectorizer.get_feature_names_out()
    frequency = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    average_words = counts.sum() / len(documents)
    idf = np.log(1.0 + average_words / np.maximum(counts.sum(axis=0), 1.0))
    scores = frequency * idf
    named = {}
    for row, cluster in enumerate(clusters):
        order = np.argsort(-scores[row], kind="stable")
        named[cluster] = [str(words[i]) for i in order[:top] if counts[row, i] > 0]
    return named


def dominant(values: Sequence[str | None], *, share: float = 0.5) -> str | None:
    """The value at least `share` of `values` have (None values count against it), else None."""
    counted = Counter(value for value in values if value)
    if not counted:
        return None
    value, count = counted.most_common(1)[0]
    return value if count >= share * len(values) else None


@dataclass(frozen=True, slots=True)
class Group:
    """Messages that say much the same thing: their positions (the most typical first), the article most of
    them matched (None if none did), and their distinctive words."""

    positions: list[int]
    article_id: str | None
    words: list[str]


def group_messages(
    texts: Sequence[str],
    vectors: np.ndarray,
    articles: Sequence[str | None] | None = None,
    *,
    groups: int | None = None,
) -> list[Group]:
    """Group messages by their vectors, merge groups that mostly matched the same article, and name them.

    Args:
        texts, vectors: one message per row.
        articles: the knowledge-base article each message matched (None: none).
        groups: how many vector groups to start from (default `group_count(n)`).

    Returns:
        The groups, biggest first.
    """
    if len(texts) == 0:
        return []
    vectors = np.asarray(vectors, dtype=np.float32)
    articles = list(articles) if articles is not None else [None] * len(texts)
    labels = cluster_vectors(vectors, groups=groups)
    merged: dict[tuple[str, object], list[int]] = {}
    for cluster in range(int(labels.max()) + 1):
        members = [i for i, label in enumerate(labels.tolist()) if label == cluster]
        article = dominant([articles[i] for i in members])
        merged.setdefault(("article", article) if article else ("cluster", cluster), []).extend(members)
    ordered = sorted(merged.values(), key=len, reverse=True)
    numbered = [0] * len(texts)
    for number, members in enumerate(ordered):
        for i in members:
            numbered[i] = number
    words = distinctive_words(texts, numbered)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    found = []
    for number, members in enumerate(ordered):
        centre = unit[members].mean(axis=0)
        typical = [members[j] for j in np.argsort(-(unit[members] @ centre), kind="stable").tolist()]
        found.append(Group(typical, dominant([articles[i] for i in members]), words[number]))
    return found
