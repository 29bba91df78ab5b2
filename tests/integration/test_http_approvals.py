"""Approvals end to end over real HTTP: step-up, approve, allowed once, refused again; and the rest.

Two approvers; separation of duties (principal, agents); denial; expiry; break-glass with its alert
and review; webhooks; operator accounts; every step in the task's trace.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import threading

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from sqlalchemy import update
from tests.integration.conftest import LiveServer
from tests.integration.test_http_decisions_policies import PACK
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    Workloads,
    _declaration,
    agent_server,
    workloads,
)

from remit.adapters.sql.tables import approvals
from remit.adapters.webhooks import Webhook, WebhookNotifier, sql_recorder
from remit.core.registry.models import RiskClass, Sensitivity, ToolAction, ToolResource, WorkflowStep

MERGE = {"tool": "github", "action": "merge_pr", "resource": "repo:acme/docs"}
PAY = {"tool": "bank", "action": "pay", "resource": "acct:ops", "context": {"amount": 500, "currency": "EUR"}}


class Receiver:
    """A local webhook receiver: records each delivery; the first `fail_first` answers are 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = 500 if len(receiver.deliveries) <= receiver.fail_first else 204
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(fail_first=1)
    yield found
    found.close()


@pytest.fixture
def governed(agent_server: LiveServer, receiver: Receiver) -> LiveServer:
    """The agent server with the default pack, a payments tool and workflow, and webhooks to the receiver."""
    remit = agent_server.remit
    for path in sorted(PACK.glob("*.cedar")):
        version = remit.policies.add(name=path.stem, text=path.read_text(encoding="utf-8"), actor="test")
        remit.policies.activate(version.name, version.version, actor="test")
    registry = remit.registry
    function = registry.get_function("docs")
    registry.register_tool(
        name="bank",
        description="",
        actions=(ToolAction("pay", RiskClass.PAYMENT),),
        resources=(ToolResource("acct:*", Sensitivity.INTERNAL),),
        actor="test",
    )
    workflow = registry.create_workflow_version(
        name="pay-suppliers",
        function=function.id,
        description="",
        steps=(WorkflowStep("bank", "pay", "acct:*"),),
        max_duration=dt.timedelta(minutes=30),
        actor="test",
    )
    registry.approve_workflow(workflow.id, actor="alice")
    notifier = WebhookNotifier(
        [Webhook("approvers", receiver.url, b"s3cret"), Webhook("security", receiver.url, b"alarm")],
        clock=remit.clock,
        ids=remit.ids,
        record=sql_recorder(remit.database, clock=remit.clock, ids=remit.ids),
        attempts=3,
        backoff_seconds=0.01,
    )
    remit.notifier = notifier
    remit.approvals._notifier = notifier
    return agent_server


def _account(live: LiveServer, name: str, roles: list[str], **extra: Any) -> str:
    with live.client() as client:
        response = client.post("/v1/operators", json={"name": name, "roles": roles, **extra})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    token: str = response.json()["token"]
    return token


def _as(live: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)


def _task(live: LiveServer, workloads: Workloads, *, pay: bool = False, principal: str | None = None) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if pay:
        overrides = {
            "workflow": "pay-suppliers@1",
            "audience": "tool:bank",
            "authorization_details": [
                {"type": "remit_tool", "tool": "bank", "actions": ["pay"], "resources": ["acct:ops"]}
            ],
        }
    else:
        overrides = {
            "authorization_details": [
                {"type": "remit_tool", "tool": "github", "actions": ["merge_pr"], "resources": ["repo:acme/docs"]}
            ]
        }
    if principal:
        overrides["principal"] = principal
    with live.client(authenticated=False) as client:
        response = client.post("/v1/tasks", json=_declaration(workloads.svid(), **overrides))
    assert response.status_code == 201, response.text
    started: dict[str, Any] = response.json()
    return started


def _decide(live: LiveServer, token: str, call: dict[str, Any]) -> dict[str, Any]:
    with live.client(authenticated=False) as client:
        response = client.post("/v1/decisions", json={"credential": token, **call})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_step_up_approve_allowed_once_then_refused(governed: LiveServer, workloads: Workloads) -> None:
    grace = _account(governed, "grace", ["approver"], groups=["approvers"])
    started = _task(governed, workloads)
    token, task_id = started["credential"]["access_token"], started["task"]["id"]

    first = _decide(governed, token, MERGE)
    assert first["effect"] == "step_up"
    approval_id = first["approval_id"]
    assert approval_id.startswith("apr_")
    # The same call again, still pending: the same request, not a second one.
    assert _decide(governed, token, MERGE)["approval_id"] == approval_id

    agent = _as(governed, token)
    with agent:
        pending = agent.get(f"/v1/approvals/{approval_id}").json()
        assert pending["state"] == "pending"
        assert pending["history"] is None  # the agent does not read the audit trail
        assert pending["authorization_details"] == [
            {"type": "remit_tool", "tool": "github", "actions": ["merge_pr"], "resources": ["repo:acme/docs"]}
        ]
        # An agent can never approve, whatever token it presents.
        refused = agent.post(f"/v1/approvals/{approval_id}/approve", json={})
        assert refused.status_code == 401, refused.text

    with _as(governed, grace) as approver:
        shown = approver.get(f"/v1/approvals/{approval_id}").json()
        assert shown["objective"] == "publish the Q1 docs"
        assert shown["sensitivity"] == "internal"
        assert any(h["type"] == "approval.requested" for h in shown["history"])
        approved = approver.post(f"/v1/approvals/{approval_id}/approve", json={"reason": "release day"})
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert body["state"] == "approved"
    elevation = body["elevation"]
    assert elevation["uses_left"] == 1
    assert elevation["task_id"] == task_id

    allowed = _decide(governed, token, MERGE)
    assert allowed["effect"] == "allow", allowed
    assert allowed["elevation_id"] == elevation["id"]
    again = _decide(governed, token, MERGE)
    assert again["effect"] == "step_up"
    assert again["approval_id"] != approval_id
    # A wider call (another resource) is never covered by the elevation.
    other = _decide(governed, token, {**MERGE, "resource": "repo:acme/other"})
    assert other["effect"] != "allow"

    with governed.client() as operator:
        trace = operator.get(f"/v1/tasks/{task_id}/trace").json()
    types = [e["type"] for e in trace["events"]]
    for expected in ("approval.requested", "approval.granted", "elevation.used"):
        assert expected in types, types
    granted = next(e for e in trace["events"] if e["type"] == "approval.granted")
    assert granted["actor_kind"] == "approver"
    assert granted["actor_id"] == "grace"


def test_payment_needs_two_distinct_approvers_never_the_principal(governed: LiveServer, workloads: Workloads) -> None:
    grace = _account(governed, "grace", ["approver"], groups=["approvers"])
    heidi = _account(governed, "heidi", ["approver"], groups=["approvers"])
    ada = _account(governed, "ada", ["approver"], groups=["approvers"], email="ada@acme.example")
    admin_only = _account(governed, "root", ["admin"])
    started = _task(governed, workloads, pay=True, principal="ada@acme.example")
    token = started["credential"]["access_token"]

    decision = _decide(governed, token, PAY)
    assert decision["effect"] == "step_up", decision
    approval_id = decision["approval_id"]
    path = f"/v1/approvals/{approval_id}"

    with _as(governed, ada) as principal:
        refused = principal.post(f"{path}/approve", json={})
    assert refused.status_code == 403
    assert "own behalf" in refused.json()["detail"]
    with _as(governed, admin_only) as admin, governed.client() as bootstrap:
        assert admin.post(f"{path}/approve", json={}).status_code == 403
        assert bootstrap.post(f"{path}/approve", json={}).status_code == 403

    with _as(governed, grace) as first:
        one = first.post(f"{path}/approve", json={"reason": "invoice checked"}).json()
        assert one["state"] == "pending"
        assert one["approvals"] == 1
        assert one["required"] == 2
        twice = first.post(f"{path}/approve", json={})
        assert twice.status_code == 409
    assert _decide(governed, token, PAY)["effect"] == "step_up"  # one approval keeps it pending

    with _as(governed, heidi) as second:
        done = second.post(f"{path}/approve", json={}).json()
    assert done["state"] == "approved"
    assert _decide(governed, token, PAY)["effect"] == "allow"


def test_an_approval_covers_only_the_approved_facts_and_a_mailto_principal_is_the_person(
    governed: LiveServer, workloads: Workloads
) -> None:
    grace = _account(governed, "grace", ["approver"], groups=["approvers"], email="grace@acme.example")
    heidi = _account(governed, "heidi", ["approver"], groups=["approvers"])
    lin = _account(governed, "lin", ["approver"], groups=["approvers"])
    started = _task(governed, workloads, pay=True, principal="MAILTO:Grace@ACME.example")
    token = started["credential"]["access_token"]
    approval_id = _decide(governed, token, PAY)["approval_id"]
    path = f"/v1/approvals/{approval_id}"
    with _as(governed, grace) as principal:
        refused = principal.post(f"{path}/approve", json={})
    assert refused.status_code == 403
    assert "own behalf" in refused.json()["detail"]
    for token_ in (heidi, lin):
        with _as(governed, token_) as approver:
            assert approver.post(f"{path}/approve", json={}).status_code == 200
    other = {**PAY, "context": {"amount": 600, "currency": "EUR"}}
    assert _decide(governed, token, other)["effect"] != "allow"  # other facts: not what was approved
    assert _decide(governed, token, PAY)["effect"] == "allow"
    # One person, one active account; reserved names and groups are refused.
    with governed.client() as admin:
        again = admin.post(
            "/v1/operators", json={"name": "grace2", "roles": ["approver"], "email": "grace@acme.example"}
        )
        assert again.status_code == 409
        for body in (
            {"name": "operator", "roles": ["admin"]},
            {"name": "x", "roles": ["approver"], "groups": ["owner"]},
        ):
            assert admin.post("/v1/operators", json=body).status_code == 400


def test_denial_ends_the_request_with_the_reason(governed: LiveServer, workloads: Workloads) -> None:
    grace = _account(governed, "grace", ["approver"], groups=["approvers"])
    started = _task(governed, workloads)
    token, task_id = started["credential"]["access_token"], started["task"]["id"]
    approval_id = _decide(governed, token, MERGE)["approval_id"]

    with _as(governed, grace) as approver:
        without_reason = approver.post(f"/v1/approvals/{approval_id}/deny", json={})
        assert without_reason.status_code == 400
        denied = approver.post(f"/v1/approvals/{approval_id}/deny", json={"reason": "not on a Friday"}).json()
        late = approver.post(f"/v1/approvals/{approval_id}/approve", json={})
    assert denied["state"] == "denied"
    assert denied["reason"] == "not on a Friday"
    assert late.status_code == 409
    with _as(governed, token) as agent:
        seen = agent.get(f"/v1/approvals/{approval_id}", params={"wait": 5}).json()
    assert seen["state"] == "denied"
    with governed.client() as operator:
        types = [e["type"] for e in operator.get(f"/v1/tasks/{task_id}/trace").json()["events"]]
    assert "approval.denied" in types


def test_another_tasks_credential_cannot_read_the_request(governed: LiveServer, workloads: Workloads) -> None:
    first = _task(governed, workloads)
    second = _task(governed, workloads)
    approval_id = _decide(governed, first["credential"]["access_token"], MERGE)["approval_id"]

    with _as(governed, second["credential"]["access_token"]) as other:
        assert other.get(f"/v1/approvals/{approval_id}").status_code == 404


def test_expiry_and_a_dead_task_end_everything(governed: LiveServer, workloads: Workloads) -> None:
    remit = governed.remit
    grace = _account(governed, "grace", ["approver"], groups=["approvers"])
    started = _task(governed, workloads)
    token, task_id = started["credential"]["access_token"], started["task"]["id"]
    approval_id = _decide(governed, token, MERGE)["approval_id"]
    # Push the request past its timeout (the server runs on the real clock).
    with remit.database.transaction() as tx:
        long_ago = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        tx.connection.execute(update(approvals).where(approvals.c.id == approval_id).values(expires_at=long_ago))

    with _as(governed, grace) as approver:
        late = approver.post(f"/v1/approvals/{approval_id}/approve", json={})
    assert late.status_code == 409
    assert late.json()["state"] == "expired"
    with _as(governed, token) as agent:
        assert agent.get(f"/v1/approvals/{approval_id}").json()["state"] == "expired"

    # A fresh approval, granted; then the task ends: the elevation dies with it.
    fresh = _decide(governed, token, MERGE)["approval_id"]
    with _as(governed, grace) as approver:
        assert approver.post(f"/v1/approvals/{fresh}/approve", json={}).json()["state"] == "approved"
    with governed.client() as operator:
        operator.post(f"/v1/tasks/{task_id}/end", json={"outcome": "cancelled", "reason": "stop"}).raise_for_status()
        types = [e["type"] for e in operator.get(f"/v1/tasks/{task_id}/trace").json()["events"]]
    assert _decide(governed, token, MERGE)["effect"] == "deny"
    assert "approval.expired" in types


def test_break_glass_is_loud_and_stays_under_review(
    governed: LiveServer, workloads: Workloads, receiver: Receiver
) -> None:
    oncall = _account(governed, "oncall", ["break-glass"])
    auditor = _account(governed, "audrey", ["auditor"])
    started = _task(governed, workloads)
    token, task_id = started["credential"]["access_token"], started["task"]["id"]
    grant = {**MERGE, "task_id": task_id, "justification": "production outage, docs site down; INC-42"}

    with _as(governed, token) as agent:
        assert agent.post("/v1/breakglass", json=grant).status_code == 401  # never an agent
    with _as(governed, auditor) as other:
        assert other.post("/v1/breakglass", json=grant).status_code == 403
    with _as(governed, oncall) as holder:
        short = holder.post("/v1/breakglass", json={**grant, "justification": "because"})
        assert short.status_code == 400
        made = holder.post("/v1/breakglass", json=grant)
        assert made.status_code == 201, made.text
        grant_id = made.json()["id"]
        assert made.json()["review_state"] == "open"
        elevation = made.json()["elevation"]
        lifetime = dt.datetime.fromisoformat(elevation["expires_at"]) - dt.datetime.fromisoformat(
            elevation["granted_at"]
        )
        assert lifetime <= dt.timedelta(minutes=10)
        # The holder may not close their own review.
        assert holder.post(f"/v1/breakglass/{grant_id}/review", json={"notes": "fine"}).status_code == 403

    assert _decide(governed, token, MERGE)["effect"] == "allow"
    with _as(governed, auditor) as reviewer:
        open_ones = reviewer.get("/v1/breakglass", params={"unreviewed": "true"}).json()["items"]
        assert [g["id"] for g in open_ones] == [grant_id]
        closed = reviewer.post(f"/v1/breakglass/{grant_id}/review", json={"notes": "INC-42 confirmed"}).json()
        assert closed["review_state"] == "closed"
        assert reviewer.get("/v1/breakglass", params={"unreviewed": "true"}).json()["items"] == []

    notifier = governed.remit.notifier
    assert isinstance(notifier, WebhookNotifier)
    assert notifier.wait_idle(10)
    alerts = [(h, b) for h, b in receiver.deliveries if h["x-remit-event"] == "breakglass.used"]
    assert alerts, receiver.deliveries
    headers, body = alerts[-1]
    expected = hmac.new(b"alarm", headers["x-remit-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-remit-signature"] == f"sha256={expected}"
    assert json.loads(body)["data"]["severity"] == "high"
    with governed.client() as operator:
        events = operator.get(f"/v1/tasks/{task_id}/trace").json()["events"]
    used = next(e for e in events if e["type"] == "breakglass.used")
    assert used["data"]["severity"] == "high"
    assert used["actor_id"] == "oncall"
    types = [e["type"] for e in events]
    assert "breakglass.reviewed" in types
    # The first attempt got a 500 and was retried; both attempts are recorded.
    assert "webhook.failed" in types
    assert "webhook.delivered" in types


def test_approval_requests_reach_the_group_webhook_signed(
    governed: LiveServer, workloads: Workloads, receiver: Receiver
) -> None:
    started = _task(governed, workloads)
    approval_id = _decide(governed, started["credential"]["access_token"], MERGE)["approval_id"]

    notifier = governed.remit.notifier
    assert isinstance(notifier, WebhookNotifier)
    assert notifier.wait_idle(10)
    requested = [(h, b) for h, b in receiver.deliveries if h["x-remit-event"] == "approval.requested"]
    assert len(requested) == 2  # a 500, then the retry
    headers, body = requested[-1]
    expected = hmac.new(b"s3cret", headers["x-remit-timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["x-remit-signature"] == f"sha256={expected}"
    assert json.loads(body)["data"]["approval_id"] == approval_id
    with governed.remit.database.reading() as tx:
        rows = tx.connection.exec_driver_sql("SELECT attempt, delivered FROM webhook_deliveries").all()
    assert sorted((r[0], r[1]) for r in rows) == [(1, 0), (2, 1)]


def test_operator_accounts_are_admin_only_and_can_be_disabled(governed: LiveServer) -> None:
    grace = _account(governed, "grace", ["approver"], groups=["approvers"])
    with _as(governed, grace) as approver:
        assert approver.get("/v1/operators").status_code == 403
        assert approver.get("/v1/approvals").status_code == 200
    with governed.client() as admin:
        listed = admin.get("/v1/operators").json()["items"]
        assert [a["name"] for a in listed] == ["grace"]
        assert "token" not in listed[0]
        assert admin.post("/v1/operators", json={"name": "grace", "roles": ["auditor"]}).status_code == 409
        assert admin.post("/v1/operators", json={"name": "x", "roles": ["superuser"]}).status_code == 400
        admin.post("/v1/operators/grace/disable", json={"reason": "left"}).raise_for_status()
    with _as(governed, grace) as approver:
        assert approver.get("/v1/approvals").status_code == 401


def test_an_auditor_reads_the_audit_trail_and_changes_nothing_else(governed: LiveServer, workloads: Workloads) -> None:
    """Auditors verify the chain and read traces and events; the registry and policies stay admin-only."""
    task = _task(governed, workloads)
    auditor = _account(governed, "aurora", ["auditor"])
    approver = _account(governed, "apollo", ["approver"])

    with _as(governed, auditor) as client:
        assert client.get("/v1/audit/verify").json()["ok"] is True
        assert client.get(f"/v1/tasks/{task['task']['id']}/trace").status_code == 200
        assert client.get("/v1/audit/events").status_code == 200
        assert client.get("/v1/agents").status_code == 403
        assert client.post("/v1/policies/base/deactivate").status_code == 403
    with _as(governed, approver) as client:
        assert client.get("/v1/audit/verify").status_code == 403
