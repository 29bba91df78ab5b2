"""Attestation throughput per evidence kind: a JWT-SVID, and an X.509-SVID assertion with and without an intermediate.

Run: `.venv/bin/python bench/attest.py` (about 10 s). Each row verifies evidence minted beforehand (every token
distinct, as in real use) with the attestor alone: the claim checks, then the signature work the deferred check
does. A JWT-SVID costs one signature check; an X.509-SVID assertion costs the chain's path validation (one check
per certificate signature) and then its own signature, the first time its chain is seen; after that the chain's
validation is kept (`ValidatedChains`) and only the assertion's own signature is checked. Each row is printed
beside the raw ES256 verify floor measured in the same run.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import tempfile
import time
import uuid

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey

from remit.adapters.spiffe import BundleSource, JwtSvidAttestor
from remit.adapters.x509_svid import X509SvidAttestor
from remit.core.attestation.models import Evidence, EvidenceKind
from remit.testing import FrozenClock

AUDIENCE = "https://remit.example"
DOMAIN = "acme.example"
SPIFFE_ID = f"spiffe://{DOMAIN}/agents/bench"
COUNT = 2000


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _jws(header: dict[str, Any], claims: dict[str, Any], key: ec.EllipticCurvePrivateKey) -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    now: dt.datetime,
    *,
    ca: bool,
    uri: str,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]) if ca else x509.Name([])
    issuer_name, signer = issuer or (subject, key)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_usage(ca=ca), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), critical=not ca)
        .sign(signer, hashes.SHA256())
    )


def rate(tokens: list[str], attest: Callable[[str], object]) -> float:
    start = time.perf_counter()
    for token in tokens:
        attest(token)
    return len(tokens) / (time.perf_counter() - start)


def main() -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    now = clock.now()
    seconds = int(now.timestamp())
    jwt_key = ec.generate_private_key(ec.SECP256R1())
    root_key, middle_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = _certificate("root", root_key, None, now, ca=True, uri=f"spiffe://{DOMAIN}")
    middle = _certificate("middle", middle_key, (root.subject, root_key), now, ca=True, uri=f"spiffe://{DOMAIN}")
    direct = _certificate("leaf", leaf_key, (root.subject, root_key), now, ca=False, uri=SPIFFE_ID)
    below = _certificate("leaf", leaf_key, (middle.subject, middle_key), now, ca=False, uri=SPIFFE_ID)
    der = base64.b64encode(root.public_bytes(Encoding.DER)).decode()
    bundle = {
        "keys": [
            {**ECKey.import_key(jwt_key.public_key()).as_dict(private=False), "use": "jwt-svid", "kid": "j1"},
            {**ECKey.import_key(root_key.public_key()).as_dict(private=False), "use": "x509-svid", "x5c": [der]},
        ]
    }
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bundle.json"
        path.write_text(json.dumps(bundle))
        jwt_svids = JwtSvidAttestor([BundleSource(DOMAIN, str(path))], audience=AUDIENCE, clock=clock)
        x509_svids = X509SvidAttestor(jwt_svids.bundles, audience=AUDIENCE)
        first_sight = X509SvidAttestor(jwt_svids.bundles, audience=AUDIENCE, validated_chains=0)

        def claims(**extra: Any) -> dict[str, Any]:  # noqa: ANN401
            return {"aud": AUDIENCE, "iat": seconds, "exp": seconds + 60, "jti": uuid.uuid4().hex, **extra}

        def chain(*certificates: x509.Certificate) -> list[str]:
            return [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in certificates]

        svids = [
            _jws({"alg": "ES256", "kid": "j1", "typ": "JWT"}, claims(sub=SPIFFE_ID), jwt_key) for _ in range(COUNT)
        ]
        header = {"alg": "ES256", "typ": "JWT"}
        direct_assertions = [
            _jws({**header, "x5c": chain(direct)}, claims(iss=SPIFFE_ID, sub=SPIFFE_ID), leaf_key) for _ in range(COUNT)
        ]
        below_assertions = [
            _jws({**header, "x5c": chain(below, middle)}, claims(iss=SPIFFE_ID, sub=SPIFFE_ID), leaf_key)
            for _ in range(COUNT)
        ]
        message = b"x" * 400
        signature = leaf_key.sign(message, ec.ECDSA(hashes.SHA256()))
        public = leaf_key.public_key()
        floor = rate([""] * COUNT, lambda _: public.verify(signature, message, ec.ECDSA(hashes.SHA256())))
        rows = [
            (
                "JWT-SVID (1 signature)",
                rate(svids, lambda t: jwt_svids.attest(Evidence(EvidenceKind.JWT_SVID, t), now=now)),
            ),
            (
                "X.509-SVID, under the root, chain new (2)",
                rate(direct_assertions, lambda t: first_sight.attest(Evidence(EvidenceKind.X509_SVID, t), now=now)),
            ),
            (
                "X.509-SVID, via an intermediate, chain new (3)",
                rate(below_assertions, lambda t: first_sight.attest(Evidence(EvidenceKind.X509_SVID, t), now=now)),
            ),
            (
                "X.509-SVID, under the root, chain kept (1)",
                rate(direct_assertions, lambda t: x509_svids.attest(Evidence(EvidenceKind.X509_SVID, t), now=now)),
            ),
            (
                "X.509-SVID, via an intermediate, chain kept (1)",
                rate(below_assertions, lambda t: x509_svids.attest(Evidence(EvidenceKind.X509_SVID, t), now=now)),
            ),
        ]
    print(f"{'evidence (signature checks)':48} {'ops/s':>9} {'µs':>7}  ratio")
    for name, ops in rows:
        print(f"{name:48} {ops:9,.0f} {1e6 / ops:7,.0f}  {ops / floor:.2f}× raw ES256 verify")
    print(f"{'floor: raw ES256 verify':48} {floor:9,.0f} {1e6 / floor:7,.0f}")


if __name__ == "__main__":
    main()
