"""Decisions over real HTTP: the native route, OpenID AuthZEN 1.0 evaluation(s) and discovery.

Policy-dependent answers (allow, step_up) are covered with the policy engine in
`test_http_decisions_policies.py`; here the server has no active policy set, so every request that
passes the guardrails is still denied, which is itself a property to check (default deny).
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    BOT,
    Workloads,
    _declaration,
    agent_server,
    workloads,
)


def _credential(live: LiveServer, workloads: Workloads) -> str:
    with live.client(authenticated=False) as client:
        response = client.post("/v1/tasks", json=_declaration(workloads.svid()))
    assert response.status_code == 201, response.text
    token: str = response.json()["credential"]["access_token"]
    return token


def _native(token: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/docs"}
    body.update(overrides)
    return body


def test_without_an_active_policy_set_everything_is_denied(agent_server: LiveServer, workloads: Workloads) -> None:
    """Default deny: a call every guardrail lets through is still refused while no policy set is active."""
    token = _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        response = client.post("/v1/decisions", json=_native(token))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["effect"] == "deny"
    assert body["allowed"] is False
    assert body["reasons"][0]["id"] == "policy_set_loaded"
    assert body["decision_id"].startswith("dec_")
    assert body["task_id"].startswith("tsk_")


def test_a_forged_credential_reads_credential_invalid_and_nothing_more(agent_server: LiveServer) -> None:
    with agent_server.client(authenticated=False) as client:
        response = client.post("/v1/decisions", json=_native("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."))

    body = response.json()
    assert body["effect"] == "deny"
    assert body["reasons"] == [{"kind": "guardrail", "id": "credential_verifies", "detail": "credential_invalid"}]


def test_explain_shows_the_inputs(agent_server: LiveServer, workloads: Workloads) -> None:
    token = _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        body = client.post("/v1/decisions", params={"explain": "true"}, json=_native(token)).json()

    assert body["inputs"]["agent_id"].startswith("agt_")
    assert body["inputs"]["sensitivity"] == "internal"
    assert body["inputs"]["risk_class"] == "read"
    assert body["inputs"]["objective"] == "publish the Q1 docs"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"context": {"colour": "red"}}, "context.colour"),
        ({"context": {"amount": "100"}}, "context.amount"),
        ({"sensitivity": "secret"}, "sensitivity"),
        ({"unknown": 1}, "unknown"),
        ({"resource": ""}, "resource"),
    ],
)
def test_bad_decision_requests_are_400_with_the_field(
    agent_server: LiveServer, body: dict[str, Any], field: str
) -> None:
    with agent_server.client(authenticated=False) as client:
        response = client.post("/v1/decisions", json=_native("x", **body))

    assert response.status_code == 400, response.text
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert any(field in ".".join(str(p) for p in e["loc"]) for e in problem["errors"]), problem


def test_every_decision_is_in_the_audit_trail(agent_server: LiveServer, workloads: Workloads) -> None:
    token = _credential(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        decision = client.post("/v1/decisions", json=_native(token)).json()
    with agent_server.client() as client:
        events = client.get("/v1/audit/events", params={"type": "decision.made"}).json()

    (record,) = [e for e in events["items"] if e["subject_id"] == decision["decision_id"]]
    assert record["data"]["effect"] == "deny"
    assert token not in str(record)


# ---------------------------------------------------------------- AuthZEN 1.0


def test_authzen_discovery(agent_server: LiveServer) -> None:
    with agent_server.client(authenticated=False) as client:
        body = client.get("/.well-known/authzen-configuration").json()

    assert body == {
        "policy_decision_point": "https://remit.test",
        "access_evaluation_endpoint": "https://remit.test/access/v1/evaluation",
        "access_evaluations_endpoint": "https://remit.test/access/v1/evaluations",
    }


def test_the_specification_example_is_answered_with_a_decision(agent_server: LiveServer) -> None:
    """An AuthZEN 1.0 example request, as published: no Remit credential, so the answer is false, not an error."""
    example = {
        "subject": {"type": "user", "id": "alice@acmecorp.com"},
        "resource": {"type": "account", "id": "123"},
        "action": {"name": "can_read", "properties": {"method": "GET"}},
        "context": {"time": "1985-10-26T01:22-07:00"},
    }
    with agent_server.client(authenticated=False) as client:
        response = client.post("/access/v1/evaluation", json=example, headers={"X-Request-ID": "bfe9eb29-ab87"})

    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "bfe9eb29-ab87"
    body = response.json()
    assert body["decision"] is False
    assert body["context"]["reasons"][0]["id"] == "credential_verifies"
    assert body["context"]["ignored_context"] == ["time"]


def test_authzen_evaluation_with_a_task_credential(agent_server: LiveServer, workloads: Workloads) -> None:
    token = _credential(agent_server, workloads)
    subject: dict[str, Any] = {"type": "agent", "id": BOT, "properties": {"credential": token}}
    request = {
        "subject": subject,
        "action": {"name": "read_file"},
        "resource": {"type": "github", "id": "repo:acme/docs"},
    }
    with agent_server.client(authenticated=False) as client:
        body = client.post("/access/v1/evaluation", json=request).json()
        other = client.post(
            "/access/v1/evaluation",
            json={**request, "subject": {**subject, "id": "spiffe://acme.example/agents/helper-bot"}},
        ).json()

    assert body["decision"] is False
    assert body["context"]["effect"] == "deny"
    assert body["context"]["reasons"][0]["id"] == "policy_set_loaded"  # every guardrail passed
    assert other["context"]["reasons"][0]["id"] == "credential_verifies"  # subject is not the credential's


def test_authzen_batch_defaults_and_semantics(agent_server: LiveServer) -> None:
    batch = {
        "subject": {"type": "user", "id": "alice@acmecorp.com"},
        "action": {"name": "can_read"},
        "evaluations": [
            {"resource": {"type": "todo", "id": "1"}},
            {"resource": {"type": "todo", "id": "2"}},
            {"resource": {"type": "todo", "id": "3"}, "action": {"name": "can_delete"}},
        ],
    }
    with agent_server.client(authenticated=False) as client:
        every = client.post("/access/v1/evaluations", json=batch).json()
        first_deny = client.post(
            "/access/v1/evaluations", json={**batch, "options": {"evaluations_semantic": "deny_on_first_deny"}}
        ).json()
        single = client.post(
            "/access/v1/evaluations",
            json={**{k: v for k, v in batch.items() if k != "evaluations"}, "resource": {"type": "todo", "id": "1"}},
        ).json()
        missing = client.post("/access/v1/evaluations", json={"evaluations": [{"resource": {"type": "t", "id": "1"}}]})

    assert [e["decision"] for e in every["evaluations"]] == [False, False, False]
    assert len(first_deny["evaluations"]) == 1
    assert single["decision"] is False
    assert missing.status_code == 400
