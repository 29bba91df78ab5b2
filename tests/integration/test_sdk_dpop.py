"""The agent SDK with DPoP-bound credentials (RFC 9449) and delegated child tasks, over real HTTP.

The server's public URL is the loopback address it listens on, so the `htu` the SDK signs (the URL
each request really goes to) is the one the server expects.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import base64
import json

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import LiveServer, loopback_socket
from tests.integration.test_http_decisions_policies import PACK
from tests.integration.test_http_tasks import (  # noqa: F401 - fixtures
    BOT,
    HELPER,
    ISSUER,
    Workloads,
    organisation_server,
    workloads,
)
from tests.integration.test_sdk_task import RotatingSvidFile

from remit.errors import CredentialInvalid, Forbidden, InvalidRequest
from remit.sdk import DpopKey, RemitClient, TaskSession
from remit.wire.decisions import DecisionIn, DpopIn

TOOL_URL = "https://tools.example/github/read_file"


class RecordingTransport(httpx.HTTPTransport):
    """The real transport, keeping each request (method, URL, DPoP header, body) and each response body."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, str | None, bytes]] = []
        self.responses: list[tuple[str, bytes]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url), request.headers.get("dpop"), request.content))
        response = super().handle_request(request)
        self.responses.append((request.url.path, response.read()))
        return response

    def proofs(self) -> list[tuple[str, str, str]]:
        """Every DPoP proof sent, as (proof, method, URL) of the request it went with or named."""
        found = []
        for method, url, header, body in self.requests:
            if header is not None:
                found.append((header, method, url))
            if body.startswith(b"{") and (dpop := json.loads(body).get("dpop")):
                found.append((dpop["proof"], dpop["method"], dpop["url"]))
        return found


def _claims(compact: str) -> dict[str, Any]:
    segment = compact.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


@pytest.fixture
def dpop_server(tmp_path: Path, sqlite_template: Path, workloads: Workloads) -> Iterator[LiveServer]:
    """The organisation server, its public URL where it listens, with the default policy pack active."""
    sock = loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with organisation_server(tmp_path, sqlite_template, workloads, public_url=url, sock=sock) as live:
        for path in sorted(PACK.glob("*.cedar")):
            version = live.remit.policies.add(name=path.stem, text=path.read_text(encoding="utf-8"), actor="test")
            live.remit.policies.activate(version.name, version.version, actor="test")
        yield live


def _source(tmp_path: Path, workloads: Workloads, spiffe_id: str = BOT) -> RotatingSvidFile:
    return RotatingSvidFile(tmp_path / f"{spiffe_id.rsplit('/', 1)[1]}.jwt", workloads, spiffe_id)


def _task(client: RemitClient, source: RotatingSvidFile, *, dpop: bool | DpopKey = True) -> TaskSession:
    return client.task(
        evidence=source,
        workflow="release-docs@1",
        objective="publish the Q1 docs",
        tools={"github": ["read_file"]},
        resources=["repo:acme/*"],
        expected_duration_seconds=600,
        environment="prod",
        audience="tool:github",
        dpop=dpop,
    )


def _delegate(parent: TaskSession, source: RotatingSvidFile, *, resources: list[str] | None = None) -> TaskSession:
    return parent.delegate(
        workflow="release-docs@1",
        objective="read the docs index",
        tools={"github": ["read_file"]},
        resources=resources or ["repo:acme/docs"],
        expected_duration_seconds=120,
        audience="tool:github",
        evidence=source,
    )


def _active(live: LiveServer, token: str) -> dict[str, Any]:
    with live.client() as operator:
        answer: dict[str, Any] = operator.post("/oauth2/introspect", data={"token": token}).json()
    return answer


def test_a_dpop_session_is_bound_ends_with_proofs_and_its_credential_alone_is_refused(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """token_type DPoP and cnf.jkt = the session key; without a proof, or with a thief's key, the credential fails."""
    with RemitClient(dpop_server.url) as client, _task(client, _source(tmp_path, workloads)) as task:
        token, key = task.token, task.dpop_key
        assert key is not None
        assert task.token_type == "DPoP"
        assert _active(dpop_server, token)["cnf"] == {"jkt": key.thumbprint}
        with pytest.raises(CredentialInvalid):
            client.end_task(task.id, "completed", credential=token)
        with pytest.raises(CredentialInvalid):
            client.end_task(task.id, "completed", credential=token, dpop=DpopKey.generate())
        with pytest.raises(ValueError, match="method and URL"):
            task.headers()
        assert task.headers("GET", TOOL_URL)["Authorization"] == f"DPoP {token}"
        task_id = task.id

    assert dpop_server.remit.tasks.get(task_id).state.value == "completed"
    assert _active(dpop_server, token) == {"active": False}


def test_a_caller_supplied_key_binds_the_credential(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """A DpopKey the agent keeps (here read back from PEM) is the one the credential is bound to."""
    key = DpopKey.from_pem(DpopKey.generate().private_pem())
    with RemitClient(dpop_server.url) as client, _task(client, _source(tmp_path, workloads), dpop=key) as task:
        assert task.dpop_key is key
        assert _active(dpop_server, task.token)["cnf"] == {"jkt": key.thumbprint}


def test_check_and_call_carry_proofs_and_a_stolen_credential_is_denied(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """check/call are decided with the session's proof; an enforcement point's decision without it, or with another key, denies."""
    with RemitClient(dpop_server.url) as client, _task(client, _source(tmp_path, workloads)) as task:
        inside = task.check("github", "read_file", "repo:acme/docs")
        outside = task.check("github", "merge_pr", "repo:acme/docs")
        allowed = task.call("github", "read_file", "repo:acme/docs")
        call = DecisionIn(credential=task.token, tool="github", action="read_file", resource="repo:acme/docs")
        bare = client.decide(call)
        thief = client.decide(call, dpop=DpopKey.generate())
        forwarded = client.decide(
            call.model_copy(update={"dpop": DpopIn(proof=task.dpop_proof("GET", TOOL_URL), method="GET", url=TOOL_URL)})
        )

    assert (inside.effect, inside.dry_run) == ("allow", True)
    assert outside.effect == "deny"
    assert allowed.allowed
    assert (bare.effect, thief.effect) == ("deny", "deny")
    assert forwarded.allowed  # the tool forwarded the proof the agent made for its call


def test_every_proof_names_its_request_and_no_jti_repeats(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """Issuance, decisions, re-issue, objective change and completion each carry a new proof for that exact request."""
    transport = RecordingTransport()
    with (
        RemitClient(dpop_server.url, transport=transport) as client,
        _task(client, _source(tmp_path, workloads)) as task,
    ):
        task.check("github", "read_file", "repo:acme/docs")
        task.check("github", "read_file", "repo:acme/docs")
        task.call("github", "read_file", "repo:acme/docs")
        task.refresh()
        task.change_objective("publish and translate the Q1 docs")
        assert _active(dpop_server, task.token)["cnf"] == {"jkt": task.dpop_key.thumbprint if task.dpop_key else ""}

    proofs = transport.proofs()
    jtis = [_claims(proof)["jti"] for proof, _, _ in proofs]
    assert len(proofs) == 8  # start, 3 decisions, re-issue, objective, its re-issue, end
    assert len(set(jtis)) == len(jtis)
    for proof, method, url in proofs:
        claims = _claims(proof)
        assert (claims["htm"], claims["htu"]) == (method, url.split("?")[0])


def test_a_delegated_child_names_its_parent_and_dies_with_it(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """The child's lineage names the parent; its own key binds it; the delegation credential is given up; ending the parent kills the child."""
    transport = RecordingTransport()
    with (
        RemitClient(dpop_server.url, transport=transport) as client,
        _task(client, _source(tmp_path, workloads)) as parent,
    ):
        with _delegate(parent, _source(tmp_path, workloads, HELPER)) as child:
            child_token = child.token
            assert child.task.parent_id == parent.id
            assert child.task.lineage == [parent.id]
            assert child.token_type == "DPoP"
            assert child.dpop_key is not None
            assert parent.dpop_key is not None
            assert child.dpop_key.thumbprint != parent.dpop_key.thumbprint
            assert child.check("github", "read_file", "repo:acme/docs").effect == "allow"
            assert _active(dpop_server, child_token)["active"] is True
            parent.complete()
            assert _active(dpop_server, child_token) == {"active": False}
        child_id = child.id

    assert dpop_server.remit.tasks.get(child_id).state.value == "revoked"
    (delegation,) = [
        json.loads(body)["access_token"]
        for path, body in transport.responses
        if path.endswith("/credentials") and json.loads(body).get("token_type") == "Bearer"
    ]
    assert _active(dpop_server, delegation) == {"active": False}  # given up once the child ran


def test_a_child_that_finishes_first_completes_and_the_parent_runs_on(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """Leaving the child's block completes the child only; an exception in it fails the child."""
    with RemitClient(dpop_server.url) as client, _task(client, _source(tmp_path, workloads)) as parent:
        with _delegate(parent, _source(tmp_path, workloads, HELPER)) as child:
            pass
        with pytest.raises(RuntimeError), _delegate(parent, _source(tmp_path, workloads)) as failing:
            raise RuntimeError
        states = [dpop_server.remit.tasks.get(t).state.value for t in (child.id, failing.id, parent.id)]
        assert parent.check("github", "read_file", "repo:acme/docs").effect == "allow"

    assert states == ["completed", "failed", "running"]


def test_delegation_deeper_than_two_and_wider_than_the_parent_are_refused(
    dpop_server: LiveServer, workloads: Workloads, tmp_path: Path
) -> None:
    """Parent → child → grandchild is allowed; a great-grandchild is a clear Forbidden; a wider child InvalidRequest."""
    source = _source(tmp_path, workloads)
    with (
        RemitClient(dpop_server.url) as client,
        _task(client, source) as parent,
        _delegate(parent, source, resources=["repo:acme/*"]) as child,
        _delegate(child, source) as grandchild,
    ):
        assert grandchild.task.lineage == [child.id, parent.id]
        with pytest.raises(Forbidden, match="cannot delegate") as refused, _delegate(grandchild, source):
            pass
        assert refused.value.details["reason"] == "delegation_too_deep"
        wider_child = child.delegate(
            workflow="release-docs@1",
            objective="merge the docs",
            tools={"github": ["merge_pr"]},  # the parent may only read
            resources=["repo:acme/docs"],
            expected_duration_seconds=60,
            audience="tool:github",
        )
        with pytest.raises(InvalidRequest) as wider, wider_child:
            pass
        assert wider.value.details["reason"] == "wider_than_parent"


def test_the_issuer_comes_from_metadata_or_configuration(dpop_server: LiveServer) -> None:
    """Delegation credentials are for the issuer: discovered (RFC 8414) unless the client is told."""
    with RemitClient(dpop_server.url) as discovered, RemitClient(dpop_server.url, issuer="https://x") as told:
        assert (discovered.issuer(), told.issuer()) == (ISSUER, "https://x")
