"""The SDK's SPIFFE Workload API sources, through the real `spiffe` client and gRPC, against a stand-in agent.

No SPIRE agent runs here, so a small gRPC server on a Unix socket speaks the Workload API (the `spiffe`
package's own service definition) the way an agent does: it refuses calls without the
`workload.spiffe.io: true` header, streams X.509-SVIDs (chain and PKCS#8 key in DER) and mints JWT-SVIDs
for the audience asked. The agents then start real tasks on a live Remit with what it gave them.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import base64
import json
import threading
import time
import uuid

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from spiffe._proto import workload_pb2, workload_pb2_grpc
from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import BOT, ISSUER, Workloads
from tests.integration.test_http_x509_svid import _now, workloads, x509_server  # noqa: F401 - fixtures
from tests.integration.test_sdk_task import _task
from tests.unit.core.attestation.minting import sign

from remit.errors import InvalidRequest, Unavailable
from remit.sdk import RemitClient, SpiffeWorkloadApi, SpiffeX509Source, SpiffeX509WorkloadApi

# A second identity the stand-in's workload is entitled to, after BOT (the default, listed first).
HELPER = "spiffe://acme.example/agents/helper"
ENTITLED = (BOT, HELPER)


class StandInAgent(workload_pb2_grpc.SpiffeWorkloadAPIServicer):
    """The two Workload API calls the SDK makes, answered for one workload entitled to BOT and HELPER."""

    def __init__(self, workloads: Workloads) -> None:
        self._workloads = workloads
        self.calls: list[str] = []
        self.streaming = False  # keep X.509 streams open (for SpiffeX509Source) instead of ending them
        self._rotations = threading.Condition()
        self._generation = 0

    @staticmethod
    def _require_header(context: Any) -> None:
        if dict(context.invocation_metadata()).get("workload.spiffe.io") != "true":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "security header missing from request")

    def _x509_response(self) -> Any:
        ca = self._workloads.ca
        assert ca is not None
        svids = []
        for spiffe_id in ENTITLED:
            leaf, key = ca.issue(spiffe_id)
            svids.append(
                workload_pb2.X509SVID(
                    spiffe_id=spiffe_id,
                    x509_svid=b"".join(c.public_bytes(Encoding.DER) for c in ca.chain(leaf)),
                    x509_svid_key=key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption()),
                    bundle=ca.certificate.public_bytes(Encoding.DER),
                )
            )
        return workload_pb2.X509SVIDResponse(svids=svids)

    def rotate(self) -> None:
        """Push new X.509-SVIDs down every open stream, as an agent does before the old ones expire."""
        with self._rotations:
            self._generation += 1
            self._rotations.notify_all()

    def _rotated_since(self, seen: int) -> bool:
        with self._rotations:
            return self._rotations.wait_for(lambda: self._generation != seen, timeout=0.1)

    def FetchX509SVID(self, request: Any, context: Any) -> Iterator[Any]:  # noqa: ARG002, N802 - gRPC names
        self._require_header(context)
        self.calls.append("x509")
        seen = self._generation  # before the first answer: a rotation right after it must not be missed
        yield self._x509_response()
        if not self.streaming:
            context.cancel()  # one answer is all a per-request source reads
            return
        while context.is_active():  # a real agent keeps the stream open and pushes each rotation
            if self._rotated_since(seen):
                seen = self._generation
                yield self._x509_response()

    def FetchJWTSVID(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC names
        self._require_header(context)
        self.calls.append("jwt")
        subject = request.spiffe_id or BOT
        if subject not in ENTITLED:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "no identity issued")
        now = int(_now().timestamp())
        claims = {"sub": subject, "aud": list(request.audience), "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex}
        token = sign({"alg": "ES256", "kid": "td-1", "typ": "JWT"}, claims, self._workloads.key)
        return workload_pb2.JWTSVIDResponse(svids=[workload_pb2.JWTSVID(spiffe_id=subject, svid=token)])


@pytest.fixture
def agent_socket(tmp_path: Path, workloads: Workloads) -> Iterator[tuple[str, StandInAgent]]:
    """A stand-in SPIFFE agent's Workload API on a Unix socket: (its `unix://` address, the agent)."""
    agent = StandInAgent(workloads)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(agent, server)  # type: ignore[no-untyped-call]
    address = f"unix://{tmp_path / 'agent.sock'}"
    server.add_insecure_port(address)
    server.start()
    try:
        yield address, agent
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize(
    ("source", "call"), [(SpiffeX509WorkloadApi, "x509"), (SpiffeWorkloadApi, "jwt")], ids=["x509-svid", "jwt-svid"]
)
def test_a_task_runs_on_an_svid_from_the_workload_api(
    x509_server: LiveServer,
    agent_socket: tuple[str, StandInAgent],
    source: type[SpiffeX509WorkloadApi | SpiffeWorkloadApi],
    call: str,
) -> None:
    address, agent = agent_socket
    with RemitClient(x509_server.url) as client, _task(client, source(ISSUER, socket_path=address)) as task:
        task_id = task.id
    assert x509_server.remit.tasks.get(task_id).state.value == "completed"
    assert agent.calls == [call]


def test_no_agent_at_the_socket_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    nowhere = f"unix://{tmp_path / 'absent.sock'}"
    for source, kind in (
        (SpiffeX509WorkloadApi(ISSUER, socket_path=nowhere), "X.509"),
        (SpiffeWorkloadApi(ISSUER, socket_path=nowhere), "JWT"),
    ):
        with pytest.raises(Unavailable, match=f"did not give an? {kind}-SVID"):
            source.evidence()


def test_the_stand_in_refuses_a_call_without_the_security_header(
    agent_socket: tuple[str, StandInAgent],
) -> None:
    """The stand-in refuses a call without the Workload API's security header, as a real agent does."""
    address, _ = agent_socket
    with grpc.insecure_channel(address) as channel:
        stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as refused:
            stub.FetchJWTSVID(workload_pb2.JWTSVIDRequest(audience=[ISSUER]), timeout=5)
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("source", [SpiffeX509WorkloadApi, SpiffeWorkloadApi], ids=["x509-svid", "jwt-svid"])
def test_a_source_takes_the_svid_of_the_identity_asked_for(
    agent_socket: tuple[str, StandInAgent], source: type[SpiffeX509WorkloadApi | SpiffeWorkloadApi]
) -> None:
    address, _ = agent_socket
    assert _subject(source(ISSUER, socket_path=address).evidence().token) == BOT  # the default: the first
    chosen = source(ISSUER, socket_path=address, spiffe_id=HELPER).evidence()
    assert _subject(chosen.token) == HELPER
    with pytest.raises(Unavailable, match=r"X\.509-SVID for|did not give a JWT-SVID"):
        source(ISSUER, socket_path=address, spiffe_id="spiffe://acme.example/agents/stranger").evidence()


@pytest.mark.parametrize("source", [SpiffeX509WorkloadApi, SpiffeWorkloadApi], ids=["x509-svid", "jwt-svid"])
def test_a_malformed_spiffe_id_is_refused_before_any_call(
    agent_socket: tuple[str, StandInAgent], source: type[SpiffeX509WorkloadApi | SpiffeWorkloadApi]
) -> None:
    address, agent = agent_socket
    for malformed in ("acme.example/agents/bot", "spiffe://acme.example/agents/a bot", "spiffe://" + "a" * 2048):
        with pytest.raises(InvalidRequest, match="not a SPIFFE ID"):
            source(ISSUER, socket_path=address, spiffe_id=malformed)
    # Shaped like one but refused by the package's parser (a `..` segment): still the caller's error, not an outage.
    with pytest.raises(InvalidRequest, match="not a SPIFFE ID"):
        source(ISSUER, socket_path=address, spiffe_id="spiffe://acme.example/agents/../bot").evidence()
    assert agent.calls == []


def test_an_x509_svid_is_picked_by_its_parsed_spiffe_id(agent_socket: tuple[str, StandInAgent]) -> None:
    address, _ = agent_socket
    shouting = HELPER.replace("acme.example", "ACME.example")  # trust domains are case-insensitive
    assert _subject(SpiffeX509WorkloadApi(ISSUER, socket_path=address, spiffe_id=shouting).evidence().token) == HELPER


def _part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def _subject(token: str) -> str:
    """The `sub` claim of a compact JWS (the evidence's own claims; checked by Remit, not here)."""
    return str(_part(token, 1)["sub"])


def _leaf(token: str) -> str:
    """The SVID an X.509-SVID assertion was signed with: its header's first `x5c` entry."""
    return str(_part(token, 0)["x5c"][0])


def test_a_streamed_source_asks_once_and_follows_rotations(agent_socket: tuple[str, StandInAgent]) -> None:
    """One Workload API call for any number of assertions; a rotation the agent pushes is used without asking."""
    address, agent = agent_socket
    agent.streaming = True
    with SpiffeX509Source(ISSUER, socket_path=address) as source:
        first, second = source.evidence(), source.evidence()
        agent.rotate()
        deadline = time.monotonic() + 5
        while _leaf(source.evidence().token) == _leaf(first.token) and time.monotonic() < deadline:
            time.sleep(0.02)
        rotated = source.evidence()

    assert first.token != second.token  # a new assertion each time (its own jti and times)
    assert _leaf(first.token) == _leaf(second.token)  # signed with the one SVID held
    assert _leaf(rotated.token) != _leaf(first.token)
    assert _subject(rotated.token) == BOT
    assert agent.calls == ["x509"]
    with pytest.raises(Unavailable, match=r"stream has no X\.509-SVID"):
        source.evidence()  # closed with the block


def test_a_task_runs_on_a_streamed_x509_svid(x509_server: LiveServer, agent_socket: tuple[str, StandInAgent]) -> None:
    address, agent = agent_socket
    agent.streaming = True
    with (
        SpiffeX509Source(ISSUER, socket_path=address) as source,
        RemitClient(x509_server.url) as client,
    ):
        first = source.evidence()
        with _task(client, source) as task:
            task_id = task.id
    assert _subject(first.token) == BOT
    assert x509_server.remit.tasks.get(task_id).state.value == "completed"
    assert agent.calls == ["x509"]  # the task's evidence came from the open stream


def test_a_streamed_source_refuses_an_identity_the_agent_does_not_hold(
    agent_socket: tuple[str, StandInAgent], tmp_path: Path
) -> None:
    address, agent = agent_socket
    agent.streaming = True
    stranger = "spiffe://acme.example/agents/stranger"
    with (
        SpiffeX509Source(ISSUER, socket_path=address, spiffe_id=stranger) as source,
        pytest.raises(Unavailable, match=r"holds no X\.509-SVID for"),
    ):
        source.evidence()
    with pytest.raises(Unavailable, match=r"did not give X\.509-SVIDs"):
        SpiffeX509Source(ISSUER, socket_path=f"unix://{tmp_path / 'absent.sock'}", timeout_seconds=0.5)
    for bad in (0, -1, 301, float("nan")):
        with pytest.raises(InvalidRequest, match="timeout_seconds"):
            SpiffeX509Source(ISSUER, socket_path=address, timeout_seconds=bad)
    with pytest.raises(InvalidRequest, match="not a SPIFFE ID"):
        SpiffeX509Source(ISSUER, socket_path=address, spiffe_id="acme.example/agents/bot")
    assert agent.calls == ["x509"]
