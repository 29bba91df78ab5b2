"""Tasks over real HTTP: attested issuance, lifecycle, token exchange, introspection, revocation, discovery.

The agent proves itself with a JWT-SVID signed by a test trust domain whose bundle Remit reads from a
file; credentials are checked with PyJWT against the served JWKS, and the token exchange is driven by
Authlib's OAuth client: two independent libraries agreeing with ours.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import secrets
import shutil
import socket
import uuid

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt  # noqa: TID251 - an independent JOSE library checks our tokens
import pytest

from authlib.integrations.requests_client import OAuth2Session
from joserfc.jwk import ECKey
from pydantic import SecretStr
from tests.integration.conftest import LiveServer, running
from tests.unit.core.attestation.minting import SpiffeCa, ec_key, public_jwk, sign, write_json

from remit.bootstrap import upgrade_database
from remit.core.clock import SystemClock
from remit.core.registry.models import (
    RiskClass,
    Sensitivity,
    SpiffeId,
    ToolAction,
    ToolResource,
    WorkflowStep,
    WorkloadBinding,
)
from remit.settings import (
    AttestationSettings,
    ServerSettings,
    Settings,
    SpiffeBundleSettings,
    StoreSettings,
)

ISSUER = "https://remit.test"
TASKS_URL = f"{ISSUER}/v1/tasks"  # what a DPoP proof for POST /v1/tasks names as `htu`
TRUST_DOMAIN = "acme.example"
BOT = f"spiffe://{TRUST_DOMAIN}/agents/invoice-bot"
HELPER = f"spiffe://{TRUST_DOMAIN}/agents/helper-bot"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"


class Workloads:
    """A stand-in SPIFFE trust domain: mints JWT-SVIDs for Remit's audience, and X.509-SVIDs when it has a CA."""

    def __init__(self, key: ECKey, ca: SpiffeCa | None = None) -> None:
        self.key = key
        self.ca = ca

    def bundle(self) -> dict[str, Any]:
        """The trust domain's SPIFFE bundle: the JWT authority, and the X.509 authority when there is a CA."""
        keys = [public_jwk(self.key, use="jwt-svid", kid="td-1")]
        return {"keys": keys + ([self.ca.bundle_entry()] if self.ca is not None else [])}

    def svid(self, spiffe_id: str = BOT, *, audience: str = ISSUER, lifetime: int = 300, jti: str | None = None) -> str:
        now = int(SystemClock().now().timestamp())
        claims = {
            "sub": spiffe_id,
            "aud": [audience],
            "iat": now,
            "exp": now + lifetime,
            "jti": jti or uuid.uuid4().hex,
        }
        return sign({"alg": "ES256", "kid": "td-1", "typ": "JWT"}, claims, self.key)


@pytest.fixture
def workloads() -> Workloads:
    return Workloads(ec_key())


@pytest.fixture
def agent_server(tmp_path: Path, sqlite_template: Path, workloads: Workloads) -> Iterator[LiveServer]:
    """A live server that trusts the test trust domain, with an organisation registered."""
    with organisation_server(tmp_path, sqlite_template, workloads) as live:
        yield live


@contextlib.contextmanager
def organisation_server(
    tmp_path: Path,
    sqlite_template: Path,
    workloads: Workloads,
    *,
    public_url: str = ISSUER,
    sock: socket.socket | None = None,
) -> Iterator[LiveServer]:
    """A live server (issuer ISSUER) trusting the test trust domain, with an owner, a workflow and two agents."""
    bundle = write_json(tmp_path / "bundle.json", workloads.bundle())
    token = "remit_op_test_" + secrets.token_urlsafe(24)
    settings = Settings(
        home=tmp_path,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'remit.db'}"),
        operator_token=SecretStr(token),
        issuer=ISSUER,
        server=ServerSettings(public_url=public_url),
        attestation=AttestationSettings(
            spiffe_bundles=[SpiffeBundleSettings(trust_domain=TRUST_DOMAIN, bundle=str(bundle))]
        ),
    )
    shutil.copyfile(sqlite_template, tmp_path / "remit.db")
    upgrade_database(settings)
    with running(settings, token, sock=sock) as live:
        registry = live.remit.registry
        owner = registry.register_owner(name="Ada", email="ada@acme.example", actor="test")
        function = registry.register_function(name="docs", description="Publish docs", owner=owner.id, actor="test")
        registry.register_tool(
            name="github",
            description="",
            actions=(ToolAction("read_file", RiskClass.READ), ToolAction("merge_pr", RiskClass.WRITE)),
            resources=(ToolResource("repo:acme/*", Sensitivity.INTERNAL),),
            actor="test",
        )
        workflow = registry.create_workflow_version(
            name="release-docs",
            function=function.id,
            description="",
            steps=(
                WorkflowStep("github", "read_file", "repo:acme/*"),
                WorkflowStep("github", "merge_pr", "repo:acme/docs"),
            ),
            max_duration=dt.timedelta(minutes=30),
            actor="test",
        )
        registry.approve_workflow(workflow.id, actor="alice")
        for name, spiffe_id in (("invoice-bot", BOT), ("helper-bot", HELPER)):
            registry.register_agent(
                name=name,
                binding=WorkloadBinding(spiffe_id=SpiffeId.parse(spiffe_id)),
                owner=owner.id,
                function=function.id,
                environments=["prod"],
                review_by=dt.date.today() + dt.timedelta(days=90),  # noqa: DTZ011 - the server runs on the real clock
                actor="test",
            )
        yield live


def _declaration(svid: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "evidence": {"kind": "jwt_svid", "token": svid},
        "workflow": "release-docs@1",
        "objective": "publish the Q1 docs",
        "authorization_details": [
            {"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs"]}
        ],
        "expected_duration_seconds": 600,
        "environment": "prod",
        "audience": "tool:github",
    }
    body.update(overrides)
    return body


def _exchange(
    client: httpx.Client, svid: str, *, duration: object = 60, framework: bool = False, **form: str
) -> httpx.Response:
    """POST an RFC 8693 exchange for the standard test declaration; `form` adds or overrides fields.

    `framework` sends it with a query string, which the fast path leaves to the framework's route.
    """
    body = _exchange_form(svid, duration=duration, **form)
    return client.post("/oauth2/token", data=body, params={"via": "framework"} if framework else None)


def _exchange_form(svid: str, *, duration: object = 60, **form: str) -> dict[str, Any]:
    """The form of an RFC 8693 exchange for the standard test declaration; `form` adds or overrides fields."""
    details = [
        {
            "type": "remit_task",
            "workflow": "release-docs@1",
            "objective": "x",
            "expected_duration_seconds": duration,
            "environment": "prod",
        },
        {"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs"]},
    ]
    return {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": svid,
        "subject_token_type": JWT_TYPE,
        "resource": "tool:github",
        "authorization_details": json.dumps(details),
        **form,
    }


def _jwks_keys(live: LiveServer) -> dict[str, Any]:
    with live.client(authenticated=False) as client:
        return {k["kid"]: k for k in client.get("/.well-known/jwks.json").json()["keys"]}


def _verify_with_pyjwt(live: LiveServer, token: str, audience: str) -> dict[str, Any]:
    header = jwt.get_unverified_header(token)
    key = jwt.PyJWK(_jwks_keys(live)[header["kid"]])
    return jwt.decode(token, key=key, algorithms=["ES256", "EdDSA"], audience=audience, issuer=ISSUER)


def test_native_issuance_gives_a_credential_pyjwt_verifies(agent_server: LiveServer, workloads: Workloads) -> None:
    """POST /v1/tasks with a JWT-SVID returns the task and an at+jwt that PyJWT verifies against our JWKS."""
    with agent_server.client(authenticated=False) as client:
        response = client.post("/v1/tasks", json=_declaration(workloads.svid()))

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    credential = body["credential"]
    assert credential["token_type"] == "Bearer"
    assert "refresh_token" not in credential
    claims = _verify_with_pyjwt(agent_server, credential["access_token"], "tool:github")
    assert jwt.get_unverified_header(credential["access_token"])["typ"] == "at+jwt"
    assert claims["txn"] == body["task"]["id"]
    assert claims["client_id"] == BOT
    assert claims["exp"] - claims["iat"] <= 600


def test_replayed_or_foreign_evidence_is_refused_without_detail(agent_server: LiveServer, workloads: Workloads) -> None:
    """The same SVID twice, or an SVID for another audience or trust, is 401 attestation_failed with no reason given."""
    svid = workloads.svid(jti="once")
    with agent_server.client(authenticated=False) as client:
        assert client.post("/v1/tasks", json=_declaration(svid)).status_code == 201
        replayed = client.post("/v1/tasks", json=_declaration(svid))
        wrong_audience = client.post("/v1/tasks", json=_declaration(workloads.svid(audience="https://elsewhere")))
        forged = client.post("/v1/tasks", json=_declaration(Workloads(ec_key()).svid()))

    for response in (replayed, wrong_audience, forged):
        assert response.status_code == 401
        problem = response.json()
        assert problem["code"] == "attestation_failed"
        assert "reason" not in problem


def test_agent_ends_its_task_with_its_credential_and_it_dies(agent_server: LiveServer, workloads: Workloads) -> None:
    """The credential holder completes its task; introspection then says inactive (C21)."""
    with agent_server.client(authenticated=False) as client:
        started = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()
        token, task_id = started["credential"]["access_token"], started["task"]["id"]
        ended = client.post(
            f"/v1/tasks/{task_id}/end", json={"outcome": "completed"}, headers={"Authorization": f"Bearer {token}"}
        )
    with agent_server.client() as operator:
        introspection = operator.post("/oauth2/introspect", data={"token": token}).json()

    assert ended.status_code == 200, ended.text
    assert ended.json()["state"] == "completed"
    assert introspection == {"active": False}


def test_a_credential_cannot_touch_another_task(agent_server: LiveServer, workloads: Workloads) -> None:
    """Cross-task: a credential of task A ending task B gets 404 and B keeps running."""
    with agent_server.client(authenticated=False) as client:
        first = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()
        second = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()
        response = client.post(
            f"/v1/tasks/{second['task']['id']}/end",
            json={"outcome": "cancelled"},
            headers={"Authorization": f"Bearer {first['credential']['access_token']}"},
        )
    assert response.status_code == 404
    assert agent_server.remit.tasks.get(second["task"]["id"]).is_running


def test_introspection_of_a_live_credential_and_its_auth(agent_server: LiveServer, workloads: Workloads) -> None:
    """RFC 7662: active with claims for the operator; callers without credentials are refused."""
    with agent_server.client(authenticated=False) as client:
        token = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["credential"]["access_token"]
        anonymous = client.post("/oauth2/introspect", data={"token": token})
    with agent_server.client() as operator:
        active = operator.post("/oauth2/introspect", data={"token": token}).json()
        garbage = operator.post("/oauth2/introspect", data={"token": "not-a-token"}).json()

    assert anonymous.status_code == 401
    assert active["active"] is True
    assert active["client_id"] == BOT
    assert garbage == {"active": False}


def test_holder_revocation_rfc7009(agent_server: LiveServer, workloads: Workloads) -> None:
    """RFC 7009: the holder revokes its own credential; the answer is 200 even for junk."""
    with agent_server.client(authenticated=False) as client:
        token = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["credential"]["access_token"]
        revoked = client.post("/oauth2/revoke", data={"token": token})
        junk = client.post("/oauth2/revoke", data={"token": "junk"})
    with agent_server.client() as operator:
        introspection = operator.post("/oauth2/introspect", data={"token": token}).json()

    assert (revoked.status_code, junk.status_code) == (200, 200)
    assert introspection == {"active": False}


def test_token_exchange_with_authlib(agent_server: LiveServer, workloads: Workloads) -> None:
    """A standard OAuth client performs the RFC 8693 exchange; PyJWT verifies what it got."""
    details = [
        {
            "type": "remit_task",
            "workflow": "release-docs@1",
            "objective": "publish the Q1 docs",
            "expected_duration_seconds": 300,
            "environment": "prod",
        },
        {"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs"]},
    ]
    with OAuth2Session(token_endpoint_auth_method="none") as oauth:
        token = oauth.fetch_token(
            f"{agent_server.url}/oauth2/token",
            grant_type=TOKEN_EXCHANGE,
            subject_token=workloads.svid(),
            subject_token_type=JWT_TYPE,
            resource="tool:github",
            authorization_details=json.dumps(details),
        )

    assert token["issued_token_type"] == "urn:ietf:params:oauth:token-type:access_token"
    assert "refresh_token" not in token
    claims = _verify_with_pyjwt(agent_server, token["access_token"], "tool:github")
    assert claims["txn"] == token["txn"]
    assert claims["authorization_details"] == [details[1]]


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "refresh_token", "refresh_token": "x"}, "unauthorized_client"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": TOKEN_EXCHANGE, "subject_token_type": JWT_TYPE}, "invalid_request"),
        (  # authorization_details nested past the JSON parser's depth: refused, not a crash
            {
                "grant_type": TOKEN_EXCHANGE,
                "subject_token_type": JWT_TYPE,
                "subject_token": "x.y.z",
                "authorization_details": "[" * 5000,
            },
            "invalid_authorization_details",
        ),
    ],
)
def test_token_endpoint_refusals_use_rfc6749_errors(agent_server: LiveServer, form: dict[str, str], error: str) -> None:
    """No refresh tokens ever (C09); unknown grants and missing parameters get RFC 6749 §5.2 errors."""
    with agent_server.client(authenticated=False) as client:
        response = client.post("/oauth2/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_two_audiences_are_invalid_target(agent_server: LiveServer, workloads: Workloads) -> None:
    """One audience per token (C10): resource and audience disagreeing is invalid_target."""
    with agent_server.client(authenticated=False) as client:
        response = _exchange(client, workloads.svid(), audience="tool:stripe")
    assert response.json()["error"] == "invalid_target"


def test_metadata_names_no_client_secrets(agent_server: LiveServer) -> None:
    """RFC 8414 metadata: the endpoints, token exchange only, no client_secret_* methods (C06), DPoP algorithms."""
    with agent_server.client(authenticated=False) as client:
        metadata = client.get("/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == ISSUER
    assert metadata["grant_types_supported"] == [TOKEN_EXCHANGE]
    assert not any("client_secret" in m for m in metadata["token_endpoint_auth_methods_supported"])
    assert "ES256" in metadata["dpop_signing_alg_values_supported"]


def _dpop_proof(key: ECKey, method: str, url: str, access_token: str | None = None) -> str:
    claims: dict[str, Any] = {
        "jti": uuid.uuid4().hex,
        "htm": method,
        "htu": url,
        "iat": int(SystemClock().now().timestamp()),
    }
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    jwk = public_jwk(key)
    return sign({"alg": "ES256", "typ": "dpop+jwt", "jwk": jwk}, claims, key)


def _start_bound(client: httpx.Client, workloads: Workloads, holder: ECKey) -> dict[str, Any]:
    """Start a task with a DPoP proof from `holder` at issuance: its credential is bound to that key."""
    response = client.post(
        "/v1/tasks", json=_declaration(workloads.svid()), headers={"DPoP": _dpop_proof(holder, "POST", TASKS_URL)}
    )
    assert response.status_code == 201, response.text
    started: dict[str, Any] = response.json()
    return started


def test_dpop_bound_credential_needs_a_proof_from_its_key(agent_server: LiveServer, workloads: Workloads) -> None:
    """A proof at issuance binds the credential (cnf.jkt); using it without a proof, or with another key, fails (C11)."""
    holder = ec_key()
    with agent_server.client(authenticated=False) as client:
        started = _start_bound(client, workloads, holder)
        token, task_id = started["credential"]["access_token"], started["task"]["id"]
        end_url = f"{ISSUER}/v1/tasks/{task_id}/end"
        without = client.post(
            f"/v1/tasks/{task_id}/end", json={"outcome": "completed"}, headers={"Authorization": f"DPoP {token}"}
        )
        thief = client.post(
            f"/v1/tasks/{task_id}/end",
            json={"outcome": "completed"},
            headers={"Authorization": f"DPoP {token}", "DPoP": _dpop_proof(ec_key(), "POST", end_url, token)},
        )
        owner = client.post(
            f"/v1/tasks/{task_id}/end",
            json={"outcome": "completed"},
            headers={"Authorization": f"DPoP {token}", "DPoP": _dpop_proof(holder, "POST", end_url, token)},
        )

    assert started["credential"]["token_type"] == "DPoP"
    assert (without.status_code, thief.status_code) == (401, 401)
    assert owner.status_code == 200, owner.text


def test_a_dpop_bound_delegation_credential_needs_a_proof_from_its_key(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """A bound delegation credential starts a child task only with a proof from its key in the same request."""
    holder = ec_key()
    with agent_server.client(authenticated=False) as client:
        parent = _start_bound(client, workloads, holder)["task"]["id"]
        delegation = client.post(
            f"/v1/tasks/{parent}/credentials",
            json={"evidence": {"kind": "jwt_svid", "token": workloads.svid()}, "audience": ISSUER},
            headers={"DPoP": _dpop_proof(holder, "POST", f"{TASKS_URL}/{parent}/credentials")},
        ).json()

        def child() -> dict[str, Any]:
            return _declaration(workloads.svid(HELPER), parent_token=delegation["access_token"])

        alone = client.post("/v1/tasks", json=child())
        thief = client.post("/v1/tasks", json=child(), headers={"DPoP": _dpop_proof(ec_key(), "POST", TASKS_URL)})
        holder_child = client.post("/v1/tasks", json=child(), headers={"DPoP": _dpop_proof(holder, "POST", TASKS_URL)})

    assert delegation["token_type"] == "DPoP"
    assert (alone.status_code, alone.json()["code"]) == (401, "credential_invalid")
    assert (thief.status_code, thief.json()["code"]) == (401, "credential_invalid")
    assert holder_child.status_code == 201, holder_child.text
    assert holder_child.json()["task"]["parent_id"] == parent


def test_a_bound_task_is_reissued_only_with_a_proof_from_its_key(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """ADR 0016: the agent's fresh evidence re-issues for a bound task only with a fresh proof from the task's key.

    No proof, another key's proof, the holder's proof replayed, or the holder's proof made for another URL: 401.
    """
    holder = ec_key()
    with agent_server.client(authenticated=False) as client:
        task = _start_bound(client, workloads, holder)["task"]
        bearer_task = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["task"]
        task_id = task["id"]
        path = f"/v1/tasks/{task_id}/credentials"

        def reissue(proof: str | None) -> httpx.Response:
            headers = {"DPoP": proof} if proof else {}
            return client.post(
                path, json={"evidence": {"kind": "jwt_svid", "token": workloads.svid()}}, headers=headers
            )

        holders = _dpop_proof(holder, "POST", f"{ISSUER}{path}")
        refused = [
            reissue(None),
            reissue(_dpop_proof(ec_key(), "POST", f"{ISSUER}{path}")),
            reissue(_dpop_proof(holder, "POST", TASKS_URL)),
        ]
        again = reissue(holders)
        replayed = reissue(holders)

    assert [(r.status_code, r.json()["code"]) for r in [*refused, replayed]] == [(401, "credential_invalid")] * 4
    assert again.status_code == 201, again.text
    assert again.json()["token_type"] == "DPoP"
    assert (task["dpop_bound"], bearer_task["dpop_bound"]) == (True, False)
    assert "jkt" not in str(task)


def test_reissue_refuses_another_agents_task_and_expired_or_replayed_evidence(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """Re-issue on the event loop: cross-agent reads as absent, and spent or stale evidence gets nothing."""
    started_with = workloads.svid()
    with agent_server.client(authenticated=False) as client:
        task_id = client.post("/v1/tasks", json=_declaration(started_with)).json()["task"]["id"]
        path = f"/v1/tasks/{task_id}/credentials"

        def reissue(svid: str) -> httpx.Response:
            return client.post(path, json={"evidence": {"kind": "jwt_svid", "token": svid}})

        cross_agent = reissue(workloads.svid(HELPER))  # a registered agent, not the task's
        expired = reissue(workloads.svid(lifetime=-60))
        replayed = reissue(started_with)  # the SVID that started the task, already spent
        real = reissue(workloads.svid())

    assert (cross_agent.status_code, cross_agent.json()["code"]) == (404, "not_found")
    assert [(r.status_code, r.json()["code"]) for r in (expired, replayed)] == [(401, "attestation_failed")] * 2
    assert real.status_code == 201, real.text
    with agent_server.client() as operator:
        issued = operator.get("/v1/audit/events", params={"type": "credential.issued"}).json()["items"]
    assert len([e for e in issued if e["task_id"] == task_id]) == 2  # the start and the one real re-issue


def test_introspection_reports_a_live_dpop_bound_credential_with_its_key(
    agent_server: LiveServer, workloads: Workloads
) -> None:
    """RFC 7662 + RFC 9449 §6.2: introspection says active and returns cnf.jkt for the resource server to check."""
    holder = ec_key()
    with agent_server.client(authenticated=False) as client:
        started = _start_bound(client, workloads, holder)
    with agent_server.client() as operator:
        introspection = operator.post(
            "/oauth2/introspect", data={"token": started["credential"]["access_token"]}
        ).json()
    assert introspection["active"] is True
    assert introspection["token_type"] == "DPoP"
    assert introspection["cnf"]["jkt"]


def test_untraceable_agent_gets_a_precise_403(agent_server: LiveServer, workloads: Workloads) -> None:
    """An attested workload that no agent is bound to is told so: 403 agent_untraceable (C01)."""
    with agent_server.client(authenticated=False) as client:
        response = client.post("/v1/tasks", json=_declaration(workloads.svid(f"spiffe://{TRUST_DOMAIN}/agents/ghost")))
    assert response.status_code == 403
    assert response.json()["code"] == "agent_untraceable"


def test_kill_switch_over_http(agent_server: LiveServer, workloads: Workloads) -> None:
    """`POST /v1/agents/{ref}/suspend` revokes every credential the agent holds and blocks new ones (C25)."""
    with agent_server.client(authenticated=False) as client:
        token = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["credential"]["access_token"]
    with agent_server.client() as operator:
        assert operator.post("/v1/agents/invoice-bot/suspend", json={"reason": "incident"}).status_code == 200
        introspection = operator.post("/oauth2/introspect", data={"token": token}).json()
    with agent_server.client(authenticated=False) as client:
        again = client.post("/v1/tasks", json=_declaration(workloads.svid()))

    assert introspection == {"active": False}
    assert again.status_code == 403


def test_operator_lists_and_filters_tasks(agent_server: LiveServer, workloads: Workloads) -> None:
    """GET /v1/tasks is for operators; `state` filters; an agent credential is not an operator token."""
    with agent_server.client(authenticated=False) as client:
        started = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()
        as_agent = client.get("/v1/tasks", headers={"Authorization": f"Bearer {started['credential']['access_token']}"})
    with agent_server.client() as operator:
        running = operator.get("/v1/tasks", params={"state": "running"}).json()
        completed = operator.get("/v1/tasks", params={"state": "completed"}).json()

    assert as_agent.status_code == 401
    assert [t["id"] for t in running["items"]] == [started["task"]["id"]]
    assert completed["items"] == []


@pytest.mark.parametrize("duration", [0, -5, 7 * 86_400 + 1, "600", True])
def test_token_exchange_refuses_a_bad_duration(
    agent_server: LiveServer, workloads: Workloads, duration: object
) -> None:
    """A remit_task detail with a non-positive, too long or non-integer duration is invalid_authorization_details."""
    with agent_server.client(authenticated=False) as client:
        response = _exchange(client, workloads.svid(), duration=duration)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_authorization_details"


def test_every_issuance_door_runs_the_same_admission(agent_server: LiveServer, workloads: Workloads) -> None:
    """Native start, re-issue and token exchange all refuse a suspended agent: one admission check behind all doors."""
    with agent_server.client(authenticated=False) as client:
        task_id = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["task"]["id"]
    with agent_server.client() as operator:
        operator.post("/v1/agents/invoice-bot/suspend", json={"reason": "incident"}).raise_for_status()
        operator.post("/v1/agents/invoice-bot/reactivate", json={"reason": "cleared"}).raise_for_status()
        operator.post("/v1/agents/invoice-bot/suspend", json={"reason": "again"}).raise_for_status()
    with agent_server.client(authenticated=False) as client:
        native = client.post("/v1/tasks", json=_declaration(workloads.svid()))
        reissue = client.post(
            f"/v1/tasks/{task_id}/credentials", json={"evidence": {"kind": "jwt_svid", "token": workloads.svid()}}
        )
        exchange = _exchange(client, workloads.svid())

    assert (native.status_code, native.json()["code"]) == (403, "forbidden")
    assert (reissue.status_code, reissue.json()["code"]) == (403, "forbidden")
    assert exchange.status_code == 400
    assert exchange.json() == {"error": "invalid_grant", "error_description": "agent invoice-bot is suspended"}
    with agent_server.remit.database.transaction() as tx:
        refusals = [e for e in tx.audit.recent(limit=20) if e.type == "credential.refused"]
    assert {e.data["channel"] for e in refusals} >= {"native", "reissue", "token_exchange"}


def test_an_operator_token_with_dots_is_not_taken_for_a_credential(tmp_path: Path, sqlite_template: Path) -> None:
    """Operator tokens are tried first: one shaped like a JWS still authenticates the operator on task routes."""
    token = "operator.token." + secrets.token_urlsafe(16)
    settings = Settings(
        home=tmp_path, store=StoreSettings(url=f"sqlite:///{tmp_path / 'remit.db'}"), operator_token=SecretStr(token)
    )
    shutil.copyfile(sqlite_template, tmp_path / "remit.db")
    upgrade_database(settings)
    with running(settings, token) as live, live.client() as operator:
        response = operator.get("/v1/tasks/tsk_00000000000000000000000001")
    assert response.status_code == 404
