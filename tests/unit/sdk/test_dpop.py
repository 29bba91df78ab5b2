"""The SDK's DPoP proofs (RFC 9449) pass the server's verifier and a second JOSE library; jti is never reused."""

from __future__ import annotations

import base64
import json
import sys

from pathlib import Path
from typing import Any

import jwt  # noqa: TID251 - an independent JOSE library checks our proofs
import pytest

from remit.adapters.jose import DpopVerifier, MemoryReplayGuard, access_token_hash
from remit.core.clock import SystemClock
from remit.errors import CredentialInvalid
from remit.sdk import DPOP_EXTRA, DpopKey, JwtSvidFile, RemitClient
from remit.sdk.dpop import htu_of

URL = "https://remit.example/v1/tasks/tsk_1/end"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def _part(compact: str, index: int) -> dict[str, Any]:
    segment = compact.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def _verifier() -> DpopVerifier:
    clock = SystemClock()
    return DpopVerifier(clock=clock, replay_guard=MemoryReplayGuard(clock=clock))


def test_a_proof_passes_the_servers_checks_and_names_the_key() -> None:
    """htm, htu, iat, ath and the key binding all verify; the proof's key thumbprint is the key's jkt."""
    key = DpopKey.generate()

    proof = _verifier().verify(
        key.proof("post", URL + "?x=1#f", access_token=TOKEN),
        method="POST",
        url=URL,
        access_token=TOKEN,
        expected_jkt=key.thumbprint,
    )

    assert proof.jkt == key.thumbprint
    header, claims = _part(key.proof("GET", URL), 0), _part(key.proof("GET", URL), 1)
    assert header == {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk}
    assert claims["htu"] == URL
    assert "ath" not in claims


def test_a_second_jose_library_verifies_the_es256_signature() -> None:
    """PyJWT checks the raw r||s signature with the public key from the proof's own header."""
    key = DpopKey.generate()
    proof = key.proof("POST", URL, access_token=TOKEN)

    public = jwt.PyJWK(_part(proof, 0)["jwk"], algorithm="ES256")
    claims = jwt.decode(proof, key=public, algorithms=["ES256"])

    assert claims["ath"] == access_token_hash(TOKEN)
    assert claims["htm"] == "POST"


def test_every_proof_has_its_own_jti_and_a_replay_is_refused() -> None:
    """Each call makes a new jti; the server refuses a proof it has already seen."""
    key, verifier = DpopKey.generate(), _verifier()
    proofs = [key.proof("POST", URL) for _ in range(200)]
    proof = proofs[0]
    verifier.verify(proof, method="POST", url=URL)

    assert len({_part(p, 1)["jti"] for p in proofs}) == len(proofs)
    with pytest.raises(CredentialInvalid) as refused:
        verifier.verify(proof, method="POST", url=URL)
    assert refused.value.details["reason"] == "dpop_replayed"


def test_a_proof_for_another_request_or_key_is_refused() -> None:
    """A proof names one method and URL, and binds to its own key only."""
    key, verifier = DpopKey.generate(), _verifier()

    for proof, method, url, jkt, reason in (
        (key.proof("GET", URL), "POST", URL, None, "dpop_wrong_htm"),
        (key.proof("POST", URL), "POST", URL + "x", None, "dpop_wrong_htu"),
        (key.proof("POST", URL), "POST", URL, DpopKey.generate().thumbprint, "dpop_key_mismatch"),
    ):
        with pytest.raises(CredentialInvalid) as refused:
            verifier.verify(proof, method=method, url=url, expected_jkt=jkt)
        assert refused.value.details["reason"] == reason


def test_a_saved_key_keeps_its_binding() -> None:
    """A key written with private_pem (optionally encrypted) reads back with the same thumbprint."""
    key = DpopKey.generate()

    assert DpopKey.from_pem(key.private_pem()).thumbprint == key.thumbprint
    assert DpopKey.from_pem(key.private_pem(password=b"pw"), password=b"pw").thumbprint == key.thumbprint
    assert key.thumbprint in repr(key)


def test_htu_drops_query_and_fragment() -> None:
    assert htu_of("https://h.example:8443/a/b?c=d#e") == "https://h.example:8443/a/b"
    assert htu_of("https://h.example") == "https://h.example/"


def test_without_cryptography_dpop_is_a_clear_error_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The import guard: with cryptography unimportable, asking for a key says which extra to install."""
    monkeypatch.setitem(sys.modules, "cryptography", None)

    with pytest.raises(ImportError, match=r"remit\[dpop\]") as missing:
        DpopKey.generate()

    assert missing.value.name == "cryptography"
    assert DPOP_EXTRA == "remit[dpop]"


def test_client_task_with_dpop_and_no_cryptography_fails_before_any_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`client.task(..., dpop=True)` names the extra at once; the evidence is not even read."""
    monkeypatch.setitem(sys.modules, "cryptography", None)
    never_read = JwtSvidFile(tmp_path / "absent.jwt")

    with RemitClient("http://127.0.0.1:9") as client, pytest.raises(ImportError, match=r"pip install 'remit\[dpop\]'"):
        client.task(
            evidence=never_read,
            workflow="w@1",
            objective="o",
            tools={"t": ["a"]},
            expected_duration_seconds=60,
            environment="prod",
            audience="tool:t",
            dpop=True,
        )
