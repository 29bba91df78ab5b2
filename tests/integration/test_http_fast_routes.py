"""The hot routes' two doors answer alike: the fast path (`http.fast`) and the framework's routes.

A request with a query string always takes the framework's route, so `?explain=false` asks the same
question through the other door. Whatever the fast path does not take (bad JSON, a shape that does
not validate, another media type, an unknown length) must get the framework's own answer.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import asyncio
import json

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from tests.integration.conftest import LiveServer
from tests.integration.test_http_decisions import _credential, _native
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    BOT,
    Workloads,
    _declaration,
    _exchange,
    _exchange_form,
    agent_server,
    workloads,
)

from remit.errors import AuditUnavailable
from remit.http.fast import FastRoutes
from remit.http.routes.oauth import JWT_TYPE, TOKEN_EXCHANGE

_PER_ANSWER = ("decision_id", "decided_at")
_PER_RESPONSE_HEADERS = {"date", "content-length", "x-request-id"}


def _same_answer(fast: httpx.Response, framework: httpx.Response) -> None:
    assert fast.status_code == framework.status_code == 200
    one, other = fast.json(), framework.json()
    assert list(one) == list(other)  # the same members, in the same order
    for key in _PER_ANSWER:
        one.pop(key)
        other.pop(key)
    assert one == other
    assert {k: v for k, v in fast.headers.items() if k not in _PER_RESPONSE_HEADERS} == {
        k: v for k, v in framework.headers.items() if k not in _PER_RESPONSE_HEADERS
    }


def test_both_doors_give_the_same_answer_and_headers(agent_server: LiveServer, workloads: Workloads) -> None:
    token = _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/v1/decisions", json=_native(token))
        framework = client.post("/v1/decisions", params={"explain": "false"}, json=_native(token))
        forged = client.post("/v1/decisions", json=_native("not-a-token"))
        forged_framework = client.post("/v1/decisions", params={"explain": "false"}, json=_native("not-a-token"))

    _same_answer(fast, framework)
    _same_answer(forged, forged_framework)
    assert fast.headers["content-type"] == "application/json"
    assert fast.headers["x-content-type-options"] == "nosniff"  # the boundary still wraps the fast path
    assert fast.headers["cache-control"] == "no-store"


def test_every_fast_answer_is_recorded_and_counted_under_its_route(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    token = _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        decision = client.post("/v1/decisions", json=_native(token)).json()
    with agent_server.client() as client:
        metrics = client.get("/metrics").text
        events = client.get("/v1/audit/events", params={"type": "decision.made"}).json()

    assert [e for e in events["items"] if e["subject_id"] == decision["decision_id"]]
    assert 'route="/v1/decisions"' in metrics


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b'{"credential": "x", "tool": "github"', "application/json", 400, "invalid_request"),  # not JSON
        (b'{"credential": "x"}', "application/json", 400, "invalid_request"),  # missing members
        (b'{"credential": 1, "tool": "t", "action": "a", "resource": "r"}', "application/json", 400, "invalid_request"),
        (
            b'{"credential": "x", "tool": "t", "action": "a", "resource": "r", "extra": 1}',
            "application/json",
            400,
            None,
        ),
        (b"[]", "application/json", 400, "invalid_request"),
    ],
)
def test_what_the_fast_path_does_not_take_gets_the_frameworks_answer(
    agent_server: LiveServer, content: bytes, content_type: str, status: int, code: str | None
) -> None:
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/v1/decisions", content=content, headers={"Content-Type": content_type})
        framework = client.post(
            "/v1/decisions", params={"explain": "false"}, content=content, headers={"Content-Type": content_type}
        )

    assert fast.status_code == framework.status_code == status
    one, other = fast.json(), framework.json()
    assert one.pop("instance") == other.pop("instance") == "/v1/decisions"
    assert one == other
    if code is not None:
        assert one["code"] == code


def test_a_body_in_another_media_type_or_over_the_limit_is_the_frameworks(agent_server: LiveServer) -> None:
    limit = agent_server.remit.settings.server.max_body_bytes
    with agent_server.client(authenticated=False) as client:
        plain = client.post("/v1/decisions", content=b'{"credential": "x"}', headers={"Content-Type": "text/plain"})
        huge = client.post(
            "/v1/decisions", content=b"{" + b" " * limit + b"}", headers={"Content-Type": "application/json"}
        )

    assert plain.status_code == 400
    assert huge.status_code == 413
    assert huge.json()["code"] == "payload_too_large"


def test_an_unrecordable_decision_is_503_and_says_so(
    agent_server: LiveServer, workloads: Workloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No durable record, no answer: the enforcement point gets audit_unavailable and must not act."""
    token = _credential(agent_server, workloads)

    def refuse(_event: object) -> None:
        raise AuditUnavailable("the audit writer is not running")

    monkeypatch.setattr(agent_server.remit.audit_writer, "submit", refuse)
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/v1/decisions", json=_native(token))
        framework = client.post("/v1/decisions", params={"explain": "false"}, json=_native(token))

    for response in (fast, framework):
        assert response.status_code == 503, response.text
        problem = response.json()
        assert problem["code"] == "audit_unavailable"
        assert problem["correlation_id"] == response.headers["x-request-id"]
        assert "allowed" not in problem


def test_authzen_evaluation_echoes_the_request_id_on_both_doors(agent_server: LiveServer, workloads: Workloads) -> None:
    token = _credential(agent_server, workloads)
    request: dict[str, Any] = {
        "subject": {"type": "agent", "id": BOT, "properties": {"credential": token}},
        "action": {"name": "read_file"},
        "resource": {"type": "github", "id": "repo:acme/docs"},
    }
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/access/v1/evaluation", json=request, headers={"X-Request-ID": "pep-42"})
        framework = client.post(
            "/access/v1/evaluation", params={"via": "framework"}, json=request, headers={"X-Request-ID": "pep-42"}
        )

    assert fast.headers["x-request-id"] == framework.headers["x-request-id"] == "pep-42"
    one, other = fast.json(), framework.json()
    one["context"].pop("id")
    other["context"].pop("id")
    assert one == other
    assert one["decision"] is False


_PER_TASK = {"id", "created_at", "deadline"}
_PER_CREDENTIAL = {"access_token", "expires_at", "jti", "expires_in"}


def test_starting_a_task_answers_alike_on_both_doors(agent_server: LiveServer, workloads: Workloads) -> None:
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/v1/tasks", json=_declaration(workloads.svid()))
        framework = client.post("/v1/tasks", params={"via": "framework"}, json=_declaration(workloads.svid()))

    assert fast.status_code == framework.status_code == 201, (fast.text, framework.text)
    one, other = fast.json(), framework.json()
    assert list(one) == list(other)
    assert list(one["task"]) == list(other["task"])
    assert list(one["credential"]) == list(other["credential"])
    for key in _PER_TASK:
        one["task"].pop(key)
        other["task"].pop(key)
    for key in _PER_CREDENTIAL:
        one["credential"].pop(key)
        other["credential"].pop(key)
    assert one == other
    assert fast.headers["location"] == f"/v1/tasks/{fast.json()['task']['id']}"
    per_response = _PER_RESPONSE_HEADERS | {"location"}
    assert {k: v for k, v in fast.headers.items() if k not in per_response} == {
        k: v for k, v in framework.headers.items() if k not in per_response
    }
    assert fast.headers["cache-control"] == "no-store"


def test_a_replayed_svid_is_refused_alike_on_both_doors(agent_server: LiveServer, workloads: Workloads) -> None:
    """Single-use evidence: the second presentation is 401 with the challenge, whichever door."""
    svid = workloads.svid()
    with agent_server.client(authenticated=False) as client:
        first = client.post("/v1/tasks", json=_declaration(svid))
        fast = client.post("/v1/tasks", json=_declaration(svid))
        framework = client.post("/v1/tasks", params={"via": "framework"}, json=_declaration(svid))

    assert first.status_code == 201
    assert fast.status_code == framework.status_code == 401
    assert fast.headers["www-authenticate"] == framework.headers["www-authenticate"]
    one, other = fast.json(), framework.json()
    assert one == other
    assert one["code"] == "attestation_failed"


def test_a_chunked_body_without_a_length_is_answered_by_the_framework(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """No Content-Length (chunked transfer): the fast path does not guess; the framework answers, the same way."""
    token = _credential(agent_server, workloads)
    body = json.dumps(_native(token)).encode()

    def chunks() -> Iterator[bytes]:
        yield body[:10]
        yield body[10:]

    with agent_server.client(authenticated=False) as client:
        chunked = client.post("/v1/decisions", content=chunks(), headers={"Content-Type": "application/json"})
        plain = client.post("/v1/decisions", json=_native(token))

    assert "content-length" not in chunked.request.headers
    assert chunked.request.headers["transfer-encoding"] == "chunked"
    _same_answer(chunked, plain)


@pytest.mark.parametrize("media", ["application/json-patch+json", "application/jsonx", "text/json"])
def test_only_json_itself_takes_the_fast_path(agent_server: LiveServer, media: str) -> None:
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/v1/decisions", content=b"{}", headers={"Content-Type": media})
        framework = client.post(
            "/v1/decisions", params={"via": "framework"}, content=b"{}", headers={"Content-Type": media}
        )

    assert fast.status_code == framework.status_code == 400
    one, other = fast.json(), framework.json()
    assert one.pop("instance") == other.pop("instance")
    assert one == other


def _introspected(live: LiveServer, token: str) -> dict[str, Any]:
    with live.client() as operator:
        answer: dict[str, Any] = operator.post("/oauth2/introspect", data={"token": token}).json()
    return answer


def test_a_holders_revocation_answers_alike_on_both_doors(agent_server: LiveServer, workloads: Workloads) -> None:
    """RFC 7009 from the holder: 200 `null`, no-store, whichever door; the credential is dead either way."""
    fast_token, framework_token = _credential(agent_server, workloads), _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/oauth2/revoke", data={"token": fast_token})
        framework = client.post("/oauth2/revoke", params={"via": "framework"}, data={"token": framework_token})
        garbage = client.post("/oauth2/revoke", data={"token": "not-a-token", "token_type_hint": "access_token"})
        garbage_framework = client.post("/oauth2/revoke", params={"via": "framework"}, data={"token": "not-a-token"})

    for one, other in ((fast, framework), (garbage, garbage_framework)):
        assert one.status_code == other.status_code == 200
        assert one.content == other.content == b"null"
        assert {k: v for k, v in one.headers.items() if k not in _PER_RESPONSE_HEADERS} == {
            k: v for k, v in other.headers.items() if k not in _PER_RESPONSE_HEADERS
        }
    assert fast.headers["cache-control"] == "no-store"
    assert _introspected(agent_server, fast_token) == {"active": False}
    assert _introspected(agent_server, framework_token) == {"active": False}
    with agent_server.client() as operator:
        revoked = operator.get("/v1/audit/events", params={"type": "credential.revoked"}).json()["items"]
    assert {e["data"]["reason"] for e in revoked} == {"revoked_by_holder"}
    assert {e["actor_kind"] for e in revoked} == {"agent"}
    assert len(revoked) == 2


@pytest.mark.parametrize(
    "form",
    [
        {"token": ["a", "b"]},  # two tokens
        {"token_type_hint": "access_token"},  # no token
        {"token": "a", "client_id": "x"},  # a field the fast path does not take
    ],
    ids=["two tokens", "no token", "another field"],
)
def test_a_revocation_form_the_fast_path_does_not_take_gets_the_frameworks_answer(
    agent_server: LiveServer, form: dict[str, Any]
) -> None:
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/oauth2/revoke", data=form)
        framework = client.post("/oauth2/revoke", params={"via": "framework"}, data=form)
    assert fast.status_code == framework.status_code
    assert fast.content == framework.content


def test_an_operators_revocation_goes_through_the_framework(agent_server: LiveServer, workloads: Workloads) -> None:
    """With an Authorization header the operator is authenticated (a bad token is 401) and named in the record."""
    token = _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        refused = client.post("/oauth2/revoke", data={"token": token}, headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401
    assert _introspected(agent_server, token)["active"] is True
    with agent_server.client() as operator:
        assert operator.post("/oauth2/revoke", data={"token": token}).status_code == 200
        revoked = operator.get("/v1/audit/events", params={"type": "credential.revoked"}).json()["items"]
    assert [e["data"]["reason"] for e in revoked] == ["revoked_by_operator"]
    assert _introspected(agent_server, token) == {"active": False}


def test_a_holders_revocation_is_awaited_on_the_loop_not_in_a_worker_thread(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """The fast door awaits the revocation batch (its writer thread leads); the framework's blocks a worker."""
    commits = agent_server.remit.revocation.commits
    first, second = _credential(agent_server, workloads), _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        client.post("/oauth2/revoke", params={"via": "framework"}, data={"token": first})
        assert not commits.writer_running  # a blocked caller led its own batch
        client.post("/oauth2/revoke", data={"token": second})
        assert commits.writer_running  # started for an event-loop caller


@pytest.mark.parametrize("path", ["/v1/decisions", "/access/v1/evaluation", "/v1/tasks"])
def test_json_nested_past_the_parsers_depth_gets_the_frameworks_answer(agent_server: LiveServer, path: str) -> None:
    """Deep nesting makes msgspec raise RecursionError, not DecodeError: the fast path must still hand it on."""
    body = b"[" * 5000
    with agent_server.client(authenticated=False) as client:
        fast = client.post(path, content=body, headers={"Content-Type": "application/json"})
        framework = client.post(
            path, params={"via": "framework"}, content=body, headers={"Content-Type": "application/json"}
        )
    assert fast.status_code == framework.status_code == 400
    assert fast.json() == framework.json()


_PER_EXCHANGE = ("access_token", "expires_in", "txn")


def _same_headers(one: httpx.Response, other: httpx.Response) -> None:
    assert {k: v for k, v in one.headers.items() if k not in _PER_RESPONSE_HEADERS} == {
        k: v for k, v in other.headers.items() if k not in _PER_RESPONSE_HEADERS
    }


def test_a_token_exchange_answers_alike_on_both_doors(agent_server: LiveServer, workloads: Workloads) -> None:
    with agent_server.client(authenticated=False) as client:
        fast = _exchange(client, workloads.svid())
        framework = _exchange(client, workloads.svid(), framework=True)

    assert fast.status_code == framework.status_code == 200, (fast.text, framework.text)
    one, other = fast.json(), framework.json()
    assert list(one) == list(other)
    for key in _PER_EXCHANGE:
        one.pop(key)
        other.pop(key)
    assert one == other
    _same_headers(fast, framework)
    assert fast.headers["cache-control"] == "no-store"
    assert fast.headers["content-type"] == "application/json"
    assert agent_server.remit.tasks.get(fast.json()["txn"]).state.value == "running"


_EXCHANGE_REFUSALS: list[tuple[str, dict[str, Any], str]] = [
    ("a refresh token grant", {"grant_type": "refresh_token"}, "unauthorized_client"),
    ("another grant", {"grant_type": "client_credentials"}, "unsupported_grant_type"),
    ("another subject token type", {"subject_token_type": "urn:x"}, "invalid_request"),
    (
        "a refresh token asked for",
        {"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"},
        "invalid_request",
    ),
    ("two audiences", {"audience": "tool:slack"}, "invalid_target"),
    ("details nested too deep", {"authorization_details": "[" * 5000}, "invalid_authorization_details"),
    ("details not an array", {"authorization_details": "{}"}, "invalid_authorization_details"),
    ("a forged subject token", {"subject_token": "not-a-jwt"}, "invalid_grant"),
    ("an actor token of another type", {"actor_token": "x", "actor_token_type": "urn:x"}, "invalid_request"),
]


@pytest.mark.parametrize(("name", "form", "error"), _EXCHANGE_REFUSALS, ids=[c[0] for c in _EXCHANGE_REFUSALS])
def test_a_refused_token_exchange_answers_alike_on_both_doors(
    agent_server: LiveServer, workloads: Workloads, name: str, form: dict[str, Any], error: str
) -> None:
    del name
    with agent_server.client(authenticated=False) as client:
        fast = _exchange(client, workloads.svid(), **form)
        framework = _exchange(client, workloads.svid(), framework=True, **form)
    assert fast.status_code == framework.status_code == 400, (fast.text, framework.text)
    assert fast.json() == framework.json()
    assert fast.json()["error"] == error
    _same_headers(fast, framework)
    assert fast.headers["cache-control"] == "no-store"


def test_a_replayed_svid_is_an_invalid_grant_alike_on_both_doors(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    svid = workloads.svid()
    with agent_server.client(authenticated=False) as client:
        assert _exchange(client, svid).status_code == 200
        fast, framework = _exchange(client, svid), _exchange(client, svid, framework=True)
        too_long = _exchange(client, workloads.svid(), duration=0)
        too_long_framework = _exchange(client, workloads.svid(), duration=0, framework=True)
    for one, other in ((fast, framework), (too_long, too_long_framework)):
        assert one.status_code == other.status_code == 400
        assert one.json() == other.json()
    assert fast.json() == {"error": "invalid_grant", "error_description": "the subject or actor token was not accepted"}


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type=a&grant_type=b&subject_token=x",  # a name given twice
        b"grant_type=urn%3Aietf&subject_token=\xff",  # not ASCII
        b"grant_type",  # not a form
    ],
    ids=["a name twice", "not ascii", "not a form"],
)
def test_a_token_form_the_fast_path_does_not_take_gets_the_frameworks_answer(
    agent_server: LiveServer, body: bytes
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/oauth2/token", content=body, headers=headers)
        framework = client.post("/oauth2/token", params={"via": "framework"}, content=body, headers=headers)
    assert fast.status_code == framework.status_code
    assert fast.content == framework.content


def test_a_token_exchange_awaits_its_batch_on_the_loop_on_both_doors(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """Neither door holds a worker thread for the write: the group commit's writer thread leads for them."""
    commits = agent_server.remit.issuance.commits
    with agent_server.client(authenticated=False) as client:
        assert _exchange(client, workloads.svid(), framework=True).status_code == 200
        assert commits.writer_running  # started for an event-loop caller


def test_a_well_formed_token_request_never_reaches_the_framework(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """The fast path answers it whole; the framework (here an app that only records being called) never sees it."""
    assert _asgi_post(agent_server, "/oauth2/token", _exchange_form(workloads.svid())) == ([], 200)


def test_introspection_answers_alike_on_both_doors(agent_server: LiveServer, workloads: Workloads) -> None:
    """RFC 7662 with the bootstrap operator token: live, junk and revoked credentials, whichever door."""
    live, revoked = _credential(agent_server, workloads), _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as holder:
        holder.post("/oauth2/revoke", data={"token": revoked})
    with agent_server.client() as operator:
        pairs = [
            (
                operator.post("/oauth2/introspect", data=form),
                operator.post("/oauth2/introspect", params={"via": "framework"}, data=form),
            )
            for form in ({"token": live}, {"token": "junk", "token_type_hint": "access_token"}, {"token": revoked})
        ]
    for fast, framework in pairs:
        assert fast.status_code == framework.status_code == 200
        assert list(fast.json()) == list(framework.json())
        assert fast.json() == framework.json()
        _same_headers(fast, framework)
    answer = pairs[0][0].json()
    assert answer["active"] is True
    assert answer["token_type"] == "Bearer"
    assert "remit_lineage" not in answer
    assert [pair[0].json() for pair in pairs[1:]] == [{"active": False}, {"active": False}]
    assert pairs[0][0].headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer not-the-token", "Basic b3BlcmF0b3I6c2VjcmV0", "Bearer"],
    ids=["none", "another token", "another scheme", "no token"],
)
def test_introspection_without_the_operator_token_is_the_frameworks_401(
    agent_server: LiveServer, workloads: Workloads, authorization: str | None
) -> None:
    token = _credential(agent_server, workloads)
    headers = {} if authorization is None else {"Authorization": authorization}
    with agent_server.client(authenticated=False) as client:
        fast = client.post("/oauth2/introspect", data={"token": token}, headers=headers)
        framework = client.post(
            "/oauth2/introspect", params={"via": "framework"}, data={"token": token}, headers=headers
        )
    assert fast.status_code == framework.status_code == 401
    one, other = fast.json(), framework.json()
    assert one.pop("instance") == other.pop("instance") == "/oauth2/introspect"
    assert one == other
    assert "active" not in fast.text


def test_an_accounts_introspection_is_read_by_the_framework(agent_server: LiveServer, workloads: Workloads) -> None:
    """An operator account's token is looked up in the store (a disabled account stops at once): never on the loop."""
    with agent_server.client() as admin:
        admin_token = admin.post("/v1/operators", json={"name": "ada", "roles": ["admin"]}).json()["token"]
        auditor_token = admin.post("/v1/operators", json={"name": "eve", "roles": ["auditor"]}).json()["token"]
    token = _credential(agent_server, workloads)
    for account, status in ((admin_token, 200), (auditor_token, 403)):
        with httpx.Client(base_url=agent_server.url, headers={"Authorization": f"Bearer {account}"}) as client:
            assert client.post("/oauth2/introspect", data={"token": token}).status_code == status
    assert not agent_server.remit.operator.is_bootstrap(admin_token)


def test_only_the_bootstrap_operator_token_takes_the_fast_door(agent_server: LiveServer, workloads: Workloads) -> None:
    """With it the fast path answers whole; any other Authorization (an account's, a wrong one) goes on unread."""
    operator = agent_server.auth["Authorization"]
    token = _credential(agent_server, workloads)
    fast_answer = _asgi_post(agent_server, "/oauth2/introspect", {"token": token}, authorization=operator)
    assert fast_answer == ([], 200)
    assert _asgi_post(agent_server, "/oauth2/introspect", {"token": token}, authorization="Bearer remit_op_x")[0] == [
        "/oauth2/introspect"
    ]
    assert _asgi_post(agent_server, "/oauth2/introspect", {"token": token})[0] == ["/oauth2/introspect"]


def test_a_second_authorization_header_does_not_open_the_fast_door(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """The first header counts on both doors: a wrong one first, the operator token second, is the framework's 401."""
    token = _credential(agent_server, workloads)
    operator = agent_server.auth["Authorization"]
    headers = [(b"authorization", b"Bearer wrong"), (b"authorization", operator.encode())]
    assert _asgi_post(agent_server, "/oauth2/introspect", {"token": token}, extra_headers=headers)[0] == [
        "/oauth2/introspect"
    ]
    with httpx.Client(base_url=agent_server.url) as client:
        answer = client.post("/oauth2/introspect", data={"token": token}, headers=httpx.Headers(headers))
    assert answer.status_code == 401


def _asgi_post(
    live: LiveServer,
    path: str,
    form: dict[str, str],
    *,
    authorization: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> tuple[list[str], int | None]:
    """POST `form` to `path` through the fast layer alone: (the paths it handed on, the status it answered)."""
    reached: list[str] = []
    sent: list[dict[str, Any]] = []

    async def framework(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def post() -> None:
        body = urlencode(form).encode()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> Any:
            return messages.pop(0)

        async def send(message: Any) -> None:
            sent.append(message)

        headers = [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", str(len(body)).encode()),
        ]
        if authorization is not None:
            headers.append((b"authorization", authorization.encode()))
        headers += extra_headers or []
        scope = {"type": "http", "method": "POST", "path": path, "query_string": b"", "headers": headers}
        await FastRoutes(framework, live.remit, max_body_bytes=65_536)(scope, receive, send)  # type: ignore[arg-type]

    asyncio.run(post())
    return reached, sent[0]["status"] if sent else None


_SVID = "<a fresh SVID>"  # replaced by a new one for each door: evidence is single use
_TASK = {
    "type": "remit_task",
    "workflow": "release-docs@1",
    "objective": "x",
    "expected_duration_seconds": 60,
    "environment": "prod",
}
_TOOL = {"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs"]}
_ANY_TEXT = st.text(max_size=20)
_EXCHANGE_FIELDS: dict[str, st.SearchStrategy[str]] = {
    "grant_type": st.sampled_from(
        [TOKEN_EXCHANGE, TOKEN_EXCHANGE, "refresh_token", "client_credentials", "", TOKEN_EXCHANGE + " "]
    ),
    "subject_token_type": st.sampled_from([JWT_TYPE, JWT_TYPE, "urn:ietf:params:oauth:token-type:id_token", "x"]),
    "subject_token": st.sampled_from([_SVID, _SVID, "not-a-jwt", "a.b.c", ""]) | _ANY_TEXT,
    "authorization_details": st.sampled_from(
        [json.dumps([_TASK, _TOOL]), json.dumps([_TASK]), json.dumps([_TOOL]), "[]", "{}", "[" * 3000, "null"]
    )
    | _ANY_TEXT,
    "resource": st.sampled_from(["tool:github", "tool:slack", "", " tool:github", "tool:github\n"]),
    "audience": st.sampled_from(["tool:github", "tool:other"]),
    "actor_token": st.sampled_from(["junk", ""]),
    "actor_token_type": st.sampled_from(["urn:ietf:params:oauth:token-type:access_token", "x"]),
    "requested_token_type": st.sampled_from(["urn:ietf:params:oauth:token-type:access_token", "x"]),
}


_VALID_EXCHANGE: dict[str, str] = {
    "grant_type": TOKEN_EXCHANGE,
    "subject_token_type": JWT_TYPE,
    "subject_token": _SVID,
    "authorization_details": json.dumps([_TASK, _TOOL]),
    "resource": "tool:github",
}


@st.composite
def _exchange_forms(draw: st.DrawFn) -> dict[str, str]:
    """A token-exchange form: often a valid one with up to three fields changed or dropped, else any fields."""
    start_valid: bool = draw(st.booleans())
    form = dict(_VALID_EXCHANGE) if start_valid else {}
    for name in draw(st.sets(st.sampled_from(sorted(_EXCHANGE_FIELDS)), max_size=3)):
        form[name] = draw(_EXCHANGE_FIELDS[name])
    drop_one: bool = draw(st.booleans())
    if form and drop_one:
        form.pop(draw(st.sampled_from(sorted(form))))
    return form


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=_exchange_forms())
def test_any_token_exchange_form_is_answered_alike_on_both_doors(
    agent_server: LiveServer, workloads: Workloads, form: dict[str, str]
) -> None:
    """Whatever the form says, the fast door and the framework's route give the same status and body."""

    def sent(*, framework: bool) -> httpx.Response:
        fields = {name: workloads.svid() if value == _SVID else value for name, value in form.items()}
        with agent_server.client(authenticated=False) as client:
            return client.post("/oauth2/token", data=fields, params={"via": "framework"} if framework else None)

    fast, framework = sent(framework=False), sent(framework=True)
    event(f"status {fast.status_code}")
    assert fast.status_code == framework.status_code, (form, fast.text, framework.text)
    one, other = fast.json(), framework.json()
    if fast.status_code == 200:
        for key in _PER_EXCHANGE:
            one.pop(key)
            other.pop(key)
    else:
        one.pop("instance", None)  # problem+json (an outage) names the path it answered
        other.pop("instance", None)
    assert one == other, form
    assert fast.headers["cache-control"] == framework.headers["cache-control"]
