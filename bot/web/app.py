"""The HTTP face of socialbot: web chat page and API, platform webhooks, staff console and API, health.

Every route is a module-level handler on its module's `router`; a handler reaches the worker's `Runtime`
through `bot.web.dependencies.RuntimeDep` (the runtime lives on `app.state`), and calls the same service
functions as the command line. `create_app` only assembles: middleware, error handlers, routers.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from bot import __version__
from bot.runtime.container import Runtime
from bot.runtime.logs import install_request_ids
from bot.web import (
    admin,
    canned,
    chat,
    chat_typing,
    console,
    contacts_api,
    insights,
    live,
    moderation,
    operations,
    staff_api,
    webhooks_console,
)
from bot.web.auth import session_secret
from bot.web.errors import install_error_handlers
from bot.web.pages import STATIC_DIR
from bot.web.platforms import mount_platform_webhooks
from bot.web.security_headers import SecurityHeaders

__all__ = ["MAX_BODY_BYTES", "create_app"]

#: The largest request body any route takes, in bytes (a web chat message, a platform's delivery).
MAX_BODY_BYTES = 1_000_000

ROUTERS = (
    chat.router,
    console.router,
    live.router,
    canned.router,
    staff_api.router,
    operations.router,
    contacts_api.router,
    insights.router,
    webhooks_console.router,
    admin.router,
    moderation.router,
    chat_typing.router,
)


def create_app(runtime: Runtime) -> FastAPI:
    """Build the web application around an already built `Runtime`."""
    settings = runtime.settings
    # A body over MAX_BODY_BYTES gets 413 while it is read, declared or chunked, on every route.
    docs = settings.server.api_docs  # the interactive API docs and schema, only when asked for
    app = FastAPI(
        title=f"socialbot - {settings.brand.name}",
        version=__version__,
        max_body_size=MAX_BODY_BYTES,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.runtime = runtime
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    install_error_handlers(app)
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(secret),
        session_cookie="socialbot_session",
        max_age=settings.console.session_max_age_seconds,
        same_site="lax",
        https_only=settings.server.https or settings.console.secure_cookies,
    )
    install_request_ids(app)
    app.add_middleware(
        SecurityHeaders, https=settings.server.https, embedders=settings.webchat.allowed_origins
    )
    for router in ROUTERS:
        app.include_router(router)
    mount_platform_webhooks(app, runtime)
    return app
