"""The audit routes over real HTTP: a task's trace, chain verification, tail filters, OCSF export, checkpoints."""

from __future__ import annotations

import json
import sqlite3

from typing import Any

from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import Workloads, _declaration, agent_server, workloads
from tests.unit.core.credentials.conftest import ISSUER, declaration, workload

__all__ = ["agent_server", "workloads"]  # fixtures used here


def start_and_complete(live: LiveServer, workloads: Workloads) -> tuple[str, str]:
    """Start a task with workload evidence, complete it with its own credential: (task id, access token)."""
    with live.client(authenticated=False) as client:
        started = client.post("/v1/tasks", json=_declaration(workloads.svid()))
        assert started.status_code == 201, started.text
        token, task_id = started.json()["credential"]["access_token"], started.json()["task"]["id"]
        ended = client.post(
            f"/v1/tasks/{task_id}/end", json={"outcome": "completed"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert ended.status_code == 200, ended.text
    return task_id, token


def tamper(live: LiveServer, sequence: int) -> None:
    """Rewrite one stored record's data directly in the SQLite file, as an attacker with file access would."""
    path = live.remit.settings.store_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        (stored,) = connection.execute("SELECT record FROM audit_events WHERE seq = ?", (sequence,)).fetchone()
        document = json.loads(stored)
        document["data"] = {"reason": "nothing to see"}
        rewritten = json.dumps(document, sort_keys=True, separators=(",", ":"))
        connection.execute("UPDATE audit_events SET record = ? WHERE seq = ?", (rewritten, sequence))
    connection.close()


def test_trace_shows_the_task_in_order_without_token_material(agent_server: LiveServer, workloads: Workloads) -> None:
    """The trace lists started, credential issued and completed in sequence order, and no token appears in it."""
    task_id, token = start_and_complete(agent_server, workloads)
    with agent_server.client() as operator:
        response = operator.get(f"/v1/tasks/{task_id}/trace")
    assert response.status_code == 200, response.text
    trace = response.json()
    types = [e["type"] for e in trace["events"]]
    assert types == ["task.started", "credential.issued", "task.completed"]
    sequences = [e["sequence"] for e in trace["events"]]
    assert sequences == sorted(sequences)
    assert trace["task"]["id"] == task_id
    assert trace["task_ids"] == [task_id]
    issued = trace["events"][1]["data"]
    assert issued["audience"] == "tool:github"
    assert len(issued["jti_hmac"]) == 64
    assert issued["ttl_seconds"] > 0
    assert token not in response.text
    for part in token.split("."):
        assert part not in response.text


def test_trace_needs_the_operator_token(agent_server: LiveServer, workloads: Workloads) -> None:
    """Neither an anonymous caller nor the task's own credential may read a trace."""
    task_id, token = start_and_complete(agent_server, workloads)
    with agent_server.client(authenticated=False) as client:
        anonymous = client.get(f"/v1/tasks/{task_id}/trace")
        with_credential = client.get(f"/v1/tasks/{task_id}/trace", headers={"Authorization": f"Bearer {token}"})
        events = client.get("/v1/audit/events")
        verify = client.get("/v1/audit/verify")
    assert [r.status_code for r in (anonymous, with_credential, events, verify)] == [401, 401, 401, 401]
    assert token not in with_credential.text


def test_trace_of_an_unknown_task_is_not_found(agent_server: LiveServer) -> None:
    """A well-formed id that names no task answers 404."""
    with agent_server.client() as operator:
        assert operator.get("/v1/tasks/tsk_" + "0" * 26 + "/trace").status_code == 404


def test_verify_reports_whole_then_names_the_tampered_record(agent_server: LiveServer, workloads: Workloads) -> None:
    """Verification is whole after a task; after one row's data is rewritten it names that row as altered."""
    task_id, _ = start_and_complete(agent_server, workloads)
    with agent_server.client() as operator:
        whole = operator.get("/v1/audit/verify").json()
        trace = operator.get(f"/v1/tasks/{task_id}/trace").json()
    assert whole["ok"] is True
    assert whole["first_fault"] is None
    assert whole["records_checked"] == whole["head_sequence"] > 0
    target = trace["events"][1]["sequence"]
    tamper(agent_server, target)
    with agent_server.client() as operator:
        broken = operator.get("/v1/audit/verify").json()
    assert broken["ok"] is False
    assert broken["first_fault"]["kind"] == "altered"
    assert broken["first_fault"]["sequence"] == target


def test_events_filter_by_task_type_and_page(agent_server: LiveServer, workloads: Workloads) -> None:
    """Listing by task returns only that task's records; type and after_seq narrow it; the page reports the head."""
    first, _ = start_and_complete(agent_server, workloads)
    second, _ = start_and_complete(agent_server, workloads)
    with agent_server.client() as operator:
        mine = operator.get("/v1/audit/events", params={"task": second}).json()
        issued = operator.get("/v1/audit/events", params={"task": second, "type": "credential.issued"}).json()
        later = operator.get(
            "/v1/audit/events", params={"task": second, "after_seq": mine["items"][0]["sequence"], "limit": 1}
        ).json()
        bad = operator.get("/v1/audit/events", params={"limit": 0})
    assert {e["task_id"] for e in mine["items"]} == {second}
    assert first not in json.dumps(mine["items"])
    assert [e["type"] for e in issued["items"]] == ["credential.issued"]
    assert [e["type"] for e in later["items"]] == ["credential.issued"]
    assert later["next_after"] == later["items"][0]["sequence"]
    assert mine["head_sequence"] >= mine["items"][-1]["sequence"]
    assert bad.status_code == 400


def test_ocsf_export_maps_issuance_to_authorize_session(agent_server: LiveServer, workloads: Workloads) -> None:
    """The OCSF page maps credential.issued to Authorize Session (3003) keyed by the jti HMAC, with no token."""
    task_id, token = start_and_complete(agent_server, workloads)
    with agent_server.client() as operator:
        response = operator.get("/v1/audit/ocsf", params={"task": task_id})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    issued = next(i for i in items if i["unmapped"]["remit"]["type"] == "credential.issued")
    assert issued["class_uid"] == 3003
    assert issued["metadata"]["version"] == "1.8.0"
    assert issued["metadata"]["correlation_uid"] == task_id
    assert len(issued["session"]["uid"]) == 64
    assert token not in response.text


def test_checkpoint_is_signed_once_and_exported(agent_server: LiveServer, workloads: Workloads) -> None:
    """A checkpoint is signed at the head, not twice for the same head, and exported; verify checks it."""
    start_and_complete(agent_server, workloads)
    with agent_server.client() as operator:
        made = operator.post("/v1/audit/checkpoints")
        again = operator.post("/v1/audit/checkpoints")
        exported = operator.get("/v1/audit/checkpoints").json()
        report = operator.get("/v1/audit/verify").json()
    assert made.status_code == 201, made.text
    assert (again.status_code, again.json()) == (200, {"created": False, "checkpoint": None})
    assert exported == [made.json()["checkpoint"]]
    assert exported[0]["algorithm"] == "Ed25519"
    assert exported[0]["sequence"] == report["head_sequence"]
    assert (report["ok"], report["checkpoints_checked"], report["latest_checkpoint"]) == (
        True,
        1,
        exported[0]["sequence"],
    )


def test_trace_of_a_parent_covers_its_delegated_task(agent_server: LiveServer) -> None:
    """A parent's trace includes the delegated child's start, credential and its revocation when the parent ends."""
    remit = agent_server.remit
    parent, _ = remit.issuance.start_task(workload(), declaration())
    delegation = remit.issuance.reissue(workload(), parent.id, audience=ISSUER)
    child, child_credential = remit.issuance.start_task(
        workload("agents/helper-bot"), declaration(parent_token=delegation.token)
    )
    with agent_server.client() as operator:
        ended = operator.post(f"/v1/tasks/{parent.id}/end", json={"outcome": "cancelled", "reason": "done"})
        response = operator.get(f"/v1/tasks/{parent.id}/trace")
    assert ended.status_code == 200, ended.text
    trace = response.json()
    assert trace["task_ids"] == [parent.id, child.id]
    timeline = [(e["task_id"], e["type"]) for e in trace["events"]]
    assert (child.id, "task.started") in timeline
    assert timeline.index((child.id, "task.started")) < timeline.index((child.id, "task.revoked"))
    assert timeline[-1][1] in {"task.cancelled", "task.revoked"}
    assert [e["sequence"] for e in trace["events"]] == sorted(e["sequence"] for e in trace["events"])
    assert delegation.token not in response.text
    assert child_credential.token not in response.text
