"""Settings: `settings.toml` (or the file in `SOCIALBOT_CONFIG` / `--config`), overridden by the environment.

Every key can be overridden by `SOCIALBOT_<SECTION>__<KEY>`, e.g. `SOCIALBOT_DATABASE__URL`. Secrets (tokens,
signing secrets, passwords) are read from the environment only: a secret written in the TOML file is refused,
so it can't end up in version control.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from bot.policy.routing import DEFAULT_ROUTES, Action

__all__ = ["HEX_COLOR_PATTERN", "MAX_GREETING_CHARS", "Settings", "SettingsError", "load_settings"]

ENV_PREFIX = "SOCIALBOT_"
CONFIG_ENV = "SOCIALBOT_CONFIG"
SECRET_KEY_ENV = "SOCIALBOT_SECRET_KEY"
DEFAULT_CONFIG = Path("settings.toml")


MIN_SECRET_KEY_LENGTH = 32
DATABASE_BACKENDS = ("sqlite", "postgresql")
#: A brand colour: #rgb or #rrggbb (the only form the chat page and the widget take).
HEX_COLOR_PATTERN = r"^#(?:[0-9a-fA-F]{3}){1,2}$"
#: The longest chat greeting, in characters.
MAX_GREETING_CHARS = 200
_DATABASE_URL_FORMS = "postgresql+psycopg://user@host/database or sqlite:///path/to/file.sqlite3"


class SettingsError(Exception):
    """The settings are wrong; the message names the setting and says what is wrong (one line)."""


def database_backend(url: str) -> str:
    """The backend ("sqlite" or "postgresql") of a database URL SQLAlchemy can use.

    Raises:
        ValueError: the URL is malformed, names another database, or its driver is not installed.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(f"not a database URL; use {_DATABASE_URL_FORMS}") from None
    backend = parsed.get_backend_name()
    if backend not in DATABASE_BACKENDS:
        raise ValueError(f"{backend!r} is not a supported database; use {_DATABASE_URL_FORMS}")
    try:
        parsed.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"no database driver {parsed.drivername!r}; use {_DATABASE_URL_FORMS}") from None
    return backend


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BrandSettings(_Section):
    name: str = "Fernhill Outdoor"
    # Handles customers use to address the brand, without "@"; the brand's own posts are never answered.
    handles: list[str] = Field(default_factory=lambda: ["fernhill"])
    website: str = "https://fernhill.example"
    support_hours: str = "Monday to Friday, 9:00-18:00 CET"
    # How long a person usually takes to answer an escalated conversation, said to the customer.
    human_reply_estimate: str = "within a few hours"
    # The language the bot answers in when it has nothing in the customer's (ISO 639-1).
    default_language: str = Field(default="en", pattern=r"^[a-z]{2,3}$")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # Where customers and staff reach the server; when it is https, cookies are sent only over https.
    public_url: str = "http://127.0.0.1:8000"
    # Addresses of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (the client address
    # the limits count comes from there); "*" trusts any, which is only right behind a proxy on a private net.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1"])
    # Secret, from the environment: SOCIALBOT_SERVER__METRICS_TOKEN. /metrics answers a request carrying
    # "Authorization: Bearer <token>"; without a token set, /metrics is off.
    metrics_token: SecretStr | None = None
    # Serve the interactive API docs at /docs and /redoc (and the schema at /openapi.json).
    api_docs: bool = False

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return url.rstrip("/")

    @property
    def https(self) -> bool:
        """Whether the public URL is https (cookies are then Secure and HSTS is sent)."""
        return self.public_url.startswith("https://")


class DatabaseSettings(_Section):
    # Empty means a SQLite file `socialbot.sqlite3` inside [data] dir. A password belongs in the environment
    # (SOCIALBOT_DATABASE__URL) or in ~/.pgpass, never in the settings file.
    url: str = ""
    echo: bool = False
    # Seconds a SQLite writer waits for a lock before the request fails with 503.
    busy_timeout_seconds: float = Field(default=5.0, gt=0)
    # Connection pool of each worker process (PostgreSQL; SQLite ignores these): connections kept open, extra
    # ones allowed at peaks, seconds to wait for a free one (then 503), seconds after which one is replaced.
    pool_size: int = Field(default=5, ge=1)
    max_overflow: int = Field(default=10, ge=0)
    pool_timeout_seconds: float = Field(default=10.0, gt=0)
    pool_recycle_seconds: int = Field(default=1800, ge=-1)

    @field_validator("url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        if url:
            database_backend(url)
        return url


class LoggingSettings(_Section):
    # "text" for a terminal; "json": one JSON object per line with request_id / message_id, for log pipelines.
    format: Literal["text", "json"] = "text"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class DataSettings(_Section):
    dir: Path = Path("data")

    @property
    def onnx_cache_dir(self) -> Path:
        """Where the ONNX exports of the encoder are kept."""
        return self.dir / "cache" / "onnx"

    def heads_versions_dir(self, variant: str = "default") -> Path:
        """Where `socialbot intents train --from-crm` installs versions of a model variant's heads
        (intents/versions.py): `heads`, or `heads-<variant>` for a variant other than the default."""
        return self.dir / ("heads" if variant == "default" else f"heads-{variant}")


class IntentsSettings(_Section):
    # Folder of heads from `socialbot intents train --out DIR`, pinned; empty = the version the learning loop
    # made active (`socialbot intents heads list`), else the heads shipped in the package.
    heads_dir: Path | None = None
    # Threads for one encoder call (torch or ONNX Runtime); 0 = one per core.
    threads: int = Field(default=0, ge=0)
    # "onnx" (the default, shipped in intents/model: the weights exported to ONNX with 8-bit weights, the
    # vectors the heads are trained on), "onnx-fp32" (the export unquantised: torch's vectors; exported once
    # into <data dir>/cache/onnx on first start) or "torch" (the reference, fp32); the last two need the
    # train extra (PyTorch).
    backend: Literal["torch", "onnx", "onnx-fp32"] = "onnx"
    # The model variant (intents.encoder.VARIANTS): "default" (the fine-tuned encoder; its training data
    # includes non-commercial and unlicensed sets) or "permissive" (the original all-MiniLM-L6-v2,
    # Apache-2.0, with heads trained on permissively licensed data only). Everything model-dependent follows
    # it: the heads, the learning loop's versions, the answer threshold, idea grouping, the knowledge index.
    variant: Literal["default", "permissive"] = "default"
    # Messages analysed at the same moment are encoded in one batch of at most batch_max: those that queued
    # while the previous batch was encoded, plus any arriving within batch_wait_ms (0: no waiting, the
    # default; a wait only pays when the encoder, not the database, is the bottleneck).
    batch_max: int = Field(default=32, ge=1, le=256)
    batch_wait_ms: float = Field(default=0.0, ge=0, le=100)


class KnowledgeSettings(_Section):
    # Folder of Markdown articles; empty = the sample brand's knowledge base shipped with socialbot.
    dir: Path | None = None
    # Score below which the bot says "I don't know" and escalates; empty = the calibrated default, or the one
    # the learning loop recalibrated from right / wrong marks (bot/insights/answer_threshold.py). Set: pinned.
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)
    # What to do with an article whose front matter is invalid: stop start-up ("fail") or skip it ("skip").
    on_invalid: Literal["fail", "skip"] = "fail"
    # Seconds between checks for changed articles; 0 = only on `socialbot knowledge reindex` or restart.
    refresh_seconds: float = Field(default=30.0, ge=0)


class PolicySettings(_Section):
    # What the bot does per intent; the actions and the defaults are in bot/policy/routing.py.
    # intent (or "abusive", "wants_human") -> action, e.g. routes = { other = "ignore" }.
    routes: dict[str, Action] = Field(default_factory=dict)
    # Extra or replacement templates of everything the bot says (Jinja2), by name; see bot/policy/templates.py
    # for the defaults and the variables each is given.
    templates: dict[str, str] = Field(default_factory=dict)
    # The same per language (ISO 639-1), e.g. templates_by_language = { fr = { praise = "Merci !" } };
    # a template missing in a language falls back to `templates`.
    templates_by_language: dict[str, dict[str, str]] = Field(default_factory=dict)

    @field_validator("routes")
    @classmethod
    def _known_intents(cls, routes: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(routes) - set(DEFAULT_ROUTES))
        if unknown:
            raise ValueError(f"unknown intent(s) {', '.join(unknown)}; known: {', '.join(DEFAULT_ROUTES)}")
        return routes


class WebchatSettings(_Section):
    enabled: bool = True
    # Longest message accepted from the web chat, in characters; longer ones get 413.
    max_text_chars: int = Field(default=4000, ge=1, le=100_000)
    # Messages one client address may send per minute, over all its chat sessions (429 with Retry-After
    # beyond; the model never runs for them). 0 = no limit.
    messages_per_minute_per_ip: int = Field(default=30, ge=0)
    # The chat's brand colour (#rgb or #rrggbb) and first line, on the page and in the embedded widget (a
    # widget's data-color / data-greeting override them on that site).
    color: str = Field(default="#2f6b4f", pattern=HEX_COLOR_PATTERN)
    greeting: str = Field(
        default="Hi! Ask us about orders, delivery, returns, payments or your account.",
        min_length=1,
        max_length=MAX_GREETING_CHARS,
    )
    # Sites that may show the chat in the embedded widget (its frame's CSP frame-ancestors), as origins like
    # "https://www.fernhill.example"; none by default: only socialbot's own pages may frame it.
    allowed_origins: list[str] = Field(default_factory=list)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.hostname
                or parts.path not in ("", "/")
                or parts.query
                or parts.fragment
                or parts.username
            ):
                raise ValueError(
                    f"{origin!r} is not an origin (scheme://host[:port], e.g. https://shop.example)"
                )
        return [origin.rstrip("/") for origin in origins]


class HandoffSettings(_Section):
    # Who owns a resolved conversation when the customer writes in it again: the bot, or the person who had
    # it ("assignee": it goes back to them, silently for the bot).
    reopen_to: Literal["bot", "assignee"] = "bot"


class SupportSettings(_Section):
    # How soon a person should answer a conversation handed to staff (the service-level target the dashboard
    # counts breaches of): seconds, "HH:MM:SS" or ISO 8601 ("PT4H").
    first_response_target: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))


class InsightsSettings(_Section):
    # A complaint topic spikes when today it has at least spike_min_complaints complaints and spike_ratio
    # times its daily average over the previous spike_baseline_days days; each spike is alerted once (Slack
    # support channel, webhook event complaints.spike). Checked every spike_check_minutes (0 = never).
    spike_ratio: float = Field(default=3.0, gt=1.0)
    spike_min_complaints: int = Field(default=5, ge=2)
    spike_baseline_days: int = Field(default=28, ge=7, le=365)
    spike_check_minutes: float = Field(default=15.0, ge=0)
    # The weekly digest: an HTML e-mail with the dashboard's last 7 days as charts (bot/insights/digest.py),
    # sent over [email]'s SMTP server to these addresses (none: no digest) once a week, on digest_weekday
    # from digest_hour o'clock UTC.
    digest_recipients: list[str] = Field(default_factory=list)
    digest_weekday: Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"] = (
        "monday"
    )
    digest_hour: int = Field(default=8, ge=0, le=23)

    @field_validator("digest_recipients")
    @classmethod
    def _addresses(cls, addresses: list[str]) -> list[str]:
        from email_validator import EmailNotValidError, validate_email

        checked = []
        for address in addresses:
            try:
                checked.append(validate_email(address.strip(), check_deliverability=False).normalized)
            except EmailNotValidError as error:
                raise ValueError(f"{address!r} is not an e-mail address ({error})") from None
        return checked


class ConsoleSettings(_Section):
    # How long a staff login lasts without activity, in seconds.
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    # Login attempts allowed per account from one client address, and in all from one client address, in
    # `login_window_seconds` (a successful login does not count). An attempt is counted before the password
    # is checked, so parallel tries can't slip past; the owner logging in from elsewhere is never locked out.
    login_attempts: int = Field(default=5, ge=1)
    login_attempts_per_ip: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=300, ge=1)
    # Send the session cookie only over HTTPS even when public_url is http (e.g. TLS ends before a proxy
    # that rewrites the URL); with an https public_url cookies are Secure anyway.
    secure_cookies: bool = False


class SlackSettings(_Section):
    enabled: bool = False
    # Secrets, from the environment: SOCIALBOT_SLACK__BOT_TOKEN (xoxb-...), SOCIALBOT_SLACK__SIGNING_SECRET,
    # and for Socket Mode SOCIALBOT_SLACK__APP_TOKEN (xapp-...).
    bot_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    app_token: SecretStr | None = None
    # Receive events over a WebSocket (Socket Mode) instead of at POST /slack/events.
    socket_mode: bool = False
    # Channel id (C... or G..., not the #name) where escalations are posted for staff; empty = none.
    support_channel: str = ""
    # Slack's Web API base; point it at a local server for tests or staging.
    api_base_url: str = "https://slack.com/api/"

    @field_validator("support_channel")
    @classmethod
    def _channel_id(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(r"[CG][A-Z0-9]{2,}", value):
            raise ValueError(f"{value!r} is not a channel id: use the C... id from the channel's details")
        return value


class TelegramSettings(_Section):
    enabled: bool = False
    # Secrets, from the environment: SOCIALBOT_TELEGRAM__TOKEN, SOCIALBOT_TELEGRAM__WEBHOOK_SECRET.
    token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    # "webhook": Telegram posts updates to POST /telegram/webhook; "polling": we ask with getUpdates.
    mode: Literal["webhook", "polling"] = "webhook"
    # The Bot API base the token is appended to.
    api_base_url: str = "https://api.telegram.org/bot"


class TwitterSettings(_Section):
    enabled: bool = False
    # Secrets, from the environment: SOCIALBOT_TWITTER__BEARER_TOKEN (reading) and the four OAuth 1.0a user
    # keys SOCIALBOT_TWITTER__CONSUMER_KEY / __CONSUMER_SECRET / __ACCESS_TOKEN / __ACCESS_TOKEN_SECRET
    # (posting replies as the brand account).
    bearer_token: SecretStr | None = None
    consumer_key: SecretStr | None = None
    consumer_secret: SecretStr | None = None
    access_token: SecretStr | None = None
    access_token_secret: SecretStr | None = None
    # The brand account's numeric user id, whose mentions are polled.
    user_id: str = ""
    # Brand listening: posts matching these are logged as unsolicited mentions and never answered.
    keywords: list[str] = Field(default_factory=list)
    poll_interval_seconds: float = Field(default=60.0, gt=0)
    api_base_url: str = "https://api.twitter.com"


class EmailSettings(_Section):
    enabled: bool = False
    # The mailbox's login (its address, usually), for IMAP and SMTP alike.
    username: str = ""
    # Where mail comes from: an IMAP mailbox (empty imap_host: only what the provider posts to
    # POST /email/inbound). imap_user defaults to username.
    imap_host: str = ""
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user: str = ""
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_folder: str = "INBOX"
    # Processed mails are flagged; with a folder name here they are also moved there (created if missing).
    imap_processed_folder: str = ""
    # Servers without IDLE are polled this often.
    imap_poll_seconds: float = Field(default=60.0, gt=0)
    # Where mail goes out (follow-ups, verification codes, replies).
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=587, ge=1, le=65535)
    # starttls (port 587) | tls (port 465) | none (a relay on the same machine only).
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    # The address mails come from; empty: username.
    from_address: str = ""
    # Under every mail; empty: the brand's name and website.
    signature: str = ""
    # Senders are verified only when vouched for: the authserv-id (first word of Authentication-Results) of
    # the receiving mail server whose DKIM/DMARC verdict is trusted, e.g. "mx.google.com" for Google
    # Workspace; empty trusts none. verify_dkim also checks DKIM signatures here (DNS lookups per mail).
    trusted_authserv_id: str = ""
    verify_dkim: bool = False
    # Secrets, from the environment: SOCIALBOT_EMAIL__PASSWORD (the mailbox password, SMTP and IMAP),
    # SOCIALBOT_EMAIL__IMAP_PASSWORD (only if IMAP's differs) and SOCIALBOT_EMAIL__INBOUND_SECRET (the shared
    # secret a provider sends to POST /email/inbound; without it that route refuses every delivery).
    password: SecretStr | None = None
    imap_password: SecretStr | None = None
    inbound_secret: SecretStr | None = None

    @property
    def sender_address(self) -> str:
        """The address mails come from."""
        return (self.from_address or self.username).strip().lower()


class FollowupSettings(_Section):
    # Hours after a complaint is resolved until "did that fix it?" (with the 1-5 rating question).
    resolved_delay_hours: float = Field(default=24.0, ge=0)
    # Hours after an idea's status changes until the customer is told.
    idea_delay_hours: float = Field(default=0.0, ge=0)
    # Remind staff when an escalated conversation has had no staff answer for this many hours (0 = never).
    staff_reminder_hours: float = Field(default=4.0, ge=0)
    # No message to customers between these local times (HH:MM; equal = no quiet hours); due ones wait.
    quiet_hours_start: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_hours_end: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    timezone: str = "Europe/London"
    # Days a rating reply (1-5) is accepted after the question was sent.
    csat_window_days: float = Field(default=7.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (an IANA name like Europe/London)") from None
        return name


class ModerationSettings(_Section):
    # Flame-war guard: this many abusive or strongly negative messages in one public thread within the window
    # escalate the whole thread to a person and pause the bot there (0 = off).
    flame_war_messages: int = Field(default=3, ge=0)
    flame_war_window_seconds: float = Field(default=300.0, gt=0)
    # A negative message counts toward a flame war when the sentiment head is at least this sure.
    strongly_negative_confidence: float = Field(default=0.9, ge=0, le=1)
    # Days a moderator's "block author" keeps the bot silent toward that contact.
    block_days: float = Field(default=7.0, gt=0)


class DataRightsSettings(_Section):
    # Fulfil a verified customer's "what do you know about me" / "delete my data" at once (else staff do).
    auto_fulfil: bool = False
    # Days message text is kept; older text is replaced by a marker, rows and counts stay (0 = keep forever).
    retention_days: int = Field(default=0, ge=0)


class LanguagesSettings(_Section):
    # A message in a language the brand has no articles or templates in: "answer_in_default" (answer in
    # [brand] default_language and say so) or "escalate" (hand it to a person).
    on_unsupported: Literal["answer_in_default", "escalate"] = "answer_in_default"
    # Languages the brand answers in besides default_language (ISO 639-1); more are detected anyway.
    supported: list[str] = Field(default_factory=list)


class VerificationSettings(_Section):
    # Confirmation codes mailed to one e-mail address per hour, whoever asks (a stranger's address can't be
    # flooded from many anonymous chats), and asked for from one client address per hour (web chat).
    codes_per_address_per_hour: int = Field(default=3, ge=1)
    codes_per_ip_per_hour: int = Field(default=10, ge=1)


class WebhooksSettings(_Section):
    # Seconds a receiver has to answer one delivery; slower counts as a failure and is retried.
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    # Attempts per event and endpoint before the delivery is marked failed (backoff doubles from base to cap).
    max_attempts: int = Field(default=8, ge=1)
    backoff_base_seconds: float = Field(default=10.0, gt=0)
    backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    # Failed attempts in a row after which an endpoint is disabled until an admin enables it again.
    disable_after_failures: int = Field(default=20, ge=1)
    # Endpoints must be on the public internet: loopback, private, link-local, CGNAT, multicast and the
    # like are refused. Networks listed here (CIDR, e.g. "10.20.0.0/16" for an internal helpdesk) are
    # allowed anyway.
    allowed_networks: list[str] = Field(default_factory=list)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network (CIDR, e.g. 10.20.0.0/16)") from None
        return networks


class Settings(BaseSettings):
    """All of socialbot's settings. Build it with `load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=None,
    )

    brand: BrandSettings = Field(default_factory=BrandSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    intents: IntentsSettings = Field(default_factory=IntentsSettings)
    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    webchat: WebchatSettings = Field(default_factory=WebchatSettings)
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)
    support: SupportSettings = Field(default_factory=SupportSettings)
    insights: InsightsSettings = Field(default_factory=InsightsSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    twitter: TwitterSettings = Field(default_factory=TwitterSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    followups: FollowupSettings = Field(default_factory=FollowupSettings)
    moderation: ModerationSettings = Field(default_factory=ModerationSettings)
    data_rights: DataRightsSettings = Field(default_factory=DataRightsSettings)
    languages: LanguagesSettings = Field(default_factory=LanguagesSettings)
    verification: VerificationSettings = Field(default_factory=VerificationSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    # Secret, environment only: SOCIALBOT_SECRET_KEY signs staff sessions and unsubscribe links. At least
    # 32 characters, and the same for every worker; unset, each `serve` makes a random one (sessions end
    # at restart).
    secret_key: SecretStr | None = None

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None and key.get_secret_value() and len(key.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_SECRET_KEY_LENGTH} characters (e.g. python -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return key

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _CURRENT_TOML.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, with the embedded SQLite default filled in."""
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.data.dir / 'socialbot.sqlite3').resolve()}"

    @property
    def database_url_for_display(self) -> str:
        """The database URL with any password masked, for logs and messages."""
        from sqlalchemy.engine import make_url

        return make_url(self.database_url).render_as_string(hide_password=True)


# Names of keys that hold secrets: refused in the TOML file, accepted from the environment.
SECRET_KEYS = {
    "secret_key",
    "token",
    "bot_token",
    "signing_secret",
    "webhook_secret",
    "password",
    "bearer_token",
    "consumer_key",
    "consumer_secret",
    "access_token",
    "access_token_secret",
    "app_token",
    "inbound_secret",
    "metrics_token",
}

_CURRENT_TOML: dict[str, Path | None] = {"path": None}


def _config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        if not explicit.is_file():
            raise SettingsError(f"config file {explicit}: not found")
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise SettingsError(f"{CONFIG_ENV}={from_env}: no such file")
        return path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _check_no_secrets_in_file(path: Path) -> None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SettingsError(f"config file {path}: not valid TOML: {error}") from error

    def walk(node: dict[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(value, name)
            elif key in SECRET_KEYS and value not in ("", None):
                env = ENV_PREFIX + name.upper().replace(".", "__")
                raise SettingsError(
                    f"{path}: {name} is a secret; remove it from the file and set {env} in the environment"
                )
            elif name == "database.url" and isinstance(value, str) and _has_password(value):
                raise SettingsError(
                    f"{path}: database.url carries a password; remove the URL from the file and set "
                    f"{ENV_PREFIX}DATABASE__URL in the environment (or keep the password in ~/.pgpass)"
                )

    walk(document, "")


def _has_password(url: str) -> bool:
    try:
        return bool(make_url(url).password)
    except (ArgumentError, ValueError):
        return False  # not a URL: the setting's own check says so


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "settings"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    elif first["type"] == "value_error":
        message = str(first["ctx"]["error"])
    return f"setting {location}: {message} (env {ENV_PREFIX}{location.upper().replace('.', '__')})"


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings file and the environment.

    Args:
        config: the TOML file; else `SOCIALBOT_CONFIG`; else `./settings.toml` if present; else defaults.
        overrides: values that win over both (used by tests and the CLI).

    Raises:
        SettingsError: one line naming the wrong setting and what is wrong.
    """
    path = _config_path(config)
    if path is not None:
        _check_no_secrets_in_file(path)
    _CURRENT_TOML["path"] = path
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    finally:
        _CURRENT_TOML["path"] = None
    if path is not None:
        settings = _resolve_relative_paths(settings, path.parent)
    _check_enabled_channels(settings)
    return settings


def _required_secrets(settings: Settings) -> list[str]:
    """The `section.key` secrets each enabled channel needs."""
    needed = []
    if settings.slack.enabled:
        needed.append("slack.bot_token")
        needed.append("slack.app_token" if settings.slack.socket_mode else "slack.signing_secret")
    if settings.telegram.enabled:
        needed.append("telegram.token")
        if settings.telegram.mode == "webhook":
            needed.append("telegram.webhook_secret")
    if settings.twitter.enabled:
        needed += [
            f"twitter.{key}"
            for key in (
                "bearer_token",
                "consumer_key",
                "consumer_secret",
                "access_token",
                "access_token_secret",
            )
        ]
    return needed


def _check_enabled_channels(settings: Settings) -> None:
    for name in _required_secrets(settings):
        section, key = name.split(".")
        value = getattr(getattr(settings, section), key)
        if value is None or not value.get_secret_value():
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            raise SettingsError(f"setting {name}: required when {section}.enabled is true; set {env}")
    if settings.email.enabled:
        _check_email(settings)
    if settings.insights.digest_recipients and "@" not in settings.email.sender_address:
        raise SettingsError(
            "setting email.from_address: the weekly digest (insights.digest_recipients) is sent from it; env "
            f"{ENV_PREFIX}EMAIL__FROM_ADDRESS"
        )
    if settings.twitter.enabled and not settings.twitter.user_id.isdigit():
        raise SettingsError(
            "setting twitter.user_id: the brand account's numeric user id is required when twitter.enabled "
            f"is true (env {ENV_PREFIX}TWITTER__USER_ID)"
        )


def _check_email(settings: Settings) -> None:
    email = settings.email
    if email.imap_host:
        if not (email.imap_user or email.username):
            raise SettingsError(
                f"setting email.imap_user: required with email.imap_host (or email.username); env "
                f"{ENV_PREFIX}EMAIL__IMAP_USER"
            )
        if not any(secret and secret.get_secret_value() for secret in (email.imap_password, email.password)):
            raise SettingsError(
                "setting email.imap_password: required with email.imap_host; set "
                f"{ENV_PREFIX}EMAIL__PASSWORD (the mailbox password) or {ENV_PREFIX}EMAIL__IMAP_PASSWORD"
            )
    elif email.inbound_secret is None or not email.inbound_secret.get_secret_value():
        raise SettingsError(
            "setting email.inbound_secret: required when email.enabled is true without email.imap_host (mail "
            f"then comes only through POST /email/inbound); set {ENV_PREFIX}EMAIL__INBOUND_SECRET"
        )
    if settings.secret_key is None or not settings.secret_key.get_secret_value():
        raise SettingsError(
            "setting secret_key: required when email.enabled is true (it signs the thread ids in our "
            f"Message-IDs and the unsubscribe links); set {ENV_PREFIX}SECRET_KEY"
        )
    if "@" not in email.sender_address:
        raise SettingsError(
            "setting email.from_address: an address is required when email.enabled is true (or a username "
            f"that is one); env {ENV_PREFIX}EMAIL__FROM_ADDRESS"
        )


def _resolve_relative_paths(settings: Settings, base: Path) -> Settings:
    """Paths in the file are relative to the file, not to the working directory."""

    def fix(value: Path | None) -> Path | None:
        if value is None or value.is_absolute() or str(value) == "":
            return value
        return (base / value).resolve()

    return settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"dir": fix(settings.data.dir)}),
            "intents": settings.intents.model_copy(update={"heads_dir": fix(settings.intents.heads_dir)}),
            "knowledge": settings.knowledge.model_copy(update={"dir": fix(settings.knowledge.dir)}),
        }
    )
