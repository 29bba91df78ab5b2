"""JOSE adapter: RFC 9068 signing and verification, the JWKS, the verification cache, DPoP, RFC vectors."""

from __future__ import annotations

import datetime as dt
import json
import secrets

from pathlib import Path
from typing import Any

import jwt  # noqa: TID251 - interop: a second JOSE library verifies our tokens against our JWKS
import pytest

from tests.unit.core.attestation.minting import ec_key, public_jwk, sign

from remit.adapters.jose import (
    AccessTokenSigner,
    AccessTokenVerifier,
    DpopVerifier,
    MemoryReplayGuard,
    access_token_hash,
    import_public_jwk,
    normalize_htu,
    parse_compact,
    verify_signature,
)
from remit.adapters.keys import KeyRing, SigningAlgorithm, jwk_thumbprint
from remit.errors import CredentialExpired, CredentialInvalid, InvalidRequest, Unavailable
from remit.testing import FrozenClock

ISSUER = "https://remit.example"
AUDIENCE = "tool:payments"
VECTORS = Path(__file__).parents[2] / "vectors"


def claims_for(clock: FrozenClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "spiffe://acme.example/agents/invoice-bot",
        "client_id": "spiffe://acme.example/agents/invoice-bot",
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        "txn": "tsk_01",
    }
    claims.update(overrides)
    return claims


@pytest.fixture
def kek() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture(params=[SigningAlgorithm.ES256, SigningAlgorithm.EDDSA])
def ring(request: pytest.FixtureRequest, tmp_path: Path, kek: bytes, clock: FrozenClock) -> KeyRing:
    return KeyRing.open(tmp_path, kek, now=clock.now(), algorithm=request.param)


@pytest.fixture
def signer(ring: KeyRing) -> AccessTokenSigner:
    return AccessTokenSigner(ring)


@pytest.fixture
def verifier(ring: KeyRing, clock: FrozenClock) -> AccessTokenVerifier:
    return AccessTokenVerifier(ring, issuer=ISSUER, clock=clock)


def test_signed_token_verifies_and_returns_its_claims(
    signer: AccessTokenSigner, verifier: AccessTokenVerifier, ring: KeyRing, clock: FrozenClock
) -> None:
    """A token signed with the active key verifies for its audience and exposes typed claims."""
    claims = claims_for(clock)
    token = signer.sign(claims)
    verified = verifier.verify(token, audience=AUDIENCE)
    assert dict(verified.claims) == claims
    assert verified.kid == ring.active().kid
    assert verified.alg == ring.active().algorithm.value
    assert verified.jti == claims["jti"]
    assert verified.expires_at == clock.now() + dt.timedelta(seconds=300)
    assert verified.confirmation_jkt is None


def test_header_is_rfc9068(signer: AccessTokenSigner, ring: KeyRing, clock: FrozenClock) -> None:
    """The JOSE header is exactly alg (of the active key), kid and typ at+jwt."""
    header = parse_compact(signer.sign(claims_for(clock))).header
    assert dict(header) == {"alg": ring.active().algorithm.value, "kid": ring.active().kid, "typ": "at+jwt"}


def test_signer_refuses_claims_without_integer_exp(signer: AccessTokenSigner, clock: FrozenClock) -> None:
    """Nothing is ever signed without an expiry."""
    with pytest.raises(InvalidRequest):
        signer.sign({k: v for k, v in claims_for(clock).items() if k != "exp"})


def test_jwks_publishes_active_next_and_retired_public_keys(
    signer: AccessTokenSigner, ring: KeyRing, clock: FrozenClock
) -> None:
    """The JWKS lists every published key with use sig, alg and kid, and no private member."""
    ring.rotate(clock.now())
    document = signer.jwks()
    assert [k["kid"] for k in document["keys"]] == [k.kid for k in ring.published()]
    assert len(document["keys"]) == 3
    for jwk in document["keys"]:
        assert jwk["use"] == "sig"
        assert jwk["alg"] in {"ES256", "EdDSA"}
        assert jwk["kid"] == jwk_thumbprint(jwk)
        assert not {"d", "p", "q", "k"} & set(jwk)


def test_tokens_survive_rotation_until_their_key_is_pruned(
    signer: AccessTokenSigner, verifier: AccessTokenVerifier, ring: KeyRing, clock: FrozenClock
) -> None:
    """A token signed before rotation verifies with the retired key; after prune it is unknown_kid."""
    token = signer.sign(claims_for(clock, exp=int(clock.now().timestamp()) + 7200))
    ring.rotate(clock.now())
    assert verifier.verify(token, audience=AUDIENCE).kid != ring.active().kid
    clock.advance(dt.timedelta(hours=1))
    ring.prune(clock.now(), max_token_lifetime=dt.timedelta(hours=1))
    with pytest.raises(CredentialInvalid) as caught:
        verifier.verify(token, audience=AUDIENCE)
    assert caught.value.details == {"reason": "unknown_kid"}


def test_a_verifier_sees_a_rotation_made_by_another_process(clock: FrozenClock, ring: KeyRing, kek: bytes) -> None:
    """Tokens signed after another process rotated the ring verify here too (the verifier reloads on unknown kid)."""
    verifier = AccessTokenVerifier(ring, issuer=ISSUER, clock=clock)
    other = KeyRing.open(ring.path.parent, kek, now=clock.now())
    other.rotate(clock.now())
    other.rotate(clock.now())
    token = AccessTokenSigner(other).sign(claims_for(clock))
    assert verifier.verify(token, audience=AUDIENCE).kid == other.active().kid


def test_cached_verification_still_checks_audience_and_time(
    signer: AccessTokenSigner, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    """The cache skips only the signature: a cached token is still refused for another audience or once expired."""
    token = signer.sign(claims_for(clock))
    verifier.verify(token, audience=AUDIENCE)
    with pytest.raises(CredentialInvalid) as wrong:
        verifier.verify(token, audience="tool:other")
    assert wrong.value.details == {"reason": "wrong_aud"}
    clock.advance(dt.timedelta(seconds=300))
    with pytest.raises(CredentialExpired) as expired:
        verifier.verify(token, audience=AUDIENCE)
    assert expired.value.details == {"reason": "expired"}


def test_audience_array_must_contain_ours_and_only_ours(
    signer: AccessTokenSigner, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    """An `aud` given as a one-element array is accepted; an array with another audience as well is not."""
    verifier.verify(signer.sign(claims_for(clock, aud=[AUDIENCE])), audience=AUDIENCE)
    with pytest.raises(CredentialInvalid):
        verifier.verify(signer.sign(claims_for(clock, aud=[AUDIENCE, "tool:other"])), audience=AUDIENCE)


def test_skew_is_tolerated_up_to_the_leeway(
    signer: AccessTokenSigner, verifier: AccessTokenVerifier, clock: FrozenClock
) -> None:
    """Values of `nbf` and `iat` up to 30 s in the future pass (clock skew); 31 s do not."""
    now = int(clock.now().timestamp())
    verifier.verify(signer.sign(claims_for(clock, nbf=now + 30, iat=now + 30)), audience=AUDIENCE)
    with pytest.raises(CredentialInvalid) as caught:
        verifier.verify(signer.sign(claims_for(clock, nbf=now + 31)), audience=AUDIENCE)
    assert caught.value.details == {"reason": "not_yet_valid"}


def test_pyjwt_verifies_our_tokens_against_our_jwks(
    signer: AccessTokenSigner, ring: KeyRing, clock: FrozenClock
) -> None:
    """Interop: an independent JOSE library verifies our token with the published JWKS entry."""
    token = signer.sign(claims_for(clock))
    jwk = next(k for k in signer.jwks()["keys"] if k["kid"] == ring.active().kid)
    key = jwt.PyJWK(jwk)
    decoded = jwt.decode(
        token,
        key=key,
        algorithms=[jwk["alg"]],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert decoded["txn"] == "tsk_01"
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"


def test_verifier_refuses_symmetric_allow_lists(ring: KeyRing, clock: FrozenClock) -> None:
    """Configuration can never allow none or HMAC algorithms."""
    for algorithms in (["none"], ["HS256"], ["ES256", "HS512"], []):
        with pytest.raises(InvalidRequest):
            AccessTokenVerifier(ring, issuer=ISSUER, clock=clock, algorithms=algorithms)


# ---------------------------------------------------------------- RFC vectors


def test_rfc7638_thumbprint_vector() -> None:
    """RFC 7638 §3.1: the example RSA key's thumbprint."""
    vector = json.loads((VECTORS / "rfc7638_s3_1_thumbprint.json").read_text())
    assert jwk_thumbprint(vector["jwk"]) == vector["thumbprint"]
    assert import_public_jwk(vector["jwk"]).thumbprint == vector["thumbprint"]


def test_rfc7515_a3_es256_vector_verifies() -> None:
    """RFC 7515 Appendix A.3: the ES256 example JWS verifies with the example public key, and a flip does not."""
    vector = json.loads((VECTORS / "rfc7515_appendix_a3_es256.json").read_text())
    jws = parse_compact(vector["jws"])
    key = import_public_jwk(vector["jwk"])
    assert verify_signature(jws, key)
    assert dict(jws.payload) == vector["payload"]
    header, payload, signature = vector["jws"].split(".")
    flipped = parse_compact(f"{header}.{payload}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}Q")
    assert not verify_signature(flipped, key)


def test_rfc9449_proof_vector(clock: FrozenClock) -> None:
    """RFC 9449 §4.1/§6.1/§7.1: the example proof verifies, its jkt and the example ath match."""
    vector = json.loads((VECTORS / "rfc9449_s4_1_dpop_proof.json").read_text())
    clock.set(dt.datetime.fromtimestamp(vector["iat"], dt.UTC))
    verifier = DpopVerifier(clock=clock, replay_guard=MemoryReplayGuard(clock=clock))
    proof = verifier.verify(vector["proof"], method=vector["htm"], url=vector["htu"], expected_jkt=vector["jkt"])
    assert proof.jkt == vector["jkt"] == jwk_thumbprint(vector["jwk"])
    assert proof.jti == vector["jti"]
    assert access_token_hash(vector["access_token"]) == vector["ath"]


# ---------------------------------------------------------------- DPoP


def test_dpop_proof_binds_method_url_token_and_key(clock: FrozenClock) -> None:
    """A fresh proof with matching htm, htu, ath and key verifies and returns the key thumbprint."""
    key = ec_key()
    jwk = public_jwk(key)
    token = "access.token.value"
    proof = sign(
        {"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk},
        {
            "jti": "p-1",
            "htm": "GET",
            "htu": "https://Tools.Example:443/invoices",
            "iat": int(clock.now().timestamp()),
            "ath": access_token_hash(token),
        },
        key,
    )
    verifier = DpopVerifier(clock=clock, replay_guard=MemoryReplayGuard(clock=clock))
    result = verifier.verify(
        proof,
        method="GET",
        url="https://tools.example/invoices?page=2#top",
        access_token=token,
        expected_jkt=jwk_thumbprint(jwk),
    )
    assert result.jkt == jwk_thumbprint(jwk)
    assert result.url == "https://tools.example/invoices"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("HTTPS://Example.COM:443/a?b#c", "https://example.com/a"),
        ("http://example.com:80", "http://example.com/"),
        ("https://example.com:8443/x/", "https://example.com:8443/x/"),
        ("https://[::1]:443/p", "https://[::1]/p"),
    ],
)
def test_htu_normalisation(raw: str, normal: str) -> None:
    """Scheme and host are lower-cased; default ports, query and fragment are dropped; an empty path is /."""
    assert normalize_htu(raw) == normal


# ---------------------------------------------------------------- replay memory


def test_memory_replay_guard_accepts_each_jti_once_until_it_expires(clock: FrozenClock) -> None:
    """A jti is new once per namespace; after its expiry it may be seen again (the token is dead anyway)."""
    guard = MemoryReplayGuard(clock=clock)
    later = clock.now() + dt.timedelta(minutes=1)
    assert guard.first_use("a", "j1", later) is True
    assert guard.first_use("a", "j1", later) is False
    assert guard.first_use("b", "j1", later) is True
    clock.advance(dt.timedelta(minutes=1))
    assert guard.first_use("a", "j1", later + dt.timedelta(minutes=1)) is True


def test_a_full_replay_guard_fails_closed(clock: FrozenClock) -> None:
    """When every slot holds a live jti, the guard raises Unavailable instead of forgetting one."""
    guard = MemoryReplayGuard(clock=clock, max_entries=2)
    later = clock.now() + dt.timedelta(minutes=1)
    guard.first_use("a", "1", later)
    guard.first_use("a", "2", later)
    with pytest.raises(Unavailable):
        guard.first_use("a", "3", later)
    clock.advance(dt.timedelta(minutes=2))
    assert guard.first_use("a", "3", clock.now() + dt.timedelta(minutes=1)) is True
    assert len(guard) == 1
