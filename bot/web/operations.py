"""Operations endpoints: liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`, for
a scraper holding `[server] metrics_token`).

A load balancer or orchestrator restarts a worker whose `/healthz` fails and sends traffic only to workers
whose `/readyz` succeeds (database reachable, models loaded, not shutting down).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response

from bot.crm.db import DatabaseUnavailable, check_database
from bot.runtime.metrics import CONTENT_TYPE_LATEST, render_metrics
from bot.web.dependencies import RuntimeDep

__all__ = ["router"]


router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> JSONResponse:
    """Liveness: the process answers (it says nothing about the database; see /readyz)."""
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """Readiness: the database answers, the models are loaded and the worker is not shutting down; 503
    otherwise, with the failing checks."""
    checks = {
        "database": True,
        "model": runtime.models is not None,
        "accepting": not runtime.stopping.is_set(),
    }
    try:
        check_database(runtime.engine)
    except DatabaseUnavailable:
        checks["database"] = False
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", **checks}, status_code=200 if ready else 503
    )


@router.get("/metrics")
def metrics(request: Request, runtime: RuntimeDep) -> Response:
    """Prometheus metrics: messages in and out per channel, decisions per action and intent, the outbox
    backlog, send failures and pipeline latency. Only for a scraper presenting `[server] metrics_token`
    as a bearer token; without a token set, there are no metrics to scrape (404)."""
    token = runtime.settings.server.metrics_token
    if token is None or not token.get_secret_value():
        raise HTTPException(404, "Not Found")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        presented.encode(), token.get_secret_value().encode()
    ):
        raise HTTPException(401, "the metrics token is required", {"WWW-Authenticate": "Bearer"})
    return Response(render_metrics(runtime.engine), media_type=CONTENT_TYPE_LATEST)
