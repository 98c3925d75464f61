"""`socialbot channels check` asks each enabled platform who we are, through the real SDKs against fake
platforms, and says which channels are ready and why not (exit 1 when one is not)."""

from __future__ import annotations

from tests.fakes.server import FakeResponse
from tests.fakes.telegram import FakeTelegram
from tests.test_cli import run

TOKEN = "123456:TEST-token"


def telegram_env(fake: FakeTelegram) -> dict[str, str]:
    return {
        "SOCIALBOT_TELEGRAM__ENABLED": "true",
        "SOCIALBOT_TELEGRAM__TOKEN": TOKEN,
        "SOCIALBOT_TELEGRAM__MODE": "polling",
        "SOCIALBOT_TELEGRAM__API_BASE_URL": fake.api_base_url,
    }


def test_a_ready_channel_is_named_with_the_account_the_platform_reports(tmp_path):
    with FakeTelegram(TOKEN) as telegram:
        result = run(tmp_path, "channels", "check", extra_env=telegram_env(telegram))
    assert result.returncode == 0, result.stderr
    assert "telegram: ready - @FernhillBot" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_a_refused_token_is_reported_and_fails_the_check(tmp_path):
    with FakeTelegram(TOKEN) as telegram:
        telegram.fail(
            "getMe", FakeResponse(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        )
        result = run(tmp_path, "channels", "check", extra_env=telegram_env(telegram))
    assert result.returncode == 1
    assert "telegram: NOT ready" in result.stdout
    assert TOKEN not in result.stdout + result.stderr


def test_no_enabled_channel_says_so(tmp_path):
    result = run(tmp_path, "channels", "check")
    assert result.returncode == 0 and "no platform channel is enabled" in result.stdout
