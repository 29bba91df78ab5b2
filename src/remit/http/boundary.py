"""The outermost layer of every request: correlation id, security headers, one log line and the metrics.

It wraps the whole application, routing and error handling included, so unknown routes, refused
methods and failures are counted, logged and hardened like any other response. It never reads the
body, the query string or the `Authorization` header: those can carry secrets.
"""

from __future__ import annotations

import logging
import time

from typing import Any, Final, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from remit.core.ids import random_hex
from remit.http.metrics import UNMATCHED, HttpMetrics
from remit.http.problems import CORRELATION_STATE_KEY, ERROR_CODE_STATE_KEY

__all__ = ["Boundary"]

_log = logging.getLogger("remit.http")

_ALWAYS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
)
# Registry answers and refusals are per operator and may change at any moment: never cache them.
_NO_STORE: Final = (b"cache-control", b"no-store")
_SCHEMA_PREFIX: Final = "/schema"


class Boundary:
    """ASGI wrapper around the app's handler; see the module docstring."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        # Read as a plain mapping: the router adds keys (`path_template`) the typed scope does not declare.
        raw = cast("dict[str, Any]", scope)
        method = str(raw["method"])
        correlation_id = random_hex(8)
        state: dict[str, Any] = raw.setdefault("state", {})
        state[CORRELATION_STATE_KEY] = correlation_id
        cacheable = str(raw["path"]).startswith(_SCHEMA_PREFIX)
        status = 500
        started = time.perf_counter()

        async def send_hardened(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in _ALWAYS if h[0] not in present]
                if not cacheable and _NO_STORE[0] not in present:
                    extra.append(_NO_STORE)
                if b"x-request-id" not in present:  # AuthZEN routes echo the caller's own
                    extra.append((b"x-request-id", correlation_id.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        try:
            await self._app(scope, receive, send_hardened)
        finally:
            seconds = time.perf_counter() - started
            template = raw.get("path_template")
            route = template if isinstance(template, str) else None
            self._metrics.observe(method=method, route=route, status=status, seconds=seconds)
            self._log(method, route or UNMATCHED, status, seconds, state)

    @staticmethod
    def _log(method: str, route: str, status: int, seconds: float, state: dict[str, Any]) -> None:
        # One line per request, 4xx at info and 5xx at error; never the path's values, body or headers.
        code = state.get(ERROR_CODE_STATE_KEY)
        extra = {
            "method": method,
            "route": route,
            "status": status,
            "code": code,
            "duration_ms": round(seconds * 1000, 3),
            "correlation_id": state.get(CORRELATION_STATE_KEY),
        }
        if status >= 500:  # noqa: PLR2004
            level = logging.ERROR
        elif status >= 400:  # noqa: PLR2004
            level = logging.INFO
        else:
            level = logging.DEBUG
        _log.log(level, "%s %s -> %s %s", method, route, status, code or "", extra=extra)
