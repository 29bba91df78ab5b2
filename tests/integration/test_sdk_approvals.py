"""The SDK side of approvals: `task.call(..., wait_for_approval=...)`.

It waits, then the call is allowed once; denial and a wait that runs out raise clear errors; the
enforcement-point helpers name the request.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import threading
import time

from pathlib import Path

import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_http_approvals import MERGE, governed, receiver  # noqa: F401 - fixtures
from tests.integration.test_http_tasks import (  # noqa: F401 - fixtures
    TRUST_DOMAIN,
    Workloads,
    agent_server,
    workloads,
)
from tests.integration.test_sdk_task import RotatingSvidFile

from remit.errors import ApprovalDenied, ApprovalRequired, Denied, Unavailable
from remit.sdk import RemitClient, TaskSession
from remit.sdk.enforcement import denial_problem, insufficient_scope_challenge, refusal
from remit.wire.approvals import OperatorIn


def _session(client: RemitClient, workloads: Workloads, tmp_path: Path) -> TaskSession:
    source = RotatingSvidFile(tmp_path / "svid.jwt", workloads, f"spiffe://{TRUST_DOMAIN}/agents/invoice-bot")
    return client.task(
        evidence=source,
        workflow="release-docs@1",
        objective="publish the Q1 docs",
        tools={"github": ["merge_pr"]},
        resources=["repo:acme/docs"],
        expected_duration_seconds=300,
        environment="prod",
        audience="tool:github",
    )


def _approver(live: LiveServer) -> RemitClient:
    with RemitClient(live.url, token=live.token) as admin:
        created = admin.add_operator(OperatorIn(name="grace", roles=["approver"], groups=["approvers"]))
    return RemitClient(live.url, token=created.token)


def _answer_when_requested(approver: RemitClient, *, approve: bool) -> threading.Thread:
    """An approver who watches the pending list and answers the first request that appears."""

    def run() -> None:
        deadline = time.monotonic() + 30  # generous: the suite may run on a loaded machine
        while time.monotonic() < deadline:
            try:
                pending = approver.list_approvals(state="pending").items
            except Unavailable:  # a busy store answers 503; ask again
                pending = []
            if pending:
                if approve:
                    approver.approve(pending[0].id, reason="looks right")
                else:
                    approver.deny(pending[0].id, reason="not today")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_call_waits_for_the_approval_then_is_allowed_once(
    governed: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    approver = _approver(governed)
    with RemitClient(governed.url) as client, _session(client, workloads, tmp_path) as task, approver:
        call = (MERGE["tool"], MERGE["action"], MERGE["resource"])
        with pytest.raises(ApprovalRequired) as raised:
            task.call(*call)
        assert raised.value.details["approval_id"].startswith("apr_")

        answering = _answer_when_requested(approver, approve=True)
        allowed = task.call(*call, wait_for_approval=30)
        answering.join(30)
        assert allowed.allowed
        assert allowed.elevation_id is not None
        # The elevation was single-use: the same call needs a new approval.
        with pytest.raises(ApprovalRequired):
            task.call(*call)


def test_denial_and_a_wait_that_runs_out_raise(governed: LiveServer, workloads: Workloads, tmp_path: Path) -> None:
    approver = _approver(governed)
    with RemitClient(governed.url) as client, _session(client, workloads, tmp_path) as task, approver:
        call = (MERGE["tool"], MERGE["action"], MERGE["resource"])
        with pytest.raises(ApprovalRequired) as waited:
            task.call(*call, wait_for_approval=0.5)
        assert waited.value.details["state"] == "pending"

        answering = _answer_when_requested(approver, approve=False)
        with pytest.raises(ApprovalDenied) as denied:
            task.call(*call, wait_for_approval=20)
        answering.join(30)
        assert denied.value.details["reason"] == "not today"
        assert isinstance(denied.value, Denied)


def test_enforcement_point_helpers_name_the_request(governed: LiveServer, workloads: Workloads, tmp_path: Path) -> None:
    with RemitClient(governed.url) as client, _session(client, workloads, tmp_path) as task:
        decision = task.check(MERGE["tool"], MERGE["action"], MERGE["resource"])  # dry run: no request
        assert decision.approval_id is None
        with pytest.raises(ApprovalRequired) as raised:
            task.call(MERGE["tool"], MERGE["action"], MERGE["resource"])
    approval_id = raised.value.details["approval_id"]
    step_up = decision.model_copy(update={"effect": "step_up", "approval_id": approval_id})

    status, headers, body = refusal(step_up, oauth=True)
    assert status == 403
    assert body["code"] == "approval_required"
    assert body["approval_id"] == approval_id
    assert headers["WWW-Authenticate"].startswith('Bearer realm="remit", error="insufficient_scope"')
    assert f'approval_id="{approval_id}"' in insufficient_scope_challenge(step_up)
    assert denial_problem(decision.model_copy(update={"effect": "deny"}))["code"] == "denied"
