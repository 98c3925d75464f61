"""Security headers on every answer: a Content-Security-Policy that allows only this site's own scripts,
styles and connections (no inline script or style: templates load static files and pass data in data-*
attributes), no framing by other sites (the embedded chat's page only by the sites in `[webchat]
allowed_origins`), no MIME sniffing, no Referer to other sites, and HSTS when the public URL is https."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CHAT_EMBED_PATH", "EMBEDDABLE_PATHS", "SecurityHeaders", "content_security_policy"]

#: The page the embeddable chat widget (static/widget.js) shows in its frame.
CHAT_EMBED_PATH = "/chat/embed"
#: Pages the sites in `[webchat] allowed_origins` (and this site) may show in a frame.
EMBEDDABLE_PATHS: frozenset[str] = frozenset({CHAT_EMBED_PATH})
#: FastAPI's interactive API docs load their script and style from a CDN and start them inline; they are
#: only served when `[server] api_docs` is on.
API_DOCS_PATHS: frozenset[str] = frozenset({"/docs", "/redoc"})
_API_DOCS_SOURCES = "'self' 'unsafe-inline' https://cdn.jsdelivr.net"


def content_security_policy(path: str, embedders: Sequence[str] = ()) -> str:
    """The CSP for the page at `path`; `embedders` are the origins that may frame an embeddable page."""
    frame_ancestors = " ".join(["'self'", *embedders]) if path in EMBEDDABLE_PATHS else "'none'"
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

    def __init__(self, app: ASGIApp, *, https: bool, embedders: Sequence[str] = ()) -> None:
        self.app = app
        self.https = https
        self.embedders = tuple(embedders)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", content_security_policy(path, self.embedders))
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if path not in EMBEDDABLE_PATHS:
                    headers.setdefault("X-Frame-Options", "DENY")
                if self.https:
                    headers.setdefault("Strict-Transport-Security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)
