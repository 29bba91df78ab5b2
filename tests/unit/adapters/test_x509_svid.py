"""X.509-SVID evidence (ADR 0017): a JWT assertion signed with the SVID's key, the chain in `x5c`.

Real certificates and real signatures throughout: each case breaks one rule of the SPIFFE X.509-SVID
spec, of RFC 5280 path validation or of the assertion, and must be refused with its own reason.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.unit.core.attestation.minting import (
    SpiffeCa,
    _usage,
    ec_key,
    public_jwk,
    segment,
    sign,
    write_json,
    x5c,
    x509_assertion,
)

from remit.adapters import x509_svid
from remit.adapters.spiffe import BundleSource, JwtSvidAttestor, parse_bundle
from remit.adapters.x509_svid import MAX_CHAIN, X509SvidAttestor
from remit.core.attestation.models import Evidence, EvidenceKind
from remit.errors import AttestationFailed, InvalidRequest
from remit.sdk.x509_svid import x509_svid_assertion
from remit.testing import FrozenClock

AUDIENCE = "https://remit.example"
SPIFFE_ID = "spiffe://acme.example/agents/invoice-bot"


class World:
    """One trust domain (acme.example) with its CA in a bundle file, and an attestor reading that file."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FrozenClock()
        self.ca = SpiffeCa("acme.example", now=self.clock.now())
        self.path = tmp_path / "acme.json"
        self.publish(self.ca)
        jwt_svids = JwtSvidAttestor([BundleSource("acme.example", str(self.path))], audience=AUDIENCE, clock=self.clock)
        self.bundles = jwt_svids.bundles
        self.attestor = X509SvidAttestor(self.bundles, audience=AUDIENCE)

    def publish(self, *authorities: SpiffeCa, extra: list[dict[str, Any]] | None = None) -> None:
        write_json(self.path, {"keys": [ca.bundle_entry() for ca in authorities] + (extra or [])})

    @property
    def now(self) -> int:
        return int(self.clock.now().timestamp())

    def assertion(self, spiffe_id: str = SPIFFE_ID, **claims: Any) -> str:
        leaf, key = self.ca.issue(spiffe_id)
        return x509_assertion([leaf], key, audience=AUDIENCE, now=self.now, **claims)

    def attest(self, token: str) -> Any:
        return self.attestor.attest(Evidence(EvidenceKind.X509_SVID, token), now=self.clock.now())

    def refused(self, token: str) -> str:
        with pytest.raises(AttestationFailed) as refused:
            self.attest(token)
        return str(refused.value.details["reason"])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_a_valid_assertion_yields_the_workload_identity(world: World) -> None:
    identity = world.attest(world.assertion(jti="once-1"))
    assert identity.kind is EvidenceKind.X509_SVID
    assert identity.binding_key == SPIFFE_ID  # the same binding as the agent's JWT-SVIDs
    assert identity.issuer == "acme.example"
    assert identity.jti == "once-1"
    use = identity.single_use
    assert use is not None
    assert use.namespace == "evidence:x509_svid:acme.example"


def test_an_rsa_svid_signs_with_an_rsa_algorithm(world: World) -> None:
    leaf, key = world.ca.issue(SPIFFE_ID, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    for alg in ("RS256", "PS256"):
        token = x509_assertion([leaf], key, audience=AUDIENCE, now=world.now, alg=alg)
        assert world.attest(token).binding_key == SPIFFE_ID
    rs256 = x509_assertion([leaf], key, audience=AUDIENCE, now=world.now, alg="RS256")
    as_es256 = _resigned(rs256, lambda h, _c: h.update(alg="ES256"), ec_key())
    assert world.refused(as_es256) == "alg_key_mismatch"


def test_a_chain_through_an_intermediate_needs_the_intermediate(world: World) -> None:
    intermediate = SpiffeCa("acme.example", now=world.clock.now(), issuer=world.ca)
    leaf, key = intermediate.issue(SPIFFE_ID)
    whole = x509_assertion(intermediate.chain(leaf), key, audience=AUDIENCE, now=world.now)
    assert world.attest(whole).binding_key == SPIFFE_ID
    assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"


def test_the_bundle_is_fetched_again_when_the_chain_names_a_new_authority(world: World) -> None:
    rotated = SpiffeCa("acme.example", now=world.clock.now())
    leaf, key = rotated.issue(SPIFFE_ID)
    world.attest(world.assertion())  # the first bundle is loaded and cached
    world.publish(world.ca, rotated)
    world.clock.advance(dt.timedelta(seconds=11))  # past the refetch rate limit, well before the refresh
    assert world.attest(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)).binding_key == SPIFFE_ID


def _resigned(token: str, mutate: Callable[[dict[str, Any], dict[str, Any]], None], key: Any) -> str:
    """Decode a token, let `mutate` change header and claims, sign again with `key` (a joserfc key)."""
    head, body, _ = token.split(".")
    header = _json(head)
    claims = _json(body)
    mutate(header, claims)
    return sign(header, claims, key)


def _json(segment_: str) -> dict[str, Any]:
    import json  # noqa: PLC0415 - local to the helper

    return dict(json.loads(base64.urlsafe_b64decode(segment_ + "=" * (-len(segment_) % 4))))


HEADER_CASES: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], None], str]] = [
    ("kid beside x5c", lambda h, _c: h.update(kid="k1"), "forbidden_header"),
    ("jwk beside x5c", lambda h, _c: h.update(jwk={"kty": "EC"}), "forbidden_header"),
    ("x5u", lambda h, _c: h.update(x5u="https://evil.example/chain.pem"), "forbidden_header"),
    ("typ dpop+jwt", lambda h, _c: h.update(typ="dpop+jwt"), "wrong_typ"),
    ("typ a list", lambda h, _c: h.update(typ=["JWT"]), "wrong_typ"),
    ("no x5c", lambda h, _c: h.pop("x5c"), "missing_x5c"),
    ("x5c a string", lambda h, _c: h.update(x5c=h["x5c"][0]), "bad_x5c"),
    ("x5c empty", lambda h, _c: h.update(x5c=[]), "bad_x5c"),
    ("x5c not base64", lambda h, _c: h.update(x5c=["***"]), "bad_x5c"),
    ("x5c not DER", lambda h, _c: h.update(x5c=[base64.b64encode(b"not a certificate").decode()]), "bad_x5c"),
    ("x5c too long", lambda h, _c: h.update(x5c=h["x5c"] * (MAX_CHAIN + 1)), "chain_too_long"),
    ("another sub", lambda _h, c: c.update(sub="spiffe://acme.example/agents/other"), "subject_mismatch"),
    ("another iss", lambda _h, c: c.update(iss="spiffe://acme.example/agents/other"), "subject_mismatch"),
    ("no iss", lambda _h, c: c.pop("iss"), "subject_mismatch"),
    ("wrong aud", lambda _h, c: c.update(aud="https://elsewhere.example"), "wrong_aud"),
    ("two audiences", lambda _h, c: c.update(aud=[AUDIENCE, "https://elsewhere.example"]), "wrong_aud"),
    ("no aud", lambda _h, c: c.pop("aud"), "missing_aud"),
    ("no iat", lambda _h, c: c.pop("iat"), "missing_claim"),
    ("no exp", lambda _h, c: c.pop("exp"), "missing_claim"),
    ("expired", lambda _h, c: c.update(exp=c["iat"] - 1), "expired"),
    ("nbf ahead", lambda _h, c: c.update(nbf=c["iat"] + 300), "not_yet_valid"),
    ("iat ahead", lambda _h, c: c.update(iat=c["iat"] + 300, exp=c["iat"] + 360), "iat_in_future"),
    ("outlives the SVID", lambda _h, c: c.update(exp=c["iat"] + 2 * 3600), "outlives_svid"),
    ("no jti", lambda _h, c: c.pop("jti"), "missing_jti"),
    ("empty jti", lambda _h, c: c.update(jti=""), "missing_jti"),
]


@pytest.mark.parametrize(("name", "mutate", "reason"), HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_a_broken_assertion_is_refused_with_its_reason(
    world: World, name: str, mutate: Callable[[dict[str, Any], dict[str, Any]], None], reason: str
) -> None:
    del name
    leaf, key = world.ca.issue(SPIFFE_ID)
    from joserfc.jwk import ECKey  # noqa: PLC0415 - the signing key as joserfc's

    token = _resigned(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now), mutate, ECKey.import_key(key))
    assert world.refused(token) == reason


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_unsigned_and_hmac_assertions_are_refused(world: World, alg: str) -> None:
    """`none`, and HMAC keyed with the leaf's public certificate (alg confusion), never get as far as a key."""
    token = world.assertion()
    head, body, _ = token.split(".")
    header = {**_json(head), "alg": alg}
    if alg == "none":
        forged = f"{segment(header)}.{body}.{segment(b'x')}"
    else:
        signing_input = f"{segment(header)}.{body}"
        mac = hmac.new(base64.b64decode(header["x5c"][0]), signing_input.encode(), hashlib.sha256).digest()
        forged = f"{signing_input}.{segment(mac)}"
    assert world.refused(forged) == "alg_not_allowed"


def test_a_signature_by_another_key_is_refused(world: World) -> None:
    leaf, _ = world.ca.issue(SPIFFE_ID)
    impostor = ec.generate_private_key(ec.SECP256R1())
    assert world.refused(x509_assertion([leaf], impostor, audience=AUDIENCE, now=world.now)) == "bad_signature"


def test_a_tampered_payload_is_refused(world: World) -> None:
    head, body, signature = world.assertion().split(".")
    claims = _json(body)
    claims["jti"] = "tampered"
    assert world.refused(f"{head}.{segment(claims)}.{signature}") == "bad_signature"


LEAF_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("two URI SANs", {"uris": [SPIFFE_ID, "spiffe://acme.example/agents/other"]}, "bad_svid"),
    ("no URI SAN", {"uris": []}, "bad_svid"),
    ("not a SPIFFE URI", {"uris": ["https://acme.example/agents/invoice-bot"]}, "bad_svid"),
    ("trust domain ID, no path", {"uris": ["spiffe://acme.example"]}, "bad_svid"),
    ("a CA certificate", {"ca": True}, "svid_is_ca"),
    ("no key usage", {"key_usage": False}, "bad_key_usage"),
    ("key usage without digitalSignature", {"usage": _usage(signature=False, cert_sign=False)}, "bad_key_usage"),
    ("key usage with keyCertSign", {"usage": _usage(signature=True, cert_sign=True)}, "bad_key_usage"),
]


@pytest.mark.parametrize(("name", "knobs", "reason"), LEAF_CASES, ids=[c[0] for c in LEAF_CASES])
def test_a_leaf_breaking_the_svid_rules_is_refused(world: World, name: str, knobs: dict[str, Any], reason: str) -> None:
    del name
    leaf, key = world.ca.issue(SPIFFE_ID, **knobs)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    subject = uris[0] if uris else SPIFFE_ID
    token = x509_assertion([leaf], key, audience=AUDIENCE, now=world.now, iss=subject, sub=subject)
    assert world.refused(token) == reason


def test_an_expired_or_not_yet_valid_leaf_is_refused(world: World) -> None:
    past = world.clock.now() - dt.timedelta(hours=3)
    leaf, key = world.ca.issue(SPIFFE_ID, not_before=past, lifetime=dt.timedelta(hours=1))
    # An unexpired assertion from an expired leaf always ends after the leaf's notAfter.
    token = x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)
    assert world.refused(token) == "outlives_svid"
    future = world.clock.now() + dt.timedelta(minutes=10)
    leaf, key = world.ca.issue(SPIFFE_ID, not_before=future)
    assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"


def test_another_trust_domains_ca_cannot_vouch_for_this_one(world: World, tmp_path: Path) -> None:
    """A CA of other.example (trusted for other.example) issuing an acme.example ID is refused."""
    other = SpiffeCa("other.example", now=world.clock.now())
    other_path = write_json(tmp_path / "other.json", {"keys": [other.bundle_entry()]})
    both = JwtSvidAttestor(
        [BundleSource("acme.example", str(world.path)), BundleSource("other.example", str(other_path))],
        audience=AUDIENCE,
        clock=world.clock,
    )
    world.attestor = X509SvidAttestor(both.bundles, audience=AUDIENCE)
    leaf, key = other.issue(SPIFFE_ID)
    assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"
    leaf, key = other.issue("spiffe://other.example/agents/bot")
    assert world.attest(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)).issuer == "other.example"


def test_a_forged_ca_with_the_real_ca_name_fails_path_validation_in_the_deferred_check(world: World) -> None:
    """Same subject name as the trusted CA, another key: the cheap checks pass, the signature check refuses it."""
    forger = SpiffeCa("acme.example", now=world.clock.now())
    forger.name = world.ca.name  # the leaf names the trusted CA as its issuer, but the forger signs it
    leaf, key = forger.issue(SPIFFE_ID)
    token = x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)
    identity, check = world.attestor.attest_deferred(Evidence(EvidenceKind.X509_SVID, token), now=world.clock.now())
    assert identity.binding_key == SPIFFE_ID  # a claim until the check passes
    with pytest.raises(AttestationFailed) as refused:
        check()
    assert refused.value.details["reason"] == "untrusted_chain"


def test_a_self_signed_leaf_is_refused(world: World) -> None:
    stranger = SpiffeCa("acme.example", now=world.clock.now())
    leaf, key = stranger.issue(SPIFFE_ID)
    assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"


def test_unknown_trust_domain_revoked_bundle_and_no_x509_authority(world: World) -> None:
    stranger = SpiffeCa("stranger.example", now=world.clock.now())
    leaf, key = stranger.issue("spiffe://stranger.example/bot")
    assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "unknown_trust_domain"
    token = world.assertion()
    world.publish(extra=[public_jwk(ec_key(), use="jwt-svid", kid="jwt-only")])
    assert world.refused(token) == "no_x509_authorities"
    world.publish()
    world.clock.advance(dt.timedelta(seconds=11))
    assert world.refused(world.assertion()) == "bundle_revoked"


def test_bundle_parsing_keeps_x509_authorities_with_exactly_one_certificate(world: World) -> None:
    entry = world.ca.bundle_entry()
    parsed = parse_bundle(
        "acme.example",
        {
            "keys": [
                entry,
                {**entry, "x5c": entry["x5c"] * 2},  # two certificates: not an authority entry
                {**entry, "x5c": ["%%%"]},  # not base64
                {**entry, "x5c": "not-a-list"},
            ]
        },
    )
    assert [c.subject for c in parsed.x509_authorities] == [world.ca.certificate.subject]
    assert parsed.jwt_authorities == {}


def test_the_attestor_takes_only_jwt_svid_algorithms_and_an_audience(world: World) -> None:
    bundles = JwtSvidAttestor([BundleSource("acme.example", str(world.path))], audience=AUDIENCE, clock=world.clock)
    with pytest.raises(InvalidRequest):
        X509SvidAttestor(bundles.bundles, audience=AUDIENCE, algorithms=["HS256"])
    with pytest.raises(InvalidRequest):
        X509SvidAttestor(bundles.bundles, audience="")
    assert x5c([world.ca.certificate])  # the helper encodes standard base64 DER


def test_a_chain_that_also_carries_the_root_is_accepted(world: World) -> None:
    """Some tools send the root too: it names itself as issuer, and path validation still ends at the bundle's."""
    leaf, key = world.ca.issue(SPIFFE_ID)
    token = x509_assertion([leaf, world.ca.certificate], key, audience=AUDIENCE, now=world.now)
    assert world.attest(token).binding_key == SPIFFE_ID


def test_a_leaf_without_an_authority_key_identifier_is_accepted(world: World) -> None:
    """RFC 5280 asks CAs for one, the SPIFFE X.509-SVID spec does not: its absence alone refuses nothing."""
    leaf, key = world.ca.issue(SPIFFE_ID, authority_key_id=False)
    assert world.attest(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)).binding_key == SPIFFE_ID


def test_an_extended_key_usage_must_allow_client_authentication(world: World) -> None:
    """SPIRE's SVIDs carry serverAuth and clientAuth; a leaf limited to other purposes is not a client's."""
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    leaf, key = world.ca.issue(SPIFFE_ID, extended_usages=both)
    assert world.attest(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)).binding_key == SPIFFE_ID
    for only in (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CODE_SIGNING):
        leaf, key = world.ca.issue(SPIFFE_ID, extended_usages=[only])
        assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"


def test_a_short_rsa_key_and_an_ed25519_key_are_refused(world: World) -> None:
    """Keys below 2048 RSA bits are weak; Ed25519 has no algorithm in the JWT-SVID list an assertion may use."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - the weak key under test
    leaf, key = world.ca.issue(SPIFFE_ID, key=weak)
    # Signed through the SDK (cryptography directly): joserfc itself warns against signing with such a key.
    token = x509_svid_assertion([leaf], key, audience=AUDIENCE, now=world.clock.now())
    assert world.refused(token) == "weak_key"
    leaf, _ = world.ca.issue(SPIFFE_ID, key=ed25519.Ed25519PrivateKey.generate())
    # An ES256 assertion naming an Ed25519 leaf.
    forged = _resigned(world.assertion(), lambda h, _c: h.update(x5c=x5c([leaf])), ec_key())
    assert world.refused(forged) == "alg_key_mismatch"


# ------------------------------------------------------------ chains kept after path validation


def test_a_chain_is_validated_once_for_many_assertions(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    validations = []
    validate = x509_svid._validate_path

    def counted(*args: Any) -> Any:
        validations.append(args)
        return validate(*args)

    monkeypatch.setattr(x509_svid, "_validate_path", counted)
    intermediate = SpiffeCa("acme.example", now=world.clock.now(), issuer=world.ca)
    leaf, key = intermediate.issue(SPIFFE_ID)
    for _ in range(3):
        world.attest(x509_assertion(intermediate.chain(leaf), key, audience=AUDIENCE, now=world.now))
    assert len(validations) == 1
    assert len(world.attestor.validated_chains) == 1


def test_a_kept_chain_does_not_spare_the_assertion_its_signature(world: World) -> None:
    leaf, key = world.ca.issue(SPIFFE_ID)
    world.attest(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now))
    impostor = ec.generate_private_key(ec.SECP256R1())
    assert world.refused(x509_assertion([leaf], impostor, audience=AUDIENCE, now=world.now)) == "bad_signature"
    head, body, signature = x509_assertion([leaf], key, audience=AUDIENCE, now=world.now).split(".")
    assert world.refused(f"{head}.{segment({**_json(body), 'jti': 'tampered'})}.{signature}") == "bad_signature"


def test_a_kept_chain_is_refused_once_a_certificate_on_its_path_has_expired(world: World) -> None:
    """The intermediate ends before the leaf: after it, the same chain no longer validates, kept or not."""
    intermediate = SpiffeCa("acme.example", now=world.clock.now(), issuer=world.ca, lifetime=dt.timedelta(minutes=10))
    leaf, key = intermediate.issue(SPIFFE_ID)  # valid for the next 55 minutes
    chain = intermediate.chain(leaf)
    assert world.attest(x509_assertion(chain, key, audience=AUDIENCE, now=world.now)).binding_key == SPIFFE_ID
    # Attested later without moving the bundle's clock: the very same authorities, so only time differs.
    later = world.clock.now() + dt.timedelta(minutes=20)
    token = x509_assertion(chain, key, audience=AUDIENCE, now=int(later.timestamp()))
    with pytest.raises(AttestationFailed) as refused:
        world.attestor.attest(Evidence(EvidenceKind.X509_SVID, token), now=later)
    assert refused.value.details["reason"] == "untrusted_chain"


def test_a_kept_chain_is_validated_again_when_the_bundle_changes(world: World) -> None:
    """The trust domain replaces its CA by a new key under the same name: chains of the old key stop passing."""
    leaf, key = world.ca.issue(SPIFFE_ID)
    world.attest(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now))
    successor = SpiffeCa("acme.example", now=world.clock.now(), name=world.ca.name)
    world.publish(successor)
    world.clock.advance(dt.timedelta(minutes=6))  # past the bundle's refresh (5 minutes)
    assert world.refused(x509_assertion([leaf], key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"
    renewed, renewed_key = successor.issue(SPIFFE_ID)
    assert world.attest(x509_assertion([renewed], renewed_key, audience=AUDIENCE, now=world.now))


def test_only_chains_that_validated_are_kept_and_no_more_than_asked(world: World) -> None:
    world.attestor = X509SvidAttestor(world.bundles, audience=AUDIENCE, validated_chains=2)
    forger = SpiffeCa("acme.example", now=world.clock.now(), name=world.ca.name)
    forged, forged_key = forger.issue(SPIFFE_ID)
    assert world.refused(x509_assertion([forged], forged_key, audience=AUDIENCE, now=world.now)) == "untrusted_chain"
    assert len(world.attestor.validated_chains) == 0
    for _ in range(3):
        world.attest(world.assertion())
    assert len(world.attestor.validated_chains) == 2
    world.attestor = X509SvidAttestor(world.bundles, audience=AUDIENCE, validated_chains=0)
    world.attest(world.assertion())
    assert len(world.attestor.validated_chains) == 0
    with pytest.raises(InvalidRequest):
        X509SvidAttestor(world.bundles, audience=AUDIENCE, validated_chains=-1)
