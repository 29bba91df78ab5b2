"""Attestation evidence and the verified workload identity it yields (SPIFFE JWT-SVID and X.509-SVID, OIDC tokens).

The identity's `binding_key` uses the same canonical form as `WorkloadBinding.key` in the registry
(`spiffe://<trust domain>/<path>` or `oidc:<issuer>#<subject>`), so finding the agent is one exact lookup.
"""

from __future__ import annotations

import datetime as dt
import threading

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from remit.core.registry.models import OidcSubject, SpiffeId, WorkloadBinding
from remit.errors import InvalidRequest

__all__ = ["MAX_EVIDENCE_BYTES", "DeferredCheck", "Evidence", "EvidenceKind", "WorkloadIdentity"]

# A JWT-SVID or a Kubernetes service-account token is 1-2 KB; anything far larger is not evidence.
MAX_EVIDENCE_BYTES = 16_384


class EvidenceKind(StrEnum):
    """The kinds of workload evidence Remit accepts; one attestor per kind."""

    JWT_SVID = "jwt_svid"
    X509_SVID = "x509_svid"  # a JWT assertion signed with the X.509-SVID's key, the SVID chain in `x5c` (ADR 0017)
    OIDC = "oidc"


@dataclass(frozen=True, slots=True)
class Evidence:
    """A workload's proof of identity as presented; the raw token is never shown in repr or logs."""

    kind: EvidenceKind
    token: str = field(repr=False)

    @classmethod
    def parse(cls, kind: str, token: str) -> Evidence:
        """Build evidence from wire values; an unknown kind or an empty or oversized token is InvalidRequest."""
        try:
            parsed_kind = EvidenceKind(kind)
        except ValueError:
            raise InvalidRequest("evidence kind must be jwt_svid, x509_svid or oidc", field="evidence.kind") from None
        if not token or len(token) > MAX_EVIDENCE_BYTES:
            raise InvalidRequest("evidence token is empty or too large", field="evidence.token")
        return cls(kind=parsed_kind, token=token)


@dataclass(frozen=True, slots=True)
class EvidenceUse:
    """The single-use key of one piece of evidence: `(namespace, jti)`, remembered until `expires_at`."""

    namespace: str
    jti: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadIdentity:
    """A verified workload identity: who (binding), vouched for by whom (issuer), and until when.

    `issuer` is the SPIFFE trust domain for JWT-SVIDs and the issuer URL for OIDC tokens; `claims` are the
    verified token claims (read-only); `jti` is None when the evidence carries none (then it is replayable
    within its short lifetime, see AttestationService).
    """

    kind: EvidenceKind
    binding: WorkloadBinding
    issuer: str
    subject: str
    claims: Mapping[str, Any]
    jti: str | None
    issued_at: dt.datetime | None
    expires_at: dt.datetime

    @property
    def binding_key(self) -> str:
        """The canonical identity string, equal to the registered agent's `WorkloadBinding.key`."""
        return self.binding.key

    @property
    def single_use(self) -> EvidenceUse | None:
        """The key that makes this evidence single use, or None when it carries no `jti` (see AttestationService)."""
        if self.jti is None:
            return None
        return EvidenceUse(f"evidence:{self.kind.value}:{self.issuer}", self.jti, self.expires_at)

    @classmethod
    def for_spiffe(
        cls,
        spiffe_id: SpiffeId,
        *,
        claims: Mapping[str, Any],
        jti: str | None,
        issued_at: dt.datetime | None,
        expires_at: dt.datetime,
        kind: EvidenceKind = EvidenceKind.JWT_SVID,
    ) -> WorkloadIdentity:
        """A SPIFFE workload's identity, from a JWT-SVID or an X.509-SVID assertion (`kind`)."""
        return cls(
            kind=kind,
            binding=WorkloadBinding(spiffe_id=spiffe_id),
            issuer=spiffe_id.trust_domain,
            subject=str(spiffe_id),
            claims=MappingProxyType(dict(claims)),
            jti=jti,
            issued_at=issued_at,
            expires_at=expires_at,
        )

    @classmethod
    def for_oidc(
        cls,
        subject: OidcSubject,
        *,
        claims: Mapping[str, Any],
        jti: str | None,
        issued_at: dt.datetime | None,
        expires_at: dt.datetime,
    ) -> WorkloadIdentity:
        return cls(
            kind=EvidenceKind.OIDC,
            binding=WorkloadBinding(oidc=subject),
            issuer=subject.issuer,
            subject=subject.subject,
            claims=MappingProxyType(dict(claims)),
            jti=jti,
            issued_at=issued_at,
            expires_at=expires_at,
        )


class DeferredCheck:
    """The evidence signature check, left to run later (ADR 0015): once, however often it is called.

    An attestor checks everything else at once and hands this back with the identity. Until it has
    run and passed, the identity is a claim, not a proof: nothing may be written, spent or signed on
    it. Calling it runs the check the first time and repeats the outcome (return, or the same
    AttestationFailed) on every later call, from any thread.
    """

    __slots__ = ("_check", "_error", "_lock", "_passed")

    def __init__(self, check: Callable[[], None] | None) -> None:
        self._check = check
        self._passed = check is None
        self._error: Exception | None = None
        self._lock = threading.Lock()

    @staticmethod
    def done() -> DeferredCheck:
        """A check that has already run and passed (evidence verified whole, up front); one shared instance."""
        return _PASSED

    @property
    def passed(self) -> bool:
        """Whether the check has run and passed."""
        return self._passed

    def __call__(self) -> None:
        if self._passed:
            return
        with self._lock:
            if self._error is None and self._check is not None:
                try:
                    self._check()
                except Exception as error:  # the attestor's refusal, repeated to every later caller  # noqa: BLE001
                    self._error = error
                else:
                    self._passed = True
                    self._check = None
            if self._error is not None:
                raise self._error


# Never runs anything, so one instance serves every caller whose evidence was verified whole.
_PASSED: Final = DeferredCheck(None)
