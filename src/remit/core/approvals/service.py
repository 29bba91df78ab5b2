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
    OWNER_APPROVES,
    ApprovalKind,
    ApprovalRequest,
    ApprovalState,
    Elevation,
    OperatorAccount,
    OperatorRole,
    ReviewState,
    Vote,
    parse_group,
    parse_operator_name,
    parse_reason,
    token_digest,
)
from remit.core.approvals.ports import ApprovalTransaction, ApprovalUnitOfWork, Notifier
from remit.core.approvals.rules import ApprovalRules, Window
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.ids import IdFactory, parse_id
from remit.core.registry.models import Page, RiskClass, Sensitivity, parse_email, parse_name
from remit.core.tasks.models import Task, TaskState
from remit.errors import Conflict, Forbidden, InvalidRequest, NotFound, TaskNotActive

__all__ = [
    "BREAKGLASS_MIN_JUSTIFICATION",
    "ApprovalService",
    "ElevationBook",
    "OperatorService",
]

_log = logging.getLogger("remit.approvals")

BREAKGLASS_MIN_JUSTIFICATION: Final = 20
MAX_ELEVATION_TTL: Final = dt.timedelta(minutes=15)
_MAX_PAGE: Final = 500


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
    ) -> None:
        self._uow = uow
        self._reads = reads or uow
        self._clock = clock
        self._ids = ids
        self._new_token = new_token

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
        token = self._new_token()
        now = self._clock.now()
        with self._uow() as tx:
            owner_id: str | None = None
            if owner:
                found = tx.registry.get_owner(owner) if owner.startswith("own_") else None
                found = found or tx.registry.get_owner_by_email(owner.strip().lower())
                if found is None:
                    raise NotFound(f"no owner {owner!r}")
                owner_id = found.id
            account = OperatorAccount(
                id=self._ids.new("operator"),
                name=parse_operator_name(name),
                roles=parsed_roles,
                groups=tuple(sorted({parse_group(g) for g in groups})),
                email=parse_email(email) if email else None,
                owner_id=owner_id,
                token_sha256=token_digest(token),
                created_at=now,
                created_by=actor,
            )
            if tx.operators.get_by_name(account.name) is not None:
                raise Conflict(f"an operator named {account.name!r} exists")
            tx.operators.add(account)
            tx.audit.append(self._audit("operator.added", account, actor, now, {"roles": sorted(parsed_roles)}))
        return account, token

    def list(self, *, limit: int = 100, after: str | None = None) -> Page[OperatorAccount]:
        with self._uow() as tx:
            return tx.operators.list(limit=_page_limit(limit), after=after)

    def get(self, name: str) -> OperatorAccount:
        with self._uow() as tx:
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
    ) -> None:
        if window.ttl > MAX_ELEVATION_TTL or breakglass_ttl > MAX_ELEVATION_TTL:
            msg = "an elevation lives at most 15 minutes"
            raise ValueError(msg)
        self._uow = uow
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
        """Open an approval request for a `step_up` decision, or reuse an identical pending one; returns its id."""
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
        with self._uow() as tx:
            request = tx.approvals.get(approval_id)
        if request is None:
            raise NotFound(f"no approval request {approval_id!r}")
        if request.is_overdue(self._clock.now()):
            return self._expire_one(approval_id)
        return request

    def elevation(self, request: ApprovalRequest) -> Elevation | None:
        if request.elevation_id is None:
            return None
        with self._uow() as tx:
            return tx.approvals.get_elevation(request.elevation_id)

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
        with self._uow() as tx:
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
        expired = False
        with self._uow() as tx:
            request = tx.approvals.get(approval_id, lock=True)
            if request is None:
                raise NotFound(f"no approval request {approval_id!r}")
            if request.is_overdue(now):
                self._expire(tx, request, now)
                expired = True
            else:
                request = self._record_answer(tx, request, approver, approve=approve, reason=reason, now=now)
        if expired:
            raise Conflict("the approval request expired", details={"approval_id": approval_id, "state": "expired"})
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
        self._check_approver(request, approver)
        vote = Vote(approver=approver.name, approve=approve, reason=reason, at=now)
        request = replace(request, votes=(*request.votes, vote))
        actor = AuditActor(ActorKind.APPROVER, approver.name)
        if not approve:
            request = replace(request, state=ApprovalState.DENIED, decided_at=now, reason=reason)
            tx.approvals.update(request)
            self._append(tx, request, "approval.denied", actor, now, {"approver": approver.name, "reason": reason})
            return request
        if len(request.approvals) < request.required:
            tx.approvals.update(request)
            self._append(
                tx,
                request,
                "approval.voted",
                actor,
                now,
                {"approver": approver.name, "approvals": len(request.approvals), "required": request.required},
            )
            return request
        task = self._running_task(tx, request.task_id, now)
        elevation = self._grant(tx, request, task, now, ttl=request.ttl, uses=request.uses, break_glass=False)
        request = replace(request, state=ApprovalState.APPROVED, decided_at=now, elevation_id=elevation.id)
        tx.approvals.update(request)
        self._append(
            tx,
            request,
            "approval.granted",
            actor,
            now,
            {
                "approvers": [v.approver for v in request.approvals],
                "elevation_id": elevation.id,
                "uses": elevation.uses_left,
                "expires_at": elevation.expires_at.isoformat(),
                "authorization_details": request.authorization_details,
            },
        )
        return request

    @staticmethod
    def _check_approver(request: ApprovalRequest, approver: OperatorAccount) -> None:
        """Approvers are people of the request's groups (or its owner), distinct, never the task's principal."""
        if request.kind is not ApprovalKind.APPROVAL:
            raise Conflict("a break-glass grant is not approved; it is reviewed")
        if not approver.has(OperatorRole.APPROVER):
            raise Forbidden("only an account with the approver role may answer an approval request")
        if approver.is_person(request.principal):
            raise Forbidden("nobody may approve a task that runs on their own behalf")
        if any(v.approver == approver.name for v in request.votes):
            raise Conflict("this approver has already answered this request")
        as_owner = OWNER_APPROVES in request.approvers and approver.owner_id == request.owner_id
        if not as_owner and not set(approver.groups) & set(request.approvers):
            raise Forbidden("this account is not an approver for this request")

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
            granted_by=tuple(v.approver for v in request.votes if v.approve),
            break_glass=break_glass,
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

    def _expire(self, tx: ApprovalTransaction, request: ApprovalRequest, now: dt.datetime) -> ApprovalRequest:
        expired = replace(request, state=ApprovalState.EXPIRED, decided_at=now, reason="timeout")
        tx.approvals.update(expired)
        self._append(
            tx,
            expired,
            "approval.expired",
            AuditActor.system(),
            now,
            {"reason": "no answer before the request timed out", "approvals": len(request.approvals)},
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
    ) -> tuple[ApprovalRequest, Elevation]:
        """Self-grant a short elevation for a running task: loud (high-severity audit, alert) and reviewed later."""
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
        now = self._clock.now()
        with self._uow() as tx:
            task = self._running_task(tx, task_id, now)
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
                context={},
                uses=None,
                ttl=window,
                approvers=(OperatorRole.BREAK_GLASS.value,),
                required=1,
                state=ApprovalState.APPROVED,
                created_at=now,
                expires_at=now,
                requested_by=holder.name,
                votes=(Vote(approver=holder.name, approve=True, reason=why, at=now),),
                decided_at=now,
                reason=why,
                justification=why,
                review_state=ReviewState.OPEN,
            )
            tx.approvals.add(request)
            elevation = self._grant(tx, request, task, now, ttl=window, uses=None, break_glass=True)
            request = replace(request, elevation_id=elevation.id)
            tx.approvals.update(request)
            data = {
                "severity": "high",
                "holder": holder.name,
                "justification": why,
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
            request = tx.approvals.get(approval_id, lock=True)
            if request is None or request.kind is not ApprovalKind.BREAK_GLASS:
                raise NotFound(f"no break-glass grant {approval_id!r}")
            if request.requested_by == auditor.name:
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

    def find(self, *, task_id: str, tool: str, action: str, resource: str) -> Elevation | None:
        with self._reads() as tx:
            return tx.approvals.find_elevation(
                task_id=task_id, tool=tool, action=action, resource=resource, now=self._clock.now()
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
