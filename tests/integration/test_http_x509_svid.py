"""X.509-SVID evidence over HTTP (ADR 0017): both doors issue on it, once per assertion, and refuse forgeries."""

from __future__ import annotations

import base64
import datetime as dt

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import (
    BOT,
    ISSUER,
    TRUST_DOMAIN,
    Workloads,
    _declaration,
    _exchange,
    _verify_with_pyjwt,
    organisation_server,
)
from tests.integration.test_sdk_task import _task
from tests.unit.core.attestation.minting import SpiffeCa, ec_key, x509_assertion

from remit.core.clock import SystemClock
from remit.sdk import RemitClient, X509SvidFiles


def _now() -> dt.datetime:
    return SystemClock().now()  # the live server runs on the real clock


@pytest.fixture
def workloads() -> Workloads:
    return Workloads(ec_key(), SpiffeCa(TRUST_DOMAIN, now=_now()))


@pytest.fixture
def x509_server(tmp_path: Path, sqlite_template: Path, workloads: Workloads) -> Iterator[LiveServer]:
    with organisation_server(tmp_path, sqlite_template, workloads) as live:
        yield live


def _assertion(ca: SpiffeCa, spiffe_id: str = BOT) -> str:
    leaf, key = ca.issue(spiffe_id)
    return x509_assertion([leaf], key, audience=ISSUER, now=int(_now().timestamp()))


def _start(client: httpx.Client, assertion: str) -> httpx.Response:
    return client.post("/v1/tasks", json=_declaration("", evidence={"kind": "x509_svid", "token": assertion}))


def test_an_x509_svid_assertion_starts_a_task_once(x509_server: LiveServer, workloads: Workloads) -> None:
    assert workloads.ca is not None
    assertion = _assertion(workloads.ca)
    with x509_server.client(authenticated=False) as client:
        started = _start(client, assertion)
        replayed = _start(client, assertion)

    assert started.status_code == 201, started.text
    claims = _verify_with_pyjwt(x509_server, started.json()["credential"]["access_token"], "tool:github")
    assert claims["client_id"] == BOT  # the same agent as its JWT-SVIDs name
    assert replayed.status_code == 401
    assert replayed.json()["code"] == "attestation_failed"
    task_id = started.json()["task"]["id"]
    with x509_server.client() as operator:
        issued = operator.get("/v1/audit/events", params={"task": task_id, "type": "credential.issued"}).json()
    assert issued["items"][0]["data"]["evidence"] == {"kind": "x509_svid", "issuer": TRUST_DOMAIN}


def test_forged_and_foreign_x509_svids_are_refused(x509_server: LiveServer, workloads: Workloads) -> None:
    """Another CA's SVID, and a CA forging the trusted CA's name, are 401 through the event-loop door."""
    stranger = SpiffeCa(TRUST_DOMAIN, now=_now())
    assert workloads.ca is not None
    forger = SpiffeCa(TRUST_DOMAIN, now=_now())
    forger.name = workloads.ca.name
    with x509_server.client(authenticated=False) as client:
        responses = [_start(client, _assertion(stranger)), _start(client, _assertion(forger))]
        still_fine = _start(client, _assertion(workloads.ca))
    for response in responses:
        assert response.status_code == 401, response.text
        assert response.json()["code"] == "attestation_failed"
    assert still_fine.status_code == 201


def test_token_exchange_takes_an_x509_svid_assertion_as_a_jwt_subject_token(
    x509_server: LiveServer, workloads: Workloads
) -> None:
    assert workloads.ca is not None
    with x509_server.client(authenticated=False) as client:
        response = _exchange(client, _assertion(workloads.ca))
        forged = _exchange(client, _assertion(SpiffeCa(TRUST_DOMAIN, now=_now())))
    assert response.status_code == 200, response.text
    assert _verify_with_pyjwt(x509_server, response.json()["access_token"], "tool:github")["client_id"] == BOT
    assert forged.status_code == 400
    assert forged.json()["error"] == "invalid_grant"


def _write_svid(directory: Path, ca: SpiffeCa) -> tuple[Path, Path]:
    """Write an X.509-SVID as SPIRE's `api fetch x509 -write` does: the chain and the key, in PEM."""
    leaf, key = ca.issue(BOT)
    certificates, key_file = directory / "svid.0.pem", directory / "svid.0.key"
    certificates.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in ca.chain(leaf)))
    key_file.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return certificates, key_file


def test_the_sdk_runs_a_task_on_x509_svid_files(x509_server: LiveServer, workloads: Workloads, tmp_path: Path) -> None:
    """`X509SvidFiles` signs a fresh assertion for every issuance; the task completes when the block ends."""
    assert workloads.ca is not None
    certificates, key = _write_svid(tmp_path, workloads.ca)
    source = X509SvidFiles(certificates, key, audience=ISSUER)
    with RemitClient(x509_server.url) as client:
        for _ in range(2):  # a second task with the same files: a new assertion, not a replay
            with _task(client, source) as task:
                task_id = task.id
            assert x509_server.remit.tasks.get(task_id).state.value == "completed"


def test_a_subject_token_with_a_deeply_nested_header_is_an_oauth_error_not_a_crash(x509_server: LiveServer) -> None:
    """Routing a `jwt` subject token reads its header: JSON nested past the parser's depth is refused cleanly."""
    nested = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    with x509_server.client(authenticated=False) as client:
        response = _exchange(client, f"{nested}.e30.AA")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
