"""No token, key or secret leaks: a full scenario against a live server, every output scanned (issue 5, item 6).

The scenario registers an organisation, proves a workload with JWT-SVIDs, starts a task, re-issues
and delegates its credential, exchanges a token (RFC 8693), introspects, revokes, ends the task,
sends bad requests that produce error bodies, and reads a trace, the OCSF export, the audit tail and
`/metrics`. Captured: every HTTP response (status, headers, body), every log record of every logger
(message, arguments, extras, traceback), stdout and stderr, the CLI's output and its OCSF export
file, and the stored audit rows and checkpoints. None may contain an issued credential, an evidence
token, the operator token, the key-encryption key, the audit HMAC key, private key material (PEM,
a JWK `d`), or anything shaped like a JWT, except the issuance answers, which carry exactly the
credential they issue. The scanner is shown to catch a planted secret of each kind.
"""

from __future__ import annotations

import base64
import json
import logging
import re

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from sqlalchemy import text
from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import ISSUER, Workloads, _declaration, _exchange, agent_server, workloads
from tests.unit.core.attestation.minting import ec_key

__all__ = ["agent_server", "workloads"]  # fixtures used here

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.")
PRIVATE_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
JWK_D = re.compile(r'"d"\s*:\s*"[A-Za-z0-9_-]{20,}"')
PATTERNS = {"a JWT": JWT, "a private key PEM": PRIVATE_PEM, "a private JWK member d": JWK_D}
# Any run of this many characters of a random secret counts as leaking it (96 bits of base64url).
FRAGMENT = 16


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class Output:
    """One captured output: where it came from, its text, and the issued tokens it may carry (issuance answers)."""

    source: str
    text: str
    issues: set[str] = field(default_factory=set)


@dataclass
class Capture:
    """Everything the scenario produced, and every secret it must not contain."""

    outputs: list[Output] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)

    def secret(self, name: str, value: str) -> str:
        if value:
            self.secrets[name] = value
        return value

    def token(self, name: str, token: str) -> str:
        """A token, and its signature alone (a log that printed only that would still leak it)."""
        self.secret(name, token)
        self.secret(f"{name} (signature)", token.rsplit(".", 1)[-1])
        return token

    def record(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        self.outputs.append(
            Output(
                f"HTTP {request.method} {request.url.path} -> {response.status_code}", f"{headers}\n\n{response.text}"
            )
        )

    def issued(self, name: str, response: httpx.Response, token: str) -> str:
        """Mark the response just recorded as the issuance answer carrying `token`."""
        assert self.outputs[-1].text.endswith(response.text)
        self.outputs[-1].issues.add(token)
        return self.token(name, token)

    def client(self, live: LiveServer, *, authenticated: bool = True) -> httpx.Client:
        return httpx.Client(
            base_url=live.url,
            headers=live.auth if authenticated else {},
            timeout=30.0,
            event_hooks={"response": [self.record]},
        )


def fragments(secrets: dict[str, str]) -> dict[str, str]:
    """Every run of FRAGMENT characters of each random secret (keys, signatures), to the secret's name.

    A whole token is found by its signature's fragments; its header and claims are not secret alone.
    """
    found: dict[str, str] = {}
    for name, value in secrets.items():
        if name.endswith("(signature)") or not JWT.match(value):
            for start in range(len(value) - FRAGMENT + 1):
                found[value[start : start + FRAGMENT]] = name
    return found


def scan(outputs: list[Output], secrets: dict[str, str]) -> list[str]:
    """Every `what in where` found: a secret, a part of one, or a pattern, outside what an output may carry."""
    pieces = fragments(secrets)
    findings: list[str] = []
    for output in outputs:
        content = output.text
        for allowed in output.issues:
            content = content.replace(allowed, "[the credential this answer issues]")
        names = {name for name, value in secrets.items() if value in content}
        names |= {
            pieces[window]
            for start in range(len(content) - FRAGMENT + 1)
            if (window := content[start : start + FRAGMENT]) in pieces
        }
        names |= {name for name, pattern in PATTERNS.items() if pattern.search(content)}
        findings.extend(f"{name} in {output.source}" for name in sorted(names))
    return findings


def key_material(capture: Capture, live: LiveServer, workloads: Workloads) -> None:
    """Register the server's secrets: operator token, KEK, audit keys, signing keys, the trust domain's key."""
    home = live.remit.settings.home
    capture.secret("the operator token", live.token)
    kek = (home / "kek").read_text().strip()
    capture.secret("the KEK", kek)
    capture.secret("the KEK (hex)", base64.b64decode(kek).hex())
    capture.secret("the KEK (base64url)", b64url(base64.b64decode(kek)))
    hmac_key = (home / "audit-hmac-key").read_text().strip()
    capture.secret("the audit HMAC key", hmac_key)
    capture.secret("the audit HMAC key (base64)", base64.b64encode(bytes.fromhex(hmac_key)).decode())
    pem = (home / "audit-signing-key").read_bytes()
    audit_key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(audit_key, ed25519.Ed25519PrivateKey)
    raw = audit_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    capture.secret("the audit signing key (PEM body)", "".join(pem.decode().splitlines()[1:-1]))
    capture.secret("the audit signing key (d)", b64url(raw))
    capture.secret("the audit signing key (hex)", raw.hex())
    for key in (*live.remit.key_ring.published(), live.remit.key_ring.next_key()):
        private = key.private_key
        if isinstance(private, ec.EllipticCurvePrivateKey):
            d = private.private_numbers().private_value.to_bytes(32, "big")
        else:
            assert isinstance(private, ed25519.Ed25519PrivateKey)
            d = private.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        capture.secret(f"credential signing key {key.kid} (d)", b64url(d))
    capture.secret("the trust domain's key (d)", str(workloads.key.as_dict(private=True)["d"]))


def scenario(capture: Capture, live: LiveServer, workloads: Workloads, tmp_path: Path) -> None:
    with capture.client(live, authenticated=False) as agent, capture.client(live) as operator:
        # Start a task with workload evidence: the answer carries the credential.
        started = agent.post("/v1/tasks", json=_declaration(capture.token("evidence 1", workloads.svid())))
        assert started.status_code == 201, started.text
        task_id = started.json()["task"]["id"]
        first = capture.issued("credential 1", started, started.json()["credential"]["access_token"])

        # Re-issue with fresh evidence, then a delegation credential (audience = the issuer) and a child task.
        again = agent.post(
            f"/v1/tasks/{task_id}/credentials",
            json={"evidence": {"kind": "jwt_svid", "token": capture.token("evidence 2", workloads.svid())}},
        )
        assert again.status_code == 201, again.text
        capture.issued("credential 2", again, again.json()["access_token"])
        delegated = agent.post(
            f"/v1/tasks/{task_id}/credentials",
            json={
                "evidence": {"kind": "jwt_svid", "token": capture.token("evidence 3", workloads.svid())},
                "audience": ISSUER,
            },
        )
        assert delegated.status_code == 201, delegated.text
        delegation = capture.issued("delegation credential", delegated, delegated.json()["access_token"])
        helper = workloads.svid("spiffe://acme.example/agents/helper-bot")
        child = agent.post("/v1/tasks", json=_declaration(capture.token("evidence 4", helper), parent_token=delegation))
        assert child.status_code == 201, child.text
        capture.issued("child credential", child, child.json()["credential"]["access_token"])

        # RFC 8693 token exchange, introspection, holder revocation.
        exchanged = _exchange(agent, capture.token("evidence 5", workloads.svid()))
        assert exchanged.status_code == 200, exchanged.text
        exchange_token = capture.issued("exchanged credential", exchanged, exchanged.json()["access_token"])
        assert operator.post("/oauth2/introspect", data={"token": first}).json()["active"] is True
        assert agent.post("/oauth2/revoke", data={"token": exchange_token}).status_code == 200
        assert operator.post("/oauth2/introspect", data={"token": exchange_token}).json() == {"active": False}

        # Bad requests: each answer is an error body that must not echo what was sent.
        forged = Workloads(ec_key()).svid()
        capture.token("forged evidence", forged)
        assert agent.post("/v1/tasks", json=_declaration(forged)).status_code == 401
        replayed = capture.token("evidence 6", workloads.svid())
        assert agent.post("/v1/tasks", json=_declaration(replayed)).status_code == 201
        capture.outputs[-1].issues.add(capture.outputs[-1].text.split('"access_token":"')[1].split('"')[0])
        assert agent.post("/v1/tasks", json=_declaration(replayed)).status_code == 401
        ended_with_revoked = agent.post(
            f"/v1/tasks/{task_id}/end",
            json={"outcome": "completed"},
            headers={"Authorization": f"Bearer {exchange_token}"},
        )
        assert ended_with_revoked.status_code in {401, 403}
        assert operator.get("/v1/tasks", headers={"Authorization": f"Bearer {first}"}).status_code == 401
        assert (
            agent.post("/oauth2/token", data={"grant_type": "client_credentials", "client_secret": first}).status_code
            == 400
        )
        wrong_type = _exchange(agent, first, subject_token_type="urn:ietf:params:oauth:token-type:access_token")
        assert wrong_type.status_code == 400
        assert (
            agent.post("/v1/tasks", content=b'{"evidence": ', headers={"Content-Type": "application/json"}).status_code
            == 400
        )
        assert operator.get("/v1/tasks/tsk_" + "0" * 26 + "/trace").status_code == 404
        assert operator.post("/oauth2/introspect", data={"token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}).json() == {
            "active": False
        }

        # The holder ends its task; the reviewer reads everything back.
        ended = agent.post(
            f"/v1/tasks/{task_id}/end", json={"outcome": "completed"}, headers={"Authorization": f"Bearer {first}"}
        )
        assert ended.status_code == 200, ended.text
        assert operator.post("/v1/audit/checkpoints").status_code == 201
        for path in (
            f"/v1/tasks/{task_id}/trace",
            f"/v1/tasks/{task_id}",
            "/v1/tasks",
            "/v1/audit/events?limit=1000",
            "/v1/audit/ocsf?limit=1000",
            "/v1/audit/verify",
            "/v1/audit/checkpoints",
            "/metrics",
        ):
            assert operator.get(path).status_code == 200, path

    # The CLI, as a reviewer runs it.
    cli = Cli(live.url, live.token)
    export = tmp_path / "export.ocsf.jsonl"
    for args in (
        ("audit", "tail", "--limit", "1000"),
        ("trace", task_id),
        ("audit", "export", "--ocsf", "--out", str(export)),
        ("audit", "export"),
        ("audit", "verify"),
    ):
        run = cli.ok(*args)
        capture.outputs.append(Output(f"remit {' '.join(args[:2])} (stdout, stderr)", run.stdout + run.stderr))
    capture.outputs.append(Output("remit audit export --ocsf (file)", export.read_text()))

    # The stored audit log itself.
    with live.remit.database.engine.connect() as connection:
        for table in ("audit_events", "audit_checkpoints"):
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()  # noqa: S608 - fixed names
            assert rows
            capture.outputs.append(Output(f"{table} rows", "\n".join(repr(tuple(row)) for row in rows)))


@pytest.fixture
def every_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG from before the server starts (so listed before the server's fixture)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def log_outputs(caplog: pytest.LogCaptureFixture) -> list[Output]:
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    outputs = []
    for record in caplog.records:
        extras = {k: v for k, v in vars(record).items() if k not in {"msg", "args", "exc_info"}}
        outputs.append(
            Output(
                f"log record {record.name}:{record.lineno}",
                f"{formatter.format(record)}\n{record.msg!r} {record.args!r}\n{extras!r}",
            )
        )
    return outputs


def test_a_full_scenario_leaks_no_token_key_or_secret(
    every_log: pytest.LogCaptureFixture,
    agent_server: LiveServer,
    workloads: Workloads,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """No secret reaches a response body, a log, stdout or stderr, the CLI, the export, the audit rows or /metrics."""
    capture = Capture()
    key_material(capture, agent_server, workloads)
    scenario(capture, agent_server, workloads, tmp_path)
    streams = capfd.readouterr()
    outputs = [*capture.outputs, *log_outputs(every_log), Output("stdout and stderr", streams.out + streams.err)]
    assert len(capture.secrets) > 20
    sources = {o.source.split(":")[0] for o in outputs}
    assert {"log record remit.http", "audit_events rows", "HTTP GET /metrics -> 200", "stdout and stderr"} <= sources
    assert sum(o.source.startswith("HTTP ") for o in outputs) > 25

    assert scan(outputs, capture.secrets) == []

    # The scan can fail: a secret of each kind planted anywhere is found, and named with where it was.
    issued = capture.secrets["credential 1"]
    planted = [
        Output("planted log line", f"refused {capture.secrets['the operator token']} for no reason"),
        Output("planted error body", json.dumps({"detail": issued})),
        Output("planted metrics label", 'x{token="eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"} 1'),
        Output("planted audit row", "-----BEGIN PRIVATE KEY-----\nMC4CAQ...\n-----END PRIVATE KEY-----"),
        Output("planted export", json.dumps({"kty": "OKP", "d": capture.secrets["the audit signing key (d)"]})),
        Output("planted hex", f"key={capture.secrets['the audit HMAC key']}"),
        Output("planted fragment", f"revoking ...{capture.secrets['exchanged credential (signature)'][-20:]}"),
        Output("planted KEK fragment", f"kek starts {capture.secrets['the KEK'][:16]}"),
    ]
    found = scan([*outputs, *planted], capture.secrets)
    assert {f.split(" in ", 1)[1] for f in found} == {p.source for p in planted}
    assert "the operator token in planted log line" in found
    assert "credential 1 in planted error body" in found
    assert "a JWT in planted metrics label" in found
    assert "a private key PEM in planted audit row" in found
    assert "the audit signing key (d) in planted export" in found
    assert "a private JWK member d in planted export" in found
    assert "the audit HMAC key in planted hex" in found
    assert "exchanged credential (signature) in planted fragment" in found
    assert any(f.startswith("the KEK") and f.endswith(" in planted KEK fragment") for f in found)
