"""The platforms' webhooks (Slack's Events API, Telegram, the mail provider's inbound POST): each
`WebhookChannel` that receives over HTTP gets `POST <its webhook_path>`, and the adapter verifies, stores and
says what to answer."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from bot.runtime.container import Runtime
from bot.web.dependencies import RuntimeDep
from channels.base import WebhookChannel

__all__ = ["mount_platform_webhooks", "receive_webhook"]


def mount_platform_webhooks(app: FastAPI, runtime: Runtime) -> None:
    """Route `POST webhook_path` of every channel of `runtime` that receives webhooks to `receive_webhook`
    (none for Slack in Socket Mode or Telegram polling: their paths are not there at all)."""
    for channel in runtime.channels.values():
        if isinstance(channel, WebhookChannel) and channel.receives_webhooks:
            app.add_api_route(
                channel.webhook_path,
                receive_webhook,
                methods=["POST"],
                name=f"{channel.name}_webhook",
                tags=["webhooks"],
                summary=f"{channel.name} webhook",
            )


def _channel_at(runtime: Runtime, path: str) -> WebhookChannel:
    return next(
        channel
        for channel in runtime.channels.values()
        if isinstance(channel, WebhookChannel) and channel.webhook_path == path
    )


async def receive_webhook(request: Request, runtime: RuntimeDep) -> Response:
    """Hand one delivery to the channel mounted at this path and answer what it says."""
    channel = _channel_at(runtime, request.scope["route"].path)
    body = await request.body()  # over the app's max_body_size: 413 while it is read
    headers = {key.lower(): value for key, value in request.headers.items()}
    answer = await run_in_threadpool(channel.handle_webhook, body, headers)
    return Response(
        content=answer.body,
        status_code=answer.status,
        headers=dict(answer.headers),
        media_type=answer.headers.get("content-type", "application/json" if answer.body else None),
    )
