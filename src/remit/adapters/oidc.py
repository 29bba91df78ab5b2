"""Attestor for OIDC workload tokens (Kubernetes service accounts, CI systems) from configured issuers.

Each issuer is configured explicitly (no discovery, no dynamic issuers): its issuer URL (compared exactly with the
token's `iss`), its JWKS (a file or an https URL; cached, refreshed every `refresh_interval`, and re-fetched early,
at most once per `min_refetch_interval`, when a token names an unknown `kid`), the audience Remit requires, the
allowed algorithms (asymmetric only; never `none` or HMAC), the allowed `typ` values (absent is always accepted,
as Kubernetes omits it), and optional `bound_claims`: claim values that must match exactly, value and type (a key
starting with `/` is an RFC 6901 JSON pointer into nested claims, e.g. `/kubernetes.io/namespace`).

The identity is `oidc:<issuer>#<sub>`, the registry's `WorkloadBinding.key` for an OIDC-bound agent.

Checks, in order: parse → `iss` known (`unknown_issuer`) → `alg` allowed → `kid` in the issuer's JWKS → `typ` →
`aud` → `exp` (required) / `nbf` / `iat` → `sub` → `bound_claims` (`bound_claims_mismatch`) → signature (last:
`attest_deferred` returns it as a DeferredCheck, ADR 0015; `attest` runs it at once). Every failure
raises AttestationFailed with `details["reason"]`; a JWKS that cannot be loaded at all raises Unavailable.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import httpx

from remit.adapters.jose import (
    DEFAULT_LEEWAY,
    FORBIDDEN_ALGORITHMS,
    KeySetCache,
    VerificationKey,
    check_audience,
    check_times,
    import_public_jwk,
    parse_compact,
)
from remit.adapters.jws_evidence import JwsEvidenceAttestor, optional_jti, refused, signature_check
from remit.core.attestation.models import MAX_EVIDENCE_BYTES, DeferredCheck, EvidenceKind, WorkloadIdentity
from remit.core.clock import Clock
from remit.core.registry.models import OidcSubject
from remit.errors import CredentialInvalid, InvalidRequest

__all__ = ["DEFAULT_OIDC_ALGORITHMS", "OidcAttestor", "OidcIssuer", "parse_jwks"]

DEFAULT_OIDC_ALGORITHMS: Final = ("RS256", "ES256")
_SUPPORTED: Final = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_MISSING: Final = object()


@dataclass(frozen=True, slots=True, kw_only=True)
class OidcIssuer:
    """One trusted OIDC issuer: where its keys are and what its tokens must say to be accepted."""

    issuer: str
    jwks: str
    audience: str
    bound_claims: Mapping[str, Any] = field(default_factory=dict)
    algorithms: tuple[str, ...] = DEFAULT_OIDC_ALGORITHMS
    allowed_typ: tuple[str, ...] = ("JWT",)

    def __post_init__(self) -> None:
        OidcSubject.parse(self.issuer, "subject", field="oidc_issuers")
        if not self.audience:
            raise InvalidRequest("an OIDC issuer needs a required audience", field="oidc_issuers.audience")
        algorithms = set(self.algorithms)
        if not algorithms or algorithms & FORBIDDEN_ALGORITHMS or not algorithms <= _SUPPORTED:
            raise InvalidRequest("OIDC algorithms must be asymmetric JWS algorithms", field="oidc_issuers.algorithms")
        object.__setattr__(self, "bound_claims", MappingProxyType(dict(self.bound_claims)))


def parse_jwks(document: Mapping[str, Any]) -> Mapping[str, VerificationKey]:
    """Signing keys of a JWK Set by `kid`: entries with `use` absent or `sig` and a `kid`; others are ignored."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        msg = "a JWK Set needs a keys array"
        raise TypeError(msg)
    keys: dict[str, VerificationKey] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or not kid or kid in keys:
            continue
        try:
            keys[kid] = import_public_jwk(entry)
        except CredentialInvalid:
            continue
    return MappingProxyType(keys)


def _claim(claims: Mapping[str, Any], name: str) -> object:
    if not name.startswith("/"):
        return claims.get(name, _MISSING)
    current: object = claims
    for token in name[1:].split("/"):
        part = token.replace("~1", "/").replace("~0", "~")
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return _MISSING
    return current


def _matches(actual: object, expected: object) -> bool:
    # Exact: same JSON type and value, so "true" never matches true and 1 never matches 1.0 or True.
    return type(actual) is type(expected) and actual == expected


class OidcAttestor(JwsEvidenceAttestor):
    """Verifies OIDC workload tokens from the configured issuers."""

    def __init__(  # noqa: PLR0913 - each knob is a documented security bound
        self,
        issuers: Iterable[OidcIssuer],
        *,
        clock: Clock,
        http: httpx.Client | None = None,
        leeway: dt.timedelta = DEFAULT_LEEWAY,
        single_audience: bool = True,
        refresh_interval: dt.timedelta = dt.timedelta(minutes=15),
        min_refetch_interval: dt.timedelta = dt.timedelta(seconds=30),
        max_stale: dt.timedelta = dt.timedelta(hours=6),
        allow_http_loopback: bool = False,
    ) -> None:
        self._leeway = leeway
        self._single_audience = single_audience
        self._issuers: dict[str, tuple[OidcIssuer, KeySetCache[Mapping[str, VerificationKey]]]] = {}
        for issuer in issuers:
            if issuer.issuer in self._issuers:
                raise InvalidRequest("an OIDC issuer is configured twice", field="oidc_issuers.issuer")
            cache = KeySetCache(
                issuer.jwks,
                parse=parse_jwks,
                refresh_after=lambda _keys: refresh_interval,
                clock=clock,
                http=http,
                min_refetch_interval=min_refetch_interval,
                max_stale=max_stale,
                allow_http_loopback=allow_http_loopback,
            )
            self._issuers[issuer.issuer] = (issuer, cache)

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.OIDC

    @property
    def issuers(self) -> frozenset[str]:
        return frozenset(self._issuers)

    def _attest(self, token: str, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]:
        jws = parse_compact(token, max_bytes=MAX_EVIDENCE_BYTES)
        header, claims = jws.header, jws.payload
        iss = claims.get("iss")
        configured = self._issuers.get(iss) if isinstance(iss, str) else None
        if configured is None or not isinstance(iss, str):
            raise refused("unknown_issuer")
        issuer, keys = configured
        if jws.alg not in issuer.algorithms:
            raise refused("alg_not_allowed")
        key = self._key(keys, jws.kid)
        if "typ" in header and header["typ"] not in issuer.allowed_typ:
            raise refused("wrong_typ")
        check_audience(claims, issuer.audience, single=self._single_audience)
        expires_at, issued_at = check_times(claims, now=now, leeway=self._leeway)
        subject = claims.get("sub")
        try:
            identity = OidcSubject.parse(iss, subject if isinstance(subject, str) else "")
        except InvalidRequest:
            raise refused("bad_subject") from None
        for name, expected in issuer.bound_claims.items():
            if not _matches(_claim(claims, name), expected):
                raise refused("bound_claims_mismatch")
        workload = WorkloadIdentity.for_oidc(
            identity, claims=claims, jti=optional_jti(claims), issued_at=issued_at, expires_at=expires_at
        )
        return workload, signature_check(jws, key)

    @staticmethod
    def _key(keys: KeySetCache[Mapping[str, VerificationKey]], kid: str | None) -> VerificationKey:
        if kid is None:
            raise refused("missing_kid")
        key = keys.current().get(kid)
        if key is None:
            key = keys.refresh_now().get(kid)  # the issuer may have rotated; rate-limited
        if key is None:
            raise refused("unknown_kid")
        return key
