"""X.509-SVID evidence for an agent (ADR 0017): a fresh assertion signed with the SVID's key, the chain in `x5c`.

A certificate alone proves nothing (it is public); the assertion proves the agent holds the SVID's private
key. Each call makes a new one: a unique `jti`, `iat` now, `exp` a minute later and never after the leaf's
`notAfter`, for Remit's evidence audience alone. The key signs with the algorithm its type fits (ES256,
ES384 or ES512 for EC P-256/384/521, RS256 for RSA), the signature in JWS form (RFC 7518 §3.4 for ECDSA).

Signing uses the `cryptography` package, an optional dependency (`remit[x509]`), imported only on use, so
`import remit.sdk` never needs it.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from remit.errors import InvalidRequest
from remit.sdk._jws import compact, ecdsa_signature
from remit.sdk._jws import require_cryptography as _require

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

__all__ = ["ASSERTION_LIFETIME", "X509_EXTRA", "x509_svid_assertion"]

X509_EXTRA: Final = "remit[x509]"
ASSERTION_LIFETIME: Final = dt.timedelta(seconds=60)
_CURVES: Final = {"secp256r1": ("ES256", 32), "secp384r1": ("ES384", 48), "secp521r1": ("ES512", 66)}


def require_cryptography() -> None:
    """The import guard: X.509-SVID evidence without `cryptography` names the extra."""
    _require("X.509-SVID evidence", X509_EXTRA)


def x509_svid_assertion(
    chain: Sequence[x509.Certificate], key: PrivateKeyTypes, *, audience: str, now: dt.datetime | None = None
) -> str:
    """A new assertion for `audience`: claims about the leaf's SPIFFE ID, signed with `key`, `chain` in `x5c`.

    `chain` is the X.509-SVID leaf first, then its intermediates (not the trust domain's root). A leaf
    without exactly one `spiffe://` URI SAN, or a key of another type, is InvalidRequest.
    """
    require_cryptography()
    from cryptography import x509  # noqa: PLC0415 - optional dependency
    from cryptography.hazmat.primitives.serialization import Encoding  # noqa: PLC0415

    if not chain:
        raise InvalidRequest("an X.509-SVID chain starts with its leaf certificate", field="evidence")
    leaf = chain[0]
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    uris = names.get_values_for_type(x509.UniformResourceIdentifier) if names is not None else []
    if len(uris) != 1 or not uris[0].startswith("spiffe://"):
        raise InvalidRequest("the leaf certificate is not an X.509-SVID (one spiffe:// URI SAN)", field="evidence")
    alg, sign = _signer(key)
    issued = now or dt.datetime.now(dt.UTC)  # noqa: TID251 - the SDK runs on the host clock
    expires = min(issued + ASSERTION_LIFETIME, leaf.not_valid_after_utc)
    header = {
        "alg": alg,
        "typ": "JWT",
        "x5c": [base64.b64encode(certificate.public_bytes(Encoding.DER)).decode("ascii") for certificate in chain],
    }
    claims = {
        "iss": uris[0],
        "sub": uris[0],
        "aud": audience,
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": secrets.token_urlsafe(24),
    }
    return compact(header, claims, sign)


def _signer(key: PrivateKeyTypes) -> tuple[str, Any]:
    """The JWS algorithm `key` fits, and a function signing bytes with it in JWS form."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - optional dependency
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: PLC0415

    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVES:
        alg, size = _CURVES[key.curve.name]
        digest = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[alg]

        return alg, lambda data: ecdsa_signature(key, data, digest, size)
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256", lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise InvalidRequest("an X.509-SVID key here is EC (P-256, P-384, P-521) or RSA", field="evidence")
