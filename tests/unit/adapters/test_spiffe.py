"""SPIFFE JWT-SVID attestor: bundle parsing, file and HTTP bundles with refresh, and the happy path."""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.unit.core.attestation.minting import Key, ec_key, public_jwk, rsa_key, serving, sign, write_json

from remit.adapters.spiffe import BundleSource, JwtSvidAttestor, parse_bundle
from remit.core.attestation.models import Evidence, EvidenceKind
from remit.core.attestation.waiting import WouldWait, without_waiting
from remit.errors import AttestationFailed, InvalidRequest, Unavailable
from remit.testing import FrozenClock

AUDIENCE = "https://remit.example"
SPIFFE_ID = "spiffe://acme.example/agents/invoice-bot"


def svid(key: Key, clock: FrozenClock, *, kid: str = "jwt-1", alg: str = "ES256", **claims: Any) -> str:
    now = int(clock.now().timestamp())
    body: dict[str, Any] = {"sub": SPIFFE_ID, "aud": [AUDIENCE], "iat": now, "exp": now + 300, "jti": "svid-1"}
    body.update(claims)
    return sign({"alg": alg, "kid": kid, "typ": "JWT"}, body, key)


def bundle(*entries: dict[str, Any], hint: int | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"keys": list(entries), "spiffe_sequence": 1}
    if hint is not None:
        document["spiffe_refresh_hint"] = hint
    return document


def served_attestor(url: str, clock: FrozenClock, http: httpx.Client, **knobs: Any) -> JwtSvidAttestor:
    """An attestor for acme.example whose bundle a local test server serves over plain http."""
    return JwtSvidAttestor(
        [BundleSource("acme.example", url)],
        audience=AUDIENCE,
        clock=clock,
        http=http,
        allow_http_loopback=True,
        **knobs,
    )


@pytest.fixture
def key() -> Key:
    return ec_key()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


def test_bundle_keeps_only_jwt_svid_entries_with_a_kid(key: Key) -> None:
    """x509-svid, missing use, unknown kty and kid-less entries are ignored, per the bundle spec §4."""
    parsed = parse_bundle(
        "acme.example",
        bundle(
            public_jwk(key, use="jwt-svid", kid="good"),
            public_jwk(key, use="x509-svid", kid="x509"),
            public_jwk(key, kid="no-use"),
            public_jwk(key, use="jwt-svid"),
            {"kty": "unknown", "use": "jwt-svid", "kid": "odd"},
            hint=60,
        ),
    )
    assert set(parsed.jwt_authorities) == {"good"}
    assert parsed.other_use_kids == {"x509", "no-use"}
    assert parsed.refresh_hint == dt.timedelta(seconds=60)
    assert parsed.is_revoked is False
    assert parse_bundle("acme.example", bundle()).is_revoked is True


def test_jwt_svid_from_a_file_bundle_yields_the_spiffe_identity(tmp_path: Path, key: Key, clock: FrozenClock) -> None:
    """A valid JWT-SVID becomes a WorkloadIdentity keyed by its SPIFFE ID, with jti and expiry."""
    path = write_json(tmp_path / "acme.json", bundle(public_jwk(key, use="jwt-svid", kid="jwt-1")))
    attestor = JwtSvidAttestor([BundleSource("acme.example", str(path))], audience=AUDIENCE, clock=clock)
    identity = attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock)), now=clock.now())
    assert identity.binding_key == SPIFFE_ID
    assert identity.issuer == "acme.example"
    assert identity.jti == "svid-1"
    assert identity.expires_at == clock.now() + dt.timedelta(seconds=300)
    assert identity.kind is EvidenceKind.JWT_SVID


def test_rsa_authorities_are_supported(tmp_path: Path, clock: FrozenClock) -> None:
    """SPIRE's default RS256 JWT authorities verify too."""
    rsa = rsa_key()
    path = write_json(tmp_path / "acme.json", bundle(public_jwk(rsa, use="jwt-svid", kid="rsa")))
    attestor = JwtSvidAttestor([BundleSource("acme.example", str(path))], audience=AUDIENCE, clock=clock)
    token = svid(rsa, clock, kid="rsa", alg="RS256")
    assert attestor.attest(Evidence(EvidenceKind.JWT_SVID, token), now=clock.now()).subject == SPIFFE_ID


def test_http_bundle_is_cached_and_refreshed_after_its_hint(key: Key, clock: FrozenClock, http: httpx.Client) -> None:
    """The bundle is fetched once, reused until spiffe_refresh_hint passes, then fetched again."""
    with serving(bundle(public_jwk(key, use="jwt-svid", kid="jwt-1"), hint=60)) as server:
        attestor = served_attestor(server.url, clock, http)
        for jti in ("a", "b"):
            attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock, jti=jti)), now=clock.now())
        assert server.requests == 1
        clock.advance(dt.timedelta(seconds=61))
        attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock, jti="c")), now=clock.now())
        assert server.requests == 2


def test_an_unknown_kid_triggers_one_rate_limited_refetch(key: Key, clock: FrozenClock, http: httpx.Client) -> None:
    """A new authority is picked up at once on first sight of its kid; a flood of unknown kids fetches once."""
    new_key = ec_key()
    with serving(bundle(public_jwk(key, use="jwt-svid", kid="jwt-1"))) as server:
        attestor = served_attestor(server.url, clock, http)
        attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock)), now=clock.now())
        clock.advance(dt.timedelta(seconds=11))
        server.document = bundle(
            public_jwk(key, use="jwt-svid", kid="jwt-1"), public_jwk(new_key, use="jwt-svid", kid="jwt-2")
        )
        token = svid(new_key, clock, kid="jwt-2")
        assert attestor.attest(Evidence(EvidenceKind.JWT_SVID, token), now=clock.now()).jti == "svid-1"
        requests = server.requests
        for n in range(5):
            with pytest.raises(AttestationFailed):
                attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock, kid=f"nope-{n}")), now=clock.now())
        assert server.requests == requests


def test_an_unreachable_bundle_is_unavailable_and_a_stale_one_expires(
    key: Key, clock: FrozenClock, http: httpx.Client
) -> None:
    """With no bundle ever loaded the attestor is Unavailable; a last good bundle serves up to max_stale."""
    with serving(bundle(public_jwk(key, use="jwt-svid", kid="jwt-1"))) as server:
        attestor = served_attestor(server.url, clock, http, max_stale=dt.timedelta(minutes=30))
        attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock)), now=clock.now())
        server.status = 500
        clock.advance(dt.timedelta(minutes=10))
        attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock)), now=clock.now())
        clock.advance(dt.timedelta(minutes=25))
        with pytest.raises(Unavailable):
            attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock)), now=clock.now())
        failing = served_attestor(server.url, clock, http)
        with pytest.raises(Unavailable):
            failing.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock)), now=clock.now())


def test_plain_http_bundles_are_refused_unless_loopback_is_allowed(clock: FrozenClock) -> None:
    """A bundle URL must be https; http is allowed only for loopback hosts and only when enabled."""
    with pytest.raises(Exception, match="https"):
        JwtSvidAttestor([BundleSource("acme.example", "http://bundles.example/a")], audience=AUDIENCE, clock=clock)
    with pytest.raises(Exception, match="https"):
        JwtSvidAttestor(
            [BundleSource("acme.example", "http://bundles.example/a")],
            audience=AUDIENCE,
            clock=clock,
            allow_http_loopback=True,
        )


def test_without_waiting_an_attestation_never_fetches(key: Key, clock: FrozenClock, http: httpx.Client) -> None:
    """On an event loop: a bundle never loaded, due again, or a kid needing a refetch says WouldWait; no request."""
    with serving(bundle(public_jwk(key, use="jwt-svid", kid="jwt-1"), hint=60)) as server:
        attestor = served_attestor(server.url, clock, http)

        def attest(**claims: Any) -> None:
            attestor.attest(Evidence(EvidenceKind.JWT_SVID, svid(key, clock, **claims)), now=clock.now())

        with without_waiting(), pytest.raises(WouldWait):
            attest(jti="a")
        assert server.requests == 0
        attest(jti="b")  # may wait
        with without_waiting():  # loaded and fresh: answered from memory
            attest(jti="c")
        clock.advance(dt.timedelta(seconds=11))
        with without_waiting(), pytest.raises(WouldWait):  # an unknown kid would refetch
            attest(kid="jwt-9")
        clock.advance(dt.timedelta(seconds=61))
        with without_waiting(), pytest.raises(WouldWait):  # due again
            attest(jti="d")
        assert server.requests == 1
        attest(jti="e")
        assert server.requests == 2


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"algorithms": ["HS256"]}, "algorithms"),
        ({"algorithms": ["none"]}, "algorithms"),
        ({"audience": ""}, "audience"),
    ],
    ids=["hmac", "none", "no audience"],
)
def test_the_attestor_takes_only_jwt_svid_algorithms_and_an_audience(
    tmp_path: Path, clock: FrozenClock, settings: dict[str, Any], field: str
) -> None:
    chosen: dict[str, Any] = {"audience": AUDIENCE, **settings}
    with pytest.raises(InvalidRequest) as refused:
        JwtSvidAttestor([BundleSource("acme.example", str(tmp_path / "b.json"))], clock=clock, **chosen)
    assert refused.value.errors[0].loc[0] == field
