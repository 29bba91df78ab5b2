"""Negative token corpus (C35) for our access tokens and DPoP proofs: every case is refused, the good one passes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc.jwk import OctKey
from tests.unit.core.attestation.minting import b64, ec_key, public_jwk, segment, sign

from remit.adapters.jose import (
    AccessTokenSigner,
    AccessTokenVerifier,
    DpopVerifier,
    MemoryReplayGuard,
    access_token_hash,
)
from remit.adapters.keys import KeyRing, jwk_thumbprint
from remit.errors import CredentialExpired, CredentialInvalid
from remit.testing import FrozenClock

ISSUER = "https://remit.example"
AUDIENCE = "tool:payments"


@dataclass
class Context:
    ring: KeyRing
    signer: AccessTokenSigner
    clock: FrozenClock

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now().timestamp())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "sub": "spiffe://acme.example/agents/bot",
            "client_id": "spiffe://acme.example/agents/bot",
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": secrets.token_hex(8),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def good(self, **overrides: Any) -> str:
        return self.signer.sign(self.claims(**overrides))

    def header(self, **overrides: Any) -> dict[str, Any]:
        active = self.ring.active()
        return {"alg": active.algorithm.value, "kid": active.kid, "typ": "at+jwt", **overrides}

    def raw_sign(self, header_segment: str, payload_segment: str) -> str:
        """Sign arbitrary segments with our real active key, so only the tested defect is wrong."""
        signing_input = f"{header_segment}.{payload_segment}"
        private_key = self.ring.active().private_key
        assert isinstance(private_key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _alg_none(c: Context) -> str:
    return f"{segment(c.header(alg='none'))}.{segment(c.claims())}."


def _alg_none_with_signature(c: Context) -> str:
    return f"{segment(c.header(alg='none'))}.{segment(c.claims())}.{b64(b'x')}"


def _hs256_with_our_public_key(c: Context) -> str:
    # Algorithm confusion: the attacker uses our published public JWK (as JSON, and as the PEM) as an HMAC secret.
    public = json.dumps(c.signer.jwks()["keys"][0]).encode()
    return sign(c.header(alg="HS256"), c.claims(), OctKey.import_key(public))


def _hs256_with_our_public_pem(c: Context) -> str:
    pem = (
        c.ring.active()
        .private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return sign(c.header(alg="HS256"), c.claims(), OctKey.import_key(pem.hex()))


def _wrong_typ(c: Context) -> str:
    return c.signer.sign(c.claims(), typ="JWT")


def _dpop_typ(c: Context) -> str:
    return c.signer.sign(c.claims(), typ="dpop+jwt")


def _tampered_payload(c: Context) -> str:
    header, _, signature = c.good().split(".")
    return f"{header}.{segment(c.claims(sub='spiffe://acme.example/agents/admin'))}.{signature}"


def _truncated(c: Context) -> str:
    return c.good()[:-10]


def _two_segments(c: Context) -> str:
    return ".".join(c.good().split(".")[:2])


def _oversized(c: Context) -> str:
    return c.good(padding="x" * 9000)


def _duplicate_claim(c: Context) -> str:
    payload = json.dumps(c.claims())[:-1] + ', "aud": "tool:other"}'
    return c.raw_sign(segment(c.header()), segment(payload))


def _duplicate_header(c: Context) -> str:
    header = json.dumps(c.header())[:-1] + ', "alg": "none"}'
    return c.raw_sign(segment(header), segment(c.claims()))


def _payload_array(c: Context) -> str:
    return c.raw_sign(segment(c.header()), segment("[1, 2, 3]"))


def _payload_string(c: Context) -> str:
    return c.raw_sign(segment(c.header()), segment('"hello"'))


def _crit_header(c: Context) -> str:
    return c.raw_sign(segment(c.header(crit=["exp"])), segment(c.claims()))


def _unknown_kid(c: Context) -> str:
    return c.raw_sign(segment(c.header(kid="not-a-key")), segment(c.claims()))


def _missing_kid(c: Context) -> str:
    header = c.header()
    del header["kid"]
    return c.raw_sign(segment(header), segment(c.claims()))


def _foreign_key_same_kid(c: Context) -> str:
    return sign(c.header(alg="ES256"), c.claims(), ec_key())


def _padded_base64(c: Context) -> str:
    header, payload, signature = c.good().split(".")
    return f"{header}==.{payload}.{signature}"


def _standard_base64(c: Context) -> str:
    header, payload, signature = c.good().split(".")
    return f"{header}.{payload}.{signature.replace('-', '+').replace('_', '/')}+"


def _non_utf8_payload(c: Context) -> str:
    return c.raw_sign(segment(c.header()), b64(b"\xff\xfe{}"))


def _nan_claim(c: Context) -> str:
    return c.raw_sign(segment(c.header()), segment('{"exp": NaN}'))


def _deep_nesting(c: Context) -> str:
    return c.raw_sign(segment(c.header()), segment("[" * 1500 + "]" * 1500))


CORPUS: dict[str, tuple[Callable[[Context], str], str]] = {
    "alg none, empty signature": (_alg_none, "malformed"),
    "alg none, with a signature": (_alg_none_with_signature, "alg_not_allowed"),
    "HS256 keyed with our public JWK": (_hs256_with_our_public_key, "alg_not_allowed"),
    "HS256 keyed with our public PEM": (_hs256_with_our_public_pem, "alg_not_allowed"),
    "wrong typ JWT": (_wrong_typ, "wrong_typ"),
    "wrong typ dpop+jwt": (_dpop_typ, "wrong_typ"),
    "wrong aud": (lambda c: c.good(aud="tool:other"), "wrong_aud"),
    "aud array with a second audience": (lambda c: c.good(aud=[AUDIENCE, "tool:x"]), "wrong_aud"),
    "missing aud": (lambda c: c.good(aud=None), "missing_aud"),
    "unknown iss": (lambda c: c.good(iss="https://evil.example"), "wrong_iss"),
    "unknown kid": (_unknown_kid, "unknown_kid"),
    "missing kid": (_missing_kid, "unknown_kid"),
    "signed by another key under our kid": (_foreign_key_same_kid, "bad_signature"),
    "expired": (lambda c: c.good(exp=int(c.clock.now().timestamp())), "expired"),
    "nbf in the future": (lambda c: c.good(nbf=int(c.clock.now().timestamp()) + 3600), "not_yet_valid"),
    "iat in the future": (lambda c: c.good(iat=int(c.clock.now().timestamp()) + 3600), "iat_in_future"),
    "missing exp": (lambda c: c.raw_sign(segment(c.header()), segment(c.claims(exp=None))), "missing_claim"),
    "exp as a string": (lambda c: c.raw_sign(segment(c.header()), segment(c.claims(exp="9999999999"))), "bad_claim"),
    "exp as a boolean": (lambda c: c.raw_sign(segment(c.header()), segment(c.claims(exp=True))), "bad_claim"),
    "missing jti": (lambda c: c.good(jti=None), "missing_claim"),
    "missing client_id": (lambda c: c.good(client_id=None), "missing_claim"),
    "tampered payload": (_tampered_payload, "bad_signature"),
    "truncated": (_truncated, "bad_signature"),
    "two segments": (_two_segments, "malformed"),
    "oversized": (_oversized, "oversized"),
    "duplicate claim": (_duplicate_claim, "duplicate_claim"),
    "duplicate header member": (_duplicate_header, "duplicate_claim"),
    "payload is an array": (_payload_array, "not_an_object"),
    "payload is a string": (_payload_string, "not_an_object"),
    "crit header": (_crit_header, "unsupported_crit"),
    "padded base64": (_padded_base64, "malformed"),
    "standard base64 alphabet": (_standard_base64, "malformed"),
    "payload not UTF-8": (_non_utf8_payload, "malformed"),
    "NaN claim": (_nan_claim, "malformed"),
    "deeply nested payload": (_deep_nesting, "malformed"),
    "empty": (lambda _c: "", "malformed"),
    "whitespace around": (lambda c: f" {c.good()} ", "malformed"),
}


@pytest.fixture
def context(tmp_path: Path, clock: FrozenClock) -> Context:
    ring = KeyRing.open(tmp_path, secrets.token_bytes(32), now=clock.now())
    return Context(ring=ring, signer=AccessTokenSigner(ring), clock=clock)


@pytest.fixture
def verifier(context: Context) -> AccessTokenVerifier:
    return AccessTokenVerifier(context.ring, issuer=ISSUER, clock=context.clock)


def test_the_positive_case_passes(context: Context, verifier: AccessTokenVerifier) -> None:
    """The well-formed token the corpus mutates verifies, so each refusal below is caused by its one defect."""
    assert verifier.verify(context.good(), audience=AUDIENCE).subject == "spiffe://acme.example/agents/bot"


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_every_corpus_token_is_refused_with_its_precise_reason(
    case: str, context: Context, verifier: AccessTokenVerifier
) -> None:
    """Each defective token is refused as credential_invalid/expired; details carry the exact internal reason."""
    build, reason = CORPUS[case]
    token = build(context)
    with pytest.raises((CredentialInvalid, CredentialExpired)) as caught:
        verifier.verify(token, audience=AUDIENCE)
    assert caught.value.details == {"reason": reason}
    assert caught.value.message in {"Credential invalid", "Credential expired"}
    assert not token or token[:20] not in caught.value.message


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_corpus_tokens_are_refused_again_when_a_good_one_is_cached(
    case: str, context: Context, verifier: AccessTokenVerifier
) -> None:
    """A warm verification cache changes nothing: the defective token is still refused."""
    verifier.verify(context.good(), audience=AUDIENCE)
    build, _ = CORPUS[case]
    token = build(context)
    for _ in range(2):
        with pytest.raises((CredentialInvalid, CredentialExpired)):
            verifier.verify(token, audience=AUDIENCE)


# ---------------------------------------------------------------- DPoP refusals


@dataclass
class Dpop:
    clock: FrozenClock
    verifier: DpopVerifier
    token: str
    key: Any
    jkt: str

    def proof(self, *, key: Any = None, header: dict[str, Any] | None = None, **claims: Any) -> str:
        body: dict[str, Any] = {
            "jti": secrets.token_hex(8),
            "htm": "POST",
            "htu": "https://tools.example/pay",
            "iat": int(self.clock.now().timestamp()),
            "ath": access_token_hash(self.token),
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        signing_key = key or self.key
        head = {"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk(signing_key), **(header or {})}
        return sign(head, body, signing_key)

    def verify(self, proof: str | None, **overrides: Any) -> None:
        arguments: dict[str, Any] = {
            "method": "POST",
            "url": "https://tools.example/pay",
            "access_token": self.token,
            "expected_jkt": self.jkt,
        }
        arguments.update(overrides)
        self.verifier.verify(proof, **arguments)


@pytest.fixture
def dpop(clock: FrozenClock) -> Dpop:
    key = ec_key()
    verifier = DpopVerifier(clock=clock, replay_guard=MemoryReplayGuard(clock=clock))
    return Dpop(clock=clock, verifier=verifier, token="the.access.token", key=key, jkt=jwk_thumbprint(public_jwk(key)))


def test_a_good_dpop_proof_passes(dpop: Dpop) -> None:
    """The baseline proof verifies, so each refusal below is caused by its one defect."""
    dpop.verify(dpop.proof())


def _private_jwk_proof(d: Dpop) -> tuple[str, dict[str, Any]]:
    return d.proof(header={"jwk": d.key.as_dict(private=True)}), {}


DPOP_CASES: dict[str, tuple[Callable[[Dpop], tuple[str | None, dict[str, Any]]], str]] = {
    "missing proof": (lambda _d: (None, {}), "dpop_missing"),
    "wrong htm": (lambda d: (d.proof(htm="GET"), {}), "dpop_wrong_htm"),
    "wrong htu": (lambda d: (d.proof(htu="https://tools.example/refund"), {}), "dpop_wrong_htu"),
    "htu on another host": (lambda d: (d.proof(htu="https://evil.example/pay"), {}), "dpop_wrong_htu"),
    "wrong ath": (lambda d: (d.proof(ath=access_token_hash("another.token")), {}), "dpop_wrong_ath"),
    "missing ath": (lambda d: (d.proof(ath=None), {}), "dpop_missing_ath"),
    "other key than cnf.jkt": (lambda d: (d.proof(key=ec_key()), {}), "dpop_key_mismatch"),
    "private key in header": (_private_jwk_proof, "dpop_private_jwk"),
    "missing jwk": (lambda d: (d.proof(header={"jwk": None}), {}), "dpop_missing_jwk"),
    "wrong typ": (lambda d: (d.proof(header={"typ": "jwt"}), {}), "dpop_wrong_typ"),
    "stale iat": (lambda d: (d.proof(iat=int(d.clock.now().timestamp()) - 3600), {}), "dpop_stale"),
    "future iat": (lambda d: (d.proof(iat=int(d.clock.now().timestamp()) + 3600), {}), "dpop_stale"),
    "missing jti": (lambda d: (d.proof(jti=None), {}), "dpop_bad_jti"),
    "signature by another key": (
        lambda d: (d.proof(key=ec_key(), header={"jwk": public_jwk(d.key)}), {}),
        "dpop_bad_signature",
    ),
}


@pytest.mark.parametrize("case", sorted(DPOP_CASES))
def test_every_bad_dpop_proof_is_refused(case: str, dpop: Dpop) -> None:
    """DPoP refusals (RFC 9449 §4.3): each defect is credential_invalid with its dpop_* reason."""
    build, reason = DPOP_CASES[case]
    proof, overrides = build(dpop)
    with pytest.raises(CredentialInvalid) as caught:
        dpop.verify(proof, **overrides)
    assert caught.value.details == {"reason": reason}


def test_dpop_alg_none_and_hmac_are_refused(dpop: Dpop) -> None:
    """A proof claiming alg none or HS256 is refused before any key is used."""
    body = {"jti": "x", "htm": "POST", "htu": "https://tools.example/pay", "iat": int(dpop.clock.now().timestamp())}
    header = {"typ": "dpop+jwt", "jwk": public_jwk(dpop.key)}
    unsigned = f"{segment({**header, 'alg': 'none'})}.{segment(body)}.{b64(b'-')}"
    hmac = sign({**header, "alg": "HS256"}, body, OctKey.import_key(base64.b64encode(b"k" * 32)))
    for proof in (unsigned, hmac):
        with pytest.raises(CredentialInvalid) as caught:
            dpop.verify(proof)
        assert caught.value.details == {"reason": "dpop_alg_not_allowed"}


def test_a_replayed_dpop_proof_is_refused(dpop: Dpop) -> None:
    """The same proof jti is accepted once; the replay is dpop_replayed."""
    proof = dpop.proof()
    dpop.verify(proof)
    with pytest.raises(CredentialInvalid) as caught:
        dpop.verify(proof)
    assert caught.value.details == {"reason": "dpop_replayed"}
    dpop.clock.advance(dt.timedelta(seconds=1))
    with pytest.raises(CredentialInvalid):
        dpop.verify(proof)
