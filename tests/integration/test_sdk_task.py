"""The agent SDK: `with client.task(...)` declares, holds, refreshes and ends a task over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import TRUST_DOMAIN, Workloads, agent_server, workloads

from remit.errors import AgentUntraceable, InvalidRequest
from remit.sdk import EvidenceSource, JwtSvidFile, RemitClient, TaskSession
from remit.wire.tasks import EvidenceIn

__all__ = ["agent_server", "workloads"]  # fixtures used here


class RotatingSvidFile(JwtSvidFile):
    """A JWT-SVID file that the 'SPIRE helper' rewrites before every read, as a real one rotates."""

    def __init__(self, path: Path, minter: Workloads, spiffe_id: str) -> None:
        super().__init__(path)
        self._minter, self._spiffe_id, self._path = minter, spiffe_id, path

    def evidence(self) -> EvidenceIn:
        self._path.write_text(self._minter.svid(self._spiffe_id), encoding="ascii")
        return super().evidence()


def _task(client: RemitClient, source: EvidenceSource) -> TaskSession:
    return client.task(
        evidence=source,
        workflow="release-docs@1",
        objective="publish the Q1 docs",
        tools={"github": ["read_file"]},
        resources=["repo:acme/docs"],
        expected_duration_seconds=300,
        environment="prod",
        audience="tool:github",
    )


def test_task_completes_on_exit_and_its_credential_dies(
    agent_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """Leaving the block completes the task; the credential it held is then inactive."""
    source = RotatingSvidFile(tmp_path / "svid.jwt", workloads, f"spiffe://{TRUST_DOMAIN}/agents/invoice-bot")
    with (
        RemitClient(agent_server.url) as client,
        _task(client, source) as task,
    ):
        token = task.token
        assert task.headers() == {"Authorization": f"Bearer {token}"}
        task_id = task.id

    assert agent_server.remit.tasks.get(task_id).state.value == "completed"
    with agent_server.client() as operator:
        assert operator.post("/oauth2/introspect", data={"token": token}).json() == {"active": False}


def test_an_exception_fails_the_task_and_propagates(
    agent_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """A crash inside the block fails the task (reason: the exception type only) and re-raises."""
    source = RotatingSvidFile(tmp_path / "svid.jwt", workloads, f"spiffe://{TRUST_DOMAIN}/agents/invoice-bot")
    task_id = ""

    def crash() -> None:
        nonlocal task_id
        with RemitClient(agent_server.url) as client, _task(client, source) as task:
            task_id = task.id
            raise RuntimeError("secret detail")

    with pytest.raises(RuntimeError, match="secret detail"):
        crash()

    ended = agent_server.remit.tasks.get(task_id)
    assert ended.state.value == "failed"
    assert ended.end_reason == "agent raised RuntimeError"


def test_objective_change_revokes_and_the_session_reissues(
    agent_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """After a context change the old credential is dead and the session holds a fresh one (C23)."""
    source = RotatingSvidFile(tmp_path / "svid.jwt", workloads, f"spiffe://{TRUST_DOMAIN}/agents/invoice-bot")
    with (
        RemitClient(agent_server.url) as client,
        _task(client, source) as task,
    ):
        before = task.token
        task.change_objective("publish and translate")
        after = task.token
        with agent_server.client() as operator:
            assert operator.post("/oauth2/introspect", data={"token": before}).json() == {"active": False}
            assert operator.post("/oauth2/introspect", data={"token": after}).json()["active"] is True


def test_refusals_raise_the_matching_error(agent_server: LiveServer, workloads: Workloads, tmp_path: Path) -> None:
    """An unregistered workload gets AgentUntraceable; a bad evidence file is InvalidRequest before any call."""
    ghost = RotatingSvidFile(tmp_path / "ghost.jwt", workloads, f"spiffe://{TRUST_DOMAIN}/agents/ghost")
    broken = tmp_path / "broken.jwt"
    broken.write_text("not a jwt", encoding="ascii")
    with RemitClient(agent_server.url) as client:
        with pytest.raises(AgentUntraceable), _task(client, ghost):
            pass
        with pytest.raises(InvalidRequest):
            _task(client, JwtSvidFile(broken))


def test_a_task_can_check_a_call_before_making_it(
    agent_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """`task.check(...)` asks for a decision as a dry run: the answer and its reasons, no strike counted."""
    source = RotatingSvidFile(tmp_path / "svid.jwt", workloads, f"spiffe://{TRUST_DOMAIN}/agents/invoice-bot")
    with RemitClient(agent_server.url) as client, _task(client, source) as task:
        inside = task.check("github", "read_file", "repo:acme/docs")
        outside = [task.check("github", "read_file", "repo:acme/other") for _ in range(4)]
        still_running = agent_server.remit.tasks.get(task.id).state.value

    assert inside.effect == "deny"  # no policy set is active on this server
    assert inside.reasons[0].id == "policy_set_loaded"
    assert inside.inputs is not None
    assert {o.reasons[0].id for o in outside} == {"within_objective"}
    assert still_running == "running"
