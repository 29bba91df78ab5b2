"""Operator authentication at the HTTP boundary: every /v1 route and /metrics, and the token never leaks."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from hypothesis import given
from hypothesis import strategies as st
from tests.integration.conftest import LiveServer

from remit.http.auth import bearer_token

PROBLEM = "application/problem+json"

# Every operator route, with a harmless body where one is needed.
OPERATOR_ROUTES = [
    ("GET", "/v1/owners"),
    ("POST", "/v1/owners"),
    ("GET", "/v1/owners/x@acme.example"),
    ("PATCH", "/v1/owners/x@acme.example"),
    ("POST", "/v1/owners/x@acme.example/offboard"),
    ("GET", "/v1/functions"),
    ("POST", "/v1/functions"),
    ("GET", "/v1/functions/f"),
    ("PATCH", "/v1/functions/f"),
    ("GET", "/v1/agents"),
    ("POST", "/v1/agents"),
    ("GET", "/v1/agents/a"),
    ("PATCH", "/v1/agents/a"),
    ("POST", "/v1/agents/a/suspend"),
    ("POST", "/v1/agents/a/retire"),
    ("POST", "/v1/agents/a/reactivate"),
    ("GET", "/v1/agents/a/traceability"),
    ("GET", "/v1/reports/untraceable"),
    ("GET", "/v1/tools"),
    ("POST", "/v1/tools"),
    ("GET", "/v1/tools/t"),
    ("PATCH", "/v1/tools/t"),
    ("GET", "/v1/workflows"),
    ("POST", "/v1/workflows"),
    ("GET", "/v1/workflows/w@1"),
    ("PATCH", "/v1/workflows/w@1"),
    ("POST", "/v1/workflows/w@1/approve"),
    ("POST", "/v1/workflows/w@1/retire"),
    ("GET", "/v1/workflows/w/versions"),
    ("GET", "/v1/grants"),
    ("POST", "/v1/grants"),
    ("DELETE", "/v1/grants/grt_x"),
    ("GET", "/v1/policies"),
    ("POST", "/v1/policies"),
    ("GET", "/v1/policies/schema"),
    ("GET", "/v1/policies/active"),
    ("GET", "/v1/policies/p"),
    ("GET", "/v1/policies/p/versions/1"),
    ("POST", "/v1/policies/p/activate"),
    ("POST", "/v1/policies/p/deactivate"),
    ("GET", "/v1/operators"),
    ("POST", "/v1/operators"),
    ("POST", "/v1/operators/x/disable"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/events"),
    ("GET", "/v1/audit/ocsf"),
    ("GET", "/v1/audit/checkpoints"),
    ("POST", "/v1/audit/checkpoints"),
    ("GET", "/metrics"),
]


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthenticated"


def test_every_operator_route_is_in_the_published_schema(live_server: LiveServer) -> None:
    """The routes checked below are exactly the operations the OpenAPI document marks as needing the operator token."""
    schema = httpx.get(f"{live_server.url}/schema/openapi.json").json()
    published: set[tuple[str, str]] = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if any("operatorToken" in requirement for requirement in operation.get("security", []))
    }

    def template_of(path: str) -> str:
        templates = {p for _, p in published}
        if path in templates:  # a literal route (/v1/policies/schema) wins over a template that also matches it
            return path
        for candidate in templates:
            pattern = "^" + re.sub(r"\\\{[^/]+\\\}", "[^/]+", re.escape(candidate)) + "$"
            if re.match(pattern, path):
                return candidate
        return path

    assert {(method, template_of(path)) for method, path in OPERATOR_ROUTES} == published


def test_every_operator_route_refuses_a_missing_token(live_server: LiveServer) -> None:
    """Without `Authorization`, every /v1 route and /metrics answers a 401 problem before touching the body."""
    with live_server.client(authenticated=False) as client:
        for method, path in OPERATOR_ROUTES:
            assert_unauthenticated(client.request(method, path, json={}))


MALFORMED = [
    "Bearer wrong-token",
    "Basic b3BlcmF0b3I6c2VjcmV0",
    "Bearer",
    "bearer",
    "Token {token}",
    "{token}",
    "Bearer {token}x",
    "Bearer x{token}",
    "Bearer {token} extra",
    "Bearer " + "a" * 5000,
]


def test_wrong_or_malformed_tokens_are_refused(live_server: LiveServer) -> None:
    """A wrong token, another scheme, a token with extra bytes or an oversized header is a 401 on every route."""
    with live_server.client(authenticated=False) as client:
        for authorization in MALFORMED:
            headers = {"Authorization": authorization.format(token=live_server.token)}
            for method, path in (("GET", "/v1/owners"), ("POST", "/v1/owners"), ("GET", "/metrics")):
                assert_unauthenticated(client.request(method, path, headers=headers, json={}))


def test_the_bearer_scheme_is_case_insensitive(live_server: LiveServer) -> None:
    """RFC 7235 auth schemes are case-insensitive: `bearer <token>` is accepted."""
    response = httpx.get(f"{live_server.url}/v1/owners", headers={"Authorization": f"bEaReR {live_server.token}"})

    assert response.status_code == 200


def test_a_token_in_the_query_string_is_not_accepted(live_server: LiveServer) -> None:
    """The operator token is accepted only in the Authorization header, never as a query parameter."""
    response = httpx.get(f"{live_server.url}/v1/owners", params={"access_token": live_server.token})

    assert_unauthenticated(response)


def test_tokens_are_never_echoed_or_logged(live_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """Neither a wrong token nor the real one appears in any response body, header or log record."""
    wrong = "remit_op_guess_" + "z" * 20
    caplog.set_level(logging.DEBUG)
    responses = [
        httpx.get(f"{live_server.url}/v1/owners", headers={"Authorization": f"Bearer {wrong}"}),
        httpx.post(f"{live_server.url}/v1/owners", headers={"Authorization": f"Bearer {wrong}"}, json={"x": wrong}),
        httpx.get(f"{live_server.url}/v1/owners/nobody@x.example", headers={"Authorization": f"Bearer {wrong}"}),
        httpx.post(
            f"{live_server.url}/v1/owners",
            headers={"Authorization": f"Bearer {live_server.token}"},
            json={"name": "n", "email": "e@x.example", "token": live_server.token},
        ),
    ]

    for response in responses:
        assert response.status_code >= 400
        assert live_server.token not in response.text
        assert live_server.token not in str(response.headers)
        assert wrong not in str(response.headers)
    assert wrong not in responses[0].text + responses[1].text + responses[2].text
    # Server-side records: ours, the framework's and the server's (the test client's own log lines are not ours).
    server_side = [r for r in caplog.records if r.name.startswith(("remit", "uvicorn", "litestar"))]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in server_side)
    assert server_side, "the boundary logs refusals"
    assert live_server.token not in logged
    assert wrong not in logged


def test_public_endpoints_need_no_token(live_server: LiveServer) -> None:
    """/healthz, /readyz and the OpenAPI document answer without authentication."""
    for path in ("/healthz", "/readyz", "/schema/openapi.json"):
        assert httpx.get(f"{live_server.url}{path}").status_code == 200


@given(st.text(max_size=200))
def test_bearer_parser_accepts_only_a_single_token_after_the_scheme(header: str) -> None:
    """For any header, the parser returns either None or a non-empty token without whitespace that ends the header."""
    token = bearer_token(header)

    if token is not None:
        assert token
        assert not any(c.isspace() for c in token)
        assert header.strip().endswith(token)
        assert header.strip()[:6].lower() == "bearer"
