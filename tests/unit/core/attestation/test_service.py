"""AttestationService: attestor selection by kind, evidence lifetime bound, single use of jti."""

from __future__ import annotations

import datetime as dt

from dataclasses import dataclass

import pytest

from remit.adapters.jose import MemoryReplayGuard
from remit.core.attestation import AttestationService, DeferredCheck, Evidence, EvidenceKind, WorkloadIdentity
from remit.core.registry.models import SpiffeId
from remit.errors import AttestationFailed, InvalidRequest
from remit.testing import FrozenClock


@dataclass
class FixedAttestor:
    """An Attestor that vouches for one SPIFFE ID with the given jti and lifetime (a real port implementation)."""

    clock: FrozenClock
    jti: str | None = "j-1"
    lifetime: dt.timedelta = dt.timedelta(minutes=5)
    issued_ago: dt.timedelta | None = dt.timedelta(0)
    calls: int = 0

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.JWT_SVID

    def attest(self, evidence: Evidence, *, now: dt.datetime) -> WorkloadIdentity:  # noqa: ARG002 - fixed answer
        self.calls += 1
        issued = None if self.issued_ago is None else now - self.issued_ago
        return WorkloadIdentity.for_spiffe(
            SpiffeId.parse("spiffe://acme.example/agents/bot"),
            claims={"sub": "spiffe://acme.example/agents/bot"},
            jti=self.jti,
            issued_at=issued,
            expires_at=(issued or now) + self.lifetime,
        )

    def attest_deferred(self, evidence: Evidence, *, now: dt.datetime) -> tuple[WorkloadIdentity, DeferredCheck]:
        return self.attest(evidence, now=now), DeferredCheck.done()


def service(attestor: FixedAttestor, clock: FrozenClock, **kwargs: dt.timedelta) -> AttestationService:
    return AttestationService([attestor], replay_guard=MemoryReplayGuard(clock=clock), clock=clock, **kwargs)


def evidence() -> Evidence:
    return Evidence(EvidenceKind.JWT_SVID, "header.payload.signature")


def test_evidence_is_accepted_once_per_jti(clock: FrozenClock) -> None:
    """The same jti is refused the second time (reason replayed) while it is unexpired."""
    attestation = service(FixedAttestor(clock), clock)
    assert attestation.attest(evidence()).binding_key == "spiffe://acme.example/agents/bot"
    with pytest.raises(AttestationFailed) as caught:
        attestation.attest(evidence())
    assert caught.value.details == {"reason": "replayed"}


def test_evidence_without_jti_is_accepted_within_its_lifetime(clock: FrozenClock) -> None:
    """Without a jti nothing can be tracked: the evidence is accepted again (documented replay window)."""
    attestation = service(FixedAttestor(clock, jti=None), clock)
    attestation.attest(evidence())
    attestation.attest(evidence())


@pytest.mark.parametrize("issued_ago", [dt.timedelta(0), None])
def test_evidence_living_longer_than_the_maximum_is_refused(
    clock: FrozenClock, issued_ago: dt.timedelta | None
) -> None:
    """An exp more than max_evidence_lifetime after iat (or now) is refused: lifetime_too_long."""
    attestor = FixedAttestor(clock, lifetime=dt.timedelta(minutes=11), issued_ago=issued_ago)
    with pytest.raises(AttestationFailed) as caught:
        service(attestor, clock).attest(evidence())
    assert caught.value.details == {"reason": "lifetime_too_long"}
    longer = service(attestor, clock, max_evidence_lifetime=dt.timedelta(minutes=15))
    assert longer.attest(evidence()).jti == "j-1"


def test_a_kind_without_attestor_is_refused(clock: FrozenClock) -> None:
    """OIDC evidence with only a JWT-SVID attestor configured fails with unsupported_evidence_kind."""
    with pytest.raises(AttestationFailed) as caught:
        service(FixedAttestor(clock), clock).attest(Evidence(EvidenceKind.OIDC, "a.b.c"))
    assert caught.value.details == {"reason": "unsupported_evidence_kind"}


def test_evidence_never_shows_its_token() -> None:
    """The raw token is left out of repr, so it cannot leak into logs."""
    assert "header.payload.signature" not in repr(evidence())


def test_evidence_parse_validates_kind_and_size() -> None:
    """Unknown kinds and empty or oversized tokens are InvalidRequest."""
    assert Evidence.parse("oidc", "a.b.c").kind is EvidenceKind.OIDC
    for kind, token in (("x509", "a.b.c"), ("oidc", ""), ("oidc", "a" * 20_000)):
        with pytest.raises(InvalidRequest):
            Evidence.parse(kind, token)


def test_two_attestors_for_one_kind_are_a_configuration_error(clock: FrozenClock) -> None:
    """Each evidence kind has exactly one attestor."""
    with pytest.raises(InvalidRequest):
        AttestationService(
            [FixedAttestor(clock), FixedAttestor(clock)], replay_guard=MemoryReplayGuard(clock=clock), clock=clock
        )
