"""Security headers on every answer: a Content-Security-Policy that allows only this site's own scripts,
styles and connections (no inline script or style: templates load static files and pass data in data-*
attributes), no framing by other sites, no MIME sniffing, no Referer to other sites, and HSTS when the
public URL is https."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["EMBEDDABLE_PATHS", "SecurityHeaders", "content_security_policy"]

#: Pages other sites may show in a frame (the embeddable chat widget's page goes here).
EMBEDDABLE_PATHS: frozenset[str] = frozenset()
#: FastAPI's interactive API docs load their script and style from a CDN and start them inline; they are
#: only served when `[server] api_docs` is on.
API_DOCS_PATHS: frozenset[str] = frozenset({"/docs", "/redoc"})
_API_DOCS_SOURCES = "'self' 'unsafe-inline' https://cdn.jsdelivr.net"


def content_security_policy(path: str) -> str:
    """The CSP for the page at `path`."""
    frame_ancestors = "*" if path in EMBEDDABLE_PATHS else "'none'"
    scripts = styles = "'self'"
    if path in API_DOCS_PATHS:
        scripts = styles = _API_DOCS_SOURCES
    return (
        f"default-src 'self'; script-src {scripts}; style-src {styles}; img-src 'self' data:; "
        f"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        f"frame-ancestors {frame_ancestors}"
    )


class SecurityHeaders:
    """Plain ASGI middleware adding the headers to every HTTP answer (errors and static files too)."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", content_security_policy(path))
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if path not in EMBEDDABLE_PATHS:
                    headers.setdefault("X-Frame-Options", "DENY")
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)
