"""Attestor for SPIFFE JWT-SVIDs, verified against SPIFFE trust bundles (one per trust domain, never merged).

Standards: SPIFFE JWT-SVID (§2 header, §3 claims, §4 validation) and SPIFFE Trust Domain and Bundle (§4 the JWK
Set format). What is enforced:

* Bundles: a JWK Set per trust domain, loaded from a file or an https URL, cached and refreshed after
  `spiffe_refresh_hint` seconds when present (clamped to [min_refresh, max_refresh]), else after
  `default_refresh` (5 minutes, the spec's guidance). Only entries with `use: "jwt-svid"` and a `kid` are JWT
  authorities; entries with another or no `use`, or an unknown `kty`, are ignored as the spec requires. Entries with
  `use: "x509-svid"` and exactly one DER certificate in `x5c` are the X.509 authorities that X.509-SVID evidence
  chains to (`adapters/x509_svid.py`); both attestors read the same cached bundles. A bundle
  whose `keys` array is empty means the trust domain revoked its keys: every SVID from it is refused.
* Header: compact serialization only; only `alg`, `kid` and `typ`; `typ`, if present, is `JWT` or `JOSE`; `alg`
  in the allow-list (RS/ES/PS 256/384/512 as the JWT-SVID spec permits; never `none` or HMAC; EdDSA is not in the
  spec's list). `kid` is required here: bundle JWT authorities always carry one.
* Claims: `sub` is a workload SPIFFE ID whose trust domain selects the bundle (so a key of one trust domain can
  never vouch for another); `aud` contains Remit's audience (and only it unless `single_audience=False`);
  `exp` required; `nbf`/`iat` with bounded skew. `jti` is optional (single use is the service's job).

Failures raise AttestationFailed with `details["reason"]`: `malformed`, `oversized`, `duplicate_claim`,
`not_an_object`, `unsupported_crit`, `forbidden_header`, `wrong_typ`, `alg_not_allowed`, `bad_spiffe_id`,
`unknown_trust_domain`, `bundle_revoked`, `missing_kid`, `kid_wrong_use`, `unknown_kid`, `bad_signature`,
`missing_aud`, `wrong_aud`, `missing_claim`, `bad_claim`, `expired`, `not_yet_valid`, `iat_in_future`.
A bundle that cannot be loaded at all raises Unavailable.

The signature is checked last (`attest_deferred` returns it as a DeferredCheck, ADR 0015), so a
token that fails several checks reports a claim check's reason before `bad_signature`; `attest`
runs it at once.
"""

from __future__ import annotations

import base64
import datetime as dt

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

import httpx

from cryptography import x509

from remit.adapters.jose import (
    DEFAULT_LEEWAY,
    KeySetCache,
    VerificationKey,
    check_audience,
    check_times,
    import_public_jwk,
    parse_compact,
)
from remit.adapters.jws_evidence import JwsEvidenceAttestor, check_spiffe_header, optional_jti, refused, signature_check
from remit.core.attestation.models import MAX_EVIDENCE_BYTES, DeferredCheck, EvidenceKind, WorkloadIdentity
from remit.core.clock import Clock
from remit.core.registry.models import SpiffeId
from remit.errors import CredentialInvalid, InvalidRequest

__all__ = [
    "DEFAULT_BUNDLE_REFRESH",
    "JWT_SVID_ALGORITHMS",
    "BundleSource",
    "JwtSvidAttestor",
    "TrustBundle",
    "checked_algorithms",
    "der_certificate",
    "parse_bundle",
]

JWT_SVID_ALGORITHMS: Final = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
DEFAULT_BUNDLE_REFRESH: Final = dt.timedelta(minutes=5)
_JWT_SVID_USE: Final = "jwt-svid"
_X509_SVID_USE: Final = "x509-svid"
_ALLOWED_HEADERS: Final = frozenset({"alg", "kid", "typ"})


@dataclass(frozen=True, slots=True)
class BundleSource:
    """Where the bundle of one trust domain comes from: a file path or an https URL."""

    trust_domain: str
    location: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustBundle:
    """The JWT and X.509 authorities of one trust domain, parsed from a SPIFFE bundle (a JWK Set)."""

    trust_domain: str
    jwt_authorities: Mapping[str, VerificationKey]
    other_use_kids: frozenset[str]
    is_revoked: bool
    sequence: int | None = None
    refresh_hint: dt.timedelta | None = None
    x509_authorities: tuple[x509.Certificate, ...] = ()


def parse_bundle(trust_domain: str, document: Mapping[str, Any]) -> TrustBundle:
    """Parse a SPIFFE bundle (Trust Domain and Bundle §4); a document without a `keys` array is TypeError."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        msg = "a SPIFFE bundle needs a keys array"
        raise TypeError(msg)
    authorities: dict[str, VerificationKey] = {}
    certificates: list[x509.Certificate] = []
    other_use: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        if entry.get("use") == _X509_SVID_USE:
            certificate = _x509_authority(entry)
            if certificate is not None:
                certificates.append(certificate)
        if entry.get("use") != _JWT_SVID_USE:
            # §4.2.1: an entry with an unknown or missing `use` is ignored.
            if isinstance(kid, str):
                other_use.add(kid)
            continue
        if not isinstance(kid, str) or not kid or kid in authorities:
            continue
        try:
            authorities[kid] = import_public_jwk(entry)
        except CredentialInvalid:
            continue  # an unknown `kty` or a malformed key is ignored, not fatal
    hint = document.get("spiffe_refresh_hint")
    sequence = document.get("spiffe_sequence")
    return TrustBundle(
        trust_domain=trust_domain,
        jwt_authorities=authorities,
        other_use_kids=frozenset(other_use - set(authorities)),
        is_revoked=not entries,
        x509_authorities=tuple(certificates),
        sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
        refresh_hint=(
            dt.timedelta(seconds=hint) if isinstance(hint, int) and not isinstance(hint, bool) and hint > 0 else None
        ),
    )


def checked_algorithms(algorithms: Iterable[str], audience: str, *, evidence: str) -> frozenset[str]:
    """A SPIFFE attestor's settings: `algorithms` from the JWT-SVID spec's list, and an `audience` to require."""
    chosen = frozenset(algorithms)
    if not chosen <= set(JWT_SVID_ALGORITHMS):
        msg = f"{evidence} algorithms must come from the JWT-SVID spec's list"
        raise InvalidRequest(msg, field="algorithms")
    if not audience:
        raise InvalidRequest("an audience is required", field="audience")
    return chosen


def der_certificate(entry: str) -> x509.Certificate:
    """A JOSE `x5c` entry: standard base64 (not base64url) of a DER certificate; ValueError when it is not one."""
    return x509.load_der_x509_certificate(base64.b64decode(entry, validate=True))  # binascii.Error is a ValueError


def _x509_authority(entry: Mapping[str, Any]) -> x509.Certificate | None:
    """The CA certificate of an `x509-svid` entry (`x5c`: exactly one, base64 DER); a malformed entry is ignored."""
    chain = entry.get("x5c")
    if not isinstance(chain, list) or len(chain) != 1 or not isinstance(chain[0], str):
        return None
    try:
        return der_certificate(chain[0])
    except ValueError:
        return None


class JwtSvidAttestor(JwsEvidenceAttestor):
    """Verifies JWT-SVIDs for Remit's audience against the configured trust bundles."""

    def __init__(  # noqa: PLR0913 - each knob is a documented security bound
        self,
        sources: Iterable[BundleSource],
        *,
        audience: str,
        clock: Clock,
        http: httpx.Client | None = None,
        algorithms: Iterable[str] = JWT_SVID_ALGORITHMS,
        leeway: dt.timedelta = DEFAULT_LEEWAY,
        single_audience: bool = True,
        default_refresh: dt.timedelta = DEFAULT_BUNDLE_REFRESH,
        min_refresh: dt.timedelta = dt.timedelta(seconds=10),
        max_refresh: dt.timedelta = dt.timedelta(days=1),
        max_stale: dt.timedelta = dt.timedelta(hours=1),
        allow_http_loopback: bool = False,
    ) -> None:
        self._algorithms = checked_algorithms(algorithms, audience, evidence="JWT-SVID")
        self._audience = audience
        self._leeway = leeway
        self._single_audience = single_audience

        def refresh_after(bundle: TrustBundle) -> dt.timedelta:
            hint = bundle.refresh_hint or default_refresh
            return max(min_refresh, min(hint, max_refresh))

        self._bundles: dict[str, KeySetCache[TrustBundle]] = {}
        for source in sources:
            try:
                domain = SpiffeId.parse(f"spiffe://{source.trust_domain}/x").trust_domain
            except InvalidRequest:
                raise InvalidRequest("not a SPIFFE trust domain", field="trust_bundles.trust_domain") from None
            if domain in self._bundles:
                raise InvalidRequest("one bundle per trust domain", field="trust_bundles.trust_domain")
            self._bundles[domain] = KeySetCache(
                source.location,
                parse=lambda document, domain=domain: parse_bundle(domain, document),  # type: ignore[misc]
                refresh_after=refresh_after,
                clock=clock,
                http=http,
                min_refetch_interval=min_refresh,
                max_stale=max_stale,
                allow_http_loopback=allow_http_loopback,
            )

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.JWT_SVID

    @property
    def trust_domains(self) -> frozenset[str]:
        return frozenset(self._bundles)

    @property
    def bundles(self) -> Mapping[str, KeySetCache[TrustBundle]]:
        """The cached bundle of each trust domain, for the X.509-SVID attestor to share (one fetch, one refresh)."""
        return MappingProxyType(self._bundles)

    def _attest(self, token: str, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]:
        jws = parse_compact(token, max_bytes=MAX_EVIDENCE_BYTES)
        claims = jws.payload
        check_spiffe_header(jws, allowed=_ALLOWED_HEADERS, algorithms=self._algorithms)
        subject = claims.get("sub")
        try:
            spiffe_id = SpiffeId.parse(subject if isinstance(subject, str) else "")
        except InvalidRequest:
            raise refused("bad_spiffe_id") from None
        source = self._bundles.get(spiffe_id.trust_domain)
        if source is None:
            raise refused("unknown_trust_domain")
        kid = jws.kid
        if kid is None:
            raise refused("missing_kid")
        key = self._authority(source, kid)
        check_audience(claims, self._audience, single=self._single_audience)
        expires_at, issued_at = check_times(claims, now=now, leeway=self._leeway)
        identity = WorkloadIdentity.for_spiffe(
            spiffe_id, claims=claims, jti=optional_jti(claims), issued_at=issued_at, expires_at=expires_at
        )
        # The key is the trust domain's authority named by `kid`, chosen above: only the check is left.
        return identity, signature_check(jws, key)

    def _authority(self, source: KeySetCache[TrustBundle], kid: str) -> VerificationKey:
        bundle = source.current()
        key = bundle.jwt_authorities.get(kid)
        if key is None and not bundle.is_revoked and kid not in bundle.other_use_kids:
            bundle = source.refresh_now()  # a new authority may have been added since the last refresh
            key = bundle.jwt_authorities.get(kid)
        if bundle.is_revoked:
            raise refused("bundle_revoked")
        if key is None:
            raise refused("kid_wrong_use" if kid in bundle.other_use_kids else "unknown_kid")
        return key
