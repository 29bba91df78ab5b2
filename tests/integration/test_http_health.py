"""Liveness, readiness (made to fail for real), metrics and the security headers every response carries."""

from __future__ import annotations

import secrets

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pydantic import SecretStr
from sqlalchemy import create_engine, text
from tests.integration.conftest import POSTGRES_ADMIN_URL, LiveServer, running

from remit.bootstrap import upgrade_database
from remit.settings import Settings, StoreSettings

PROBLEM = "application/problem+json"


def test_healthz_answers_without_a_token(live_server: LiveServer) -> None:
    """/healthz is a liveness probe: 200 without authentication."""
    response = httpx.get(f"{live_server.url}/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_store(live_server: LiveServer) -> None:
    """/readyz answers 200 when the store answers and its schema is current."""
    response = httpx.get(f"{live_server.url}/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_readyz_is_unavailable_when_the_schema_is_not_current(live_server: LiveServer, tmp_path: Path) -> None:
    """/readyz answers a 503 `unavailable` problem once the SQLite file is replaced by an un-migrated one."""
    database = tmp_path / "remit.db"
    live_server.remit.database.engine.dispose()
    for leftover in (database, database.with_name("remit.db-wal"), database.with_name("remit.db-shm")):
        leftover.unlink(missing_ok=True)

    response = httpx.get(f"{live_server.url}/readyz")
    healthz = httpx.get(f"{live_server.url}/healthz")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "unavailable"
    assert "remit db upgrade" not in response.text  # the reason is logged, not told to anonymous callers
    assert healthz.status_code == 200  # alive, just not ready


@pytest.fixture
def scratch_postgres_url(postgres_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database of its own, dropped (if still there) after the test."""
    name = f"remit_ready_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
        yield f"{base}/{name}"
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.mark.postgres
def test_readyz_is_unavailable_when_the_database_is_gone(scratch_postgres_url: str) -> None:
    """/readyz answers 200, then 503 once the PostgreSQL database it points at has been dropped."""
    token = secrets.token_urlsafe(16)
    settings = Settings(store=StoreSettings(url=scratch_postgres_url), operator_token=SecretStr(token))
    upgrade_database(settings)
    name = scratch_postgres_url.rpartition("/")[2]
    with running(settings, token) as live:
        before = httpx.get(f"{live.url}/readyz")
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()
        after = httpx.get(f"{live.url}/readyz")
        registry = httpx.get(f"{live.url}/v1/owners", headers=live.auth)

    assert before.status_code == 200
    assert after.status_code == 503
    assert after.json()["code"] == "unavailable"
    assert registry.status_code == 503
    assert registry.json()["code"] == "unavailable"
    assert name not in after.text + registry.text


def test_metrics_needs_the_operator_token(live_server: LiveServer) -> None:
    """/metrics without the operator token is a 401 problem with a Bearer challenge."""
    response = httpx.get(f"{live_server.url}/metrics")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthenticated"


def test_metrics_counts_requests_by_route_template_and_status(live_server: LiveServer) -> None:
    """/metrics exposes request counts labelled by route template (not raw path) and status, and a latency histogram."""
    with live_server.client() as client:
        client.get("/v1/agents/no-such-agent")
        client.get("/v1/owners")
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    body = response.text
    assert 'remit_http_requests_total{method="GET",route="/v1/agents/{ref}",status="404"} 1.0' in body
    assert 'remit_http_requests_total{method="GET",route="/v1/owners",status="200"} 1.0' in body
    assert "remit_http_request_duration_seconds_bucket" in body
    assert "no-such-agent" not in body


def test_unknown_paths_share_one_metrics_label(live_server: LiveServer) -> None:
    """Requests to unknown paths are counted under one `unmatched` label, so callers cannot grow the label set."""
    with live_server.client() as client:
        for n in range(3):
            client.get(f"/nothing/here/{n}")
        body = client.get("/metrics").text

    assert 'remit_http_requests_total{method="GET",route="unmatched",status="404"} 3.0' in body
    assert "/nothing/here" not in body


@pytest.mark.parametrize("path", ["/healthz", "/v1/owners", "/v1/no-such-route"])
def test_every_response_carries_the_security_headers(live_server: LiveServer, path: str) -> None:
    """Success and refusal alike carry nosniff, no-store, frame denial, a locked-down CSP and a request id."""
    with live_server.client() as client:
        response = client.get(path)

    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert len(response.headers["x-request-id"]) == 16
    assert "server" not in response.headers
