"""`socialbot knowledge check | answer | eval | reindex`: the command-line contract."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli.knowledge import app

SAMPLE = Path(__file__).resolve().parents[1] / "knowledge" / "sample" / "fernhill"
runner = CliRunner()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One index cache for the module, so the sample knowledge base is embedded once."""
    return tmp_path_factory.mktemp("knowledge-cache")


def run(*args: str):
    return runner.invoke(app, [str(arg) for arg in args])


def test_check_accepts_the_sample_knowledge_base():
    result = run("check", SAMPLE)

    assert result.exit_code == 0, result.output
    assert "articles OK" in result.output


def test_check_names_file_and_line_of_every_problem_and_exits_2(tmp_path):
    (tmp_path / "a.md").write_text("---\nid: same\ntitle: A\n---\nbody\n", encoding="utf-8")
    (tmp_path / "b.md").write_text("---\nid: same\ntitle: B\n---\nbody\n", encoding="utf-8")
    (tmp_path / "c.md").write_text("---\ntitle: [broken\n---\nbody\n", encoding="utf-8")
    (tmp_path / "d.md").write_text("---\ntitle: Empty\n---\n\n", encoding="utf-8")

    result = run("check", tmp_path)

    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert any(f"{tmp_path / 'b.md'}:2: duplicate id 'same'" in line for line in lines)
    assert any(f"{tmp_path / 'c.md'}:2: invalid front matter" in line for line in lines)
    assert any(f"{tmp_path / 'd.md'}:4: empty body" in line for line in lines)
    assert "Traceback" not in result.output


def test_a_missing_folder_or_input_is_one_line_and_exit_2(tmp_path):
    result = run("check", tmp_path / "nowhere")
    assert result.exit_code == 2
    missing = tmp_path / "nowhere"
    assert result.output.strip() == f"socialbot: {missing}: knowledge base directory does not exist"

    result = run("answer", "--kb", SAMPLE, "--input", tmp_path / "none.csv", "--output", tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert result.output.strip() == f"socialbot: {tmp_path / 'none.csv'}: no such file"


def test_answer_writes_one_object_per_row_in_input_order(tmp_path, cache):
    questions = tmp_path / "questions.csv"
    questions.write_text(
        "id,text\n"
        '1,"how much is delivery, is it free over £50?"\n'
        "2,What is the boiling point of tungsten?\n"
        "3,i forgot my password\n"
        "4,\n"
        "5,😀😀😀\n",
        encoding="utf-8",
    )
    output = tmp_path / "answers.jsonl"

    result = run("answer", "--kb", SAMPLE, "--input", questions, "--output", output, "--cache", cache)

    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5
    assert all(set(row) == {"article", "score"} and isinstance(row["score"], float) for row in rows)
    assert [row["article"] for row in rows[:3]] == ["delivery-costs", None, "password-reset"]


def test_answer_without_a_text_column_is_an_error(tmp_path):
    questions = tmp_path / "questions.csv"
    questions.write_text("question\nhello\n", encoding="utf-8")

    result = run("answer", "--kb", SAMPLE, "--input", questions, "--output", tmp_path / "o.jsonl")

    assert result.exit_code == 2
    assert "missing column(s) text" in result.output


def test_eval_prints_accuracy_answer_rate_and_wrong_answers(tmp_path, cache):
    data = tmp_path / "labelled.csv"
    data.write_text(
        "text,article\n"
        "where's my parcel? ordered monday,track-order\n"
        "can i bring back a jacket i bought last month,returns\n"
        "who won the match yesterday,\n",
        encoding="utf-8",
    )

    result = run("eval", "--kb", SAMPLE, "--data", data, "--cache", cache)

    assert result.exit_code == 0, result.output
    assert re.search(r"rows +3 \(2 answerable, 1 not\)", result.output)
    for figure in (
        "top-1 accuracy",
        "top-3 accuracy",
        "answer rate",
        "wrong-answer rate",
        "declined correctly",
    ):
        assert re.search(rf"^{figure} +[01]\.\d{{4}}", result.output, flags=re.MULTILINE), figure


def test_eval_rejects_an_unknown_article_id(tmp_path, cache):
    data = tmp_path / "labelled.csv"
    data.write_text("text,article\nhello,no-such-article\n", encoding="utf-8")

    result = run("eval", "--kb", SAMPLE, "--data", data, "--cache", cache)

    assert result.exit_code == 2
    assert f"{data}:2: article 'no-such-article' is not in" in result.output


def test_reindex_encodes_only_what_changed(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "hours.md").write_text(
        "---\ntitle: Opening hours\nquestions: [when do you open]\n---\nWe open at 9:00.\n", encoding="utf-8"
    )
    cache = tmp_path / "cache"

    first = run("reindex", "--kb", kb, "--cache", cache)
    again = run("reindex", "--kb", kb, "--cache", cache)

    assert first.exit_code == 0, first.output
    assert "1 articles indexed" in first.output and "(3 texts encoded" in first.output
    assert "(0 texts encoded" in again.output


def test_answer_uses_the_threshold_a_worker_would_unless_given_one(tmp_path, cache):
    from bot.cli.main import app as socialbot

    questions = tmp_path / "q.csv"
    questions.write_text("text\nhow long does delivery take?\nwhere is my order\n", encoding="utf-8")
    config = tmp_path / "settings.toml"
    config.write_text(f'[data]\ndir = "{tmp_path / "data"}"\n[knowledge]\nthreshold = 0.999\n')

    def answered(*extra: str) -> list[str | None]:
        out = tmp_path / "o.jsonl"
        result = runner.invoke(
            socialbot,
            ["--config", str(config), "knowledge", "answer", "--kb", str(SAMPLE), "--input", str(questions)]
            + ["--output", str(out), "--cache", str(cache), *extra],
        )
        assert result.exit_code == 0, result.output
        return [json.loads(line)["article"] for line in out.read_text().splitlines()]

    assert answered() == [None, None]  # the pinned [knowledge] threshold: nothing is that sure
    assert all(answered("--threshold", "0.1"))
