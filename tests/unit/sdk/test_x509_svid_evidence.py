"""The SDK's X.509-SVID evidence: every call a fresh assertion the server's attestor accepts, and clear errors."""

from __future__ import annotations

import base64
import datetime as dt
import json

from pathlib import Path

import pytest

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from tests.unit.core.attestation.minting import SpiffeCa, write_json

from remit.adapters.spiffe import BundleSource, JwtSvidAttestor
from remit.adapters.x509_svid import X509SvidAttestor
from remit.core.attestation.models import Evidence, EvidenceKind
from remit.errors import AttestationFailed, InvalidRequest, Unavailable
from remit.sdk import X509SvidFiles
from remit.sdk.x509_svid import ASSERTION_LIFETIME, x509_svid_assertion
from remit.testing import FrozenClock

AUDIENCE = "https://remit.example"
SPIFFE_ID = "spiffe://acme.example/agents/invoice-bot"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)  # noqa: TID251 - the SDK signs on the host clock


def _attestor(tmp_path: Path, ca: SpiffeCa, clock: FrozenClock) -> X509SvidAttestor:
    bundle = write_json(tmp_path / "bundle.json", {"keys": [ca.bundle_entry()]})
    return X509SvidAttestor(
        JwtSvidAttestor([BundleSource("acme.example", str(bundle))], audience=AUDIENCE, clock=clock).bundles,
        audience=AUDIENCE,
    )


def _claims(token: str) -> dict[str, object]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


def _files(tmp_path: Path, ca: SpiffeCa, key: object = None) -> X509SvidFiles:
    leaf, private = ca.issue(SPIFFE_ID, key=key)
    chain, key_file = tmp_path / "svid.pem", tmp_path / "svid.key"
    chain.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in ca.chain(leaf)))
    key_file.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return X509SvidFiles(chain, key_file, audience=AUDIENCE)


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP384R1()),
        ec.generate_private_key(ec.SECP521R1()),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["P-256", "P-384", "P-521", "RSA"],
)
def test_files_give_assertions_the_attestor_accepts_once_each(tmp_path: Path, key: object) -> None:
    now = _now()
    ca = SpiffeCa("acme.example", now=now)
    attestor = _attestor(tmp_path, ca, FrozenClock(now))
    source = _files(tmp_path, ca, key)
    first, second = source.evidence(), source.evidence()
    assert first.kind == "x509_svid"
    identities = [attestor.attest(Evidence(EvidenceKind.X509_SVID, e.token), now=now) for e in (first, second)]
    assert {i.binding_key for i in identities} == {SPIFFE_ID}
    assert identities[0].jti != identities[1].jti  # a new assertion every time: never a replay


def test_an_assertion_through_an_intermediate_carries_the_chain(tmp_path: Path) -> None:
    now = _now()
    root = SpiffeCa("acme.example", now=now)
    intermediate = SpiffeCa("acme.example", now=now, issuer=root)
    token = _files(tmp_path, intermediate).evidence().token
    identity = _attestor(tmp_path, root, FrozenClock(now)).attest(Evidence(EvidenceKind.X509_SVID, token), now=now)
    assert identity.binding_key == SPIFFE_ID


def test_an_assertion_lives_a_minute_and_never_past_the_leaf(tmp_path: Path) -> None:
    now = _now().replace(microsecond=0)
    ca = SpiffeCa("acme.example", now=now)
    leaf, key = ca.issue(SPIFFE_ID)
    claims = _claims(x509_svid_assertion([leaf], key, audience=AUDIENCE, now=now))
    assert claims["exp"] == int((now + ASSERTION_LIFETIME).timestamp())
    assert claims["iss"] == claims["sub"] == SPIFFE_ID
    assert claims["aud"] == AUDIENCE
    late = leaf.not_valid_after_utc - dt.timedelta(seconds=10)
    assert _claims(x509_svid_assertion([leaf], key, audience=AUDIENCE, now=late))["exp"] == int(
        leaf.not_valid_after_utc.timestamp()
    )


def test_a_certificate_that_is_not_an_svid_or_a_key_of_another_type_is_refused(tmp_path: Path) -> None:
    now = _now()
    ca = SpiffeCa("acme.example", now=now)
    leaf, key = ca.issue(SPIFFE_ID, uris=["https://acme.example/bot"])
    with pytest.raises(InvalidRequest, match=r"not an X\.509-SVID"):
        x509_svid_assertion([leaf], key, audience=AUDIENCE)
    leaf, _ = ca.issue(SPIFFE_ID)
    with pytest.raises(InvalidRequest, match="EC"):
        x509_svid_assertion([leaf], ed25519.Ed25519PrivateKey.generate(), audience=AUDIENCE)
    with pytest.raises(InvalidRequest):
        x509_svid_assertion([], key, audience=AUDIENCE)


def test_unreadable_or_garbled_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="cannot read"):
        X509SvidFiles(tmp_path / "absent.pem", tmp_path / "absent.key", audience=AUDIENCE).evidence()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(InvalidRequest, match=r"do not hold an X\.509-SVID"):
        X509SvidFiles(garbage, garbage, audience=AUDIENCE).evidence()
    huge = tmp_path / "huge.pem"
    huge.write_bytes(b"x" * 70_000)
    with pytest.raises(InvalidRequest, match="too large"):
        X509SvidFiles(huge, huge, audience=AUDIENCE).evidence()


def test_an_assertion_signed_by_the_wrong_key_file_is_refused_by_the_server(tmp_path: Path) -> None:
    """A leaf paired with another key file: the SDK signs, the server's signature check refuses it."""
    now = _now()
    ca = SpiffeCa("acme.example", now=now)
    leaf, _ = ca.issue(SPIFFE_ID)
    token = x509_svid_assertion([leaf], ec.generate_private_key(ec.SECP256R1()), audience=AUDIENCE, now=now)
    with pytest.raises(AttestationFailed) as refused:
        _attestor(tmp_path, ca, FrozenClock(now)).attest(Evidence(EvidenceKind.X509_SVID, token), now=now)
    assert refused.value.details["reason"] == "bad_signature"
