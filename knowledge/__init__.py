"""The brand's knowledge base: Markdown articles in, the best answer for a question (or none) out.

Articles are Markdown files with YAML front matter (see README.md). `KnowledgeBase.build` embeds their
titles, example questions and body chunks with the encoder the bot passes in, trains a small scorer with
the articles as classes, and caches both on disk; `answer` returns the best article, or none below the
threshold. `format_reply` shortens an article to fit a channel.
"""

from knowledge._articles import (
    CHANNELS,
    Article,
    KnowledgeBaseError,
    load_articles,
    parse_article,
    scan_articles,
)
from knowledge._base import (
    ANSWER_THRESHOLDS,
    DEFAULT_THRESHOLD,
    MIN_PROBABILITY,
    Answer,
    BatchScores,
    KnowledgeBase,
)
from knowledge._encoder import TextEncoder
from knowledge._evaluation import Evaluation, ThresholdPoint, evaluate, threshold_curve
from knowledge._reply import CHAT_REPLY_LIMIT, X_REPLY_LIMIT, format_reply, x_length

__all__ = [
    "CHANNELS",
    "CHAT_REPLY_LIMIT",
    "ANSWER_THRESHOLDS",
    "DEFAULT_THRESHOLD",
    "MIN_PROBABILITY",
    "X_REPLY_LIMIT",
    "Answer",
    "Article",
    "BatchScores",
    "Evaluation",
    "KnowledgeBase",
    "KnowledgeBaseError",
    "TextEncoder",
    "ThresholdPoint",
    "evaluate",
    "format_reply",
    "load_articles",
    "parse_article",
    "scan_articles",
    "threshold_curve",
    "x_length",
]
