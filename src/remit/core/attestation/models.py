"""Attestation evidence and the verified workload identity it yields (SPIFFE JWT-SVID, OIDC workload tokens).

The identity's `binding_key` uses the same canonical form as `WorkloadBinding.key` in the registry
(`spiffe://<trust domain>/<path>` or `oidc:<issuer>#<subject>`), so finding the agent is one exact lookup.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from remit.core.registry.models import OidcSubject, SpiffeId, WorkloadBinding
from remit.errors import InvalidRequest

__all__ = ["MAX_EVIDENCE_BYTES", "Evidence", "EvidenceKind", "WorkloadIdentity"]

# A JWT-SVID or a Kubernetes service-account token is 1-2 KB; anything far larger is not evidence.
MAX_EVIDENCE_BYTES = 16_384


class EvidenceKind(StrEnum):
    """The kinds of workload evidence Remit accepts; one attestor per kind."""

    JWT_SVID = "jwt_svid"
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
            raise InvalidRequest("evidence kind must be jwt_svid or oidc", field="evidence.kind") from None
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
    ) -> WorkloadIdentity:
        return cls(
            kind=EvidenceKind.JWT_SVID,
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
