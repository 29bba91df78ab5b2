"""Serve the API with uvicorn: `remit serve` calls `serve(remit, host=…, port=…)` and blocks until stopped."""

from __future__ import annotations

import copy
import gc
import sys

from typing import Any

import uvicorn

from uvicorn.config import LOGGING_CONFIG

from remit.bootstrap import Remit
from remit.http.app import create_app

__all__ = ["LOG_CONFIG", "serve", "uvicorn_config"]

_GC_YOUNG_THRESHOLD = 20_000
_GIL_SWITCH_SECONDS = 0.001

# uvicorn's own configuration plus Remit's loggers (one line per request from the boundary, warnings
# from the revocation feed and sweeper) on the same stderr handler.
LOG_CONFIG: dict[str, Any] = {
    **copy.deepcopy(LOGGING_CONFIG),
    "loggers": {
        **copy.deepcopy(LOGGING_CONFIG["loggers"]),
        "remit": {"handlers": ["default"], "level": "INFO", "propagate": False},
    },
}


def uvicorn_config(remit: Remit, *, host: str, port: int, configure_logging: bool = True) -> uvicorn.Config:
    """The uvicorn configuration Remit runs with; embedders and tests may keep their own logging set-up."""
    return uvicorn.Config(
        create_app(remit),
        host=host,
        port=port,
        # The boundary logs one line per request without paths' values or headers; uvicorn's access
        # log would print raw paths (owner emails) and query strings.
        access_log=False,
        server_header=False,
        # Forwarded headers are not trusted until a deployment says which proxy to trust.
        proxy_headers=False,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
        lifespan="on",
        log_config=LOG_CONFIG if configure_logging else None,
    )


def serve(remit: Remit, *, host: str, port: int) -> None:
    """Run the API until interrupted; the caller keeps ownership of `remit` and closes it afterwards."""
    config = uvicorn_config(remit, host=host, port=port)
    # Everything built so far lives as long as the server: keep it out of the cyclic collector's
    # scans, whose full passes over a large heap otherwise show up as request-latency spikes.
    gc.collect()
    gc.freeze()
    # Requests allocate many short-lived objects and few cycles: collect the young generation less often.
    gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 20)
    # The loop thread is busy under load, and the writer threads (group commits of audit records and
    # credentials) need the GIL back after every database call: at the default 5 ms a commit can wait
    # several switch intervals, which every request in its batch then waits too.
    sys.setswitchinterval(_GIL_SWITCH_SECONDS)
    uvicorn.Server(config).run()
