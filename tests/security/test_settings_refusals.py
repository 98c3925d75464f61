"""Settings an attacker profits from are refused at start-up, and every bad setting stops `socialbot serve`
with one line naming it, never a traceback: a short secret key (sessions and links are signed with it), a
database password written in the settings file (it ends up in version control), a database URL that is
not one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import free_port


def serve(tmp_path, env: dict[str, str], *args: str, settings_file: str | None = None):
    if settings_file is not None:
        (tmp_path / "settings.toml").write_text(settings_file)
        args = ("--config", str(tmp_path / "settings.toml"), *args)
    full_env = {key: value for key, value in os.environ.items() if not key.startswith("SOCIALBOT_")} | {
        "SOCIALBOT_DATA__DIR": str(tmp_path / "data"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args, "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=full_env,
        timeout=120,
    )


def one_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("socialbot:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_short_secret_key_is_refused(tmp_path):
    line = one_line(serve(tmp_path, {"SOCIALBOT_SECRET_KEY": "abcd"}))
    assert "secret_key" in line and "32" in line and "abcd" not in line


def test_a_password_inside_the_database_url_in_the_file_is_refused(tmp_path):
    line = one_line(
        serve(
            tmp_path,
            {},
            # a loopback port nothing listens on: even a server that took the password would reach nothing
            settings_file=f'[database]\nurl = "postgresql+psycopg://sb:hunter2@127.0.0.1:{free_port()}/sb"\n',
        )
    )
    assert "database.url" in line and "SOCIALBOT_DATABASE__URL" in line and "hunter2" not in line


@pytest.mark.parametrize(
    ("env", "settings_file", "named"),
    [
        ({"SOCIALBOT_DATABASE__URL": "nonsense://x"}, None, "database.url"),
        ({}, '[database]\nurl = "nonsense://x"\n', "database.url"),
        ({"SOCIALBOT_DATABASE__URL": "postgresql+psycopg://:::"}, None, "database.url"),
        ({"SOCIALBOT_SERVER__PORT": "70000"}, None, "server.port"),
        ({"SOCIALBOT_SERVER__PUBLIC_URL": "chat.fernhill.example"}, None, "server.public_url"),
        ({"SOCIALBOT_WEBCHAT__MESSAGES_PER_MINUTE_PER_IP": "-1"}, None, "webchat.messages_per_minute_per_ip"),
        ({"SOCIALBOT_CONSOLE__LOGIN_ATTEMPTS": "many"}, None, "console.login_attempts"),
        ({}, "[webchat]\nmessages_per_hour = 3\n", "webchat.messages_per_hour"),
    ],
    ids=[
        "db-url-env",
        "db-url-file",
        "db-url-garbage",
        "port",
        "public-url",
        "webchat-limit",
        "login",
        "unknown",
    ],
)
def test_every_bad_setting_is_one_line_naming_it(tmp_path, env, settings_file, named):
    line = one_line(serve(tmp_path, env, settings_file=settings_file))
    assert named in line, line


def test_an_unreachable_database_is_one_line_naming_it(tmp_path):
    url = f"postgresql+psycopg://socialbot@127.0.0.1:{free_port()}/socialbot"
    line = one_line(serve(tmp_path, {"SOCIALBOT_DATABASE__URL": url}))
    assert "database" in line and str(url.rsplit(":", 1)[1].split("/")[0]) in line
