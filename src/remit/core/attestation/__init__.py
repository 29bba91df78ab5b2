"""Workload attestation: turn a JWT-SVID or OIDC token into a verified, single-use workload identity."""

from remit.core.attestation.models import DeferredCheck, Evidence, EvidenceKind, EvidenceUse, WorkloadIdentity
from remit.core.attestation.ports import Attestor, ReplayGuard
from remit.core.attestation.service import DEFAULT_MAX_EVIDENCE_LIFETIME, AttestationService

__all__ = [
    "DEFAULT_MAX_EVIDENCE_LIFETIME",
    "AttestationService",
    "Attestor",
    "DeferredCheck",
    "Evidence",
    "EvidenceKind",
    "EvidenceUse",
    "ReplayGuard",
    "WorkloadIdentity",
]
