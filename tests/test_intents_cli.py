"""`socialbot intents classify | train | eval`: output contract and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import intents as command

runner = CliRunner()


def run(*args: str):
    return runner.invoke(command.app, list(args))


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_classify_writes_one_object_per_row_in_order(tmp_path):
    source = write(
        tmp_path / "posts.csv",
        "id,text,channel\n"
        "1,@fernhill my order is two weeks late and nobody answers,x\n"
        '2,"@fernhill do you ship to Ireland?",x\n'
        "3,,x\n"
        "4,@fernhill love my new boots thank you!,x\n"
        f'5,"{"very long post " * 7000}",x\n',
    )
    output = tmp_path / "out" / "posts.jsonl"
    result = run("classify", "--input", str(source), "--output", str(output), "--threads", "1")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 5
    for line in lines:
        assert list(line) == ["intent", "confidence", "sentiment", "abusive"]
        assert isinstance(line["confidence"], float) and isinstance(line["abusive"], bool)
    assert [line["intent"] for line in lines[:4]] == ["complaint", "question", "other", "praise"]
    assert lines[2]["confidence"] == 0.0


def test_classify_encodes_each_distinct_text_once_and_keeps_the_rows_order(tmp_path, monkeypatch):
    import numpy as np

    from intents import service
    from intents.understand import Understander

    class CountingEncoder:
        """Vectors that name their text (the heads read them), and every text it was asked for."""

        dim = 384

        def __init__(self) -> None:
            self.seen: list[str] = []

        def encode(self, texts, *, batch_size=32):
            self.seen += texts
            return np.stack([np.random.default_rng(len(text)).standard_normal(self.dim) for text in texts])

    monkeypatch.setattr(service, "CLASSIFY_CHUNK", 4)  # rows over three chunks
    texts = ["where is my order", "love it", "where is my order", "ok", "hi", "love it", "hi", "a", "ok"]
    source = write(tmp_path / "rows.csv", "text\n" + "\n".join(texts) + "\n")
    encoder, understander = CountingEncoder(), Understander.load()
    assert service.classify_file(source, tmp_path / "out.jsonl", encoder, understander) == len(texts)
    lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    expected = understander.understand_batch(texts, encoder.encode(texts))
    assert lines == [json.dumps(service.classification(result), ensure_ascii=False) for result in expected]
    assert encoder.seen[:7] == ["where is my order", "love it", "ok", "hi", "love it", "a", "ok"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("message,author\nhello,me\n", "no 'text' column"),
        (b"text\nok\n\xff\xfe broken\n", "line 3: invalid UTF-8"),
        ("text\n", "no rows"),
    ],
)
def test_classify_bad_input_is_one_clear_line(tmp_path, content, message):
    source = write(tmp_path / "bad.csv", content)
    result = run("classify", "--input", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_classify_missing_file(tmp_path):
    result = run("classify", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2 and "file not found" in result.output


def test_classify_with_missing_heads_names_the_folder(tmp_path):
    source = write(tmp_path / "posts.csv", "text\nhello\n")
    result = run(
        "classify",
        "--input",
        str(source),
        "--output",
        str(tmp_path / "o.jsonl"),
        "--heads",
        str(tmp_path / "no-heads"),
    )
    assert result.exit_code == 2 and "no-heads" in result.output


def test_train_rejects_unknown_labels_listing_them(tmp_path):
    data = write(tmp_path / "train.csv", "text,label\nhi,other\nbad,moan\nugh,rant\nalso,moan\n")
    result = run("train", "--data", str(data), "--head", "intent", "--out", str(tmp_path / "heads"))
    assert result.exit_code == 2
    assert "'moan' (line 3)" in result.output and "'rant' (line 4)" in result.output


def test_train_then_eval_with_the_new_heads(tmp_path):
    rows = ["text,label"]
    rows += [f'"@fernhill great stuff number {i}, thanks!",positive' for i in range(8)]
    rows += [f"@fernhill order {i} is late and broken,negative" for i in range(8)]
    rows += [f"@fernhill what time do you open on day {i}?,neutral" for i in range(8)]
    data = write(tmp_path / "sentiment.csv", "\n".join(rows) + "\n")
    heads = tmp_path / "heads"
    result = run("train", "--data", str(data), "--head", "sentiment", "--out", str(heads))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in heads.iterdir()) == ["abusive.npz", "intent.npz", "sentiment.npz"]

    result = run("eval", "--data", str(data), "--head", "sentiment", "--heads", str(heads), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["macro_f1"] == 1.0
    assert set(report["per_class"]) == {"negative", "neutral", "positive"}
    assert report["confusion_matrix"] == [[8, 0, 0], [0, 8, 0], [0, 0, 8]]


def test_eval_prints_a_table(tmp_path):
    data = write(
        tmp_path / "abuse.csv",
        "text,label\n@fernhill you idiots go to hell,yes\n"
        "@fernhill where is my parcel,no\n@fernhill thanks!,not_abusive\n",
    )
    result = run("eval", "--data", str(data), "--head", "abusive")
    assert result.exit_code == 0, result.output
    assert (
        "precision" in result.output and "macro-F1" in result.output and "confusion matrix" in result.output
    )
