"""The compact-JWS pieces the SDK signs itself (DPoP proofs, X.509-SVID assertions), over `cryptography`.

`cryptography` is an optional dependency of the SDK: `require_cryptography` names the extra that brings it,
and every import of it here is made on use, so `import remit.sdk` never needs it.
"""

from __future__ import annotations

import base64
import json

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
    from cryptography.hazmat.primitives.hashes import HashAlgorithm

__all__ = ["b64url", "compact", "ecdsa_signature", "require_cryptography"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def require_cryptography(feature: str, extra: str) -> None:
    """The import guard: `feature` without `cryptography` is a clear error naming `extra`, not a bare ImportError."""
    try:
        import cryptography  # noqa: F401, PLC0415 - optional dependency, loaded on first use
    except ImportError as exc:
        msg = f"{feature} needs the `cryptography` package: pip install '{extra}'"
        raise ImportError(msg, name="cryptography") from exc


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """`header.claims.signature`, each base64url, the signature by `sign` over the first two."""
    signing_input = f"{_segment(header)}.{_segment(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"


def ecdsa_signature(key: EllipticCurvePrivateKey, data: bytes, digest: HashAlgorithm, size: int) -> bytes:
    """An ECDSA signature in JWS form: r and s, each `size` bytes, concatenated (RFC 7518 §3.4), not DER."""
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415 - optional dependency
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: PLC0415

    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))
