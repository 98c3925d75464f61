"""Running socialbot as one or many worker processes that share nothing but the database.

A worker is a `Runtime` (models, engine, channels), its scheduled jobs (outbox, follow-ups, recovery) and, on
PostgreSQL, its bids for the pollers' advisory locks, with the web app in front. `serve_workers` migrates the
database once and starts N of them under uvicorn (each builds its own worker through `create_worker_app`, an
import-string factory). All work that must happen once is claimed in the database, so workers can also be
started separately behind any load balancer.

Shutdown (SIGTERM or Ctrl-C): uvicorn stops accepting requests and finishes the ones in flight; then the
worker stops taking new work (`runtime.stopping`: `/readyz` says 503, the outbox job releases rows it
claimed but did not start), waits for the jobs and background pipeline work in hand, gives up its poller
locks and exits.
Anything a killed worker held is taken over by others when its claim expires.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from fastapi import FastAPI
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bot.crm.db import upgrade_database
from bot.pipeline.inbound import recover_unprocessed
from bot.runtime.container import Runtime
from bot.runtime.logs import configure_logging
from bot.runtime.settings import CONFIG_ENV, SECRET_KEY_ENV, Settings, SettingsError, load_settings
from bot.web.app import create_app
from bot.worker.build import build_runtime
from bot.worker.scheduler import start_scheduler
from intents.encoder import onnx_precision

__all__ = [
    "Worker",
    "WorkersNeedServerDatabase",
    "app_for",
    "check_workers",
    "create_worker_app",
    "database_error",
    "listen_options",
    "serve_workers",
    "start_worker",
]

log = logging.getLogger("socialbot.workers")

WORKER_APP = "bot.worker.serve:create_worker_app"


class WorkersNeedServerDatabase(SettingsError):
    """More than one worker was asked for on SQLite, which one process must own."""


@dataclass
class Worker:
    """A started worker: its runtime and its scheduled jobs."""

    runtime: Runtime
    scheduler: BackgroundScheduler

    def stop(self) -> None:
        """Stop taking new work, finish or release what is held, then close the runtime."""
        self.runtime.stopping.set()
        self.scheduler.shutdown(wait=True)
        self.runtime.close()
        log.info("worker %s stopped", os.getpid())


# glibc's mallopt parameter for the number of malloc arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
WORKER_MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Let the worker's threads share WORKER_MALLOC_ARENAS malloc arenas instead of glibc's default of up to
    8 a core: each arena keeps the memory its threads freed, and a worker runs dozens of threads (the web
    server's, the encoder's, the scheduler's). Measured on the 2-core machine, a worker after 400 web chat
    messages (one at a time, then 8 clients): peak RSS 332 MB without, 271-301 MB with (runs vary by ~20 MB).
    Call before threads start. A MALLOC_ARENA_MAX set by the operator wins; other C libraries: no change."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, WORKER_MALLOC_ARENAS)
    except (OSError, AttributeError):
        return  # not glibc


def start_worker(settings: Settings, *, runtime: Runtime | None = None, migrate: bool = True) -> Worker:
    """Build (or take) the runtime, finish messages interrupted by an earlier stop, start the jobs and the
    pollers (on PostgreSQL only the poller whose lock this worker wins)."""
    runtime = runtime or build_runtime(settings, migrate=migrate)
    recover_unprocessed(runtime, older_than_seconds=0)
    scheduler = start_scheduler(runtime)
    runtime.start_channels()
    return Worker(runtime, scheduler)


def app_for(worker: Worker) -> FastAPI:
    """The web app of `worker`, which stops the worker when the server shuts down."""
    app = create_app(worker.runtime)
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: FastAPI) -> AsyncIterator[object]:
        async with inner(application) as state:
            yield state
        worker.stop()

    app.router.lifespan_context = lifespan
    return app


def create_worker_app() -> FastAPI:
    """The uvicorn factory each worker process calls: settings from `SOCIALBOT_CONFIG` and the environment,
    the database already migrated by the parent."""
    limit_malloc_arenas()
    settings = load_settings()
    configure_logging(settings.logging.format, settings.logging.level)
    worker = start_worker(settings, migrate=False)
    log.info("worker %s ready", os.getpid())
    return app_for(worker)


def check_workers(settings: Settings, workers: int) -> None:
    """Raise `WorkersNeedServerDatabase` for several workers on SQLite (a clear one-line error)."""
    if workers < 1:
        raise SettingsError(f"--workers {workers}: must be 1 or more")
    if workers > 1 and make_url(settings.database_url).get_backend_name() == "sqlite":
        raise WorkersNeedServerDatabase(
            f"--workers {workers} needs a server database shared by the workers; set [database] url to "
            "postgresql+psycopg://... (SOCIALBOT_DATABASE__URL); SQLite runs one worker"
        )


def listen_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for where to listen and which proxies' forwarded headers to believe."""
    return {
        "host": settings.server.host,
        "port": settings.server.port,
        "proxy_headers": True,
        "forwarded_allow_ips": ",".join(settings.server.trusted_proxies) or "",
    }


def database_error(settings: Settings, error: OperationalError) -> str:
    """One line for a database that can't be reached or used at start-up (no password in it)."""
    reason = str(error.orig or error).strip().splitlines()[0]
    return f"database {settings.database_url_for_display}: {reason}"


def serve_workers(
    settings: Settings, *, workers: int, config: Path | None = None, banner: str | None = None
) -> None:
    """Migrate the database once, then serve on [server] host:port with `workers` processes, each building
    its own worker (`create_worker_app`) from the same settings file and environment.

    Raises:
        SettingsError: several workers on SQLite, or a bad worker count.
    """
    import uvicorn

    check_workers(settings, workers)
    upgrade_database(settings.database_url)
    if settings.secret_key is None:
        # Every worker must sign and check staff sessions with the same key.
        log.warning(
            "SOCIALBOT_SECRET_KEY is not set: the workers share a random key made now; staff sessions end at "
            "restart, and workers started by another command won't accept them"
        )
        os.environ[SECRET_KEY_ENV] = secrets.token_urlsafe(32)
    precision = onnx_precision(settings.intents.backend)
    if precision == "fp32":  # export once here, not once per worker at the same moment (int8 is shipped)
        from intents.encoder import reference_model_path
        from intents.onnx_encoder import ensure_exported

        weights = reference_model_path(settings.intents.variant)
        ensure_exported(settings.data.onnx_cache_dir, weights, precision=precision)
    if config is not None:
        os.environ[CONFIG_ENV] = str(Path(config).resolve())
    metrics_dir = Path(tempfile.mkdtemp(prefix="socialbot-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # /metrics sums every worker's counters
    if banner:
        print(banner, flush=True)
    try:
        uvicorn.run(
            WORKER_APP,
            factory=True,
            workers=workers,
            **listen_options(settings),
            log_level="info",
            log_config=None,
            timeout_graceful_shutdown=30,
            # uvicorn kills a worker that doesn't answer its health ping in time; a busy worker encoding on a
            # saturated CPU can take seconds, and killing it would cut its requests off.
            timeout_worker_healthcheck=60,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
