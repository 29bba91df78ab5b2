"""`decide()`: guardrails, then Cedar, then a durable audit record, then the answer.

A deny is a value; an exception while deciding is a deny too (ARCHITECTURE §6.3). The only
exception `decide` lets out is `AuditUnavailable`: without a durable record there is no answer,
and the enforcement point must not act (record before you act).
"""

from __future__ import annotations

import logging

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from remit.core.attestation.waiting import WouldWait
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.authorization import guardrails as g
from remit.core.authorization.facts import CachedFacts
from remit.core.authorization.models import (
    AccessRequest,
    Decision,
    Effect,
    PolicyRequest,
    Reason,
    ReasonKind,
    ResolvedInputs,
)
from remit.core.authorization.ports import (
    ApprovalRequests,
    Elevations,
    ElevationView,
    ObjectiveStrikes,
    PolicyEvaluator,
    TaskEnder,
)
from remit.core.authorization.strikes import DECISION_EVENT
from remit.core.clock import Clock
from remit.core.credentials.models import VerifiedCredential
from remit.core.credentials.verification import Verifier
from remit.core.ids import IdFactory
from remit.core.registry.models import Tool
from remit.core.registry.patterns import matches
from remit.errors import AuditUnavailable, ErrorCode, RemitError, Unauthenticated, Unavailable

__all__ = [
    "DEFAULT_STRIKE_THRESHOLD",
    "DecisionAudit",
    "DecisionService",
    "Evaluation",
    "PendingDecision",
    "policy_outcome",
]

_log = logging.getLogger("remit.decisions")

DEFAULT_STRIKE_THRESHOLD: Final = 3
_MAX_FINGERPRINTS: Final = 50_000
# The reason id when no permit policy matched (Cedar's default deny).
DEFAULT_DENY: Final = "default_deny"


class DecisionAudit(Protocol):
    """What the decision path needs of the audit log: a durable append and a keyed hash."""

    def append(self, event: AuditEvent) -> object: ...
    def hmac_of(self, value: str) -> str: ...


@dataclass(slots=True)
class _Outcome:
    effect: Effect
    reasons: tuple[Reason, ...]
    inputs: ResolvedInputs
    policy_version: int | None = None
    elevation: ElevationView | None = None
    out_of_objective: bool = False
    context: Mapping[str, Any] = field(default_factory=dict)


# What `DecisionService.evaluate` returns and `settle` takes: an outcome not yet settled or recorded.
Evaluation = _Outcome


@dataclass(frozen=True, slots=True)
class PendingDecision:
    """A decision whose audit record is not durable yet: it must not be answered before it is."""

    decision: Decision
    record: AuditEvent
    counts_strike: bool


def _deny(reason: Reason, inputs: ResolvedInputs, **extra: Any) -> _Outcome:  # noqa: ANN401 - forwarded fields
    return _Outcome(Effect.DENY, (reason,), inputs, **extra)


class DecisionService:
    """Decides one tool call at request time, from memory in the common case, and records it durably."""

    def __init__(  # noqa: PLR0913 - one collaborator per input the decision needs
        self,
        *,
        verifier: Verifier,
        facts: CachedFacts,
        policies: PolicyEvaluator,
        elevations: Elevations,
        audit: DecisionAudit,
        strikes: ObjectiveStrikes,
        end_task: TaskEnder,
        clock: Clock,
        ids: IdFactory,
        gateway_audiences: Collection[str] = (),
        strike_threshold: int = DEFAULT_STRIKE_THRESHOLD,
        approvals: ApprovalRequests | None = None,
    ) -> None:
        if strike_threshold < 1:
            msg = "the out-of-objective threshold must be at least 1"
            raise ValueError(msg)
        self._verifier = verifier
        self._facts = facts
        self._policies = policies
        self._elevations = elevations
        self._audit = audit
        self._strikes = strikes
        self._end_task = end_task
        self._clock = clock
        self._ids = ids
        self._gateway_audiences = frozenset(gateway_audiences)
        self._strike_threshold = strike_threshold
        self._approvals = approvals
        self._fingerprints: dict[str, str] = {}

    @property
    def policy_version(self) -> int | None:
        return self._policies.version

    def decide(self, request: AccessRequest, *, dry_run: bool = False) -> Decision:
        """Decide and record. `dry_run` (explain) records too, but uses no elevation and counts no strike.

        Raises only `AuditUnavailable`: the decision could not be recorded, so it must not be acted on.
        """
        pending = self.prepare(request, dry_run=dry_run)
        self._audit.append(pending.record)  # AuditUnavailable propagates: no record, no answer
        return self.complete(pending)

    def prepare(self, request: AccessRequest, *, dry_run: bool = False) -> PendingDecision:
        """The decision and its audit record, not yet recorded; reads no database row in the common case.

        For entrypoints that await the durable record themselves (the async HTTP route): record
        `pending.record` durably, then call `complete(pending)`; never answer before the record is durable.
        """
        return self.settle(request, self.evaluate(request), dry_run=dry_run)

    def evaluate(self, request: AccessRequest) -> Evaluation:
        """Guardrails and policies only: no write, and no read but a cache miss (or an elevation lookup).

        Under `without_waiting()` (on an event loop) a read or a DPoP proof's single use raises `WouldWait`
        before it touches the store, with nothing spent: evaluate again in a worker thread.
        """
        return self._safely_evaluate(request)

    @staticmethod
    def settling_writes(evaluation: Evaluation, *, dry_run: bool = False) -> bool:
        """Whether `settle` will write (use an elevation, open an approval request): run it off the event loop."""
        if dry_run:
            return False
        return evaluation.effect is Effect.STEP_UP or (
            evaluation.effect is Effect.ALLOW and evaluation.elevation is not None
        )

    def settle(self, request: AccessRequest, evaluation: Evaluation, *, dry_run: bool = False) -> PendingDecision:
        """Use the elevation an allow rests on, open the approval a step-up asks for, and build the record."""
        now = self._clock.now()
        outcome = evaluation
        if outcome.effect is Effect.ALLOW and outcome.elevation is not None and not dry_run:
            outcome = self._use_elevation(outcome)
        decision_id = self._ids.new("decision")
        approval_id = None
        if outcome.effect is Effect.STEP_UP and not dry_run:
            approval_id = self._open_approval(decision_id, request, outcome)
        decision = Decision(
            id=decision_id,
            effect=outcome.effect,
            reasons=outcome.reasons,
            policy_version=outcome.policy_version,
            decided_at=now,
            inputs=outcome.inputs,
            elevation_id=outcome.elevation.id if outcome.elevation else None,
            approval_id=approval_id,
        )
        strike = outcome.out_of_objective and not dry_run and decision.inputs.task_id is not None
        return PendingDecision(decision, self._audit_event(request, decision, outcome, dry_run=dry_run), strike)

    def complete(self, pending: PendingDecision) -> Decision:
        """After the record is durable: count an out-of-objective strike (may end the task). Rarely does I/O."""
        if pending.counts_strike:
            self._count_strike(pending.decision)
        return pending.decision

    def _open_approval(self, decision_id: str, request: AccessRequest, outcome: _Outcome) -> str | None:
        """Open the approval request a step-up asks for; on failure the decision stays a recorded step-up."""
        inputs = outcome.inputs
        if self._approvals is None or inputs.task_id is None or inputs.risk_class is None:
            return None
        try:
            return self._approvals.open(
                decision_id=decision_id,
                task_id=inputs.task_id,
                tool=inputs.tool,
                action=inputs.action,
                resource=inputs.resource,
                risk_class=inputs.risk_class,
                sensitivity=inputs.sensitivity,
                environment=inputs.environment,
                context=request.context,
            )
        except Exception:  # noqa: BLE001 - the answer stays a non-allow; the caller may ask again
            _log.exception("could not open an approval request for decision %s", decision_id)
            return None

    # ------------------------------------------------------------------ evaluation

    def _safely_evaluate(self, request: AccessRequest) -> _Outcome:
        try:
            return self._evaluate(request)
        except WouldWait:
            raise  # not a failure: on an event loop, a read is due; the caller evaluates again in a thread
        except RemitError as error:
            return _deny(Reason(ReasonKind.ERROR, error.code.value, error.message), _asked(request))
        except Exception:  # noqa: BLE001 - a bug on this path must deny, never allow
            _log.exception("decision failed")
            return _deny(Reason(ReasonKind.ERROR, ErrorCode.INTERNAL.value, "internal error"), _asked(request))

    def _fingerprint(self, jti: str) -> str:
        """The jti's audit HMAC, kept per credential: a credential is used for many decisions."""
        known = self._fingerprints.get(jti)
        if known is None:
            if len(self._fingerprints) >= _MAX_FINGERPRINTS:
                self._fingerprints.clear()
            known = self._fingerprints[jti] = self._audit.hmac_of(jti)
        return known

    def _verify(self, request: AccessRequest) -> VerifiedCredential | Reason:
        try:
            credential = self._verifier.verify(request.token, audience=request.audience, dpop=request.dpop)
        except Unauthenticated as error:
            precise = str(error.details.get("reason", error.code.value))
            return Reason(ReasonKind.GUARDRAIL, g.CREDENTIAL_VERIFIES, error.code.value, internal=precise)
        except Unavailable:
            return Reason(
                ReasonKind.GUARDRAIL, g.CREDENTIAL_VERIFIES, "unavailable", internal="revocations_not_current"
            )
        # The subject AuthZEN names must be the agent itself (its workload identity or agent id), never the
        # `sub` of an on-behalf-of credential, which is the principal the agent declared.
        if request.subject is not None and request.subject not in {credential.client_id, credential.agent_id}:
            return Reason(
                ReasonKind.GUARDRAIL, g.CREDENTIAL_VERIFIES, "credential_invalid", internal="subject_mismatch"
            )
        return credential

    def _evaluate(self, request: AccessRequest) -> _Outcome:  # noqa: C901, PLR0911 - one exit per guardrail, in order
        now = self._clock.now()
        verified = self._verify(request)
        if isinstance(verified, Reason):
            return _deny(verified, _asked(request))
        credential = verified
        # What is established so far, for the record of a refusal; built into ResolvedInputs once per exit.
        known: dict[str, Any] = {
            "tool": request.tool,
            "action": request.action,
            "resource": request.resource,
            "task_id": credential.task_id,
            "agent_id": credential.agent_id,
            "environment": credential.environment,
            "delegation_chain": _delegation_chain(credential),
            "credential_fingerprint": self._fingerprint(credential.jti),
        }
        task = self._facts.task(credential.task_id, epoch=credential.epoch)
        if (reason := g.task_running(task, credential, now)) is not None:
            return _deny(reason, ResolvedInputs(**known))
        assert task is not None  # noqa: S101 - task_running refused a missing task
        known.update(
            owner_id=task.owner_id, function_id=task.function_id, workflow=task.workflow_ref, objective=task.objective
        )
        agent = self._facts.agent(task.agent_id)
        owner = self._facts.owner(task.owner_id)
        function = self._facts.function(task.function_id)
        if (reason := g.agent_traceable(agent, owner, function, now.date())) is not None:
            return _deny(reason, ResolvedInputs(**known))
        assert agent is not None  # noqa: S101 - agent_traceable refused a missing agent
        assert owner is not None  # noqa: S101 - agent_traceable refused a missing owner
        tool = self._facts.tool(request.tool)
        if (reason := g.known_action(tool, request.tool, request.action)) is not None:
            return _deny(reason, ResolvedInputs(**known))
        assert tool is not None  # noqa: S101 - known_action refused a missing tool
        action = tool.action(request.action)
        assert action is not None  # noqa: S101 - known_action refused a missing action
        known["risk_class"] = action.risk_class
        registered = tool.sensitivity_of(request.resource)
        if (reason := g.known_resource(registered, request.resource)) is not None:
            return _deny(reason, ResolvedInputs(**known))
        assert registered is not None  # noqa: S101 - known_resource refused an unregistered resource
        # The enforcement point may only make it stricter.
        sensitivity = max(registered, request.sensitivity) if request.sensitivity is not None else registered
        known["sensitivity"] = sensitivity
        inputs = ResolvedInputs(**known)
        if (reason := g.audience_matches(credential, request.tool, self._gateway_audiences)) is not None:
            return _deny(reason, inputs)
        environments = _resource_environments(tool, request.resource)
        if (reason := g.environment_matches(credential, request.environment, environments)) is not None:
            return _deny(reason, inputs)
        workflow = self._facts.workflow(task.workflow_id)
        scope = g.within_objective(credential, workflow, request.tool, request.action, request.resource)
        granted: tuple[Reason, ...] = ()
        if scope is not None:
            grants = self._facts.grants(agent.id)
            if not g.standing_grant_covers(
                grants, action.risk_class, sensitivity, request.tool, request.action, request.resource
            ):
                return _deny(scope, inputs, out_of_objective=True)
            granted = (Reason(ReasonKind.GUARDRAIL, g.STANDING_GRANT, "a standing grant covers this low-risk read"),)

        def find_elevation() -> ElevationView | None:
            return self._elevations.find(
                task_id=task.id,
                epoch=credential.epoch,
                tool=request.tool,
                action=request.action,
                resource=request.resource,
                context=request.context,
            )

        elevation = find_elevation() if g.needs_elevation(action.risk_class) else None
        version = self._policies.version
        if version is None:
            reason = Reason(ReasonKind.GUARDRAIL, g.POLICY_SET_LOADED, "no policy set is active")
            return _deny(reason, inputs)
        policy_request = PolicyRequest(
            agent=agent,
            owner=owner,
            function=function,
            tool=tool,
            action=action,
            resource=request.resource,
            sensitivity=sensitivity,
            resource_environment=next(iter(sorted(environments)), None),
            task=task,
            environment=credential.environment,
            delegation_chain=inputs.delegation_chain,
            now=now,
            elevated=elevation is not None,
            context=request.context,
        )
        outcome = self._apply_policies(
            policy_request,
            inputs,
            version,
            granted,
            elevation,
            needs_elevation=g.needs_elevation(action.risk_class) and elevation is None,
        )
        if outcome.effect is Effect.STEP_UP and elevation is None and not g.needs_elevation(action.risk_class):
            # A policy asks for an approval of this call (restricted data, say): an approved one answers it.
            approved = find_elevation()
            if approved is not None:
                elevated = replace(policy_request, elevated=True)
                return self._apply_policies(elevated, inputs, version, granted, approved, needs_elevation=False)
        return outcome

    def _apply_policies(
        self,
        policy_request: PolicyRequest,
        inputs: ResolvedInputs,
        version: int,
        granted: tuple[Reason, ...],
        elevation: ElevationView | None,
        *,
        needs_elevation: bool,
    ) -> _Outcome:
        effect, reasons, answered = policy_outcome(self._policies, policy_request, needs_elevation=needs_elevation)
        # The set may have been swapped since `version` was read: report the one that answered.
        version = answered if answered is not None else version
        if effect is Effect.ALLOW:
            return _Outcome(effect, granted + reasons, inputs, policy_version=version, elevation=elevation)
        return _Outcome(effect, reasons, inputs, policy_version=version)

    def _use_elevation(self, outcome: _Outcome) -> _Outcome:
        assert outcome.elevation is not None  # noqa: S101 - only called with one
        if self._elevations.consume(outcome.elevation):
            return outcome
        reason = Reason(ReasonKind.GUARDRAIL, g.ELEVATION_REQUIRED, "the elevation was used up or expired")
        return _Outcome(Effect.STEP_UP, (reason,), outcome.inputs, policy_version=outcome.policy_version)

    # ------------------------------------------------------------------ recording

    def _audit_event(
        self, request: AccessRequest, decision: Decision, outcome: _Outcome, *, dry_run: bool
    ) -> AuditEvent:
        inputs = decision.inputs
        data: dict[str, Any] = {
            "effect": decision.effect.value,
            "reasons": [r.as_json(include_internal=True) for r in decision.reasons],
            "policy_version": decision.policy_version,
            "inputs": inputs.as_json(),
            "audience": request.audience,
            "stated_environment": request.environment,
            "stated_sensitivity": request.sensitivity.label if request.sensitivity is not None else None,
            "context": dict(request.context),
            "out_of_objective": outcome.out_of_objective,
        }
        if decision.elevation_id is not None:
            data["elevation_id"] = decision.elevation_id
        if decision.approval_id is not None:
            data["approval_id"] = decision.approval_id
        if dry_run:
            data["dry_run"] = True
        return AuditEvent(
            id=self._ids.new("event"),
            type=DECISION_EVENT,
            occurred_at=decision.decided_at,
            actor=AuditActor(ActorKind.AGENT, inputs.agent_id) if inputs.agent_id else AuditActor.system(),
            subject_kind="decision",
            subject_id=decision.id,
            data=data,
            task_id=inputs.task_id,
            agent_id=inputs.agent_id,
            owner_id=inputs.owner_id,
            function_id=inputs.function_id,
            correlation_id=request.correlation_id or inputs.task_id,
        )

    def _count_strike(self, decision: Decision) -> None:
        task_id = decision.inputs.task_id
        assert task_id is not None  # noqa: S101 - checked by the caller
        try:
            strikes = self._strikes.count(task_id)
            if strikes >= self._strike_threshold:
                self._end_task(task_id, reason=f"out_of_objective:{strikes}")
                self._facts.forget_task(task_id)
                self._flag_for_review(decision, strikes)
        except AuditUnavailable:
            raise
        except RemitError as error:
            # The refusal stands and is recorded; the sweep of strikes retries with the next one.
            _log.warning("could not count out-of-objective strikes for %s (%s)", task_id, error.code)

    def _flag_for_review(self, decision: Decision, strikes: int) -> None:
        inputs = decision.inputs
        assert inputs.agent_id is not None  # noqa: S101 - a strike needs a verified credential
        self._audit.append(
            AuditEvent(
                id=self._ids.new("event"),
                type="agent.flagged_for_review",
                occurred_at=self._clock.now(),
                actor=AuditActor.system(),
                subject_kind="agent",
                subject_id=inputs.agent_id,
                data={
                    "guardrail": g.OBJECTIVE_THRESHOLD,
                    "strikes": strikes,
                    "threshold": self._strike_threshold,
                    "decision_id": decision.id,
                    "severity": "high",
                },
                task_id=inputs.task_id,
                agent_id=inputs.agent_id,
                owner_id=inputs.owner_id,
                function_id=inputs.function_id,
                correlation_id=inputs.task_id,
            )
        )


def policy_outcome(
    policies: PolicyEvaluator, request: PolicyRequest, *, needs_elevation: bool
) -> tuple[Effect, tuple[Reason, ...], int | None]:
    """What the policies make of a request every guardrail let through: effect, reasons, the set's version.

    `needs_elevation` is true for a risk class that needs an elevation and has none: an allow then
    becomes `step_up`. A policy refusal that an elevation would lift is `step_up` too; anything
    else policies refuse is `deny`, so nobody is asked to approve what policy forbids. Shared by
    the decision path and `remit policy test`, so the two cannot drift apart.
    """
    result = policies.evaluate(request)
    if result.errors:
        return (
            Effect.DENY,
            tuple(Reason(ReasonKind.ERROR, "policy_error", e) for e in result.errors),
            result.policy_version,
        )
    policy_reasons = tuple(Reason(ReasonKind.POLICY, pid) for pid in result.policy_ids)
    if result.allowed:
        if needs_elevation:
            step_up = Reason(ReasonKind.GUARDRAIL, g.ELEVATION_REQUIRED, "this risk class needs an approved elevation")
            return Effect.STEP_UP, (step_up, *policy_reasons), result.policy_version
        return Effect.ALLOW, policy_reasons, result.policy_version
    if not request.elevated:
        # Would an approval change the answer? Then a policy asks for a step-up, not a refusal.
        what_if = policies.evaluate(replace(request, elevated=True))
        if what_if.allowed and not what_if.errors:
            step_up = Reason(ReasonKind.POLICY, g.ELEVATION_REQUIRED, "a policy requires an approved elevation")
            return Effect.STEP_UP, (step_up, *policy_reasons), result.policy_version
    denied = policy_reasons or (Reason(ReasonKind.POLICY, DEFAULT_DENY, "no policy permits this request"),)
    return Effect.DENY, denied, result.policy_version


def _asked(request: AccessRequest) -> ResolvedInputs:
    return ResolvedInputs(tool=request.tool, action=request.action, resource=request.resource)


def _delegation_chain(credential: VerifiedCredential) -> tuple[str, ...]:
    """The actors of the credential's `act` chain, outermost (current actor) first (RFC 8693 §4.1)."""
    chain: list[str] = []
    act = credential.claims.get("act")
    while isinstance(act, dict) and isinstance(act.get("sub"), str) and len(chain) < 16:  # noqa: PLR2004 - bound
        chain.append(act["sub"])
        act = act.get("act")
    return tuple(chain)


def _resource_environments(tool: Tool, resource: str) -> frozenset[str]:
    return frozenset(
        r.environment for r in tool.resources if r.environment is not None and matches(r.pattern, resource)
    )
