"""Articles: Markdown files with YAML front matter, read and validated."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

__all__ = [
    "CHANNELS",
    "Article",
    "KnowledgeBaseError",
    "article_files",
    "load_articles",
    "parse_article",
    "scan_articles",
]

logger = logging.getLogger("knowledge")

CHANNELS: tuple[str, ...] = ("webchat", "slack", "telegram", "twitter", "email", "cli")
"""The channel names an article's `channels:` list may contain."""

_FIELDS = {"id", "title", "questions", "tags", "channels", "url", "language", "hand_over"}
_FENCE = "---"
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


class KnowledgeBaseError(Exception):
    """An article (or the knowledge base directory) is invalid.

    `str(error)` reads `path:line: message`, the form editors and CI logs turn into a link.

    Attributes:
        path: the offending file or directory.
        line: 1-based line number in that file, or None when the problem is not tied to a line.
        problem: the message without the location.
    """

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        location = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{location}: {problem}")


@dataclass(frozen=True)
class Article:
    """One answer in the knowledge base.

    Attributes:
        id: stable identifier (front matter `id`, else the file name without `.md`).
        title: one-line summary, also used for retrieval.
        body: the answer, Markdown.
        questions: example phrasings customers use; the retrieval scorer is trained on them.
        tags: free labels for staff and reports.
        channels: the channels the article may be sent on; empty means every channel.
        url: link to the full article on the brand's site, if any.
        language: BCP 47 language tag, "en" by default.
        hand_over: the questions it gathers are for a person (product specifications, orders for clubs,
            jobs, ...): it is matched like any article, so those questions don't land on a near one, but never
            sent (front matter `hand_over: true`).
        path: the file the article was read from (None for articles built in code).
    """

    id: str
    title: str
    body: str
    questions: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    url: str | None = None
    language: str = "en"
    hand_over: bool = False
    path: Path | None = None

    def serves(self, channel: str) -> bool:
        """True if the article may be sent on `channel` (an empty `channels` list allows all)."""
        return not self.channels or channel in self.channels


def article_files(directory: Path) -> list[Path]:
    """The article files of a knowledge base: every `*.md` below `directory`, hidden ones excluded."""
    files = [
        path
        for path in directory.rglob("*.md")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    ]
    return sorted(files, key=lambda path: path.relative_to(directory).as_posix())


def parse_article(path: Path, text: str) -> Article:
    """Parse one article from its file text.

    Raises:
        KnowledgeBaseError: missing or malformed front matter, a field of the wrong type, an unknown
            field, or an empty body; the error names the file and line.
    """
    lines = text.splitlines()
    if not lines or lines[0].strip() != _FENCE:
        raise KnowledgeBaseError(path, 1, "missing front matter: the file must start with a '---' line")
    closing = next((index for index in range(1, len(lines)) if lines[index].strip() == _FENCE), None)
    if closing is None:
        raise KnowledgeBaseError(path, 1, "front matter is not closed: add a '---' line after it")
    header = "\n".join(lines[1:closing])
    # Line numbers inside the YAML block are offset by the opening fence.
    offset = 2
    try:
        node = yaml.compose(header, Loader=yaml.SafeLoader)
        data = yaml.safe_load(header)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        line = mark.line + offset if mark is not None else 1
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise KnowledgeBaseError(path, line, f"invalid front matter: {problem}") from error
    if data is None:
        data, key_lines = {}, {}
    elif not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise KnowledgeBaseError(path, offset, "front matter must be a mapping of 'key: value' lines")
    else:
        key_lines = _key_lines(path, node, offset)

    def line_of(key: str) -> int:
        return key_lines.get(key, 1)

    for key in data:
        if key not in _FIELDS:
            raise KnowledgeBaseError(
                path, line_of(str(key)), f"unknown field {key!r}; allowed: {', '.join(sorted(_FIELDS))}"
            )

    article_id = data.get("id", path.stem)
    if isinstance(article_id, bool) or not isinstance(article_id, str | int) or not str(article_id).strip():
        raise KnowledgeBaseError(path, line_of("id"), "'id' must be a non-empty string")
    article_id = str(article_id).strip()

    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise KnowledgeBaseError(path, line_of("title"), "'title' is required and must be a non-empty string")

    questions = _string_list(path, data, "questions", line_of("questions"))
    tags = _string_list(path, data, "tags", line_of("tags"))
    channels = _string_list(path, data, "channels", line_of("channels"))
    for channel in channels:
        if channel not in CHANNELS:
            raise KnowledgeBaseError(
                path, line_of("channels"), f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}"
            )

    url = data.get("url")
    if url is not None and (not isinstance(url, str) or not re.match(r"^https?://\S+$", url.strip())):
        raise KnowledgeBaseError(path, line_of("url"), "'url' must be an http:// or https:// address")

    language = data.get("language", "en")
    if not isinstance(language, str) or not _LANGUAGE.match(language.strip()):
        raise KnowledgeBaseError(path, line_of("language"), "'language' must be a language tag such as 'en'")

    hand_over = data.get("hand_over", False)
    if not isinstance(hand_over, bool):
        raise KnowledgeBaseError(path, line_of("hand_over"), "'hand_over' must be true or false")

    body = "\n".join(lines[closing + 1 :]).strip()
    if not body:
        raise KnowledgeBaseError(path, closing + 2, "empty body: write the answer below the front matter")

    return Article(
        id=article_id,
        title=title.strip(),
        body=body,
        questions=questions,
        tags=tags,
        channels=channels,
        url=url.strip() if url else None,
        language=language.strip(),
        hand_over=hand_over,
        path=path,
    )


def scan_articles(directory: Path) -> tuple[list[Article], list[KnowledgeBaseError]]:
    """Read every article below `directory`, collecting all problems instead of stopping at the first.

    A file whose id and language repeat an earlier file's (in path order) is reported and left out; the
    same id in another language is that article's translation.

    Raises:
        KnowledgeBaseError: `directory` does not exist or is not a directory.
    """
    if not directory.is_dir():
        raise KnowledgeBaseError(directory, None, "knowledge base directory does not exist")
    articles: list[Article] = []
    errors: list[KnowledgeBaseError] = []
    seen: dict[tuple[str, str], Article] = {}
    for path in article_files(directory):
        try:
            article = parse_article(path, _read_text(path))
        except KnowledgeBaseError as error:
            errors.append(error)
            continue
        first = seen.get((article.id, article.language))
        if first is not None:
            errors.append(
                KnowledgeBaseError(
                    path,
                    _id_line(path),
                    f"duplicate id {article.id!r} ({article.language}), already used by {first.path}",
                )
            )
            continue
        seen[article.id, article.language] = article
        articles.append(article)
    return articles, errors


def load_articles(directory: Path, *, on_invalid: Literal["fail", "skip"] = "fail") -> list[Article]:
    """Read the knowledge base in `directory`: every `*.md` file below it, in path order.

    Args:
        directory: the knowledge base folder.
        on_invalid: "fail" raises on the first invalid file; "skip" logs a warning per invalid file
            (logger "knowledge") and returns the valid articles.

    Raises:
        KnowledgeBaseError: the directory is missing, or (with on_invalid="fail") an article is invalid.
        ValueError: `on_invalid` is neither "fail" nor "skip".
    """
    if on_invalid not in ("fail", "skip"):
        raise ValueError(f"on_invalid must be 'fail' or 'skip', not {on_invalid!r}")
    articles, errors = scan_articles(Path(directory))
    if errors and on_invalid == "fail":
        raise errors[0]
    for error in errors:
        logger.warning("skipping invalid knowledge base article %s", error)
    return articles


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise KnowledgeBaseError(path, line, "the file is not valid UTF-8") from error


def _key_lines(path: Path, node: yaml.MappingNode, offset: int) -> dict[str, int]:
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + offset
        if key in lines:
            raise KnowledgeBaseError(path, line, f"field {key!r} appears twice (first on line {lines[key]})")
        lines[key] = line
    return lines


def _string_list(path: Path, data: dict[str, Any], key: str, line: int) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str | int | float) for item in value):
        raise KnowledgeBaseError(path, line, f"'{key}' must be a list of strings")
    items = tuple(str(item).strip() for item in value)
    if any(not item for item in items):
        raise KnowledgeBaseError(path, line, f"'{key}' contains an empty entry")
    return items


def _id_line(path: Path) -> int:
    for number, line in enumerate(_read_text(path).splitlines(), start=1):
        if re.match(r"^id\s*:", line):
            return number
    return 1
