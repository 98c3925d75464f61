"""`socialbot chat` talks through the same pipeline, driven on stdin like a user at a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.conftest import REPO


def run(tmp_path, *args, stdin: str = "", extra_env: dict | None = None):
    env = {
        **os.environ,
        "SOCIALBOT_DATA__DIR": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )


def test_version():
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0
    assert result.stdout.startswith("socialbot 0.")


def test_chat_answers_a_question_then_escalates_a_complaint_and_falls_silent(tmp_path):
    conversation = (
        "what's your returns policy?\n"
        "this is the worst service ever, my boots fell apart after a week and I want my money back!!\n"
        "hello???\n"
    )
    result = run(tmp_path, "chat", "--user", "dana", stdin=conversation)

    assert result.returncode == 0, result.stderr
    turns = [
        turn.strip()
        for turn in re.split(
            r"^(?=Fernhill Outdoor> |\(Fernhill Outdoor: )", result.stdout, flags=re.MULTILINE
        )
        if turn.strip()
    ]
    assert len(turns) == 3, result.stdout
    assert turns[0].startswith("Fernhill Outdoor> ") and "return" in turns[0].lower()
    assert turns[1].startswith("Fernhill Outdoor> ") and "sorry" in turns[1].lower()
    assert turns[2] == "(Fernhill Outdoor: a person from the team will reply here.)"
