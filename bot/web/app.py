"""The HTTP face of socialbot: web chat page and API, platform webhooks, staff console and API, health.

Every route is a module-level handler on its module's `router`; a handler reaches the worker's `Runtime`
through `bot.web.dependencies.RuntimeDep` (the runtime lives on `app.state`), and calls the same service
functions as the command line. `create_app` only assembles: middleware, error handlers, routers.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.middleware.sessions import SessionMiddleware

from bot import __version__
from bot.runtime.container import Runtime
from bot.runtime.logs import install_request_ids
from bot.support.staff import LoginRateLimiter
from bot.web import (
    admin,
    canned,
    chat,
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
from bot.web.platforms import MAX_BODY_BYTES, mount_platform_webhooks

__all__ = ["create_app"]

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
)


class BodySizeLimit:
    """Refuses a request whose declared body is over MAX_BODY_BYTES before any of it is read (plain ASGI:
    Starlette's `BaseHTTPMiddleware` costs about a millisecond per request)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                refusal = JSONResponse(
                    {"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(runtime: Runtime) -> FastAPI:
    """Build the web application around an already built `Runtime`."""
    settings = runtime.settings
    app = FastAPI(title=f"socialbot - {settings.brand.name}", version=__version__)
    app.state.runtime = runtime
    app.state.login_limiter = LoginRateLimiter(
        settings.console.login_attempts, settings.console.login_window_seconds
    )
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    install_error_handlers(app)
    secret = settings.secret_key.get_secret_value() if settings.secret_key else None
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(secret),
        session_cookie="socialbot_session",
        max_age=settings.console.session_max_age_seconds,
        same_site="lax",
        https_only=settings.console.secure_cookies,
    )
    install_request_ids(app)
    app.add_middleware(BodySizeLimit)
    for router in ROUTERS:
        app.include_router(router)
    mount_platform_webhooks(app, runtime)
    return app
