"""A decision stack on the real credential stack: real tokens, real revocation, a real audit log."""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.unit.core.credentials.conftest import HMAC_KEY, Stack, declaration, make_stack, workload

from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.engine import SqlDatabase
from remit.core.audit.models import AuditActor, AuditEvent, SealedRecord
from remit.core.audit.service import AuditLog
from remit.core.authorization.facts import CachedFacts
from remit.core.authorization.models import AccessRequest, Elevation, PolicyRequest, PolicyResult
from remit.core.authorization.ports import ElevationView
from remit.core.authorization.service import DecisionService
from remit.core.authorization.strikes import AuditObjectiveStrikes
from remit.core.credentials.issuance import TaskDeclaration
from remit.core.credentials.models import IssuedCredential
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.service import RegistryService
from remit.core.tasks.models import Task, parse_authorization_details
from remit.testing import FrozenClock

AUDIT_KEY = HMAC_KEY.ljust(32, b"-")


@dataclass
class FixedPolicies:
    """A stand-in for the policy engine with a rule in Python: guardrail tests must hold whatever it says."""

    rule: Callable[[PolicyRequest], bool] = lambda _request: True
    version: int | None = 1
    errors: tuple[str, ...] = ()
    seen: list[PolicyRequest] = field(default_factory=list)

    def evaluate(self, request: PolicyRequest) -> PolicyResult:
        self.seen.append(request)
        if self.errors:
            return PolicyResult(allowed=False, errors=self.errors)
        allowed = self.rule(request)
        return PolicyResult(allowed=allowed, policy_ids=("test@1",) if allowed else ())


@dataclass
class SingleUseElevations:
    """Elevations granted by the test, each usable once: the contract the approvals issue implements."""

    live: list[Elevation] = field(default_factory=list)
    # What each elevation was approved for beyond the call itself: (task epoch, request facts).
    approved_for: dict[str, tuple[int, dict[str, str | int | bool]]] = field(default_factory=dict)

    def find(
        self,
        *,
        task_id: str,
        epoch: int,
        tool: str,
        action: str,
        resource: str,
        context: Mapping[str, str | int | bool],
    ) -> Elevation | None:
        return next(
            (
                e
                for e in self.live
                if (e.task_id, e.tool, e.action, e.resource) == (task_id, tool, action, resource)
                and self.approved_for.get(e.id, (0, {})) == (epoch, dict(context))
            ),
            None,
        )

    def consume(self, elevation: ElevationView) -> bool:
        if elevation in self.live:
            self.live.remove(elevation)
            return True
        return False


@dataclass
class _Appender:
    database: SqlDatabase

    def append(self, event: AuditEvent) -> SealedRecord:
        with self.database.transaction() as tx:
            return tx.audit.append(event)


@dataclass
class DecisionStack:
    stack: Stack
    service: DecisionService
    policies: FixedPolicies
    elevations: SingleUseElevations
    audit: AuditLog
    facts: CachedFacts

    @property
    def clock(self) -> FrozenClock:
        return self.stack.clock

    def start(self, **overrides: object) -> tuple[Task, IssuedCredential]:
        return self.stack.issuance.start_task(workload(), declaration(**overrides))

    def request(self, token: str, **overrides: object) -> AccessRequest:
        values: dict[str, object] = {
            "token": token,
            "audience": "tool:github",
            "tool": "github",
            "action": "read_file",
            "resource": "repo:acme/docs",
        }
        values.update(overrides)
        return AccessRequest(**values)  # type: ignore[arg-type]

    def records(self, event_type: str = "decision.made") -> list[SealedRecord]:
        return [r for r in self.audit.page(limit=5000, types=(event_type,)).records if isinstance(r, SealedRecord)]


def wide_declaration(**overrides: object) -> TaskDeclaration:
    """A task that may read and merge in the docs repositories."""
    details = parse_authorization_details(
        [
            {"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs*"]},
            {"type": "remit_tool", "tool": "github", "actions": ["merge_pr"], "resources": ["repo:acme/docs*"]},
        ]
    )
    return declaration(details=details, **overrides)


@pytest.fixture
def decisions(
    database: SqlDatabase,
    clock: FrozenClock,
    ids: SequentialIdFactory,
    bus: InProcessEventBus,
    registry: RegistryService,
    tmp_path: Path,
) -> DecisionStack:
    stack = make_stack(database, clock, ids, bus, registry, tmp_path / "keys")
    audit = AuditLog(
        appender=_Appender(database), ledger=SqlAuditLedger(database.engine), clock=clock, hmac_key=AUDIT_KEY
    )
    facts = CachedFacts(database.transaction, ttl=dt.timedelta(seconds=2))
    facts.subscribe(bus)
    policies = FixedPolicies()
    elevations = SingleUseElevations()

    def end_task(task_id: str, *, reason: str) -> None:
        stack.tasks.revoke(task_id, reason=reason, actor=AuditActor.system())

    service = DecisionService(
        verifier=stack.verifier,
        facts=facts,
        policies=policies,
        elevations=elevations,
        audit=audit,
        strikes=AuditObjectiveStrikes(audit),
        end_task=end_task,
        clock=clock,
        ids=ids,
    )
    return DecisionStack(stack, service, policies, elevations, audit, facts)
