"""A real `socialbot serve` in a subprocess on loopback, the way an attacker meets it: only its HTTP port.

Tests talk to it with `httpx` from chosen loopback source addresses (`source_address()`: 127.0.0.10,
127.0.0.11, ...), so limits per client address can be tried from "several machines" without leaving the
host. The command line (`cli`) and the database (`sql`) are there to set the scene and to check what an
attack left behind, never to attack.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import free_port

__all__ = ["PASSWORD", "SECRET_KEY", "Served", "ServerDidNotStart", "source_address", "start_server"]

PASSWORD = "correct horse battery staple"
SECRET_KEY = "security-suite-secret-key-0123456789abcdef"
_sources = itertools.count(10)
_sources_lock = threading.Lock()


class ServerDidNotStart(Exception):
    """The server exited or did not answer /readyz in time; the message ends with its log."""


def source_address() -> str:
    """A loopback address no other test has used as its client address (Linux routes all of 127/8 to lo)."""
    with _sources_lock:
        number = next(_sources)
    return f"127.0.{number // 250}.{number % 250 + 2}"


@dataclass
class Served:
    """A running `socialbot serve`: where it listens, its database, and how it was started."""

    port: int
    database_url: str
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen
    log_path: Path
    _engine: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, source: str | None = None, **options: Any) -> httpx.Client:
        """An HTTP client whose requests come from the loopback address `source` (a fresh one by default)."""
        transport = httpx.HTTPTransport(local_address=source or source_address())
        options.setdefault("timeout", 120)
        return httpx.Client(base_url=self.base_url, transport=transport, **options)

    def cli(self, *args: str, stdin: str | None = None, extra_env: dict[str, str] | None = None):
        """Run `socialbot ARGS` against the same settings and database; returns the CompletedProcess."""
        return subprocess.run(
            [sys.executable, "-m", "bot", *args],
            input=stdin,
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env={**self.env, **(extra_env or {})},
            timeout=180,
        )

    def sql(self, query: str, **params: Any) -> list[Any]:
        """Rows of a query on the server's database (what an attack left behind)."""
        with self.engine.connect() as connection:
            return list(connection.execute(text(query), params))

    def execute(self, statement: str, **params: Any) -> None:
        """Write to the server's database in one transaction (to set a scene the API would refuse)."""
        with self.engine.begin() as connection:
            connection.execute(text(statement), params)

    @property
    def engine(self) -> Any:
        if self._engine is None:
            self._engine = create_engine(self.database_url)
        return self._engine

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then wait (kill after a minute)."""
        if self._engine is not None:
            self._engine.dispose()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    workdir: Path,
    *,
    caches: Path,
    env: dict[str, str],
    database_url: str | None = None,
    workers: int = 1,
    staff: dict[str, str] | None = None,
    timeout: float = 600,
) -> Served:
    """Start `socialbot serve` on a free loopback port and wait until every worker is ready.

    Args:
        workdir: its working folder (its log and, by default, its SQLite database go there).
        caches: a data folder shared by the servers of a test session, so the encoder is exported once.
        env: `SOCIALBOT_*` settings on top of the defaults below.
        database_url: the database; default a SQLite file in `workdir`.
        workers: `--workers`.
        staff: e-mail -> role of staff accounts to create first (password `PASSWORD`).

    Raises:
        ServerDidNotStart: with the end of the server's log.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    database_url = database_url or f"sqlite:///{workdir / 'socialbot.sqlite3'}"
    full_env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "SOCIALBOT_DATA__DIR": str(caches),
        "SOCIALBOT_DATABASE__URL": database_url,
        "SOCIALBOT_INTENTS__THREADS": "1",
        "SOCIALBOT_KNOWLEDGE__REFRESH_SECONDS": "0",
        "SOCIALBOT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "SOCIALBOT_FOLLOWUPS__QUIET_HOURS_START": "00:00",
        "SOCIALBOT_FOLLOWUPS__QUIET_HOURS_END": "00:00",
        **env,
    }
    full_env.pop("SOCIALBOT_CONFIG", None)
    log_path = workdir / "serve.log"
    served = Served(port, database_url, full_env, workdir, None, log_path)  # type: ignore[arg-type]
    for email, role in (staff or {}).items():
        added = served.cli("staff", "add", email, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
        if added.returncode != 0:
            raise ServerDidNotStart(f"staff add {email}: {added.stderr}")
    with log_path.open("w") as log:
        served.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--workers", str(workers), "--port", str(port)],
            cwd=workdir,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while in_a_row < 3 * workers:  # several answers in a row: every worker is up
        if served.process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise ServerDidNotStart(f"exit code {served.process.poll()}; log:\n{served.log()[-4000:]}")
        try:
            ready = httpx.get(f"{served.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            ready = False
        in_a_row = in_a_row + 1 if ready else 0
        time.sleep(0.3)
    return served
