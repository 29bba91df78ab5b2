"""`remit operator`, `remit approvals` and `remit breakglass` against a live server."""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import stat

from pathlib import Path

from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer
from tests.integration.test_http_approvals import MERGE, _decide, _task, governed, receiver  # noqa: F401
from tests.integration.test_http_tasks import Workloads, agent_server, workloads  # noqa: F401


def test_operator_approvals_and_breakglass_from_the_cli(
    governed: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    admin = Cli(governed.url, governed.token)
    token_file = tmp_path / "grace.token"
    admin.ok("operator", "add", "grace", "--role", "approver", "--group", "approvers", "--write-token", str(token_file))
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    oncall = admin.ok("operator", "add", "oncall", "--role", "break-glass", output="json").json()["token"]
    audrey = admin.ok("operator", "add", "audrey", "--role", "auditor", output="json").json()["token"]
    assert "grace" in admin.ok("operator", "list").stdout

    started = _task(governed, workloads)
    token, task_id = started["credential"]["access_token"], started["task"]["id"]
    approval_id = _decide(governed, token, MERGE)["approval_id"]
    grace = Cli(governed.url, token_file.read_text(encoding="utf-8").strip())
    assert approval_id in grace.ok("approvals", "list", "--state", "pending").stdout
    approved = grace.ok("approvals", "approve", approval_id, "--reason", "ok", output="json").json()
    assert approved["state"] == "approved"
    assert Cli(governed.url, governed.token)("approvals", "deny", approval_id, "--reason", "x").exit_code == 4

    grant = (
        Cli(governed.url, oncall)
        .ok(
            "breakglass",
            "grant",
            task_id,
            "--tool",
            "github",
            "--action",
            "merge_pr",
            "--resource",
            "repo:acme/docs",
            "--justification",
            "outage INC-7, the release must go out now",
            "--fact",
            "amount=250",
            "--fact",
            "currency=EUR",
            "--fact",
            "urgent=true",
            output="json",
        )
        .json()
    )
    assert grant["context"] == {"amount": 250, "currency": "EUR", "urgent": True}  # the grant covers exactly these
    auditor = Cli(governed.url, audrey)
    assert grant["id"] in auditor.ok("breakglass", "list", "--unreviewed").stdout
    auditor.ok("breakglass", "review", grant["id"], "--notes", "confirmed with on-call lead")
    assert grant["id"] not in auditor.ok("breakglass", "list", "--unreviewed").stdout
    admin.ok("operator", "disable", "grace", "--reason", "left the team")
    assert grace("approvals", "list").exit_code == 3
