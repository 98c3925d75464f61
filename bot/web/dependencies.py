"""What every route may ask for: the worker's `Runtime`, reached through the app it was built into (handlers
are plain module-level functions; `create_app` puts the runtime on `app.state`), and who is asking from
where."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bot.runtime.container import Runtime

__all__ = ["RuntimeDep", "client_address", "get_runtime"]


def get_runtime(request: Request) -> Runtime:
    """The `Runtime` of the app serving `request`."""
    return request.app.state.runtime


#: A handler parameter annotated with this receives the runtime.
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def client_address(request: Request) -> str:
    """The client's address: the peer's, or the one a trusted proxy forwarded (`[server] trusted_proxies`,
    applied by uvicorn). Limits per client count by it."""
    return request.client.host if request.client else "unknown"
