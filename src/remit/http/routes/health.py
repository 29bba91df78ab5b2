"""Liveness (/healthz), readiness (/readyz: the store answers and its schema is current) and /metrics."""

from __future__ import annotations

import logging

from typing import Final

from litestar import Response, get
from litestar.di import NamedDependency
from pydantic import BaseModel

from remit.bootstrap import Remit
from remit.errors import RemitError, Unavailable
from remit.http.auth import operator_guard
from remit.http.metrics import CONTENT_TYPE_LATEST, HttpMetrics
from remit.http.problems import problem_responses

__all__ = ["Status", "healthz", "metrics", "readyz"]

_log = logging.getLogger("remit.http")

_NOT_READY: Final = "not ready: the store is unavailable or its schema is not current"


class Status(BaseModel):
    """A health answer."""

    status: str


@get("/healthz", sync_to_thread=False, tags=["health"])
def healthz() -> Status:
    """Liveness: the process answers HTTP. No authentication."""
    return Status(status="ok")


@get("/readyz", sync_to_thread=True, tags=["health"], responses=problem_responses(503))
def readyz(remit: NamedDependency[Remit]) -> Status:
    """Readiness: the store answers and its schema is current. No authentication."""
    try:
        remit.check_ready()
    except RemitError as error:
        # The precise reason stays in the log: an unauthenticated caller learns only "not ready".
        _log.warning("not ready: %s", error.message)
        raise Unavailable(_NOT_READY) from error
    except Exception as error:
        _log.exception("readiness check failed")
        raise Unavailable(_NOT_READY) from error
    return Status(status="ready")


@get(
    "/metrics",
    sync_to_thread=False,
    guards=[operator_guard],
    tags=["health"],
    security=[{"operatorToken": []}],
    responses=problem_responses(401),
    media_type=CONTENT_TYPE_LATEST,
)
def metrics(http_metrics: NamedDependency[HttpMetrics]) -> Response[bytes]:
    """Prometheus text exposition of the HTTP metrics. Needs the operator token."""
    return Response(content=http_metrics.render(), media_type=CONTENT_TYPE_LATEST)
