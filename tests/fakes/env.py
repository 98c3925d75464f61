"""The environment that points `socialbot serve` (a child process) at the fake platforms: their settings as
SOCIALBOT_* variables."""

from __future__ import annotations

from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import FakeTelegram

__all__ = ["slack_env", "telegram_env"]


def slack_env(slack: FakeSlack, signing_secret: str) -> dict[str, str]:
    """Slack on, over HTTP events signed with `signing_secret`, its Web API at the fake."""
    return {
        "SOCIALBOT_SLACK__ENABLED": "true",
        "SOCIALBOT_SLACK__BOT_TOKEN": slack.bot_token,
        "SOCIALBOT_SLACK__SIGNING_SECRET": signing_secret,
        "SOCIALBOT_SLACK__API_BASE_URL": slack.api_base_url,
    }


def telegram_env(telegram: FakeTelegram, webhook_secret: str) -> dict[str, str]:
    """Telegram on, by webhook with `webhook_secret`, its Bot API at the fake."""
    return {
        "SOCIALBOT_TELEGRAM__ENABLED": "true",
        "SOCIALBOT_TELEGRAM__TOKEN": telegram.token,
        "SOCIALBOT_TELEGRAM__WEBHOOK_SECRET": webhook_secret,
        "SOCIALBOT_TELEGRAM__API_BASE_URL": telegram.api_base_url,
    }
