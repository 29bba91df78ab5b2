"""Task credentials: the RFC 9068 claims Remit issues, per-risk-class lifetimes, and what verification yields."""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from remit.core.registry.models import RiskClass
from remit.core.tasks.models import AuthorizationDetail, Task

__all__ = [
    "CLAIMS_VERSION",
    "DEFAULT_CLASS_MAXIMUM",
    "IssuedCredential",
    "Limits",
    "VerifiedCredential",
    "build_claims",
]

# `remit_ver` in every credential: claims only grow; an incompatible change is a new version.
CLAIMS_VERSION: Final = 1

# C08: a credential never outlives the shortest maximum of the risk classes it carries.
DEFAULT_CLASS_MAXIMUM: Final[Mapping[RiskClass, dt.timedelta]] = {
    RiskClass.READ: dt.timedelta(minutes=60),
    RiskClass.WRITE: dt.timedelta(minutes=15),
    RiskClass.DEPLOY: dt.timedelta(minutes=15),
    RiskClass.PAYMENT: dt.timedelta(minutes=5),
    RiskClass.EXPORT: dt.timedelta(minutes=5),
    RiskClass.ADMIN: dt.timedelta(minutes=5),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """Issuance limits, from settings; no limit here can be loosened by a caller."""

    class_maximum: Mapping[RiskClass, dt.timedelta] = field(default_factory=lambda: dict(DEFAULT_CLASS_MAXIMUM))
    max_delegation_depth: int = 2
    max_task_duration: dt.timedelta = dt.timedelta(hours=8)

    def ttl_for(self, classes: set[RiskClass]) -> dt.timedelta:
        return min(self.class_maximum[c] for c in classes) if classes else self.class_maximum[RiskClass.READ]


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    """A freshly signed credential; `token` goes to the agent once and is never stored or logged."""

    token: str
    jti: str
    task_id: str
    audience: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    scope: str
    dpop_bound: bool

    def expires_in(self) -> int:
        return max(int((self.expires_at - self.issued_at).total_seconds()), 0)


@dataclass(frozen=True, slots=True)
class VerifiedCredential:
    """What a verified, unrevoked credential says: who, which task, which scope, until when."""

    jti: str
    task_id: str
    agent_id: str
    subject: str
    client_id: str
    audience: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    details: tuple[AuthorizationDetail, ...]
    lineage: tuple[str, ...]
    epoch: int
    environment: str
    cnf_jkt: str | None
    claims: Mapping[str, Any]

    def allows(self, tool: str, action: str, resource: str) -> bool:
        return any(d.covers(tool, action, resource) for d in self.details)


def build_claims(  # noqa: PLR0913 - one parameter per RFC 9068 claim source
    *,
    issuer: str,
    task: Task,
    subject: str,
    agent_id: str,
    agent_identity: str,
    jti: str,
    issued_at: dt.datetime,
    expires_at: dt.datetime,
    act: Mapping[str, Any] | None,
    cnf_jkt: str | None,
) -> dict[str, Any]:
    """The claims of a task credential (RFC 9068 §2.2, RFC 8693 §4.1 `act`, RFC 9449 §6 `cnf`, RFC 9396)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": task.audience,
        "client_id": agent_identity,
        "iat": int(issued_at.timestamp()),
        "nbf": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
        "jti": jti,
        "scope": " ".join(sorted({f"{d.tool}:{a}" for d in task.details for a in d.actions})),
        "authorization_details": [d.as_json() for d in task.details],
        "txn": task.id,
        "remit_ver": CLAIMS_VERSION,
        "remit_agent": agent_id,
        "remit_env": task.environment,
        "remit_epoch": task.epoch,
    }
    if task.lineage:
        claims["remit_lineage"] = list(task.lineage)
    if act:
        claims["act"] = dict(act)
    if cnf_jkt:
        claims["cnf"] = {"jkt": cnf_jkt}
    return claims
