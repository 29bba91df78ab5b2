"""Attest workload evidence: pick the attestor for its kind, bound its lifetime, and accept each `jti` once.

Replay rule: evidence that carries a `jti` is accepted once per (issuer, `jti`) within its lifetime.
`attest` enforces it at once through the ReplayGuard; `verify` checks everything else and leaves the
single use to the caller's own transaction (`WorkloadIdentity.single_use`): issuance spends it in the
transaction that records the credential, so a use is spent exactly when a credential is issued, with
one commit for both. Evidence without a `jti` (Kubernetes service-account tokens, some CI tokens)
cannot be tracked, so it is replayable by whoever holds it until it expires; `max_evidence_lifetime`
(default 10 minutes) caps that window: evidence whose `exp` lies further than that past its `iat` (or
past now, without `iat`) is refused.

`verify_deferred` is `verify` with the evidence signature left to run (ADR 0015): every other check,
the lifetime bound included, has passed when it returns, and the returned DeferredCheck must pass
before anything is written, spent or signed on the identity. The event-loop door of issuance uses it
so the signature is checked in the batch's leading thread, where its release of the GIL stalls no loop.

Failures raise AttestationFailed with `details["reason"]`: `unsupported_evidence_kind`, `lifetime_too_long`,
`replayed`, or the attestor's own reason.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterable, Mapping
from typing import Final

from remit.core.attestation.models import DeferredCheck, Evidence, EvidenceKind, WorkloadIdentity
from remit.core.attestation.ports import Attestor, ReplayGuard
from remit.core.clock import Clock
from remit.errors import AttestationFailed, InvalidRequest

__all__ = ["DEFAULT_MAX_EVIDENCE_LIFETIME", "AttestationService"]

DEFAULT_MAX_EVIDENCE_LIFETIME: Final = dt.timedelta(minutes=10)


class AttestationService:
    """Evidence → verified WorkloadIdentity, single use where the evidence allows it."""

    def __init__(
        self,
        attestors: Iterable[Attestor],
        *,
        replay_guard: ReplayGuard,
        clock: Clock,
        max_evidence_lifetime: dt.timedelta = DEFAULT_MAX_EVIDENCE_LIFETIME,
    ) -> None:
        by_kind: dict[EvidenceKind, Attestor] = {}
        for attestor in attestors:
            if attestor.kind in by_kind:
                raise InvalidRequest(f"two attestors for evidence kind {attestor.kind}", field="attestors")
            by_kind[attestor.kind] = attestor
        if max_evidence_lifetime <= dt.timedelta(0):
            raise InvalidRequest("max_evidence_lifetime must be positive", field="max_evidence_lifetime")
        self._attestors: Mapping[EvidenceKind, Attestor] = by_kind
        self._replay_guard = replay_guard
        self._clock = clock
        self._max_lifetime = max_evidence_lifetime

    @property
    def kinds(self) -> frozenset[EvidenceKind]:
        """The evidence kinds this service can verify (those with a configured attestor)."""
        return frozenset(self._attestors)

    def attest(self, evidence: Evidence) -> WorkloadIdentity:
        """Verify `evidence` and spend its single use now (`replayed` the second time)."""
        identity = self.verify(evidence)
        # Checked last, so evidence refused for any other reason does not use up its jti.
        use = identity.single_use
        if use is not None and not self._replay_guard.first_use(use.namespace, use.jti, use.expires_at):
            raise AttestationFailed(details={"reason": "replayed"})
        return identity

    def verify(self, evidence: Evidence) -> WorkloadIdentity:
        """Verify `evidence` without spending its single use: the caller must record `single_use` atomically."""
        identity, check = self.verify_deferred(evidence)
        check()
        return identity

    def verify_deferred(self, evidence: Evidence) -> tuple[WorkloadIdentity, DeferredCheck]:
        """`verify` but for the signature, returned as a check that must pass before the identity is used."""
        attestor = self._attestors.get(evidence.kind)
        if attestor is None:
            raise AttestationFailed(details={"reason": "unsupported_evidence_kind"})
        now = self._clock.now()
        identity, check = attestor.attest_deferred(evidence, now=now)
        start = identity.issued_at if identity.issued_at is not None and identity.issued_at <= now else now
        if identity.expires_at - start > self._max_lifetime:
            raise AttestationFailed(details={"reason": "lifetime_too_long"})
        return identity, check
