"""Attacks on workload attestation (C35, C01): forged, foreign, replayed, stale and mis-addressed evidence."""

from __future__ import annotations

import base64
import datetime as dt
import json

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from joserfc.jwk import OctKey
from tests.unit.core.attestation.minting import Key, b64, ec_key, public_jwk, segment, sign, write_json

from remit.adapters.jose import MemoryReplayGuard
from remit.adapters.oidc import OidcAttestor, OidcIssuer
from remit.adapters.spiffe import BundleSource, JwtSvidAttestor
from remit.core.attestation import AttestationService, Evidence, EvidenceKind
from remit.errors import AttestationFailed
from remit.testing import FrozenClock

AUDIENCE = "https://remit.example"
OIDC_ISSUER = "https://ci.acme.example"
SPIFFE_ID = "spiffe://acme.example/agents/invoice-bot"


@dataclass
class World:
    clock: FrozenClock
    acme: Key
    other: Key
    oidc: Key
    service: AttestationService
    bundle_path: Path

    def svid(
        self, *, key: Key | None = None, kid: str = "acme-1", header: dict[str, Any] | None = None, **claims: Any
    ) -> Evidence:
        now = int(self.clock.now().timestamp())
        body: dict[str, Any] = {"sub": SPIFFE_ID, "aud": AUDIENCE, "iat": now, "exp": now + 300, "jti": f"svid-{now}"}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": "ES256", "kid": kid, "typ": "JWT", **(header or {})}
        return Evidence(EvidenceKind.JWT_SVID, sign(head, body, key or self.acme))

    def oidc_token(self, *, key: Key | None = None, **claims: Any) -> Evidence:
        now = int(self.clock.now().timestamp())
        body: dict[str, Any] = {
            "iss": OIDC_ISSUER,
            "sub": "repo:acme/billing:ref:refs/heads/main",
            "aud": "remit",
            "iat": now,
            "exp": now + 300,
            "jti": f"oidc-{now}",
            "repository": "acme/billing",
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return Evidence(EvidenceKind.OIDC, sign({"alg": "ES256", "kid": "ci-1", "typ": "JWT"}, body, key or self.oidc))


@pytest.fixture
def world(tmp_path: Path, clock: FrozenClock) -> World:
    acme, other, oidc = ec_key(), ec_key(), ec_key()
    bundle = {
        "keys": [
            public_jwk(acme, use="jwt-svid", kid="acme-1"),
            public_jwk(acme, use="x509-svid", kid="acme-x509"),
        ],
        "spiffe_refresh_hint": 60,
    }
    bundle_path = write_json(tmp_path / "acme.json", bundle)
    other_path = write_json(tmp_path / "other.json", {"keys": [public_jwk(other, use="jwt-svid", kid="other-1")]})
    jwks = write_json(tmp_path / "ci.json", {"keys": [public_jwk(oidc, kid="ci-1")]})
    svids = JwtSvidAttestor(
        [BundleSource("acme.example", str(bundle_path)), BundleSource("other.example", str(other_path))],
        audience=AUDIENCE,
        clock=clock,
    )
    oidc_attestor = OidcAttestor(
        [
            OidcIssuer(
                issuer=OIDC_ISSUER,
                jwks=str(jwks),
                audience="remit",
                algorithms=("ES256",),
                bound_claims={"repository": "acme/billing"},
            )
        ],
        clock=clock,
    )
    service = AttestationService([svids, oidc_attestor], replay_guard=MemoryReplayGuard(clock=clock), clock=clock)
    return World(clock=clock, acme=acme, other=other, oidc=oidc, service=service, bundle_path=bundle_path)


def test_valid_svid_and_oidc_token_pass(world: World) -> None:
    """The baseline evidence of each kind is accepted, so each refusal below comes from its one defect."""
    assert world.service.attest(world.svid()).binding_key == SPIFFE_ID
    assert world.service.attest(world.oidc_token()).binding_key.startswith(f"oidc:{OIDC_ISSUER}#repo:")


def _alg_none(w: World) -> Evidence:
    now = int(w.clock.now().timestamp())
    body = {"sub": SPIFFE_ID, "aud": AUDIENCE, "exp": now + 60}
    return Evidence(EvidenceKind.JWT_SVID, f"{segment({'alg': 'none', 'kid': 'acme-1'})}.{segment(body)}.{b64(b'x')}")


def _hs256_with_bundle_key(w: World) -> Evidence:
    now = int(w.clock.now().timestamp())
    secret = json.dumps(public_jwk(w.acme, use="jwt-svid", kid="acme-1")).encode()
    token = sign(
        {"alg": "HS256", "kid": "acme-1"},
        {"sub": SPIFFE_ID, "aud": AUDIENCE, "exp": now + 60},
        OctKey.import_key(secret),
    )
    return Evidence(EvidenceKind.JWT_SVID, token)


ATTACKS: dict[str, tuple[Callable[[World], Evidence], str]] = {
    "SVID for another trust domain signed by our key": (
        lambda w: w.svid(sub="spiffe://other.example/agents/invoice-bot"),
        "unknown_kid",
    ),
    "SVID claiming our trust domain signed by the other domain's key": (
        lambda w: w.svid(key=w.other, kid="other-1"),
        "unknown_kid",
    ),
    "SVID from an unconfigured trust domain": (
        lambda w: w.svid(sub="spiffe://evil.example/agents/invoice-bot"),
        "unknown_trust_domain",
    ),
    "SVID for another audience": (lambda w: w.svid(aud="https://other-service.example"), "wrong_aud"),
    "SVID for several audiences": (lambda w: w.svid(aud=[AUDIENCE, "https://x.example"]), "wrong_aud"),
    "SVID without aud": (lambda w: w.svid(aud=None), "missing_aud"),
    "expired SVID": (lambda w: w.svid(exp=int(w.clock.now().timestamp()) - 1), "expired"),
    "SVID without exp": (lambda w: w.svid(exp=None), "missing_claim"),
    "SVID not yet valid": (lambda w: w.svid(nbf=int(w.clock.now().timestamp()) + 600), "not_yet_valid"),
    "SVID kid of an x509-svid bundle entry": (lambda w: w.svid(kid="acme-x509"), "kid_wrong_use"),
    "SVID with an unknown kid": (lambda w: w.svid(kid="nope"), "unknown_kid"),
    "SVID signed by a stranger": (lambda w: w.svid(key=ec_key()), "bad_signature"),
    "SVID with alg none": (_alg_none, "alg_not_allowed"),
    "SVID HS256 keyed with the bundle key": (_hs256_with_bundle_key, "alg_not_allowed"),
    "SVID with a jku header": (lambda w: w.svid(header={"jku": "https://evil.example/keys"}), "forbidden_header"),
    "SVID with typ at+jwt": (lambda w: w.svid(header={"typ": "at+jwt"}), "wrong_typ"),
    "SVID with typ a list": (lambda w: w.svid(header={"typ": ["JWT"]}), "wrong_typ"),
    "SVID whose sub is not a SPIFFE ID": (lambda w: w.svid(sub="https://acme.example/bot"), "bad_spiffe_id"),
    "SVID whose sub is a trust domain only": (lambda w: w.svid(sub="spiffe://acme.example"), "bad_spiffe_id"),
    "SVID living 1 day": (lambda w: w.svid(exp=int(w.clock.now().timestamp()) + 86_400), "lifetime_too_long"),
    "OIDC token from an unknown issuer": (lambda w: w.oidc_token(iss="https://evil.example"), "unknown_issuer"),
    "OIDC token without issuer": (lambda w: w.oidc_token(iss=None), "unknown_issuer"),
    "OIDC token for another audience": (lambda w: w.oidc_token(aud="vault"), "wrong_aud"),
    "OIDC token from another repository": (lambda w: w.oidc_token(repository="acme/other"), "bound_claims_mismatch"),
    "OIDC token missing the bound claim": (lambda w: w.oidc_token(repository=None), "bound_claims_mismatch"),
    "expired OIDC token": (lambda w: w.oidc_token(exp=int(w.clock.now().timestamp())), "expired"),
    "OIDC token without sub": (lambda w: w.oidc_token(sub=None), "bad_subject"),
    "OIDC evidence that is really an SVID": (lambda w: Evidence(EvidenceKind.OIDC, w.svid().token), "unknown_issuer"),
}


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_every_attack_is_refused_with_its_reason(case: str, world: World) -> None:
    """Each forged or misdirected piece of evidence is attestation_failed with the precise internal reason."""
    build, reason = ATTACKS[case]
    with pytest.raises(AttestationFailed) as caught:
        world.service.attest(build(world))
    assert caught.value.details == {"reason": reason}
    assert caught.value.message == "Attestation failed"


@pytest.mark.parametrize("case", sorted(ATTACKS))
def test_every_attack_is_refused_through_the_deferred_door_too(case: str, world: World) -> None:
    """`verify_deferred` (ADR 0015) refuses each at once, or hands back a check that refuses it, same reason."""
    build, reason = ATTACKS[case]
    evidence = build(world)
    if reason != "bad_signature":
        with pytest.raises(AttestationFailed) as caught:
            world.service.verify_deferred(evidence)
    else:  # only the signature is ever left to the check
        _identity, check = world.service.verify_deferred(evidence)
        assert not check.passed
        with pytest.raises(AttestationFailed) as caught:
            check()
    assert caught.value.details == {"reason": reason}


@pytest.mark.parametrize("kind", ["svid", "oidc"])
def test_a_forgery_left_to_its_check_spends_nothing(world: World, kind: str) -> None:
    """A forged token whose check is left to run (or never run) uses up no `jti`: the real one still attests."""
    forged = world.svid(key=ec_key(), jti="shared") if kind == "svid" else world.oidc_token(key=ec_key(), jti="shared")
    _identity, check = world.service.verify_deferred(forged)
    with pytest.raises(AttestationFailed):
        check()
    real = world.svid(jti="shared") if kind == "svid" else world.oidc_token(jti="shared")
    assert world.service.attest(real).jti == "shared"


@pytest.mark.parametrize("kind", ["svid", "oidc"])
def test_replayed_evidence_is_refused(world: World, kind: str) -> None:
    """The same JWT-SVID or OIDC token (same jti) is accepted once; its replay is refused as replayed."""
    evidence = world.svid() if kind == "svid" else world.oidc_token()
    world.service.attest(evidence)
    world.clock.advance(dt.timedelta(seconds=10))
    with pytest.raises(AttestationFailed) as caught:
        world.service.attest(evidence)
    assert caught.value.details == {"reason": "replayed"}


def test_refused_evidence_does_not_burn_its_jti(world: World) -> None:
    """An SVID refused for its audience leaves its jti unused, so a jti cannot be pre-burned by a forgery."""
    with pytest.raises(AttestationFailed):
        world.service.attest(world.svid(aud="https://elsewhere.example", jti="shared"))
    assert world.service.attest(world.svid(jti="shared")).jti == "shared"


def test_an_empty_bundle_revokes_every_svid_of_the_domain(world: World) -> None:
    """Once the bundle's keys array is empty (all keys revoked), a previously good SVID is refused."""
    evidence = world.svid(jti="before")
    world.bundle_path.write_text(json.dumps({"keys": [], "spiffe_refresh_hint": 60}))
    world.clock.advance(dt.timedelta(seconds=61))
    with pytest.raises(AttestationFailed) as caught:
        world.service.attest(evidence)
    assert caught.value.details == {"reason": "bundle_revoked"}


def test_oversized_and_binary_garbage_evidence_is_refused(world: World) -> None:
    """Evidence far larger than any real token, or not a JWS at all, is refused without parsing it."""
    for token in ("a" * 20_000 + ".b.c", base64.b64encode(bytes(range(256))).decode(), "..", "a.b"):
        for kind in EvidenceKind:
            with pytest.raises(AttestationFailed):
                world.service.attest(Evidence(kind, token))
