"""What the attestors of JWS evidence share: their two entry points, and the SPIFFE header checks.

JWT-SVIDs (`spiffe.py`), X.509-SVID assertions (`x509_svid.py`) and OIDC tokens (`oidc.py`) are each a
compact JWS checked in one `_attest(token, now)` that returns the identity and its deferred signature
check (ADR 0015). `attest` runs that check at once; both entry points turn the JOSE layer's refusals into
`AttestationFailed` with the same `details["reason"]`.
"""

from __future__ import annotations

import datetime as dt

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Final

from remit.adapters.jose import CompactJws, VerificationKey, verify_signature
from remit.core.attestation.models import DeferredCheck, Evidence, WorkloadIdentity
from remit.errors import AttestationFailed, CredentialExpired, CredentialInvalid

__all__ = [
    "SPIFFE_TYP",
    "JwsEvidenceAttestor",
    "check_signature",
    "check_spiffe_header",
    "optional_jti",
    "refused",
    "signature_check",
]

# The `typ` values the SPIFFE JWT-SVID spec allows (absent is allowed too).
SPIFFE_TYP: Final = frozenset({"JWT", "JOSE"})


def refused(reason: str) -> AttestationFailed:
    return AttestationFailed(details={"reason": reason})


class JwsEvidenceAttestor(ABC):
    """The entry points of an attestor whose evidence is a compact JWS; subclasses write `_attest`."""

    def attest(self, evidence: Evidence, *, now: dt.datetime) -> WorkloadIdentity:
        identity, check = self.attest_deferred(evidence, now=now)
        check()
        return identity

    def attest_deferred(self, evidence: Evidence, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]:
        try:
            return self._attest(evidence.token, now=now)
        except (CredentialInvalid, CredentialExpired) as exc:
            raise refused(str(exc.details.get("reason", "invalid"))) from None

    @abstractmethod
    def _attest(self, token: str, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]:
        """Every check but the signature; the signature as the returned DeferredCheck."""


def optional_jti(claims: Mapping[str, Any]) -> str | None:
    """The evidence's `jti` when it carries a non-empty string one (single use then applies), else None."""
    jti = claims.get("jti")
    return jti if isinstance(jti, str) and jti else None


def check_signature(jws: CompactJws, key: VerificationKey) -> None:
    """Refuse `bad_signature` unless `key` signed `jws`."""
    if not verify_signature(jws, key):
        raise refused("bad_signature")


def signature_check(jws: CompactJws, key: VerificationKey) -> DeferredCheck:
    """The deferred check of `jws`'s signature with `key`, the key chosen by the cheap checks."""
    return DeferredCheck(lambda: check_signature(jws, key))


def check_spiffe_header(jws: CompactJws, *, allowed: frozenset[str], algorithms: frozenset[str]) -> None:
    """Only `allowed` header members; `typ`, if present, a string in SPIFFE_TYP; `alg` in `algorithms`."""
    header = jws.header
    if not allowed.issuperset(header):
        raise refused("forbidden_header")
    typ = header.get("typ")
    if "typ" in header and (not isinstance(typ, str) or typ not in SPIFFE_TYP):
        raise refused("wrong_typ")
    if jws.alg not in algorithms:
        raise refused("alg_not_allowed")
