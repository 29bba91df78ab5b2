"""`remit trace` and `remit audit` against a live server: the timeline, verify's exit code, tail filters, export."""

from __future__ import annotations

import json
import stat

from pathlib import Path

from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer
from tests.integration.test_audit_api import start_and_complete, tamper
from tests.integration.test_http_tasks import Workloads, agent_server, workloads

from remit.cli.commands.audit import EXIT_AUDIT_FAULT

__all__ = ["agent_server", "workloads"]  # fixtures used here


def test_trace_prints_the_timeline_and_its_json(agent_server: LiveServer, workloads: Workloads) -> None:
    """`remit trace` prints the task's events as a timeline, and as the wire JSON, without the token."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, token = start_and_complete(agent_server, workloads)
    table = cli.ok("trace", task_id)
    document = cli.json("trace", task_id)
    for kind in ("task.started", "credential.issued", "task.completed"):
        assert kind in table.stdout
    assert "publish the Q1 docs" in table.stdout
    assert [e["type"] for e in document["events"]] == ["task.started", "credential.issued", "task.completed"]
    assert token not in table.stdout + table.stderr + json.dumps(document)


def test_verify_exits_zero_then_names_the_fault(agent_server: LiveServer, workloads: Workloads) -> None:
    """`remit audit verify` exits 0 on a whole log and 6 naming the altered sequence after tampering."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, _ = start_and_complete(agent_server, workloads)
    whole = cli.ok("audit", "verify")
    assert "whole" in whole.stdout
    target = cli.json("trace", task_id)["events"][2]["sequence"]
    tamper(agent_server, target)
    broken = cli("audit", "verify")
    as_json = cli("audit", "verify", output="json")
    assert broken.exit_code == EXIT_AUDIT_FAULT == 6
    assert f"altered at sequence {target}" in broken.stdout
    assert as_json.exit_code == EXIT_AUDIT_FAULT
    assert as_json.json()["first_fault"] == {
        "kind": "altered",
        "sequence": target,
        "message": as_json.json()["first_fault"]["message"],
    }


def test_tail_filters_by_task_type_and_limit(agent_server: LiveServer, workloads: Workloads) -> None:
    """`remit audit tail --task` shows only that task's records; --type and --limit narrow them."""
    cli = Cli(agent_server.url, agent_server.token)
    first, _ = start_and_complete(agent_server, workloads)
    second, _ = start_and_complete(agent_server, workloads)
    mine = cli.json("audit", "tail", "--task", second)["items"]
    issued = cli.json("audit", "tail", "--task", first, "--type", "credential.issued")["items"]
    last_two = cli.json("audit", "tail", "--limit", "2")["items"]
    assert [e["type"] for e in mine] == ["task.started", "credential.issued", "task.completed"]
    assert {e["task_id"] for e in mine} == {second}
    assert [(e["task_id"], e["type"]) for e in issued] == [(first, "credential.issued")]
    assert [e["type"] for e in last_two] == ["credential.issued", "task.completed"]
    assert "task.completed" in cli.ok("audit", "tail", "--task", second).stdout


def test_export_writes_ocsf_json_lines_to_a_private_file(
    agent_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """`remit audit export --ocsf --out FILE` writes one OCSF event per line to a 0600 file, no token in it."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, token = start_and_complete(agent_server, workloads)
    out = tmp_path / "audit.jsonl"
    cli.ok("audit", "export", "--ocsf", "--out", str(out), "--task", task_id)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["unmapped"]["remit"]["type"] for line in lines] == [
        "task.started",
        "credential.issued",
        "task.completed",
    ]
    assert {line["metadata"]["version"] for line in lines} == {"1.8.0"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert token not in out.read_text(encoding="utf-8")
    native = cli.ok("audit", "export", "--task", task_id).stdout.splitlines()
    assert [json.loads(line)["sequence"] for line in native] == [
        line["unmapped"]["remit"]["sequence"] for line in lines
    ]


def test_checkpoint_then_export_checkpoints(agent_server: LiveServer, workloads: Workloads) -> None:
    """`remit audit checkpoint` signs the head once; `remit audit checkpoints` exports it."""
    cli = Cli(agent_server.url, agent_server.token)
    start_and_complete(agent_server, workloads)
    assert "checkpoint signed at sequence" in cli.ok("audit", "checkpoint").stdout
    assert "already checkpointed" in cli.ok("audit", "checkpoint").stdout
    exported = cli.json("audit", "checkpoints")
    assert len(exported) == 1
    assert exported[0]["algorithm"] == "Ed25519"
