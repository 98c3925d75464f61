"""Articles are read from Markdown files with front matter; every problem names the file and the line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from knowledge import KnowledgeBaseError, load_articles, scan_articles

GOOD = """---
id: returns
title: Returns
questions:
  - how do i send something back
  - whats your return policy
tags: [returns]
channels: [webchat, twitter]
url: https://shop.example/help/returns
---
You can return anything within **60 days**.
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_an_article_is_read_with_all_its_fields(tmp_path):
    path = write(tmp_path, "returns.md", GOOD)

    [article] = load_articles(tmp_path)

    assert article.id == "returns"
    assert article.title == "Returns"
    assert article.questions == ("how do i send something back", "whats your return policy")
    assert article.tags == ("returns",)
    assert article.channels == ("webchat", "twitter")
    assert article.url == "https://shop.example/help/returns"
    assert article.language == "en"
    assert article.body == "You can return anything within **60 days**."
    assert article.path == path
    assert article.serves("twitter") and not article.serves("slack")


def test_the_id_defaults_to_the_file_name_and_subfolders_are_read(tmp_path):
    write(tmp_path, "orders/track-order.md", "---\ntitle: Track your order\n---\nUse the link.\n")

    [article] = load_articles(tmp_path)

    assert article.id == "track-order"
    assert article.questions == () and article.url is None and not article.hand_over


def test_an_article_can_hand_its_questions_over(tmp_path):
    write(tmp_path, "jobs.md", "---\ntitle: Jobs\nhand_over: true\n---\nThe team answers these.\n")

    [article] = load_articles(tmp_path)

    assert article.hand_over is True


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("no front matter\n", 1, "missing front matter"),
        ("---\ntitle: A\nbody without closing\n", 1, "not closed"),
        ("---\ntitle: A\nquestions: [unclosed\n---\nbody\n", 3, "invalid front matter"),
        ("---\ntitle: A\nquestons:\n  - typo\n---\nbody\n", 3, "unknown field 'questons'"),
        ("---\ntitle: A\nquestions: 3\n---\nbody\n", 3, "'questions' must be a list"),
        ("---\nid: a\ntitle: A\nchannels: [fax]\n---\nbody\n", 4, "unknown channel 'fax'"),
        ("---\nid: a\n---\nbody\n", 1, "'title' is required"),
        ("---\ntitle: A\nurl: fernhill.example\n---\nbody\n", 3, "'url' must be"),
        ("---\ntitle: A\ntitle: B\n---\nbody\n", 3, "appears twice"),
        ("---\ntitle: A\n---\n\n   \n", 4, "empty body"),
        ("---\ntitle: A\nhand_over: sometimes\n---\nbody\n", 3, "'hand_over' must be true or false"),
    ],
)
def test_an_invalid_article_is_an_error_naming_file_and_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad.md", text)

    with pytest.raises(KnowledgeBaseError) as caught:
        load_articles(tmp_path)

    assert caught.value.path == path
    assert caught.value.line == line
    assert words in str(caught.value)
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_duplicate_id_names_the_second_file_its_id_line_and_the_first_file(tmp_path):
    first = write(tmp_path, "a.md", "---\ntitle: A\nid: same\n---\nbody\n")
    second = write(tmp_path, "b.md", "---\ntitle: B\nid: same\n---\nbody\n")

    articles, errors = scan_articles(tmp_path)

    assert [article.path for article in articles] == [first]
    [error] = errors
    assert (error.path, error.line) == (second, 3)
    assert "duplicate id 'same'" in str(error) and str(first) in str(error)


def test_skip_mode_keeps_the_valid_articles_and_warns_once_per_invalid_file(tmp_path, caplog):
    write(tmp_path, "good.md", GOOD)
    write(tmp_path, "bad.md", "---\ntitle: [\n---\nbody\n")
    write(tmp_path, "empty.md", "---\ntitle: Empty\n---\n")

    with caplog.at_level(logging.WARNING, logger="knowledge"):
        articles = load_articles(tmp_path, on_invalid="skip")

    assert [article.id for article in articles] == ["returns"]
    warnings = [record.getMessage() for record in caplog.records if record.name == "knowledge"]
    assert len(warnings) == 2
    assert any("bad.md:2" in warning for warning in warnings)
    assert any("empty.md:4" in warning for warning in warnings)


def test_a_missing_directory_is_an_error_and_an_empty_one_has_no_articles(tmp_path):
    with pytest.raises(KnowledgeBaseError, match="does not exist"):
        load_articles(tmp_path / "nowhere")
    assert load_articles(tmp_path) == []


def test_a_file_that_is_not_utf8_names_the_line(tmp_path):
    (tmp_path / "latin1.md").write_bytes(b"---\ntitle: Caf\xe9\n---\nbody\n")

    with pytest.raises(KnowledgeBaseError, match=r"latin1\.md:2: the file is not valid UTF-8"):
        load_articles(tmp_path)


def test_the_sample_brand_knowledge_base_is_complete_and_consistent():
    directory = Path(__file__).resolve().parents[1] / "knowledge" / "sample" / "fernhill"

    articles, errors = scan_articles(directory)

    assert errors == []
    assert len(articles) >= 30
    for article in articles:
        # Translations live in translations/<language>/ and share the English article's id.
        translated = article.language != "en"
        assert not translated or article.path.parent.name == article.language
        suffix = f"?lang={article.language}" if translated else ""
        assert article.url == f"https://fernhill.example/help/{article.id}{suffix}"
        assert 5 <= len(article.questions) <= 10, article.id
        assert article.tags, article.id
    bodies = " ".join(article.body for article in articles)
    # One return window and one delivery price table across the whole knowledge base.
    assert "60 days" in bodies and "30 days of delivery" not in bodies
    assert bodies.count("£4.95") == 1 and "over £50" in bodies
