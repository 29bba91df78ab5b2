"""Approval requests, elevations and break-glass: who may approve what, and what an approval grants.

A `step_up` decision opens a request (or reuses an identical pending one) bound to the exact task,
tool, action, resource, request context and window. Approvers are people with operator accounts;
an agent has no account and can never approve. Once enough distinct approvers said yes, the
request grants an elevation for exactly that call, for a short window that never outlives the task.
The decision path finds and consumes it (`ElevationBook`): one conditional UPDATE per use.
"""

from __future__ import annotations

import datetime as dt
import logging

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, Protocol

from remit.core.approvals.models import (
    BREAK_GLASS_GROUP,
    OWNER_APPROVES,
    RESERVED_GROUPS,
    ApprovalKind,
    ApprovalRequest,
    ApprovalState,
    Elevation,
    OperatorAccount,
    OperatorRole,
    ReviewState,
    Vote,
    context_digest,
    normalise_identity,
    parse_group,
    parse_operator_name,
    parse_reason,
    token_digest,
)
from remit.core.approvals.ports import ApprovalTransaction, ApprovalUnitOfWork, Notifier
from remit.core.approvals.rules import ApprovalRules, Window
from remit.core.attestation.waiting import WouldWait, waiting_allowed
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.ids import IdFactory, parse_id
from remit.core.registry.models import Owner, Page, RiskClass, Sensitivity, parse_email, parse_name
from remit.core.tasks.models import Task, TaskState
from remit.errors import Conflict, Forbidden, InvalidRequest, NotFound, RateLimited, TaskNotActive

__all__ = [
    "BREAKGLASS_MIN_JUSTIFICATION",
    "ApprovalService",
    "ElevationBook",
    "OperatorService",
]

_log = logging.getLogger("remit.approvals")

BREAKGLASS_MIN_JUSTIFICATION: Final = 20
MAX_ELEVATION_TTL: Final = dt.timedelta(minutes=15)
MAX_PENDING_PER_TASK: Final = 20
# The bootstrap operator's default name: never an account name (the actor names would be ambiguous).
RESERVED_OPERATOR_NAMES: Final = frozenset({"operator", "system"})
_MAX_PAGE: Final = 500
_MAX_CONTEXT: Final = 32


def _owner_of(tx: ApprovalTransaction, account: OperatorAccount) -> Owner | None:
    """The registry owner this account is: its linked owner, else the owner with its email."""
    if account.owner_id:
        return tx.registry.get_owner(account.owner_id)
    if account.email:
        return tx.registry.get_owner_by_email(normalise_identity(account.email))
    return None


def _person_key(tx: ApprovalTransaction, account: OperatorAccount) -> str:
    return account.person_key(_owner_of(tx, account))


def _current(tx: ApprovalTransaction, account: OperatorAccount, role: OperatorRole) -> OperatorAccount:
    """The account as stored now, inside the transaction: it must still be active and hold `role`."""
    fresh = tx.operators.get_by_name(account.name)
    if fresh is None or fresh.id != account.id or not fresh.has(role):
        raise Forbidden(f"only an active account with the {role.value} role may do this")
    return fresh


def _parse_context(context: Mapping[str, Any] | None) -> dict[str, str | int | bool]:
    if not context:
        return {}
    if len(context) > _MAX_CONTEXT:
        raise InvalidRequest(f"at most {_MAX_CONTEXT} request facts", field="context")
    parsed: dict[str, str | int | bool] = {}
    for key, value in context.items():
        if not key or len(key) > 63:  # noqa: PLR2004 - a fact's name
            raise InvalidRequest("a request fact's name is 1-63 characters", field="context")
        if not isinstance(value, str | int | bool) or (isinstance(value, str) and len(value) > 512):  # noqa: PLR2004
            raise InvalidRequest("a request fact is a string, an integer or a boolean", field=f"context.{key}")
        parsed[key] = value
    return parsed


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


def _page_limit(limit: int) -> int:
    if not 1 <= limit <= _MAX_PAGE:
        raise InvalidRequest(f"limit must be between 1 and {_MAX_PAGE}", field="limit")
    return limit


def _event(  # noqa: PLR0913 - one audit record's parts
    request: ApprovalRequest,
    *,
    event_id: str,
    event_type: str,
    at: dt.datetime,
    actor: AuditActor,
    data: dict[str, Any],
    subject_kind: str = "approval",
    subject_id: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        id=event_id,
        type=event_type,
        occurred_at=at,
        actor=actor,
        subject_kind=subject_kind,
        subject_id=subject_id or request.id,
        data={"approval_id": request.id, **data},
        task_id=request.task_id,
        agent_id=request.agent_id,
        owner_id=request.owner_id,
        function_id=request.function_id,
        correlation_id=request.task_id,
    )


def _summary(request: ApprovalRequest) -> dict[str, Any]:
    """What an approver (and a webhook) is shown about a request."""
    return {
        "approval_id": request.id,
        "kind": request.kind.value,
        "task_id": request.task_id,
        "agent_id": request.agent_id,
        "owner_id": request.owner_id,
        "function_id": request.function_id,
        "principal": request.principal,
        "objective": request.objective,
        "tool": request.tool,
        "action": request.action,
        "resource": request.resource,
        "risk_class": request.risk_class.value,
        "sensitivity": request.sensitivity.label if request.sensitivity is not None else None,
        "environment": request.environment,
        "context": dict(request.context),
        "authorization_details": request.authorization_details,
        "required": request.required,
        "approvers": list(request.approvers),
        "expires_at": request.expires_at.isoformat(),
    }


# ---------------------------------------------------------------------------------------------- operators


class OperatorService:
    """Operator accounts: people with roles and their own API tokens (stored only as SHA-256 digests)."""

    def __init__(
        self,
        uow: ApprovalUnitOfWork,
        *,
        clock: Clock,
        ids: IdFactory,
        new_token: Callable[[], str],
        reads: ApprovalUnitOfWork | None = None,
        reserved_names: Sequence[str] = (),
    ) -> None:
        self._uow = uow
        self._reads = reads or uow
        self._clock = clock
        self._ids = ids
        self._new_token = new_token
        self._reserved = RESERVED_OPERATOR_NAMES | {parse_operator_name(n) for n in reserved_names}

    def add(
        self,
        *,
        name: str,
        roles: Sequence[str],
        groups: Sequence[str] = (),
        email: str | None = None,
        owner: str | None = None,
        actor: str,
    ) -> tuple[OperatorAccount, str]:
        """Create an account; returns it and its token, which is shown once and never stored."""
        if not roles:
            raise InvalidRequest("an account holds at least one role", field="roles")
        try:
            parsed_roles = frozenset(OperatorRole(r) for r in roles)
        except ValueError:
            known = ", ".join(r.value for r in OperatorRole)
            raise InvalidRequest(f"roles are {known}", field="roles") from None
        parsed_name = parse_operator_name(name)
        if parsed_name in self._reserved:
            raise InvalidRequest(f"{parsed_name!r} is reserved and is not an account name", field="name")
        parsed_groups = tuple(sorted({parse_group(g) for g in groups}))
        parsed_email = parse_email(normalise_identity(email)) if email else None
        token = self._new_token()
        now = self._clock.now()
        with self._uow() as tx:
            linked: Owner | None = None
            if owner:
                key = normalise_identity(owner)
                linked = tx.registry.get_owner(owner.strip()) if owner.strip().startswith("own_") else None
                linked = linked or tx.registry.get_owner_by_email(key)
                if linked is None:
                    raise NotFound(f"no owner {owner!r}")
            account = OperatorAccount(
                id=self._ids.new("operator"),
                name=parsed_name,
                roles=parsed_roles,
                groups=parsed_groups,
                email=parsed_email,
                owner_id=linked.id if linked is not None else None,
                token_sha256=token_digest(token),
                created_at=now,
                created_by=actor,
            )
            if tx.operators.get_by_name(account.name) is not None:
                raise Conflict(f"an operator named {account.name!r} exists")
            self._refuse_second_account(tx, account, linked)
            tx.operators.add(account)
            tx.audit.append(self._audit("operator.added", account, actor, now, {"roles": sorted(parsed_roles)}))
        return account, token

    @staticmethod
    def _refuse_second_account(tx: ApprovalTransaction, account: OperatorAccount, linked: Owner | None) -> None:
        """One person holds at most one active account: same email, same owner, or each other's owner's email."""
        by_email = tx.registry.get_owner_by_email(account.email) if account.email else None
        emails = {e for e in (account.email, linked.email if linked else None) if e}
        owner_ids = {o.id for o in (linked, by_email) if o is not None}
        same = tx.operators.active_for_person(emails=sorted(emails), owner_ids=sorted(owner_ids))
        if same:
            raise Conflict("this person already holds an active operator account", details={"operator": same[0].name})

    def list(self, *, limit: int = 100, after: str | None = None) -> Page[OperatorAccount]:
        with self._reads() as tx:
            return tx.operators.list(limit=_page_limit(limit), after=after)

    def get(self, name: str) -> OperatorAccount:
        with self._reads() as tx:
            account = tx.operators.get_by_name(parse_operator_name(name))
        if account is None:
            raise NotFound(f"no operator {name!r}")
        return account

    def disable(self, name: str, *, reason: str, actor: str) -> OperatorAccount:
        """Disable an account: its token stops working at once, on every replica (it is looked up per request)."""
        now = self._clock.now()
        with self._uow() as tx:
            account = tx.operators.get_by_name(parse_operator_name(name))
            if account is None:
                raise NotFound(f"no operator {name!r}")
            if not account.is_active:
                return account
            account = replace(account, disabled_at=now, disabled_by=actor, disable_reason=parse_reason(reason))
            tx.operators.update(account)
            tx.audit.append(self._audit("operator.disabled", account, actor, now, {"reason": account.disable_reason}))
        return account

    def identify(self, token: str) -> OperatorAccount | None:
        """The active account whose token this is, or None."""
        if not token:
            return None
        with self._reads() as tx:
            account = tx.operators.get_by_digest(token_digest(token))
        return account if account is not None and account.is_active else None

    def _audit(
        self, event_type: str, account: OperatorAccount, actor: str, at: dt.datetime, data: dict[str, Any]
    ) -> AuditEvent:
        return AuditEvent(
            id=self._ids.new("event"),
            type=event_type,
            occurred_at=at,
            actor=AuditActor(ActorKind.OPERATOR, actor),
            subject_kind="operator",
            subject_id=account.name,
            data={"groups": list(account.groups), **data},
        )


# ---------------------------------------------------------------------------------------------- approvals


class ApprovalService:
    """Opens, answers, expires and lists approval requests; grants elevations; break-glass and its review."""

    def __init__(  # noqa: PLR0913 - one collaborator or setting each
        self,
        uow: ApprovalUnitOfWork,
        *,
        clock: Clock,
        ids: IdFactory,
        rules: ApprovalRules,
        notifier: Notifier,
        request_timeout: dt.timedelta,
        window: Window,
        breakglass_ttl: dt.timedelta,
        breakglass_alert_groups: Sequence[str] = (),
        reads: ApprovalUnitOfWork | None = None,
        max_pending_per_task: int = MAX_PENDING_PER_TASK,
    ) -> None:
        if window.ttl > MAX_ELEVATION_TTL or breakglass_ttl > MAX_ELEVATION_TTL:
            msg = "an elevation lives at most 15 minutes"
            raise ValueError(msg)
        if max_pending_per_task < 1:
            msg = "a task may have at least one pending approval request"
            raise ValueError(msg)
        self._uow = uow
        # Reads (get, list, the long-poll) never take the writer transaction.
        self._reads = reads or uow
        self._max_pending = max_pending_per_task
        self._clock = clock
        self._ids = ids
        self._rules = rules
        self._notifier = notifier
        self._timeout = request_timeout
        self._window = window
        self._breakglass_ttl = breakglass_ttl
        self._alert_groups = tuple(breakglass_alert_groups)

    # ------------------------------------------------------------ opening (the decision path)

    def open(  # noqa: PLR0913 - the decision's facts, each named
        self,
        *,
        decision_id: str,
        task_id: str,
        tool: str,
        action: str,
        resource: str,
        risk_class: RiskClass,
        sensitivity: Sensitivity | None,
        environment: str | None,
        context: Mapping[str, str | int | bool],
    ) -> str:
        """Open an approval request for a `step_up` decision, or reuse an identical pending one; returns its id.

        When an identical request was approved meanwhile (between the decision's elevation lookup and
        this call) and its elevation is still live, that approved request's id is returned instead.

        Raises `RateLimited` when the task already has `max_pending_per_task` pending requests: the
        decision then stays a recorded `step_up` without an approval request.
        """
        facts: dict[str, Any] = {
            "decision_id": decision_id,
            "task_id": task_id,
            "tool": tool,
            "action": action,
            "resource": resource,
            "risk_class": risk_class,
            "sensitivity": sensitivity,
            "environment": environment,
            "context": context,
        }
        try:
            return self._open(**facts)
        except Conflict:
            # Another replica opened the identical request at the same moment: use that one.
            return self._open(**facts)

    def _open(  # noqa: PLR0913 - forwarded from open
        self,
        *,
        decision_id: str,
        task_id: str,
        tool: str,
        action: str,
        resource: str,
        risk_class: RiskClass,
        sensitivity: Sensitivity | None,
        environment: str | None,
        context: Mapping[str, str | int | bool],
    ) -> str:
        now = self._clock.now()
        with self._uow() as tx:
            task = self._running_task(tx, task_id, now)
            function = tx.registry.get_function(task.function_id)
            keys = [task.function_id] + ([function.name] if function is not None else [])
            approvers, required = self._rules.rule_for(keys, risk_class)
            request = ApprovalRequest(
                id=self._ids.new("approval"),
                kind=ApprovalKind.APPROVAL,
                task_id=task.id,
                agent_id=task.agent_id,
                owner_id=task.owner_id,
                function_id=task.function_id,
                principal=task.principal,
                objective=task.objective,
                tool=tool,
                action=action,
                resource=resource,
                risk_class=risk_class,
                sensitivity=sensitivity,
                environment=environment or task.environment,
                context=dict(context),
                epoch=task.epoch,
                uses=self._window.uses,
                ttl=self._window.ttl,
                approvers=approvers,
                required=required,
                state=ApprovalState.PENDING,
                created_at=now,
                expires_at=min(now + self._timeout, task.deadline),
                requested_by=task.agent_id,
                decision_id=decision_id,
            )
            existing = tx.approvals.pending_with_key(request.pending_key)
            if existing is not None:
                if not existing.is_overdue(now):
                    return existing.id
                self._expire(tx, existing, now)
            # Approved between the decision's elevation lookup and now: point the agent at that approval,
            # whose elevation allows its retry, rather than asking a person again for the same call.
            granted = tx.approvals.find_elevation(
                task_id=task.id,
                epoch=task.epoch,
                tool=tool,
                action=action,
                resource=resource,
                context_sha256=request.context_sha256,
                now=now,
            )
            if granted is not None:
                return granted.approval_id
            if tx.approvals.count_pending(task.id) >= self._max_pending:
                raise RateLimited(
                    "the task has too many pending approval requests",
                    details={"task_id": task.id, "limit": self._max_pending},
                )
            tx.approvals.add(request)
            tx.audit.append(
                _event(
                    request,
                    event_id=self._ids.new("event"),
                    event_type="approval.requested",
                    at=now,
                    actor=AuditActor(ActorKind.AGENT, task.agent_id),
                    data={
                        "decision_id": decision_id,
                        "tool": tool,
                        "action": action,
                        "resource": resource,
                        "risk_class": risk_class.value,
                        "epoch": request.epoch,
                        "context_sha256": request.context_sha256,
                        "required": required,
                        "approvers": list(approvers),
                        "expires_at": request.expires_at.isoformat(),
                    },
                )
            )
        self._notifier.notify(
            groups=approvers, event="approval.requested", payload=_summary(request), task_id=request.task_id
        )
        return request.id

    # ------------------------------------------------------------ reading

    def get(self, approval_id: str) -> ApprovalRequest:
        """A request; one past its timeout is recorded as expired first."""
        parse_id("approval", approval_id, field="approval_id")
        with self._reads() as tx:
            request = tx.approvals.get(approval_id)
        if request is None:
            raise NotFound(f"no approval request {approval_id!r}")
        if request.is_overdue(self._clock.now()):
            return self._expire_one(approval_id)
        return request

    def elevation(self, request: ApprovalRequest) -> Elevation | None:
        if request.elevation_id is None:
            return None
        with self._reads() as tx:
            return tx.approvals.get_elevation(request.elevation_id)

    def history_start(self, task_id: str, *, last: int = 50) -> int:
        """The audit sequence after which the task's last `last` records lie (the long-poll's history)."""
        with self._reads() as tx:
            return tx.approvals.history_start(task_id, last=last)

    def list(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        state: ApprovalState | None = None,
        kind: ApprovalKind | None = None,
        task_id: str | None = None,
        unreviewed: bool = False,
    ) -> Page[ApprovalRequest]:
        with self._reads() as tx:
            return tx.approvals.list(
                limit=_page_limit(limit), after=after, state=state, kind=kind, task_id=task_id, unreviewed=unreviewed
            )

    # ------------------------------------------------------------ answering

    def approve(self, approval_id: str, *, approver: OperatorAccount, reason: str = "") -> ApprovalRequest:
        """Record an approval; once `required` distinct approvers agreed, grant the elevation."""
        return self._answer(approval_id, approver, approve=True, reason=parse_reason(reason))

    def deny(self, approval_id: str, *, approver: OperatorAccount, reason: str) -> ApprovalRequest:
        """Deny: the request ends at once with the approver's reason."""
        return self._answer(approval_id, approver, approve=False, reason=parse_reason(reason, required=True))

    def _answer(self, approval_id: str, approver: OperatorAccount, *, approve: bool, reason: str) -> ApprovalRequest:
        parse_id("approval", approval_id, field="approval_id")
        now = self._clock.now()
        ended: str | None = None
        with self._uow() as tx:
            # The approving account as stored now: a disabled account cannot answer.
            account = _current(tx, approver, OperatorRole.APPROVER)
            request = tx.approvals.get(approval_id, lock=True)
            if request is None:
                raise NotFound(f"no approval request {approval_id!r}")
            task = tx.tasks.get_task(request.task_id)
            if request.is_overdue(now):
                self._expire(tx, request, now)
                ended = "the approval request expired"
            elif request.state is ApprovalState.PENDING and task is not None and task.epoch != request.epoch:
                # The task's context changed since the request was made: what was asked is no longer what runs.
                self._expire(tx, request, now, reason="task_epoch_changed")
                ended = "the task's context changed since the request was made; the request expired"
            else:
                request = self._record_answer(tx, request, account, approve=approve, reason=reason, now=now)
        if ended is not None:
            raise Conflict(ended, details={"approval_id": approval_id, "state": "expired"})
        return request

    def _record_answer(
        self,
        tx: ApprovalTransaction,
        request: ApprovalRequest,
        approver: OperatorAccount,
        *,
        approve: bool,
        reason: str,
        now: dt.datetime,
    ) -> ApprovalRequest:
        if request.state is not ApprovalState.PENDING:
            raise Conflict(
                f"the approval request is already {request.state.value}",
                details={"approval_id": request.id, "state": request.state.value},
            )
        person = self._check_approver(tx, request, approver)
        vote = Vote(approver=approver.name, approve=approve, reason=reason, at=now, person=person)
        request = replace(request, votes=(*request.votes, vote))
        actor = AuditActor(ActorKind.APPROVER, approver.name)
        if not approve:
            request = replace(request, state=ApprovalState.DENIED, decided_at=now, reason=reason)
            tx.approvals.update(request)
            self._append(tx, request, "approval.denied", actor, now, {"approver": approver.name, "reason": reason})
            return request
        counted = self._counted_approvers(tx, request)
        if len(counted) < request.required:
            tx.approvals.update(request)
            self._append(
                tx,
                request,
                "approval.voted",
                actor,
                now,
                {"approver": approver.name, "approvals": len(counted), "required": request.required},
            )
            return request
        task = self._running_task(tx, request.task_id, now)
        elevation = self._grant(
            tx, request, task, now, ttl=request.ttl, uses=request.uses, break_glass=False, granted_by=counted
        )
        request = replace(request, state=ApprovalState.APPROVED, decided_at=now, elevation_id=elevation.id)
        tx.approvals.update(request)
        self._append(
            tx,
            request,
            "approval.granted",
            actor,
            now,
            {
                "approvers": list(counted),
                "elevation_id": elevation.id,
                "uses": elevation.uses_left,
                "expires_at": elevation.expires_at.isoformat(),
                "authorization_details": request.authorization_details,
            },
        )
        return request

    @staticmethod
    def _check_approver(tx: ApprovalTransaction, request: ApprovalRequest, approver: OperatorAccount) -> str:
        """Approvers are people of the request's groups (or its owner), distinct persons, never the principal.

        The principal is compared with every identity of the person, the linked owner's included.
        Returns the approver's person key.
        """
        if request.kind is not ApprovalKind.APPROVAL:
            raise Conflict("a break-glass grant is not approved; it is reviewed")
        if not approver.has(OperatorRole.APPROVER):
            raise Forbidden("only an account with the approver role may answer an approval request")
        owner = _owner_of(tx, approver)
        if approver.is_person(request.principal, owner):
            raise Forbidden("nobody may approve a task that runs on their own behalf")
        person = approver.person_key(owner)
        for vote in request.votes:
            earlier = tx.operators.get_by_name(vote.approver)
            earlier_person = _person_key(tx, earlier) if earlier is not None else vote.person
            if vote.approver == approver.name or person in {earlier_person, vote.person}:
                raise Conflict("this person has already answered this request")
        owner_id = approver.owner_id or (owner.id if owner is not None else None)
        as_owner = OWNER_APPROVES in request.approvers and owner_id == request.owner_id
        # `owner` and `break-glass` are never groups, whatever an account or a rule says.
        if not as_owner and not (set(approver.groups) - RESERVED_GROUPS) & (set(request.approvers) - RESERVED_GROUPS):
            raise Forbidden("this account is not an approver for this request")
        return person

    @staticmethod
    def _counted_approvers(tx: ApprovalTransaction, request: ApprovalRequest) -> tuple[str, ...]:
        """The approving votes that count now, as account names in vote order.

        Each voter is re-read: active, an approver, not the principal, and one per person (two
        accounts of one person count once).
        """
        counted: dict[str, str] = {}
        for vote in request.approvals:
            account = tx.operators.get_by_name(vote.approver)
            if account is None or not account.has(OperatorRole.APPROVER):
                continue
            owner = _owner_of(tx, account)
            if account.is_person(request.principal, owner):
                continue
            counted.setdefault(account.person_key(owner), account.name)
        return tuple(counted.values())

    def _grant(  # noqa: PLR0913 - what the elevation is made of
        self,
        tx: ApprovalTransaction,
        request: ApprovalRequest,
        task: Task,
        now: dt.datetime,
        *,
        ttl: dt.timedelta,
        uses: int | None,
        break_glass: bool,
        granted_by: Sequence[str],
    ) -> Elevation:
        elevation = Elevation(
            id=self._ids.new("elevation"),
            approval_id=request.id,
            task_id=task.id,
            agent_id=task.agent_id,
            owner_id=task.owner_id,
            function_id=task.function_id,
            tool=request.tool,
            action=request.action,
            resource=request.resource,
            uses_left=uses,
            used=0,
            granted_at=now,
            # Never longer than 15 minutes, and never past the task's deadline.
            expires_at=min(now + min(ttl, MAX_ELEVATION_TTL), task.deadline),
            granted_by=tuple(granted_by),
            break_glass=break_glass,
            epoch=request.epoch,
            context_sha256=request.context_sha256,
        )
        tx.approvals.add_elevation(elevation)
        return elevation

    # ------------------------------------------------------------ expiry

    def expire_overdue(self, *, limit: int = 500) -> int:
        """Record every pending request past its timeout as expired (the sweeper calls this)."""
        now = self._clock.now()
        with self._uow() as tx:
            overdue = tx.approvals.overdue(now, limit=limit)
            for request in overdue:
                self._expire(tx, request, now)
        return len(overdue)

    def _expire_one(self, approval_id: str) -> ApprovalRequest:
        now = self._clock.now()
        with self._uow() as tx:
            request = tx.approvals.get(approval_id, lock=True)
            assert request is not None  # noqa: S101 - read just before; requests are never deleted
            if request.is_overdue(now):
                request = self._expire(tx, request, now)
        return request

    def _expire(
        self, tx: ApprovalTransaction, request: ApprovalRequest, now: dt.datetime, *, reason: str = "timeout"
    ) -> ApprovalRequest:
        expired = replace(request, state=ApprovalState.EXPIRED, decided_at=now, reason=reason)
        tx.approvals.update(expired)
        why = (
            "no answer before the request timed out"
            if reason == "timeout"
            else "the task's context (epoch) changed since the request was made"
        )
        self._append(
            tx,
            expired,
            "approval.expired",
            AuditActor.system(),
            now,
            {"reason": why, "approvals": len(request.approvals)},
        )
        return expired

    # ------------------------------------------------------------ break-glass

    def break_glass(  # noqa: PLR0913 - the grant's parts, each named
        self,
        *,
        holder: OperatorAccount,
        task_id: str,
        tool: str,
        action: str,
        resource: str,
        justification: str,
        ttl: dt.timedelta | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> tuple[ApprovalRequest, Elevation]:
        """Self-grant a short elevation for a running task: loud (high-severity audit, alert) and reviewed later.

        The elevation covers exactly the call with these request facts (`context`, none by default),
        at the task's current epoch. Nobody may break the glass for a task run on their own behalf.
        """
        if not holder.has(OperatorRole.BREAK_GLASS):
            raise Forbidden("only an account with the break-glass role may break the glass")
        why = parse_reason(justification, field="justification", required=True, minimum=BREAKGLASS_MIN_JUSTIFICATION)
        window = min(ttl or self._breakglass_ttl, self._breakglass_ttl)
        if window <= dt.timedelta(0):
            raise InvalidRequest("the window must be positive", field="ttl_seconds")
        parse_id("task", task_id, field="task_id")
        tool, action = parse_name(tool, field="tool"), parse_name(action, field="action")
        if not resource or len(resource) > 512 or any(c.isspace() for c in resource):  # noqa: PLR2004 - bound
            raise InvalidRequest("resource is one resource name", field="resource")
        facts = _parse_context(context)
        now = self._clock.now()
        with self._uow() as tx:
            holder = _current(tx, holder, OperatorRole.BREAK_GLASS)
            task = self._running_task(tx, task_id, now)
            owner = _owner_of(tx, holder)
            if holder.is_person(task.principal, owner):
                raise Forbidden("nobody may break the glass for a task that runs on their own behalf")
            registered = tx.registry.get_tool_by_name(tool)
            found = registered.action(action) if registered is not None else None
            if registered is None or found is None:
                raise InvalidRequest(f"tool {tool!r} has no action {action!r}", field="action")
            if not any(d.covers(tool, action, resource) for d in task.details):
                raise InvalidRequest("the call is outside the task's authorization_details", field="resource")
            request = ApprovalRequest(
                id=self._ids.new("approval"),
                kind=ApprovalKind.BREAK_GLASS,
                task_id=task.id,
                agent_id=task.agent_id,
                owner_id=task.owner_id,
                function_id=task.function_id,
                principal=task.principal,
                objective=task.objective,
                tool=tool,
                action=action,
                resource=resource,
                risk_class=found.risk_class,
                sensitivity=registered.sensitivity_of(resource),
                environment=task.environment,
                context=facts,
                epoch=task.epoch,
                uses=None,
                ttl=window,
                approvers=(BREAK_GLASS_GROUP,),
                required=1,
                state=ApprovalState.APPROVED,
                created_at=now,
                expires_at=now,
                requested_by=holder.name,
                votes=(Vote(approver=holder.name, approve=True, reason=why, at=now, person=holder.person_key(owner)),),
                decided_at=now,
                reason=why,
                justification=why,
                review_state=ReviewState.OPEN,
            )
            tx.approvals.add(request)
            elevation = self._grant(
                tx, request, task, now, ttl=window, uses=None, break_glass=True, granted_by=(holder.name,)
            )
            request = replace(request, elevation_id=elevation.id)
            tx.approvals.update(request)
            data = {
                "severity": "high",
                "holder": holder.name,
                "justification": why,
                "context_sha256": request.context_sha256,
                "epoch": request.epoch,
                "elevation_id": elevation.id,
                "authorization_details": request.authorization_details,
                "expires_at": elevation.expires_at.isoformat(),
            }
            self._append(tx, request, "breakglass.used", AuditActor(ActorKind.OPERATOR, holder.name), now, data)
        self._notifier.notify(
            groups=self._alert_groups,
            event="breakglass.used",
            payload={**_summary(request), **data, "expires_at": elevation.expires_at.isoformat()},
            task_id=task.id,
        )
        return request, elevation

    def review(self, approval_id: str, *, auditor: OperatorAccount, notes: str) -> ApprovalRequest:
        """Close the post-use review of a break-glass grant (an auditor other than the holder)."""
        if not auditor.has(OperatorRole.AUDITOR):
            raise Forbidden("only an account with the auditor role may close a break-glass review")
        text = parse_reason(notes, field="notes", required=True)
        parse_id("approval", approval_id, field="approval_id")
        now = self._clock.now()
        with self._uow() as tx:
            auditor = _current(tx, auditor, OperatorRole.AUDITOR)
            request = tx.approvals.get(approval_id, lock=True)
            if request is None or request.kind is not ApprovalKind.BREAK_GLASS:
                raise NotFound(f"no break-glass grant {approval_id!r}")
            # The reviewer is another person than the holder, not merely another account.
            holder = tx.operators.get_by_name(request.requested_by)
            holder_persons = {v.person for v in request.votes if v.person}
            if holder is not None:
                holder_persons.add(_person_key(tx, holder))
            if request.requested_by == auditor.name or _person_key(tx, auditor) in holder_persons:
                raise Forbidden("the holder of a break-glass grant may not review it")
            if request.review_state is ReviewState.CLOSED:
                raise Conflict("the review is already closed")
            request = replace(
                request, review_state=ReviewState.CLOSED, reviewed_by=auditor.name, reviewed_at=now, review_notes=text
            )
            tx.approvals.update(request)
            self._append(
                tx,
                request,
                "breakglass.reviewed",
                AuditActor(ActorKind.OPERATOR, auditor.name),
                now,
                {"auditor": auditor.name, "notes": text, "holder": request.requested_by},
            )
        return request

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _running_task(tx: ApprovalTransaction, task_id: str, now: dt.datetime) -> Task:
        task = tx.tasks.get_task(task_id)
        if task is None:
            raise NotFound(f"no task {task_id!r}")
        state = task.effective_state(now)
        if state is not TaskState.RUNNING:
            raise TaskNotActive(f"the task is {state.value}")
        return task

    def _append(
        self,
        tx: ApprovalTransaction,
        request: ApprovalRequest,
        event_type: str,
        actor: AuditActor,
        at: dt.datetime,
        data: dict[str, Any],
    ) -> None:
        tx.audit.append(
            _event(request, event_id=self._ids.new("event"), event_type=event_type, at=at, actor=actor, data=data)
        )


# ---------------------------------------------------------------------------------------------- elevations


class ElevationBook:
    """The decision path's view of elevations: find a live one for exactly this call, and use it once.

    `find` is one indexed read without the writer lock, asked only for high-risk calls. `consume`
    is one conditional UPDATE (a use left, not expired) and the `elevation.used` audit record in
    the same transaction, so a use is spent exactly once across every replica.
    """

    def __init__(self, uow: ApprovalUnitOfWork, reads: ApprovalUnitOfWork, *, clock: Clock, ids: IdFactory) -> None:
        self._uow = uow
        self._reads = reads
        self._clock = clock
        self._ids = ids

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
        """A live elevation for the task at this epoch, this call and exactly these request facts.

        It reads the store, so on an event loop (`without_waiting()`) it raises `WouldWait` instead.
        """
        if not waiting_allowed():
            raise WouldWait
        with self._reads() as tx:
            return tx.approvals.find_elevation(
                task_id=task_id,
                epoch=epoch,
                tool=tool,
                action=action,
                resource=resource,
                context_sha256=context_digest(context),
                now=self._clock.now(),
            )

    def consume(self, elevation: _HasId) -> bool:
        now = self._clock.now()
        with self._uow() as tx:
            if not tx.approvals.consume_elevation(elevation.id, now):
                return False
            used = tx.approvals.get_elevation(elevation.id)
            assert used is not None  # noqa: S101 - just updated
            tx.audit.append(
                AuditEvent(
                    id=self._ids.new("event"),
                    type="elevation.used",
                    occurred_at=now,
                    actor=AuditActor(ActorKind.AGENT, used.agent_id),
                    subject_kind="elevation",
                    subject_id=used.id,
                    data={
                        "approval_id": used.approval_id,
                        "tool": used.tool,
                        "action": used.action,
                        "resource": used.resource,
                        "uses_left": used.uses_left,
                        "used": used.used,
                        "break_glass": used.break_glass,
                    },
                    task_id=used.task_id,
                    agent_id=used.agent_id,
                    owner_id=used.owner_id,
                    function_id=used.function_id,
                    correlation_id=used.task_id,
                )
            )
        return True
