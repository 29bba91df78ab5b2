"""Forged JWT-SVIDs at every issuance door (start, token exchange, re-issue), checked in the batch (ADR 0015).

A forgery here has the right `kid` and a well-formed body but another key's signature: everything but
the signature passes up front, so only the batch's check stands between it and a credential. Each
test looks at the answer on both doors and at what the forgery left behind: no task, no refusal in
the victim's name, no spent evidence, no spent DPoP proof.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import time

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    ISSUER,
    TASKS_URL,
    TRUST_DOMAIN,
    Workloads,
    _declaration,
    _dpop_proof,
    _exchange,
    agent_server,
    workloads,
)
from tests.unit.core.attestation.minting import ec_key

GHOST = f"spiffe://{TRUST_DOMAIN}/agents/ghost"
DOORS: tuple[dict[str, str], ...] = ({}, {"via": "framework"})


def _forger() -> Workloads:
    """Mints SVIDs with the trust domain's `kid` but a key the trust domain never published."""
    return Workloads(ec_key())


def _refusals(live: LiveServer) -> list[str]:
    with live.remit.database.transaction() as tx:
        return [e.subject_id for e in tx.audit.recent(limit=500) if e.type == "credential.refused"]


def _tasks(live: LiveServer) -> int:
    with live.client() as operator:
        return len(operator.get("/v1/tasks", params={"limit": 500}).json()["items"])


@pytest.mark.parametrize("door", DOORS, ids=["fast", "framework"])
def test_a_forged_svid_for_an_unregistered_workload_is_attestation_failed(
    agent_server: LiveServer, door: dict[str, str]
) -> None:
    """Deciding refuses first (nobody is bound to it), but the answer is about the evidence, and nothing is recorded."""
    with agent_server.client(authenticated=False) as client:
        response = client.post("/v1/tasks", params=door, json=_declaration(_forger().svid(GHOST)))

    assert response.status_code == 401
    assert response.json()["code"] == "attestation_failed"
    assert "www-authenticate" in response.headers
    assert _refusals(agent_server) == []


@pytest.mark.parametrize("door", DOORS, ids=["fast", "framework"])
def test_a_forged_svid_in_a_registered_name_leaves_nothing_behind(
    agent_server: LiveServer, workloads: Workloads, door: dict[str, str]
) -> None:
    """No task, no refusal in the agent's name, and the `jti` it copied still works for the real SVID."""
    with agent_server.client(authenticated=False) as client:
        forged = client.post("/v1/tasks", params=door, json=_declaration(_forger().svid(jti="copied")))
        refused_env = client.post(
            "/v1/tasks", params=door, json=_declaration(_forger().svid(jti="copied-2"), environment="staging")
        )
        real = client.post("/v1/tasks", params=door, json=_declaration(workloads.svid(jti="copied")))

    assert (forged.status_code, forged.json()["code"]) == (401, "attestation_failed")
    assert (refused_env.status_code, refused_env.json()["code"]) == (401, "attestation_failed")
    assert real.status_code == 201, real.text
    assert _tasks(agent_server) == 1
    assert _refusals(agent_server) == []


def test_a_forged_svid_spends_no_dpop_proof(agent_server: LiveServer, workloads: Workloads) -> None:
    """The evidence signature is checked before the DPoP proof's `jti` is spent: the proof still binds a real task."""
    holder = ec_key()
    proof = _dpop_proof(holder, "POST", f"{ISSUER}/v1/tasks")
    with agent_server.client(authenticated=False) as client:
        forged = client.post("/v1/tasks", json=_declaration(_forger().svid()), headers={"DPoP": proof})
        real = client.post("/v1/tasks", json=_declaration(workloads.svid()), headers={"DPoP": proof})

    assert (forged.status_code, forged.json()["code"]) == (401, "attestation_failed")
    assert real.status_code == 201, real.text
    assert real.json()["credential"]["token_type"] == "DPoP"


def test_forgeries_among_concurrent_issuances_fail_alone(agent_server: LiveServer, workloads: Workloads) -> None:
    """Forged and real SVIDs at once, so they share batches: every real one issues, every forgery is refused."""
    forger = _forger()
    bodies = [
        (_declaration(forger.svid()) if n % 3 == 0 else _declaration(workloads.svid()), n % 3 != 0) for n in range(24)
    ]

    def post(body: tuple[dict[str, object], bool]) -> tuple[int, str, bool]:
        with httpx.Client(base_url=agent_server.url, timeout=30.0) as client:
            response = client.post("/v1/tasks", json=body[0])
            return response.status_code, response.json().get("code", ""), body[1]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(post, bodies))

    assert [status for status, _, real in results if real] == [201] * 16
    assert [(status, code) for status, code, real in results if not real] == [(401, "attestation_failed")] * 8
    assert _tasks(agent_server) == 16
    assert _refusals(agent_server) == []


@pytest.mark.parametrize("framework", [False, True], ids=["fast", "framework"])
def test_a_forged_svid_at_the_token_exchange_leaves_nothing_behind(
    agent_server: LiveServer, workloads: Workloads, framework: bool
) -> None:
    """The RFC 8693 door defers the signature too: invalid_grant, no task, no refusal, no spent `jti` or proof."""
    holder = ec_key()
    proof = _dpop_proof(holder, "POST", f"{ISSUER}/oauth2/token")
    with agent_server.client(authenticated=False) as client:
        client.headers["DPoP"] = proof
        forged = _exchange(client, _forger().svid(jti="copied"), framework=framework)
        ghost = _exchange(client, _forger().svid(GHOST), framework=framework)
        real = _exchange(client, workloads.svid(jti="copied"), framework=framework)

    assert forged.status_code == ghost.status_code == 400
    assert forged.json()["error"] == ghost.json()["error"] == "invalid_grant"
    assert real.status_code == 200, real.text
    assert real.json()["token_type"] == "DPoP"  # the proof the forgeries carried was not spent
    assert _tasks(agent_server) == 1
    assert _refusals(agent_server) == []


def test_a_forged_svid_at_reissue_leaves_nothing_behind(agent_server: LiveServer, workloads: Workloads) -> None:
    """Re-issue defers the signature too: no credential, no refusal, no spent `jti`, no spent DPoP proof."""
    with agent_server.client(authenticated=False) as client:
        started = client.post("/v1/tasks", json=_declaration(workloads.svid()))
        assert started.status_code == 201, started.text
        task_id = started.json()["task"]["id"]
        path = f"/v1/tasks/{task_id}/credentials"
        proof = _dpop_proof(ec_key(), "POST", f"{TASKS_URL}/{task_id}/credentials")

        def reissue(svid: str) -> httpx.Response:
            return client.post(path, json={"evidence": {"kind": "jwt_svid", "token": svid}}, headers={"DPoP": proof})

        forged = reissue(_forger().svid(jti="copied"))
        real = reissue(workloads.svid(jti="copied"))

    assert (forged.status_code, forged.json()["code"]) == (401, "attestation_failed")
    assert real.status_code == 201, real.text
    assert real.json()["token_type"] == "DPoP"  # the proof the forgery carried was not spent
    assert _refusals(agent_server) == []


def test_a_forged_svid_at_reissue_without_a_proof_gets_nothing(agent_server: LiveServer, workloads: Workloads) -> None:
    """Without a DPoP proof nothing checks the evidence before the batch: the batch must, for re-issue too."""
    with agent_server.client(authenticated=False) as client:
        started = client.post("/v1/tasks", json=_declaration(workloads.svid()))
        assert started.status_code == 201, started.text
        path = f"/v1/tasks/{started.json()['task']['id']}/credentials"

        def reissue(svid: str) -> httpx.Response:
            return client.post(path, json={"evidence": {"kind": "jwt_svid", "token": svid}})

        forged = reissue(_forger().svid(jti="copied"))
        real = reissue(workloads.svid(jti="copied"))

    assert (forged.status_code, forged.json()["code"]) == (401, "attestation_failed")
    assert "access_token" not in forged.json()
    assert real.status_code == 201, real.text  # the forgery spent nothing
    assert _refusals(agent_server) == []


def test_a_reissue_awaits_its_batch_on_the_loop(agent_server: LiveServer, workloads: Workloads) -> None:
    """No worker thread is held for the write: the group commit's writer thread leads for the loop."""
    commits = agent_server.remit.issuance.commits
    with agent_server.client(authenticated=False) as client:
        task_id = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["task"]["id"]
        # Idle long enough for the writer thread that led the start to end, so only the re-issue can restart it.
        deadline = time.monotonic() + 5
        while commits.writer_running and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not commits.writer_running
        evidence = {"evidence": {"kind": "jwt_svid", "token": workloads.svid()}}
        assert client.post(f"/v1/tasks/{task_id}/credentials", json=evidence).status_code == 201
        assert commits.writer_running
