"""DPoP proofs (RFC 9449) for an agent: one P-256 key per task session, one fresh proof per request.

The key never leaves the process unless the caller persists it (`private_pem`). Signing uses the
`cryptography` package (ECDSA P-256 with SHA-256, the signature re-encoded as raw r||s per RFC 7518
§3.4); it is an optional dependency (`remit[dpop]`), imported only when a key is made, so
`import remit.sdk` never needs it. The server uses no `DPoP-Nonce` (RFC 9449 §8), so none is handled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets

from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import urlsplit, urlunsplit

from remit.sdk._jws import b64url, compact, ecdsa_signature, require_cryptography

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = ["DPOP_EXTRA", "DpopKey", "access_token_hash", "htu_of"]

DPOP_EXTRA: Final = "remit[dpop]"
_ALG: Final = "ES256"
_COORDINATE_BYTES: Final = 32  # P-256


def _require_cryptography() -> None:
    require_cryptography("DPoP", DPOP_EXTRA)


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the ASCII access token."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def htu_of(url: str) -> str:
    """RFC 9449 §4.2 `htu`: the request URL without its query and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class DpopKey:
    """A DPoP key pair (EC P-256) that signs proofs; `generate()` a new one per task session."""

    def __init__(self, private_key: EllipticCurvePrivateKey) -> None:
        _require_cryptography()
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - optional dependency

        if not isinstance(private_key.curve, ec.SECP256R1):
            msg = "a DPoP key here is EC P-256 (ES256)"
            raise TypeError(msg)
        self._key = private_key
        numbers = private_key.public_key().public_numbers()
        self._jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(_COORDINATE_BYTES, "big")),
            "y": b64url(numbers.y.to_bytes(_COORDINATE_BYTES, "big")),
        }

    @classmethod
    def generate(cls) -> Self:
        """A fresh ephemeral key."""
        _require_cryptography()
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - optional dependency

        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, data: bytes, *, password: bytes | None = None) -> Self:
        """A key saved with `private_pem` (PKCS#8), to keep one binding across processes."""
        _require_cryptography()
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - optional dependency
        from cryptography.hazmat.primitives.serialization import load_pem_private_key  # noqa: PLC0415

        key = load_pem_private_key(data, password=password)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            msg = "not an EC private key"
            raise TypeError(msg)
        return cls(key)

    def private_pem(self, *, password: bytes | None = None) -> bytes:
        """The private key as PKCS#8 PEM (encrypted when `password` is given): whoever holds it holds the binding."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - optional dependency

        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    @property
    def public_jwk(self) -> dict[str, str]:
        return dict(self._jwk)

    @property
    def thumbprint(self) -> str:
        """RFC 7638 thumbprint (SHA-256) of the public key: the `cnf.jkt` a bound credential carries."""
        canonical = json.dumps(self._jwk, sort_keys=True, separators=(",", ":"))
        return b64url(hashlib.sha256(canonical.encode("ascii")).digest())

    def proof(self, method: str, url: str, *, access_token: str | None = None) -> str:
        """A new proof for one request: `htm`, `htu` (no query or fragment), a unique `jti`, `iat`; `ath` with a token.

        A proof is single use: the server refuses a `jti` it has seen, so make one per request.
        """
        header = {"typ": "dpop+jwt", "alg": _ALG, "jwk": self._jwk}
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(24),
            "htm": method.upper(),
            "htu": htu_of(url),
            "iat": int(dt.datetime.now(dt.UTC).timestamp()),  # noqa: TID251 - the SDK runs on the host clock
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        return compact(header, claims, self._sign)

    def _sign(self, signing_input: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - optional dependency

        return ecdsa_signature(self._key, signing_input, hashes.SHA256(), _COORDINATE_BYTES)

    def __repr__(self) -> str:
        return f"DpopKey(jkt={self.thumbprint!r})"
