"""`socialbot knowledge check | answer | eval | reindex`: the knowledge base from the command line."""

from __future__ import annotations

import csv
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bot.cli.common import EXIT_BAD_INPUT, clear_errors, progress_bar, settings_for
from bot.runtime.analysis import current_answer_threshold, encoder_for
from intents.encoder import EncoderLoadError
from knowledge import KnowledgeBase, KnowledgeBaseError, evaluate, scan_articles

app = typer.Typer(
    help="The knowledge base: check articles, answer a CSV of questions, evaluate, rebuild the index.",
    no_args_is_help=True,
    add_completion=False,
)


KbOption = Annotated[
    Path, typer.Option("--kb", help="knowledge base folder (Markdown articles with front matter)")
]
ThresholdOption = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="answer only at or above this score (default: a worker's: pinned, else calibrated)",
    ),
]
CacheOption = Annotated[
    Path | None, typer.Option("--cache", help="folder for the cached index (default: none, in memory)")
]


class InputFileError(Exception):
    """A CSV input is missing, unreadable or lacks a required column."""


@app.command()
def check(directory: Annotated[Path, typer.Argument(help="knowledge base folder")]) -> None:
    """Validate every article: front matter, duplicate ids, empty bodies. Exit 2 if any is invalid."""
    with clear_errors(KnowledgeBaseError, InputFileError, EncoderLoadError):
        articles, errors = scan_articles(directory)
    for error in errors:
        typer.echo(f"error: {error}", err=True)
    if errors:
        typer.echo(f"{len(errors)} invalid article(s), {len(articles)} valid", err=True)
        raise typer.Exit(EXIT_BAD_INPUT)
    if not articles:
        typer.echo(f"warning: {directory} has no articles: every question would be escalated", err=True)
        return
    typer.echo(f"{len(articles)} articles OK")


@app.command()
def answer(
    ctx: typer.Context,
    kb: KbOption,
    input: Annotated[Path, typer.Option("--input", help="CSV with a `text` column")],
    output: Annotated[Path, typer.Option("--output", help="JSON Lines file to write ('-' for stdout)")],
    threshold: ThresholdOption = None,
    cache: CacheOption = None,
) -> None:
    """Answer a CSV of questions: one JSON line per row, in order: {"article": id or null, "score": x}."""
    with clear_errors(KnowledgeBaseError, InputFileError, EncoderLoadError):
        texts = [row["text"] for row in _read_csv(input, required=("text",))]
        knowledge_base, encoder = _build(ctx, kb, threshold, cache)
        embeddings = _encode(encoder, texts)
        lines = []
        for text, embedding in zip(texts, embeddings, strict=True):
            result = knowledge_base.answer(text, embedding)
            article = result.article.id if result.article else None
            lines.append(
                json.dumps({"article": article, "score": round(result.score, 6)}, ensure_ascii=False)
            )
        _write_lines(output, lines)


@app.command("eval")
def evaluate_command(
    ctx: typer.Context,
    kb: KbOption,
    data: Annotated[
        Path, typer.Option("--data", help="CSV with `text,article` (empty article: should decline)")
    ],
    threshold: ThresholdOption = None,
    cache: CacheOption = None,
) -> None:
    """Print top-1 / top-3 accuracy, answer rate and wrong-answer rate on a labelled CSV."""
    with clear_errors(KnowledgeBaseError, InputFileError, EncoderLoadError):
        rows = _read_csv(data, required=("text", "article"))
        knowledge_base, encoder = _build(ctx, kb, threshold, cache)
        known = {article.id for article in knowledge_base.articles}
        for number, row in enumerate(rows, start=2):
            if row["article"].strip() and row["article"].strip() not in known:
                raise InputFileError(f"{data}:{number}: article {row['article']!r} is not in {kb}")
        embeddings = _encode(encoder, [row["text"] for row in rows])
        expected = [row["article"].strip() or None for row in rows]
        result = evaluate(knowledge_base, embeddings, expected, threshold=threshold)
    for line in result.lines():
        typer.echo(line)


@app.command()
def reindex(
    ctx: typer.Context,
    kb: KbOption,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="index folder (default: the bot's, <data dir>/cache/knowledge)"),
    ] = None,
) -> None:
    """Rebuild the cached index now, encoding only new or changed texts; a running bot picks it up."""
    with clear_errors(KnowledgeBaseError, InputFileError, EncoderLoadError):
        cache_dir = cache or _default_cache_dir(ctx)
        started = time.perf_counter()
        counting = _CountingEncoder(encoder_for(settings_for(ctx)))
        _show_warnings()
        knowledge_base = KnowledgeBase.build(kb, counting, cache_dir=cache_dir)
    typer.echo(
        f"{len(knowledge_base.articles)} articles indexed in {cache_dir} "
        f"({counting.texts} texts encoded, {time.perf_counter() - started:.1f} s)"
    )


class _CountingEncoder:
    """Passes calls through to the real encoder, counting the texts it encodes."""

    def __init__(self, encoder) -> None:
        self._encoder = encoder
        self.name = encoder.name
        self.texts = 0

    def encode(self, texts):
        self.texts += len(texts)
        return self._encoder.encode(texts)


def _default_cache_dir(ctx: typer.Context | None) -> Path:
    return settings_for(ctx).data.dir / "cache" / "knowledge"


def _build(ctx: typer.Context, directory: Path, threshold: float | None, cache: Path | None):
    """The knowledge base over the encoder a worker runs (`[intents] backend`), answering at `threshold` or,
    when None, at the threshold a worker uses now (pinned, else calibrated by the learning loop)."""
    settings = settings_for(ctx)
    encoder = encoder_for(settings)
    if threshold is None:
        threshold = current_answer_threshold(settings)
    _show_warnings()
    return KnowledgeBase.build(directory, encoder, threshold=threshold, cache_dir=cache), encoder


def _show_warnings() -> None:
    """Print the knowledge base's warnings (empty folder, skipped article) when no logging is set up."""
    if logging.getLogger().handlers or logging.getLogger("knowledge").handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    logging.getLogger("knowledge").addHandler(handler)


def _encode(encoder, texts: list[str], *, batch: int = 256) -> np.ndarray:
    """The texts' vectors, in batches of similar length (less padding), with a progress bar on a terminal."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    parts = []
    with progress_bar("encoding", len(texts)) as advance:
        for start in range(0, len(order), batch):
            chunk = [texts[index] for index in order[start : start + batch]]
            parts.append(np.asarray(encoder.encode(chunk), dtype=np.float32))
            if advance:
                advance(len(chunk))
    embeddings = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    embeddings[order] = np.concatenate(parts)
    return embeddings


def _read_csv(path: Path, *, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream)
            missing = [column for column in required if column not in (reader.fieldnames or [])]
            if missing:
                raise InputFileError(
                    f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}"
                )
            return [{key: value or "" for key, value in row.items() if key is not None} for row in reader]
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputFileError(f"{path}: cannot read it as a UTF-8 CSV: {error}") from None


def _write_lines(path: Path, lines: list[str]) -> None:
    text = "".join(f"{line}\n" for line in lines)
    if str(path) == "-":
        sys.stdout.write(text)
        return
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InputFileError(f"{path}: cannot write: {error.strerror}") from None
