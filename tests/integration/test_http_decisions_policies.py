"""Decisions over real HTTP with the default policy pack active: allow, step-up, and a policy's refusal."""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    BOT,
    ISSUER,
    Workloads,
    _declaration,
    _dpop_proof,
    agent_server,
    workloads,
)
from tests.unit.core.attestation.minting import ec_key

from remit.core.registry.models import RiskClass, Sensitivity, ToolAction, ToolResource

PACK = Path(__file__).resolve().parents[2] / "examples" / "policies"


@pytest.fixture
def governed(agent_server: LiveServer) -> LiveServer:
    """The agent server with the default pack active and a restricted resource registered."""
    remit = agent_server.remit
    for path in sorted(PACK.glob("*.cedar")):
        version = remit.policies.add(name=path.stem, text=path.read_text(encoding="utf-8"), actor="test")
        remit.policies.activate(version.name, version.version, actor="test")
    remit.registry.change_tool(
        "github",
        actions=(ToolAction("read_file", RiskClass.READ), ToolAction("merge_pr", RiskClass.WRITE)),
        resources=(
            ToolResource("repo:acme/secrets*", Sensitivity.RESTRICTED),
            ToolResource("repo:acme/*", Sensitivity.INTERNAL),
        ),
        actor="test",
    )
    return agent_server


def _credential(live: LiveServer, workloads: Workloads, resources: list[str], actions: list[str]) -> str:
    details = [{"type": "remit_tool", "tool": "github", "actions": actions, "resources": resources}]
    with live.client(authenticated=False) as client:
        response = client.post("/v1/tasks", json=_declaration(workloads.svid(), authorization_details=details))
    assert response.status_code == 201, response.text
    token: str = response.json()["credential"]["access_token"]
    return token


def _decide(live: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    with live.client(authenticated=False) as client:
        response = client.post("/v1/decisions", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_read_inside_the_task_is_allowed_by_the_pack(governed: LiveServer, workloads: Workloads) -> None:
    token = _credential(governed, workloads, ["repo:acme/docs"], ["read_file"])

    body = _decide(
        governed, {"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/docs"}
    )

    assert body["effect"] == "allow"
    assert body["allowed"] is True
    assert [r["id"] for r in body["reasons"]] == ["base@1/permit-task-scope"]
    assert body["policy_version"] >= 1


def test_a_write_inside_the_task_steps_up(governed: LiveServer, workloads: Workloads) -> None:
    token = _credential(governed, workloads, ["repo:acme/docs"], ["merge_pr"])

    body = _decide(
        governed, {"credential": token, "tool": "github", "action": "merge_pr", "resource": "repo:acme/docs"}
    )

    assert body["effect"] == "step_up"
    assert body["reasons"][0]["id"] == "elevation_required"


def test_restricted_data_needs_an_approval_even_for_a_read(governed: LiveServer, workloads: Workloads) -> None:
    """The restricted-data policy forbids unless elevated: a policy-driven step-up, not a plain deny."""
    token = _credential(governed, workloads, ["repo:acme/secrets"], ["read_file"])

    body = _decide(
        governed, {"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/secrets"}
    )

    assert body["effect"] == "step_up"
    assert body["reasons"][0] == {
        "kind": "policy",
        "id": "elevation_required",
        "detail": "a policy requires an approved elevation",
    }


def test_authzen_answers_true_for_an_allowed_call(governed: LiveServer, workloads: Workloads) -> None:
    token = _credential(governed, workloads, ["repo:acme/docs"], ["read_file"])
    request = {
        "subject": {"type": "agent", "id": BOT, "properties": {"credential": token}},
        "action": {"name": "read_file"},
        "resource": {"type": "github", "id": "repo:acme/docs"},
        "context": {"reason": "weekly publish"},
    }
    with governed.client(authenticated=False) as client:
        body = client.post("/access/v1/evaluation", json=request).json()
        batch = client.post(
            "/access/v1/evaluations",
            json={
                "subject": request["subject"],
                "resource": request["resource"],
                "evaluations": [{"action": {"name": "read_file"}}, {"action": {"name": "merge_pr"}}],
                "options": {"evaluations_semantic": "permit_on_first_permit"},
            },
        ).json()

    assert body["decision"] is True
    assert body["context"]["effect"] == "allow"
    assert [e["decision"] for e in batch["evaluations"]] == [True]


def test_an_explain_never_reads_as_permission(governed: LiveServer, workloads: Workloads) -> None:
    """A dry run says what would happen (`effect`), but `allowed` stays false: nothing was used or granted."""
    token = _credential(governed, workloads, ["repo:acme/docs"], ["read_file"])
    with governed.client(authenticated=False) as client:
        body = client.post(
            "/v1/decisions",
            params={"explain": "true"},
            json={"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/docs"},
        ).json()

    assert body["effect"] == "allow"
    assert body["allowed"] is False
    assert body["dry_run"] is True


def test_a_dpop_bound_credential_decides_only_with_a_fresh_proof_from_its_key(
    governed: LiveServer, workloads: Workloads
) -> None:
    """Missing, replayed, foreign-key and wrong-URL proofs are refused like a forged credential (C11)."""
    holder, thief = ec_key(), ec_key()
    with governed.client(authenticated=False) as client:
        started = client.post(
            "/v1/tasks",
            json=_declaration(workloads.svid()),
            headers={"DPoP": _dpop_proof(holder, "POST", f"{ISSUER}/v1/tasks")},
        ).json()
    token = started["credential"]["access_token"]
    tool_url = "https://tools.example/github/read"
    call = {"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/docs"}
    fresh = _dpop_proof(holder, "GET", tool_url, token)

    def decide(dpop: dict[str, str] | None) -> dict[str, Any]:
        return _decide(governed, {**call, "dpop": dpop} if dpop else call)

    allowed = decide({"proof": fresh, "method": "GET", "url": tool_url})
    replayed = decide({"proof": fresh, "method": "GET", "url": tool_url})
    missing = decide(None)
    foreign = decide({"proof": _dpop_proof(thief, "GET", tool_url, token), "method": "GET", "url": tool_url})
    elsewhere = decide(
        {"proof": _dpop_proof(holder, "GET", "https://evil.example/x", token), "method": "GET", "url": tool_url}
    )

    assert allowed["effect"] == "allow"
    for refused in (replayed, missing, foreign, elsewhere):
        assert refused["effect"] == "deny"
        assert refused["reasons"] == [
            {"kind": "guardrail", "id": "credential_verifies", "detail": "credential_invalid"}
        ]
