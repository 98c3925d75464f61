"""Connecting a channel in a few steps: `socialbot slack manifest` prints a manifest Slack accepts for this
installation's public URL; `socialbot telegram set-webhook` registers the webhook with the secret token."""

from __future__ import annotations

import json

import yaml

from tests.fakes.telegram import FakeTelegram
from tests.test_cli import run

TOKEN = "123456:TEST-token"


def test_the_slack_manifest_names_the_scopes_events_and_urls_of_this_installation(tmp_path):
    env = {"SOCIALBOT_SERVER__PUBLIC_URL": "https://bot.fernhill.example"}
    as_yaml = run(tmp_path, "slack", "manifest", extra_env=env)
    as_json = run(tmp_path, "slack", "manifest", "--format", "json", extra_env=env)

    assert as_yaml.returncode == 0 and as_json.returncode == 0, as_yaml.stderr
    manifest = yaml.safe_load(as_yaml.stdout)
    assert manifest == json.loads(as_json.stdout)
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"] == "https://bot.fernhill.example/slack/events"
    assert settings["interactivity"]["request_url"] == "https://bot.fernhill.example/slack/events"
    assert {"app_mention", "message.im", "message.channels"} <= set(
        settings["event_subscriptions"]["bot_events"]
    )
    assert {"app_mentions:read", "chat:write", "im:history", "channels:history"} <= set(
        manifest["oauth_config"]["scopes"]["bot"]
    )
    assert settings["socket_mode_enabled"] is False


def test_socket_mode_manifest_has_no_request_urls(tmp_path):
    result = run(tmp_path, "slack", "manifest", extra_env={"SOCIALBOT_SLACK__SOCKET_MODE": "true"})
    manifest = yaml.safe_load(result.stdout)
    assert manifest["settings"]["socket_mode_enabled"] is True
    assert "request_url" not in manifest["settings"]["event_subscriptions"]


def telegram_env(fake: FakeTelegram, public_url: str) -> dict[str, str]:
    return {
        "SOCIALBOT_TELEGRAM__ENABLED": "true",
        "SOCIALBOT_TELEGRAM__TOKEN": TOKEN,
        "SOCIALBOT_TELEGRAM__WEBHOOK_SECRET": "s3cret-token",
        "SOCIALBOT_TELEGRAM__API_BASE_URL": fake.api_base_url,
        "SOCIALBOT_SERVER__PUBLIC_URL": public_url,
    }


def test_telegram_set_webhook_registers_the_public_url_with_the_secret(tmp_path):
    with FakeTelegram(TOKEN) as telegram:
        result = run(
            tmp_path, "telegram", "set-webhook", extra_env=telegram_env(telegram, "https://bot.example")
        )
        [call] = telegram.calls("setWebhook")
    assert result.returncode == 0, result.stderr
    assert call.params["url"] == "https://bot.example/telegram/webhook"
    assert call.params["secret_token"] == "s3cret-token"
    assert "s3cret-token" not in result.stdout + result.stderr


def test_telegram_refusing_the_webhook_url_is_reported(tmp_path):
    with FakeTelegram(TOKEN) as telegram:
        result = run(
            tmp_path, "telegram", "set-webhook", extra_env=telegram_env(telegram, "http://127.0.0.1:8000")
        )
    assert result.returncode == 2
    assert "https url must be provided" in result.stderr.lower()


def test_telegram_set_webhook_needs_webhook_mode(tmp_path):
    with FakeTelegram(TOKEN) as telegram:
        env = {**telegram_env(telegram, "https://bot.example"), "SOCIALBOT_TELEGRAM__MODE": "polling"}
        result = run(tmp_path, "telegram", "set-webhook", extra_env=env)
    assert result.returncode == 2 and "polling" in result.stderr
    assert telegram.calls("setWebhook") == []
