"""Token and evidence parsers never fail with anything but our errors, whatever bytes or text arrive."""

from __future__ import annotations

import base64
import json
import secrets

from pathlib import Path

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.core.attestation.minting import SpiffeCa, ec_key, public_jwk, write_json, x5c

from remit.adapters.jose import AccessTokenVerifier, DpopVerifier, MemoryReplayGuard, parse_compact
from remit.adapters.keys import KeyRing
from remit.adapters.oidc import OidcAttestor, OidcIssuer
from remit.adapters.spiffe import BundleSource, JwtSvidAttestor
from remit.adapters.x509_svid import X509SvidAttestor
from remit.core.attestation.models import Evidence, EvidenceKind
from remit.errors import AttestationFailed, CredentialExpired, CredentialInvalid
from remit.testing import FrozenClock

OURS = (CredentialInvalid, CredentialExpired)
FIXTURES = [HealthCheck.function_scoped_fixture]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Three base64url segments of arbitrary JSON: gets past the compact-form check into the deeper ones.
jws_shaped = st.tuples(json_values, json_values, st.binary(max_size=80)).map(
    lambda parts: f"{_b64(json.dumps(parts[0]).encode())}.{_b64(json.dumps(parts[1]).encode())}.{_b64(parts[2])}"
)
any_token = st.text(max_size=300) | st.binary(max_size=300) | jws_shaped


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> AccessTokenVerifier:
    clock = FrozenClock()
    ring = KeyRing.open(tmp_path_factory.mktemp("ring"), secrets.token_bytes(32), now=clock.now())
    return AccessTokenVerifier(ring, issuer="https://remit.example", clock=clock)


@pytest.fixture(scope="module")
def attestors(tmp_path_factory: pytest.TempPathFactory) -> tuple[JwtSvidAttestor, OidcAttestor]:
    clock = FrozenClock()
    directory: Path = tmp_path_factory.mktemp("trust")
    key = ec_key()
    bundle = write_json(directory / "bundle.json", {"keys": [public_jwk(key, use="jwt-svid", kid="k")]})
    jwks = write_json(directory / "jwks.json", {"keys": [public_jwk(key, kid="k")]})
    return (
        JwtSvidAttestor([BundleSource("acme.example", str(bundle))], audience="remit", clock=clock),
        OidcAttestor([OidcIssuer(issuer="https://ci.example", jwks=str(jwks), audience="remit")], clock=clock),
    )


@given(token=any_token)
@settings(suppress_health_check=FIXTURES)
def test_parse_compact_raises_only_credential_invalid(token: str | bytes) -> None:
    """parse_compact either returns a parsed JWS or raises CredentialInvalid, never anything else."""
    reasons: list[str] = []
    try:
        parse_compact(token)
    except CredentialInvalid as error:
        reasons.append(error.details["reason"])
    assert all(reasons)


@given(token=st.text(max_size=300) | jws_shaped)
@settings(suppress_health_check=FIXTURES)
def test_access_token_verifier_raises_only_our_errors(verifier: AccessTokenVerifier, token: str) -> None:
    """Arbitrary text is refused with CredentialInvalid or CredentialExpired; nothing else escapes."""
    with pytest.raises(OURS):
        verifier.verify(token, audience="tool:x")


@given(token=st.text(max_size=300) | jws_shaped)
@settings(suppress_health_check=FIXTURES)
def test_dpop_verifier_raises_only_credential_invalid(token: str) -> None:
    """Arbitrary text as a DPoP proof is refused with CredentialInvalid."""
    clock = FrozenClock()
    verifier = DpopVerifier(clock=clock, replay_guard=MemoryReplayGuard(clock=clock))
    with pytest.raises(CredentialInvalid):
        verifier.verify(token, method="POST", url="https://tools.example/x", access_token="t")


@given(token=st.text(min_size=1, max_size=300) | jws_shaped)
@settings(suppress_health_check=FIXTURES)
def test_attestors_raise_only_attestation_failed(attestors: tuple[JwtSvidAttestor, OidcAttestor], token: str) -> None:
    """Arbitrary text as JWT-SVID or OIDC evidence is refused with AttestationFailed."""
    clock = FrozenClock()
    svids, oidc = attestors
    with pytest.raises(AttestationFailed):
        svids.attest(Evidence(EvidenceKind.JWT_SVID, token), now=clock.now())
    with pytest.raises(AttestationFailed):
        oidc.attest(Evidence(EvidenceKind.OIDC, token), now=clock.now())


@pytest.fixture(scope="module")
def x509_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[X509SvidAttestor, list[str]]:
    """An X.509-SVID attestor trusting one CA, and the DER (base64) of a real leaf and of that CA."""
    clock = FrozenClock()
    ca = SpiffeCa("acme.example", now=clock.now())
    bundle = write_json(tmp_path_factory.mktemp("x509") / "bundle.json", {"keys": [ca.bundle_entry()]})
    bundles = JwtSvidAttestor([BundleSource("acme.example", str(bundle))], audience="remit", clock=clock).bundles
    leaf, _ = ca.issue("spiffe://acme.example/bot")
    return X509SvidAttestor(bundles, audience="remit"), x5c([leaf, ca.certificate])


x5c_values = st.one_of(
    json_values,
    st.lists(st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode()), max_size=6),
    st.lists(st.text(max_size=30), max_size=3),
)


@given(
    alg=st.sampled_from(["ES256", "RS256", "PS256", "EdDSA", "none", "HS256"]) | st.text(max_size=8),
    chain=x5c_values,
    real=st.integers(min_value=0, max_value=3),
    extra=st.dictionaries(st.sampled_from(["typ", "kid", "jwk", "crit", "x5u"]), json_values, max_size=2),
    claims=json_values,
    signature=st.binary(max_size=80),
)
@settings(suppress_health_check=FIXTURES, max_examples=300)
def test_the_x509_svid_attestor_raises_only_attestation_failed(  # noqa: PLR0917 - one strategy per header part
    x509_world: tuple[X509SvidAttestor, list[str]],
    alg: str,
    chain: object,
    real: int,
    extra: dict[str, object],
    claims: object,
    signature: bytes,
) -> None:
    """Headers with junk, real or mixed `x5c` chains and arbitrary claims are refused with AttestationFailed."""
    attestor, certificates = x509_world
    if real and isinstance(chain, list):
        chain = certificates[: real % 3] + chain  # a real leaf (and CA) ahead of junk reaches the later checks
    header = {**extra, "alg": alg, "x5c": chain}
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{_b64(signature)}"
    with pytest.raises(AttestationFailed):
        attestor.attest(Evidence(EvidenceKind.X509_SVID, token), now=FrozenClock().now())
