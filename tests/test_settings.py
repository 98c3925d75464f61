"""Settings come from settings.toml, the environment wins, secrets only from the environment, and a wrong
setting stops start-up with one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.runtime.settings import SettingsError, load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_values_are_read_and_the_environment_overrides_them(tmp_path, monkeypatch):
    config = write(tmp_path, '[brand]\nname = "Acme"\n[server]\nport = 9000\n')
    monkeypatch.setenv("SOCIALBOT_SERVER__PORT", "9100")

    settings = load_settings(config)

    assert settings.brand.name == "Acme"
    assert settings.server.port == 9100


def test_the_config_file_can_come_from_the_environment(tmp_path, monkeypatch):
    config = write(tmp_path, '[brand]\nname = "FromEnv"\n')
    monkeypatch.setenv("SOCIALBOT_CONFIG", str(config))
    assert load_settings().brand.name == "FromEnv"


def test_relative_paths_are_relative_to_the_settings_file(tmp_path):
    config = write(tmp_path, '[data]\ndir = "state"\n')
    assert load_settings(config).data.dir == tmp_path / "state"


def test_the_default_database_is_sqlite_in_the_data_dir(tmp_path):
    settings = load_settings(write(tmp_path, ""))
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'socialbot.sqlite3'}"


def test_a_secret_in_the_file_is_refused_naming_the_variable_to_use(tmp_path):
    config = write(tmp_path, 'secret_key = "hunter2"\n')
    with pytest.raises(SettingsError, match="set SOCIALBOT_SECRET_KEY in the environment"):
        load_settings(config)


def test_secrets_come_from_the_environment_and_are_not_printed(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_SECRET_KEY", "hunter2-is-a-long-enough-secret-key-now")
    settings = load_settings(write(tmp_path, ""))
    assert settings.secret_key.get_secret_value() == "hunter2-is-a-long-enough-secret-key-now"
    assert "hunter2" not in repr(settings)


def test_a_password_in_the_database_url_is_masked_for_display(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_DATABASE__URL", "postgresql+psycopg://bot:s3cret@db/socialbot")
    assert "s3cret" not in load_settings(write(tmp_path, "")).database_url_for_display


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nport = 99999\n", "setting server.port: Input should be less than or equal to 65535"),
        ("[server]\nprot = 8000\n", "setting server.prot: unknown setting"),
        ('[policy]\nroutes = { complaint = "shout" }\n', "setting policy.routes.complaint"),
        ('[policy]\nroutes = { gripe = "escalate" }\n', "unknown intent(s) gripe"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_a_wrong_setting_is_named(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(write(tmp_path, text))


def test_a_wrong_environment_value_is_named_with_its_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_SERVER__PORT", "eighty")
    with pytest.raises(SettingsError, match=r"setting server.port: .*\(env SOCIALBOT_SERVER__PORT\)"):
        load_settings(write(tmp_path, ""))


def test_start_up_with_a_wrong_setting_prints_one_line_and_no_traceback(tmp_path):
    config = write(tmp_path, "[server]\nport = 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), "db", "upgrade"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "setting server.port" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SOCIALBOT_SLACK__ENABLED": "true"}, "SOCIALBOT_SLACK__BOT_TOKEN"),
        (
            {"SOCIALBOT_SLACK__ENABLED": "true", "SOCIALBOT_SLACK__BOT_TOKEN": "xoxb-1"},
            "SOCIALBOT_SLACK__SIGNING_SECRET",
        ),
        (
            {"SOCIALBOT_TELEGRAM__ENABLED": "true", "SOCIALBOT_TELEGRAM__TOKEN": "1:abc"},
            "SOCIALBOT_TELEGRAM__WEBHOOK_SECRET",
        ),
        ({"SOCIALBOT_TWITTER__ENABLED": "true"}, "SOCIALBOT_TWITTER__BEARER_TOKEN"),
    ],
)
def test_an_enabled_channel_without_its_secret_stops_start_up_naming_the_variable(
    tmp_path, monkeypatch, env, variable
):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(data={"dir": tmp_path})


def test_telegram_polling_needs_no_webhook_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIALBOT_TELEGRAM__ENABLED", "true")
    monkeypatch.setenv("SOCIALBOT_TELEGRAM__TOKEN", "1:abc")
    monkeypatch.setenv("SOCIALBOT_TELEGRAM__MODE", "polling")
    assert load_settings(data={"dir": tmp_path}).telegram.mode == "polling"
