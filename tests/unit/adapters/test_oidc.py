"""OIDC workload-token attestor: configured issuers, JWKS from file or URL, bound claims, identity key."""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.core.attestation.minting import Key, ec_key, public_jwk, rsa_key, serving, sign, write_json

from remit.adapters.oidc import OidcAttestor, OidcIssuer, parse_jwks
from remit.core.attestation.models import Evidence, EvidenceKind
from remit.errors import AttestationFailed, InvalidRequest
from remit.testing import FrozenClock

ISSUER = "https://kubernetes.acme.example"
AUDIENCE = "remit"
SUBJECT = "system:serviceaccount:billing:invoice-bot"


def k8s_token(key: Key, clock: FrozenClock, *, kid: str = "k1", alg: str = "RS256", **claims: Any) -> str:
    now = int(clock.now().timestamp())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": [AUDIENCE],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "kubernetes.io": {"namespace": "billing", "serviceaccount": {"name": "invoice-bot"}},
    }
    body.update(claims)
    return sign({"alg": alg, "kid": kid}, body, key)


@pytest.fixture(scope="module")
def rsa() -> Key:
    return rsa_key()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def test_token_from_a_configured_issuer_yields_an_oidc_identity(tmp_path: Path, rsa: Key, clock: FrozenClock) -> None:
    """A Kubernetes-style token verifies against the file JWKS; its identity is oidc:<iss>#<sub>, no jti."""
    jwks = write_json(tmp_path / "jwks.json", {"keys": [public_jwk(rsa, kid="k1", use="sig")]})
    attestor = OidcAttestor(
        [
            OidcIssuer(
                issuer=ISSUER,
                jwks=str(jwks),
                audience=AUDIENCE,
                bound_claims={"/kubernetes.io/namespace": "billing"},
            )
        ],
        clock=clock,
    )
    identity = attestor.attest(Evidence(EvidenceKind.OIDC, k8s_token(rsa, clock)), now=clock.now())
    assert identity.binding_key == f"oidc:{ISSUER}#{SUBJECT}"
    assert identity.jti is None
    assert identity.issuer == ISSUER
    assert identity.expires_at == clock.now() + dt.timedelta(seconds=600)


def test_bound_claims_match_exactly_by_value_and_type(tmp_path: Path, clock: FrozenClock) -> None:
    """A bound claim of true is not matched by the string "true", and a top-level claim is compared as is."""
    key = ec_key()
    jwks = write_json(tmp_path / "jwks.json", {"keys": [public_jwk(key, kid="k1")]})
    issuer = OidcIssuer(
        issuer=ISSUER, jwks=str(jwks), audience=AUDIENCE, algorithms=("ES256",), bound_claims={"ci": True}
    )
    attestor = OidcAttestor([issuer], clock=clock)
    attestor.attest(Evidence(EvidenceKind.OIDC, k8s_token(key, clock, alg="ES256", ci=True)), now=clock.now())
    with pytest.raises(AttestationFailed) as caught:
        attestor.attest(Evidence(EvidenceKind.OIDC, k8s_token(key, clock, alg="ES256", ci="true")), now=clock.now())
    assert caught.value.details == {"reason": "bound_claims_mismatch"}


def test_jwks_over_http_refreshes_on_unknown_kid(rsa: Key, clock: FrozenClock, http: httpx.Client) -> None:
    """An issuer key rotation is picked up on the first token with the new kid, at most once per interval."""
    new = ec_key()
    with serving({"keys": [public_jwk(rsa, kid="k1")]}) as server:
        issuer = OidcIssuer(issuer=ISSUER, jwks=server.url, audience=AUDIENCE, algorithms=("RS256", "ES256"))
        attestor = OidcAttestor([issuer], clock=clock, http=http, allow_http_loopback=True)
        attestor.attest(Evidence(EvidenceKind.OIDC, k8s_token(rsa, clock)), now=clock.now())
        server.document = {"keys": [public_jwk(rsa, kid="k1"), public_jwk(new, kid="k2")]}
        clock.advance(dt.timedelta(seconds=31))
        token = k8s_token(new, clock, kid="k2", alg="ES256")
        assert attestor.attest(Evidence(EvidenceKind.OIDC, token), now=clock.now()).subject == SUBJECT
        assert server.requests == 2


def test_jwks_parsing_ignores_encryption_keys_and_keys_without_kid() -> None:
    """Only signature keys (use absent or sig) with a kid are kept."""
    key = ec_key()
    keys = parse_jwks(
        {"keys": [public_jwk(key, kid="a"), public_jwk(key, kid="b", use="enc"), public_jwk(key), "junk"]}
    )
    assert set(keys) == {"a"}


@pytest.mark.parametrize(
    "overrides",
    [
        {"issuer": "http://insecure.example"},
        {"audience": ""},
        {"algorithms": ("HS256",)},
        {"algorithms": ("none",)},
        {"algorithms": ()},
    ],
)
def test_issuer_configuration_is_validated(overrides: dict[str, Any]) -> None:
    """An issuer must be https, have an audience, and allow only asymmetric algorithms."""
    settings: dict[str, Any] = {"issuer": ISSUER, "jwks": "/dev/null", "audience": AUDIENCE, **overrides}
    with pytest.raises(InvalidRequest):
        OidcIssuer(**settings)
