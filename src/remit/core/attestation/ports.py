"""Ports of the attestation feature: one Attestor per evidence kind, and the ReplayGuard for single use."""

from __future__ import annotations

import datetime as dt

from typing import Protocol

from remit.core.attestation.models import DeferredCheck, Evidence, EvidenceKind, WorkloadIdentity

__all__ = ["Attestor", "ReplayGuard"]


class Attestor(Protocol):
    """Verifies one kind of evidence against its trust anchors (SPIFFE bundles, OIDC issuers).

    `attest` raises AttestationFailed with `details["reason"]` naming the failed check (never the token), or
    Unavailable when its trust anchors cannot be loaded at all.

    `attest_deferred` runs every check but the signature's and returns it as a DeferredCheck (ADR 0015),
    for a caller that runs it off the event loop before anything is written; `attest` is
    `attest_deferred` with the check run at once (one implementation, the same outcome).
    """

    @property
    def kind(self) -> EvidenceKind: ...

    def attest(self, evidence: Evidence, *, now: dt.datetime) -> WorkloadIdentity: ...

    def attest_deferred(self, evidence: Evidence, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]: ...


class ReplayGuard(Protocol):
    """Remembers identifiers (`jti`) until they expire so each is accepted once.

    `first_use` returns True the first time `(namespace, jti)` is seen before `expires_at`, False on every later
    call until then. It must be atomic across every replica that shares it (the SQL implementation uses a unique
    key); it raises Unavailable when it cannot remember, and callers then refuse (fail closed).
    """

    def first_use(self, namespace: str, jti: str, expires_at: dt.datetime) -> bool: ...
