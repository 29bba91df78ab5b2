"""Prometheus metrics of the HTTP API: request counts by route template and status, and a latency histogram.

Each app owns its own `CollectorRegistry`, so several apps in one process (tests, embedding) never
collide. Labels use the route *template* (`/v1/agents/{ref:str}`), never the raw path, so label
cardinality stays bounded whatever callers send.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "HttpMetrics"]

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED: Final = "unmatched"


class HttpMetrics:
    """The collectors of one app and their text exposition."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._requests = Counter(
            "remit_http_requests",
            "HTTP requests handled, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "remit_http_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        # The labelled series of each (method, route, status), looked up once: `labels()` costs more per
        # request than the count and the observation. Bounded like the labels themselves.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, *, method: str, route: str | None, status: int, seconds: float) -> None:
        method = method if method in _METHODS else "OTHER"
        route = route or UNMATCHED
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self._requests.labels(method=method, route=route, status=str(status)),
                self._latency.labels(method=method, route=route),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition format (version 0.0.4)."""
        return generate_latest(self.registry)
