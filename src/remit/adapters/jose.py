"""JOSE over joserfc: our RFC 9068 access tokens, the JWKS, strict JWS parsing, RFC 9449 DPoP, and key sets.

The only module that imports joserfc. It follows RFC 8725 (JWT BCP): explicit algorithm allow-lists (never
`none`, never HMAC: every key here is asymmetric, which closes algorithm confusion), explicit `typ`, one key per
algorithm (a key is used only with the algorithm its type and curve fit), strict parsing.

Access-token verification (`AccessTokenVerifier.verify`) runs in this order, and stops at the first failure:

1. parse: size limit, compact form (three base64url segments), JSON objects only, duplicate member names
   refused at any depth, `crit` refused (we understand no extension);
2. `alg` in the allow-list (ES256, EdDSA by default);
3. `kid` present and published in the key ring (cached public keys; rebuilt when the ring changes);
4. signature, with the key's own algorithm only;
5. `typ` is `at+jwt` (RFC 9068 §2.1);
6. `iss` is ours;
7. `aud` is the one expected audience (a string, or an array holding it; we issue single-audience tokens);
8. required claims present (RFC 9068 §2.2) and time: `exp` required (strict), `nbf`/`iat` with bounded skew.

Every failure raises CredentialInvalid (or CredentialExpired for `expired`) with the generic title as message and
the precise reason in `details["reason"]`. Steps 1-4 depend only on the token bytes and the ring, so their result
may be cached per token (LRU keyed by SHA-256 of the token, until the token's `exp`); steps 5-8 run every time.

DPoP proofs (`DpopVerifier`) follow RFC 9449 §4.3: `typ: dpop+jwt`, an asymmetric `alg` from the allow-list, a
public `jwk` in the header (private members refused), a valid signature by that key, `htm`, `htu` (compared after
RFC 3986 normalisation, query and fragment ignored), `iat` inside a window, `ath` when an access token comes with
the proof, the key's RFC 7638 thumbprint equal to the token's `cnf.jkt`, and the `jti` used once (ReplayGuard).

`KeySetCache` loads a JSON document (a JWKS or a SPIFFE bundle) from a file or an https URL, keeps it for its
refresh interval, re-fetches early (rate-limited) when a token names an unknown `kid`, and keeps the last good copy
for at most `max_stale` while the source is failing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import math
import re
import threading

from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from joserfc.jws import JWSRegistry

from remit.adapters.keys import KeyRing, SigningKey, b64url_decode, b64url_encode, jwk_thumbprint
from remit.core.attestation.ports import ReplayGuard
from remit.core.attestation.waiting import WouldWait, waiting_allowed
from remit.core.clock import Clock
from remit.core.credentials.ports import DpopProof, VerifiedToken
from remit.errors import CredentialExpired, CredentialInvalid, InvalidRequest, Unavailable

__all__ = [
    "ACCESS_TOKEN_TYP",
    "DEFAULT_ACCESS_TOKEN_ALGORITHMS",
    "DEFAULT_DPOP_ALGORITHMS",
    "DEFAULT_LEEWAY",
    "DPOP_TYP",
    "FORBIDDEN_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "RFC9068_REQUIRED_CLAIMS",
    "AccessTokenSigner",
    "AccessTokenVerifier",
    "CompactJws",
    "DpopVerifier",
    "KeySetCache",
    "MemoryReplayGuard",
    "VerificationKey",
    "access_token_hash",
    "check_audience",
    "check_times",
    "import_public_jwk",
    "import_public_key",
    "normalize_htu",
    "parse_compact",
    "verify_signature",
]

ACCESS_TOKEN_TYP: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
DPOP_TYP: Final = "dpop+jwt"
MAX_TOKEN_BYTES: Final = 8192
DEFAULT_LEEWAY: Final = dt.timedelta(seconds=30)
DEFAULT_ACCESS_TOKEN_ALGORITHMS: Final = ("ES256", "EdDSA")
DEFAULT_DPOP_ALGORITHMS: Final = ("ES256", "ES384", "EdDSA", "PS256", "RS256")
# No allow-list here may name these: `none` is unsigned, HMAC would let a public key act as a shared secret.
FORBIDDEN_ALGORITHMS: Final = frozenset({"none", "HS256", "HS384", "HS512"})
RFC9068_REQUIRED_CLAIMS: Final = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
_MIN_RSA_BITS: Final = 2048
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_COMPACT: Final = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# NumericDate values beyond year 9999 are nonsense and would overflow datetime.
_MAX_NUMERIC_DATE: Final = 253_402_300_799

# joserfc's algorithm implementations, used directly: our own allow-lists decide what may run.
_ALGORITHMS: Final = JWSRegistry.algorithms


def _invalid(reason: str) -> CredentialInvalid:
    return CredentialInvalid(details={"reason": reason})


def _allow_list(algorithms: Collection[str], *, field: str) -> frozenset[str]:
    allowed = frozenset(algorithms)
    if not allowed or allowed & FORBIDDEN_ALGORITHMS or not allowed <= set(_ALGORITHMS):
        raise InvalidRequest("algorithm allow-list must name only supported asymmetric algorithms", field=field)
    return allowed


# ---------------------------------------------------------------- strict parsing


class _DuplicateMemberError(ValueError):
    """A JSON object names the same member twice (internal; becomes `duplicate_claim`)."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateMemberError(key)
        result[key] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(name)


# One decoder for every strict parse: duplicate member names and NaN/Infinity are errors.
_STRICT_JSON: Final = json.JSONDecoder(object_pairs_hook=_unique_object, parse_constant=_reject_constant)


def _json_object(segment: str) -> dict[str, Any]:
    try:
        raw = b64url_decode(segment)
        value = _STRICT_JSON.decode(raw.decode("utf-8"))
    except _DuplicateMemberError:
        raise _invalid("duplicate_claim") from None
    except (ValueError, RecursionError):
        raise _invalid("malformed") from None
    if not isinstance(value, dict):
        raise _invalid("not_an_object")
    return value


@dataclass(frozen=True, slots=True)
class CompactJws:
    """A parsed, not yet verified, JWS in compact serialization (RFC 7515 §7.1)."""

    header: Mapping[str, Any]
    payload: Mapping[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        alg = self.header.get("alg")
        return alg if isinstance(alg, str) else ""

    @property
    def kid(self) -> str | None:
        kid = self.header.get("kid")
        return kid if isinstance(kid, str) else None


def parse_compact(token: str | bytes, *, max_bytes: int = MAX_TOKEN_BYTES) -> CompactJws:
    """Parse a compact JWS strictly; anything but a well-formed one is CredentialInvalid with its reason."""
    if isinstance(token, bytes):
        if len(token) > max_bytes:
            raise _invalid("oversized")
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid("malformed") from None
    if len(token) > max_bytes:
        raise _invalid("oversized")
    if not _COMPACT.fullmatch(token):
        raise _invalid("malformed")
    parts = token.split(".")
    header = _json_object(parts[0])
    payload = _json_object(parts[1])
    try:
        signature = b64url_decode(parts[2])
    except ValueError:
        raise _invalid("malformed") from None
    if "crit" in header:
        raise _invalid("unsupported_crit")
    if not isinstance(header.get("alg"), str):
        raise _invalid("malformed")
    return CompactJws(
        header=header,
        payload=payload,
        signing_input=f"{parts[0]}.{parts[1]}".encode("ascii"),
        signature=signature,
    )


# ---------------------------------------------------------------- keys and signatures

_JoseKey = ECKey | OKPKey | RSAKey


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key imported from a JWK, with the JWK's `kid`, `use` and `alg` (if it declared them)."""

    kid: str | None
    use: str | None
    alg: str | None
    kty: str
    crv: str | None
    thumbprint: str
    key: _JoseKey

    def fits(self, alg: str) -> bool:  # noqa: PLR0911 - one case per algorithm family
        """Whether this key may verify `alg`: the JWK's own `alg` if set, else its type and curve (RFC 8725 §3.1)."""
        if self.alg is not None and self.alg != alg:
            return False
        match alg:
            case "ES256":
                return self.crv == "P-256"
            case "ES384":
                return self.crv == "P-384"
            case "ES512":
                return self.crv == "P-521"
            case "EdDSA":
                return self.crv == "Ed25519"
            case "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512":
                return self.kty == "RSA"
            case _:
                return False


def import_public_jwk(jwk: Mapping[str, Any]) -> VerificationKey:
    """Import a public JWK (EC, OKP Ed25519, RSA ≥ 2048 bits); private members or other types are CredentialInvalid."""
    if not isinstance(jwk, Mapping):
        raise _invalid("bad_jwk")
    if _PRIVATE_MEMBERS & set(jwk):
        raise _invalid("private_jwk")
    kty, crv = jwk.get("kty"), jwk.get("crv")
    key: _JoseKey
    try:
        members = {k: v for k, v in jwk.items() if k in {"kty", "crv", "x", "y", "n", "e"}}
        match kty:
            case "EC" if crv in {"P-256", "P-384", "P-521"}:
                key = ECKey.import_key(members)
            case "OKP" if crv == "Ed25519":
                key = OKPKey.import_key(members)
            case "RSA":
                key = RSAKey.import_key(members)
                if key.public_key.key_size < _MIN_RSA_BITS:
                    raise _invalid("weak_key")
            case _:
                raise _invalid("unsupported_key_type")
        thumbprint = jwk_thumbprint(jwk)
    except CredentialInvalid:
        raise
    except (JoseError, ValueError, TypeError, KeyError, InvalidRequest):
        raise _invalid("bad_jwk") from None
    kid, use, alg = jwk.get("kid"), jwk.get("use"), jwk.get("alg")
    return VerificationKey(
        kid=kid if isinstance(kid, str) else None,
        use=use if isinstance(use, str) else None,
        alg=alg if isinstance(alg, str) else None,
        kty=str(kty),
        crv=crv if isinstance(crv, str) else None,
        thumbprint=thumbprint,
        key=key,
    )


def import_public_key(public_key: object) -> VerificationKey:
    """A certificate's public key (EC P-256/384/521, Ed25519, RSA ≥ 2048 bits) as a VerificationKey without `kid`.

    Other key types are CredentialInvalid `unsupported_key_type`; a short RSA key is `weak_key`.
    """
    key: _JoseKey
    match public_key:
        case ec.EllipticCurvePublicKey() if isinstance(public_key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            key = ECKey.import_key(public_key)
        case ed25519.Ed25519PublicKey():
            key = OKPKey.import_key(public_key)
        case rsa.RSAPublicKey():
            if public_key.key_size < _MIN_RSA_BITS:
                raise _invalid("weak_key")
            key = RSAKey.import_key(public_key)
        case _:
            raise _invalid("unsupported_key_type")
    jwk = key.as_dict(private=False)
    crv = jwk.get("crv")
    return VerificationKey(
        kid=None,
        use=None,
        alg=None,
        kty=str(jwk["kty"]),
        crv=crv if isinstance(crv, str) else None,
        thumbprint=jwk_thumbprint(jwk),
        key=key,
    )


def verify_signature(jws: CompactJws, key: VerificationKey) -> bool:
    """Check the JWS signature with `key` using the header's `alg`; False if the key does not fit that alg."""
    alg = jws.alg
    if alg in FORBIDDEN_ALGORITHMS or alg not in _ALGORITHMS or not key.fits(alg):
        return False
    try:
        return bool(_ALGORITHMS[alg].verify(jws.signing_input, jws.signature, key.key))
    except (InvalidSignature, JoseError, ValueError, TypeError):
        return False


def _jose_key(
    key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey,
) -> _JoseKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    return OKPKey.import_key(key)


def _ring_verification_key(key: SigningKey) -> VerificationKey:
    jose_key = _jose_key(key.private_key.public_key())
    return VerificationKey(
        kid=key.kid,
        use="sig",
        alg=key.algorithm.value,
        kty=key.public_jwk["kty"],
        crv=key.public_jwk["crv"],
        thumbprint=key.kid,
        key=jose_key,
    )


# ---------------------------------------------------------------- claim checks


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid("bad_claim")
    if not 0 <= value <= _MAX_NUMERIC_DATE:
        raise _invalid("bad_claim")
    return float(value)


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def check_times(
    claims: Mapping[str, Any], *, now: dt.datetime, leeway: dt.timedelta = DEFAULT_LEEWAY
) -> tuple[dt.datetime, dt.datetime | None]:
    """Check `exp` (required, strict), `nbf` and `iat` (allowed `leeway` of clock skew); returns (exp, iat)."""
    exp = _numeric_date(claims, "exp")
    if exp is None:
        raise _invalid("missing_claim")
    nbf = _numeric_date(claims, "nbf")
    iat = _numeric_date(claims, "iat")
    current = now.timestamp()
    skew = leeway.total_seconds()
    if current >= exp:
        raise CredentialExpired(details={"reason": "expired"})
    if nbf is not None and nbf > current + skew:
        raise _invalid("not_yet_valid")
    if iat is not None and iat > current + skew:
        raise _invalid("iat_in_future")
    return _at(exp), None if iat is None else _at(iat)


def check_audience(claims: Mapping[str, Any], expected: str, *, single: bool = True) -> None:
    """`aud` must be `expected`, or an array containing it (of exactly one element when `single`)."""
    aud = claims.get("aud")
    if aud is None:
        raise _invalid("missing_aud")
    if isinstance(aud, str):
        ok = hmac.compare_digest(aud.encode(), expected.encode())
    elif isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        ok = expected in aud and (len(aud) == 1 or not single)
    else:
        ok = False
    if not ok:
        raise _invalid("wrong_aud")


# ---------------------------------------------------------------- our access tokens


def _compact(header: Mapping[str, Any], claims: Mapping[str, Any], sign: Callable[[bytes], bytes]) -> str:
    def segment(value: Mapping[str, Any]) -> str:
        # msgspec: the same compact JSON several times faster than `json.dumps`. Claims hold no floats.
        return b64url_encode(msgspec.json.encode(value))

    signing_input = f"{segment(header)}.{segment(claims)}"
    return f"{signing_input}.{b64url_encode(sign(signing_input.encode('ascii')))}"


class AccessTokenSigner:
    """Signs RFC 9068 access tokens (`typ: at+jwt`) with the ring's active key and publishes the JWKS."""

    def __init__(self, ring: KeyRing) -> None:
        self._ring = ring
        self._signing: tuple[str, _JoseKey] | None = None

    def _active(self) -> tuple[SigningKey, _JoseKey]:
        active = self._ring.active()
        cached = self._signing
        if cached is None or cached[0] != active.kid:
            self._signing = cached = (active.kid, _jose_key(active.private_key))
        return active, cached[1]

    def sign(self, claims: Mapping[str, Any], *, typ: str = ACCESS_TOKEN_TYP) -> str:
        """Sign `claims` (which must carry an integer `exp`); returns the compact JWS."""
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int):
            raise InvalidRequest("a token must carry an integer exp", field="claims.exp")
        key, jose_key = self._active()
        algorithm = _ALGORITHMS[key.algorithm.value]
        header = {"alg": key.algorithm.value, "kid": key.kid, "typ": typ}
        return _compact(header, claims, lambda data: algorithm.sign(data, jose_key))

    def jwks(self) -> dict[str, Any]:
        """The JWK Set of every published key (active, next, retired) with `use: sig`, `alg` and `kid`."""
        return {"keys": [key.published_jwk() for key in self._ring.published()]}


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A token's claims already checked for one audience: only its times are checked again on each use."""

    token: VerifiedToken
    exp: float
    nbf: float | None
    iat: float | None


@dataclass(frozen=True, slots=True)
class _Verified:
    """Cached result of steps 1-4 for one token: its header facts and claims, and the audiences it passed."""

    kid: str
    alg: str
    typ: object
    claims: Mapping[str, Any]
    exp: float
    accepted: dict[str, _Accepted] = field(default_factory=dict)


# A credential has one audience; a few entries bound what a token presented for many audiences can hold.
_MAX_AUDIENCES_KEPT: Final = 4


class AccessTokenVerifier:
    """Verifies our RFC 9068 access tokens in the strict order of the module docstring."""

    def __init__(  # noqa: PLR0913 - each knob is a documented security bound
        self,
        ring: KeyRing,
        *,
        issuer: str,
        clock: Clock,
        algorithms: Collection[str] = DEFAULT_ACCESS_TOKEN_ALGORITHMS,
        leeway: dt.timedelta = DEFAULT_LEEWAY,
        max_token_bytes: int = MAX_TOKEN_BYTES,
        cache_size: int = 4096,
        typ: str = ACCESS_TOKEN_TYP,
        required_claims: Collection[str] = RFC9068_REQUIRED_CLAIMS,
    ) -> None:
        self._ring = ring
        self._issuer = issuer
        self._clock = clock
        self._algorithms = _allow_list(algorithms, field="algorithms")
        self._leeway = leeway
        self._max_bytes = max_token_bytes
        self._typ = typ
        self._required = tuple(required_claims)
        self._keys: tuple[int, Mapping[str, VerificationKey]] = (-1, {})
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _public_keys(self) -> Mapping[str, VerificationKey]:
        generation, keys = self._keys
        if generation != self._ring.generation:
            generation = self._ring.generation
            # Next keys are accepted too: another replica may already have promoted one.
            keys = {k.kid: _ring_verification_key(k) for k in self._ring.published()}
            self._keys = (generation, keys)
        return keys

    def _verify_signature(self, token: str) -> _Verified:
        jws = parse_compact(token, max_bytes=self._max_bytes)
        if jws.alg not in self._algorithms:
            raise _invalid("alg_not_allowed")
        kid = jws.kid
        if kid is None:
            raise _invalid("unknown_kid")
        key = self._public_keys().get(kid)
        if key is None and self._ring.reload():  # another process may have rotated the ring (a stat when not)
            key = self._public_keys().get(kid)
        if key is None:
            raise _invalid("unknown_kid")
        if not verify_signature(jws, key):
            raise _invalid("bad_signature")
        exp = _numeric_date(jws.payload, "exp")
        return _Verified(
            kid=kid,
            alg=jws.alg,
            typ=jws.header.get("typ"),
            claims=MappingProxyType(dict(jws.payload)),
            exp=-1.0 if exp is None else exp,
        )

    def verify(self, token: str, *, audience: str) -> VerifiedToken:
        """Verify `token` for `audience`; raises CredentialInvalid / CredentialExpired with the reason."""
        if len(token) > self._max_bytes:
            raise _invalid("oversized")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = self._clock.now()
        with self._lock:
            verified = self._cache.get(digest)
            if verified is not None:
                self._cache.move_to_end(digest)
        # A cached token is only trusted while its key is still published (a pruned key ends it).
        if verified is None or verified.kid not in self._public_keys():
            verified = self._verify_signature(token)
            if verified.exp > now.timestamp():
                with self._lock:
                    self._cache[digest] = verified
                    while len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
        accepted = verified.accepted.get(audience)
        if accepted is not None:
            return self._recheck_times(accepted, now)
        checked = self._check_claims(verified, audience=audience, now=now)
        if len(verified.accepted) < _MAX_AUDIENCES_KEPT:
            claims = verified.claims
            verified.accepted[audience] = _Accepted(
                checked,
                exp=verified.exp,
                nbf=_numeric_date(claims, "nbf"),
                iat=_numeric_date(claims, "iat"),
            )
        return checked

    def _recheck_times(self, accepted: _Accepted, now: dt.datetime) -> VerifiedToken:
        """typ, iss, aud and the claim shapes cannot change for the same signed bytes: only time can."""
        current, skew = now.timestamp(), self._leeway.total_seconds()
        if current >= accepted.exp:
            raise CredentialExpired(details={"reason": "expired"})
        if accepted.nbf is not None and accepted.nbf > current + skew:
            raise _invalid("not_yet_valid")
        if accepted.iat is not None and accepted.iat > current + skew:
            raise _invalid("iat_in_future")
        return accepted.token

    def _check_claims(self, verified: _Verified, *, audience: str, now: dt.datetime) -> VerifiedToken:
        claims = verified.claims
        if verified.typ != self._typ:
            raise _invalid("wrong_typ")
        iss = claims.get("iss")
        if not isinstance(iss, str) or iss != self._issuer:
            raise _invalid("wrong_iss")
        check_audience(claims, audience)
        if any(name not in claims for name in self._required):
            raise _invalid("missing_claim")
        expires_at, issued_at = check_times(claims, now=now, leeway=self._leeway)
        jti, subject = claims.get("jti"), claims.get("sub")
        if not isinstance(jti, str) or not jti or not isinstance(subject, str) or not subject:
            raise _invalid("bad_claim")
        return VerifiedToken(
            claims=claims,
            kid=verified.kid,
            alg=verified.alg,
            jti=jti,
            subject=subject,
            issued_at=issued_at or now,
            expires_at=expires_at,
        )

    def forget(self) -> None:
        """Empty the verification cache (tests, key compromise)."""
        with self._lock:
            self._cache.clear()


# ---------------------------------------------------------------- DPoP (RFC 9449)


def access_token_hash(access_token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url of the SHA-256 of the ASCII access token."""
    return b64url_encode(hashlib.sha256(access_token.encode("ascii", "strict")).digest())


_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def normalize_htu(url: str) -> str:
    """RFC 9449 §4.3 / RFC 3986 §6.2.2-6.2.3: scheme and host lower-cased, default port and query/fragment dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        msg = "not an http(s) URL"
        raise ValueError(msg)
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", "", ""))


class DpopVerifier:
    """Verifies RFC 9449 DPoP proofs; reasons are `dpop_*` in CredentialInvalid details."""

    def __init__(
        self,
        *,
        clock: Clock,
        replay_guard: ReplayGuard,
        algorithms: Collection[str] = DEFAULT_DPOP_ALGORITHMS,
        max_age: dt.timedelta = dt.timedelta(minutes=5),
        leeway: dt.timedelta = DEFAULT_LEEWAY,
        max_proof_bytes: int = MAX_TOKEN_BYTES,
    ) -> None:
        self._clock = clock
        self._replay_guard = replay_guard
        self._algorithms = _allow_list(algorithms, field="dpop_algorithms")
        self._max_age = max_age
        self._leeway = leeway
        self._max_bytes = max_proof_bytes

    @property
    def algorithms(self) -> tuple[str, ...]:
        """For `dpop_signing_alg_values_supported` in RFC 8414 metadata."""
        return tuple(sorted(self._algorithms))

    def verify(  # noqa: C901, PLR0912, PLR0915 - one linear list of RFC 9449 §4.3 checks reads best in one place
        self,
        proof: str | None,
        *,
        method: str,
        url: str,
        access_token: str | None = None,
        expected_jkt: str | None = None,
    ) -> DpopProof:
        if not proof:
            raise _invalid("dpop_missing")
        try:
            jws = parse_compact(proof, max_bytes=self._max_bytes)
        except CredentialInvalid as exc:
            raise _invalid(f"dpop_{exc.details.get('reason', 'malformed')}") from None
        header, claims = jws.header, jws.payload
        if header.get("typ") != DPOP_TYP:
            raise _invalid("dpop_wrong_typ")
        if jws.alg not in self._algorithms:
            raise _invalid("dpop_alg_not_allowed")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise _invalid("dpop_missing_jwk")
        try:
            key = import_public_jwk(jwk)
        except CredentialInvalid as exc:
            raise _invalid(f"dpop_{exc.details.get('reason', 'bad_jwk')}") from None
        if not verify_signature(jws, key):
            raise _invalid("dpop_bad_signature")
        jti, htm, htu = claims.get("jti"), claims.get("htm"), claims.get("htu")
        if not isinstance(jti, str) or not jti or len(jti) > 256:  # noqa: PLR2004
            raise _invalid("dpop_bad_jti")
        if htm != method:
            raise _invalid("dpop_wrong_htm")
        try:
            if not isinstance(htu, str) or normalize_htu(htu) != normalize_htu(url):
                raise _invalid("dpop_wrong_htu")
        except ValueError:
            raise _invalid("dpop_wrong_htu") from None
        try:
            iat = _numeric_date(claims, "iat")
        except CredentialInvalid:
            iat = None
        now = self._clock.now()
        if iat is None:
            raise _invalid("dpop_bad_iat")
        if not (now - self._max_age - self._leeway).timestamp() <= iat <= (now + self._leeway).timestamp():
            raise _invalid("dpop_stale")
        if access_token is not None:
            ath = claims.get("ath")
            if not isinstance(ath, str):
                raise _invalid("dpop_missing_ath")
            try:
                expected_ath = access_token_hash(access_token)
            except UnicodeEncodeError:
                raise _invalid("dpop_wrong_ath") from None
            if not hmac.compare_digest(ath.encode(), expected_ath.encode()):
                raise _invalid("dpop_wrong_ath")
        if expected_jkt is not None and not hmac.compare_digest(key.thumbprint.encode(), expected_jkt.encode()):
            raise _invalid("dpop_key_mismatch")
        issued_at = _at(iat)
        if not self._replay_guard.first_use(f"dpop:{key.thumbprint}", jti, issued_at + self._max_age + self._leeway):
            raise _invalid("dpop_replayed")
        return DpopProof(jkt=key.thumbprint, jti=jti, method=method, url=normalize_htu(url), issued_at=issued_at)


# ---------------------------------------------------------------- replay memory


class MemoryReplayGuard:
    """An in-process ReplayGuard (bounded, expiring) for a single replica and tests.

    Entries are kept until their `expires_at`; when `max_entries` is reached, expired entries are purged and, if
    none are, `first_use` raises Unavailable (fail closed) rather than forgetting a live identifier. Several
    replicas need the shared SQL implementation instead: this one only sees its own process.
    """

    def __init__(self, *, clock: Clock, max_entries: int = 100_000) -> None:
        self._clock = clock
        self._max_entries = max_entries
        self._seen: dict[tuple[str, str], dt.datetime] = {}
        self._lock = threading.Lock()

    def first_use(self, namespace: str, jti: str, expires_at: dt.datetime) -> bool:
        now = self._clock.now()
        entry = (namespace, jti)
        with self._lock:
            known = self._seen.get(entry)
            if known is not None and known > now:
                return False
            if len(self._seen) >= self._max_entries:
                self._seen = {k: v for k, v in self._seen.items() if v > now}
                if len(self._seen) >= self._max_entries:
                    raise Unavailable("the replay cache is full", details={"reason": "replay_cache_full"})
            self._seen[entry] = expires_at
            return True

    def __len__(self) -> int:
        return len(self._seen)


# ---------------------------------------------------------------- key sets from files and URLs

T = TypeVar("T")
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class KeySetCache(Generic[T]):
    """A JSON key document (JWKS, SPIFFE bundle) from a file path or an https URL, parsed and cached.

    `parse` turns the document into the value callers use and raises on a bad document; `refresh_after` says how
    long a value stays fresh (e.g. from `spiffe_refresh_hint`). While the source fails, the last good value is used
    for at most `max_stale`; after that, and when nothing was ever loaded, `current()` raises Unavailable.
    `refresh_now()` forces a re-fetch at most once per `min_refetch_interval` (for unknown `kid`s).
    Plain `http://` is refused unless `allow_http_loopback` and the host is a loopback address (local sidecars).
    """

    def __init__(  # noqa: PLR0913 - each knob is a documented bound
        self,
        location: str,
        *,
        parse: Callable[[Mapping[str, Any]], T],
        refresh_after: Callable[[T], dt.timedelta],
        clock: Clock,
        http: httpx.Client | None = None,
        min_refetch_interval: dt.timedelta = dt.timedelta(seconds=30),
        max_stale: dt.timedelta = dt.timedelta(hours=1),
        max_bytes: int = 1_048_576,
        allow_http_loopback: bool = False,
    ) -> None:
        self._location = location
        self._url = location if location.startswith(("https://", "http://")) else None
        if self._url is not None:
            parts = urlsplit(self._url)
            if parts.scheme != "https" and not (allow_http_loopback and _is_loopback(parts.hostname or "")):
                raise InvalidRequest("a key set URL must use https", field="jwks")
        self._parse = parse
        self._refresh_after = refresh_after
        self._clock = clock
        self._http = http
        self._min_refetch = min_refetch_interval
        self._max_stale = max_stale
        self._max_bytes = max_bytes
        self._value: T | None = None
        self._loaded_at: dt.datetime | None = None
        self._fresh_until: dt.datetime | None = None
        self._last_attempt: dt.datetime | None = None
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self._location

    def current(self) -> T:
        """The value, re-fetched when it is due; raises Unavailable when no usable value exists."""
        now = self._clock.now()
        if self._value is not None and self._fresh_until is not None and now < self._fresh_until:
            return self._value
        return self._reload(now, forced=False)

    def refresh_now(self) -> T:
        """Re-fetch at once unless a fetch happened within `min_refetch_interval`; returns the current value."""
        return self._reload(self._clock.now(), forced=True)

    def _fetch_needed(self, now: dt.datetime, *, forced: bool) -> bool:
        recently = self._last_attempt is not None and now - self._last_attempt < self._min_refetch
        due = self._fresh_until is None or now >= self._fresh_until
        # A failing or hammered source is asked at most once per min_refetch_interval.
        return not (recently or (self._value is not None and not forced and not due))

    def _reload(self, now: dt.datetime, *, forced: bool) -> T:
        if not waiting_allowed():  # on an event loop: answer from what is held, or say it would wait
            if not self._lock.acquire(blocking=False):
                raise WouldWait
            try:
                if not self._fetch_needed(now, forced=forced):
                    return self._usable(now)
            finally:
                self._lock.release()
            raise WouldWait
        with self._lock:
            if not self._fetch_needed(now, forced=forced):
                return self._usable(now)
            self._last_attempt = now
            try:
                value = self._parse(self._fetch())
            except (
                Unavailable,
                CredentialInvalid,
                InvalidRequest,
                OSError,
                httpx.HTTPError,
                ValueError,
                TypeError,
                RecursionError,
            ):
                if self._value is None:
                    raise Unavailable(
                        "a configured key set could not be loaded", details={"reason": "key_set_unavailable"}
                    ) from None
                return self._usable(now)
            self._value = value
            self._loaded_at = now
            self._fresh_until = now + self._refresh_after(value)
            return value

    def _usable(self, now: dt.datetime) -> T:
        if self._value is None or self._loaded_at is None:
            raise Unavailable("a configured key set could not be loaded", details={"reason": "key_set_unavailable"})
        if now - self._loaded_at > self._max_stale:
            raise Unavailable("a configured key set is too stale to use", details={"reason": "key_set_stale"})
        return self._value

    def _fetch(self) -> Mapping[str, Any]:
        if self._url is None:
            with Path(self._location).open("rb") as handle:
                raw = handle.read(self._max_bytes + 1)
        else:
            client = self._http or httpx.Client(timeout=5.0, follow_redirects=False)
            try:
                response = client.get(self._url, headers={"Accept": "application/json"})
                raw = response.content[: self._max_bytes + 1]
                if response.status_code != 200:  # noqa: PLR2004
                    msg = f"HTTP {response.status_code}"
                    raise ValueError(msg)
            finally:
                if self._http is None:
                    client.close()
        if len(raw) > self._max_bytes:
            msg = "key set too large"
            raise ValueError(msg)
        document = _STRICT_JSON.decode(raw.decode("utf-8"))
        if not isinstance(document, dict):
            msg = "key set is not a JSON object"
            raise TypeError(msg)
        return document
