"""ApprovalStore and OperatorStore over SQL; webhook delivery attempts."""

from __future__ import annotations

import datetime as dt

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, and_, bindparam, exists, func, insert, or_, select, update

from remit.adapters.sql.tables import (
    approvals,
    audit_events,
    elevations,
    operator_accounts,
    tasks,
    webhook_deliveries,
)
from remit.core.approvals.models import (
    ApprovalKind,
    ApprovalRequest,
    ApprovalState,
    Elevation,
    OperatorAccount,
    OperatorRole,
    ReviewState,
    Vote,
)
from remit.core.registry.models import Page, RiskClass, Sensitivity
from remit.core.tasks.models import TaskState
from remit.errors import Conflict

__all__ = ["SqlApprovalStore", "SqlOperatorStore", "record_delivery_attempt"]


def _dt(raw: str) -> dt.datetime:
    return dt.datetime.fromisoformat(raw)


def _request(row: Row[Any]) -> ApprovalRequest:
    return ApprovalRequest(
        id=row.id,
        kind=ApprovalKind(row.kind),
        task_id=row.task_id,
        agent_id=row.agent_id,
        owner_id=row.owner_id,
        function_id=row.function_id,
        principal=row.principal,
        objective=row.objective,
        tool=row.tool,
        action=row.action,
        resource=row.resource,
        risk_class=RiskClass(row.risk_class),
        sensitivity=Sensitivity.parse(row.sensitivity) if row.sensitivity else None,
        environment=row.environment,
        context=dict(row.context),
        uses=row.uses,
        ttl=dt.timedelta(seconds=row.ttl_seconds),
        approvers=tuple(row.approvers),
        required=row.required,
        state=ApprovalState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        requested_by=row.requested_by,
        epoch=row.epoch,
        decision_id=row.decision_id,
        votes=tuple(
            Vote(
                approver=v["approver"],
                approve=bool(v["approve"]),
                reason=v["reason"],
                at=_dt(v["at"]),
                person=v.get("person", ""),
            )
            for v in row.votes
        ),
        decided_at=row.decided_at,
        reason=row.reason,
        elevation_id=row.elevation_id,
        justification=row.justification,
        review_state=ReviewState(row.review_state) if row.review_state else None,
        reviewed_by=row.reviewed_by,
        reviewed_at=row.reviewed_at,
        review_notes=row.review_notes,
    )


def _mutable(request: ApprovalRequest) -> dict[str, Any]:
    return {
        "state": request.state.value,
        "pending_key": request.pending_key if request.state is ApprovalState.PENDING else None,
        "votes": [v.as_json() for v in request.votes],
        "decided_at": request.decided_at,
        "reason": request.reason,
        "elevation_id": request.elevation_id,
        "review_state": request.review_state.value if request.review_state else None,
        "reviewed_by": request.reviewed_by,
        "reviewed_at": request.reviewed_at,
        "review_notes": request.review_notes,
    }


def _elevation(row: Row[Any]) -> Elevation:
    return Elevation(
        id=row.id,
        approval_id=row.approval_id,
        task_id=row.task_id,
        agent_id=row.agent_id,
        owner_id=row.owner_id,
        function_id=row.function_id,
        tool=row.tool,
        action=row.action,
        resource=row.resource,
        uses_left=row.uses_left,
        used=row.used,
        granted_at=row.granted_at,
        expires_at=row.expires_at,
        granted_by=tuple(row.granted_by),
        break_glass=bool(row.break_glass),
        epoch=row.epoch,
        context_sha256=row.context_sha256,
    )


# Built once: the decision path asks this for every high-risk call.
_FIND_ELEVATION = (
    select(elevations)
    .where(
        elevations.c.task_id == bindparam("task_id"),
        elevations.c.epoch == bindparam("epoch"),
        elevations.c.tool == bindparam("tool"),
        elevations.c.action == bindparam("action"),
        elevations.c.resource == bindparam("resource"),
        elevations.c.context_sha256 == bindparam("context_sha256"),
        elevations.c.expires_at > bindparam("now"),
        or_(elevations.c.uses_left.is_(None), elevations.c.uses_left > 0),
    )
    .order_by(elevations.c.expires_at)
    .limit(1)
)
# One conditional UPDATE: exactly one caller wins each use, on every backend and replica, and only
# while the task still runs at the elevation's epoch (an ended task's elevation is dead at once).
_CONSUME = (
    update(elevations)
    .where(
        elevations.c.id == bindparam("elevation_id"),
        elevations.c.expires_at > bindparam("now"),
        or_(elevations.c.uses_left.is_(None), elevations.c.uses_left > 0),
        exists().where(
            tasks.c.id == elevations.c.task_id,
            tasks.c.state == TaskState.RUNNING.value,
            tasks.c.deadline > bindparam("now"),
            tasks.c.epoch == elevations.c.epoch,
        ),
    )
    .values(
        used=elevations.c.used + 1,
        uses_left=elevations.c.uses_left - 1,  # NULL - 1 stays NULL: a window is not counted down
    )
)


class SqlApprovalStore:
    """Approval requests and elevations, on the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, request: ApprovalRequest) -> None:
        self._c.execute(
            insert(approvals).values(
                id=request.id,
                kind=request.kind.value,
                task_id=request.task_id,
                agent_id=request.agent_id,
                owner_id=request.owner_id,
                function_id=request.function_id,
                principal=request.principal,
                objective=request.objective,
                tool=request.tool,
                action=request.action,
                resource=request.resource,
                risk_class=request.risk_class.value,
                sensitivity=request.sensitivity.label if request.sensitivity is not None else None,
                environment=request.environment,
                context=dict(request.context),
                context_sha256=request.context_sha256,
                epoch=request.epoch,
                uses=request.uses,
                ttl_seconds=int(request.ttl.total_seconds()),
                approvers=list(request.approvers),
                required=request.required,
                created_at=request.created_at,
                expires_at=request.expires_at,
                requested_by=request.requested_by,
                decision_id=request.decision_id,
                justification=request.justification,
                **_mutable(request),
            )
        )

    def get(self, approval_id: str, *, lock: bool = False) -> ApprovalRequest | None:
        query = select(approvals).where(approvals.c.id == approval_id)
        if lock and self._c.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self._c.execute(query).first()
        return _request(row) if row is not None else None

    def pending_with_key(self, key: str) -> ApprovalRequest | None:
        row = self._c.execute(select(approvals).where(approvals.c.pending_key == key)).first()
        return _request(row) if row is not None else None

    def update(self, request: ApprovalRequest) -> None:
        result = self._c.execute(update(approvals).where(approvals.c.id == request.id).values(**_mutable(request)))
        if result.rowcount != 1:
            msg = f"no approval request {request.id!r}"
            raise Conflict(msg)

    def list(
        self,
        *,
        limit: int,
        after: str | None,
        state: ApprovalState | None = None,
        kind: ApprovalKind | None = None,
        task_id: str | None = None,
        unreviewed: bool = False,
    ) -> Page[ApprovalRequest]:
        query = select(approvals).order_by(approvals.c.id).limit(limit + 1)
        if after:
            query = query.where(approvals.c.id > after)
        if state is not None:
            query = query.where(approvals.c.state == state.value)
        if kind is not None:
            query = query.where(approvals.c.kind == kind.value)
        if task_id is not None:
            query = query.where(approvals.c.task_id == task_id)
        if unreviewed:
            query = query.where(approvals.c.review_state == ReviewState.OPEN.value)
        rows = self._c.execute(query).all()
        items = [_request(r) for r in rows[:limit]]
        return Page(items=tuple(items), next_cursor=items[-1].id if len(rows) > limit else None)

    def overdue(self, now: dt.datetime, *, limit: int) -> Sequence[ApprovalRequest]:
        query = (
            select(approvals)
            .where(and_(approvals.c.state == ApprovalState.PENDING.value, approvals.c.expires_at <= now))
            .order_by(approvals.c.expires_at)
            .limit(limit)
        )
        if self._c.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [_request(r) for r in self._c.execute(query)]

    def add_elevation(self, elevation: Elevation) -> None:
        self._c.execute(
            insert(elevations).values(
                id=elevation.id,
                approval_id=elevation.approval_id,
                task_id=elevation.task_id,
                agent_id=elevation.agent_id,
                owner_id=elevation.owner_id,
                function_id=elevation.function_id,
                tool=elevation.tool,
                action=elevation.action,
                resource=elevation.resource,
                uses_left=elevation.uses_left,
                used=elevation.used,
                granted_at=elevation.granted_at,
                expires_at=elevation.expires_at,
                granted_by=list(elevation.granted_by),
                break_glass=int(elevation.break_glass),
                epoch=elevation.epoch,
                context_sha256=elevation.context_sha256,
            )
        )

    def get_elevation(self, elevation_id: str) -> Elevation | None:
        row = self._c.execute(select(elevations).where(elevations.c.id == elevation_id)).first()
        return _elevation(row) if row is not None else None

    def find_elevation(  # noqa: PLR0913 - the exact call, each part named
        self,
        *,
        task_id: str,
        epoch: int,
        tool: str,
        action: str,
        resource: str,
        context_sha256: str,
        now: dt.datetime,
    ) -> Elevation | None:
        row = self._c.execute(
            _FIND_ELEVATION,
            {
                "task_id": task_id,
                "epoch": epoch,
                "tool": tool,
                "action": action,
                "resource": resource,
                "context_sha256": context_sha256,
                "now": now,
            },
        ).first()
        return _elevation(row) if row is not None else None

    def count_pending(self, task_id: str) -> int:
        query = select(func.count()).where(
            approvals.c.task_id == task_id, approvals.c.state == ApprovalState.PENDING.value
        )
        return int(self._c.execute(query).scalar_one())

    def history_start(self, task_id: str, *, last: int) -> int:
        query = (
            select(audit_events.c.seq)
            .where(audit_events.c.task_id == task_id)
            .order_by(audit_events.c.seq.desc())
            .limit(1)
            .offset(max(0, last - 1))
        )
        found = self._c.execute(query).scalar()
        if found is None:
            return 0
        return int(found) - 1

    def consume_elevation(self, elevation_id: str, now: dt.datetime) -> bool:
        return self._c.execute(_CONSUME, {"elevation_id": elevation_id, "now": now}).rowcount == 1


def _account(row: Row[Any]) -> OperatorAccount:
    return OperatorAccount(
        id=row.id,
        name=row.name,
        roles=frozenset(OperatorRole(r) for r in row.roles),
        groups=tuple(row.groups),
        email=row.email,
        owner_id=row.owner_id,
        token_sha256=row.token_sha256,
        created_at=row.created_at,
        created_by=row.created_by,
        disabled_at=row.disabled_at,
        disabled_by=row.disabled_by,
        disable_reason=row.disable_reason,
    )


class SqlOperatorStore:
    """Operator accounts, on the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, account: OperatorAccount) -> None:
        self._c.execute(
            insert(operator_accounts).values(
                id=account.id,
                name=account.name,
                roles=sorted(r.value for r in account.roles),
                groups=list(account.groups),
                email=account.email,
                owner_id=account.owner_id,
                token_sha256=account.token_sha256,
                created_at=account.created_at,
                created_by=account.created_by,
                disabled_at=account.disabled_at,
                disabled_by=account.disabled_by,
                disable_reason=account.disable_reason,
            )
        )

    def update(self, account: OperatorAccount) -> None:
        self._c.execute(
            update(operator_accounts)
            .where(operator_accounts.c.id == account.id)
            .values(
                disabled_at=account.disabled_at,
                disabled_by=account.disabled_by,
                disable_reason=account.disable_reason,
            )
        )

    def get_by_name(self, name: str) -> OperatorAccount | None:
        row = self._c.execute(select(operator_accounts).where(operator_accounts.c.name == name)).first()
        return _account(row) if row is not None else None

    def active_for_person(self, *, emails: Sequence[str], owner_ids: Sequence[str]) -> Sequence[OperatorAccount]:
        same = [
            c.in_(list(v))
            for c, v in ((operator_accounts.c.email, emails), (operator_accounts.c.owner_id, owner_ids))
            if v
        ]
        if not same:
            return []
        query = select(operator_accounts).where(operator_accounts.c.disabled_at.is_(None), or_(*same))
        return [_account(r) for r in self._c.execute(query)]

    def get_by_digest(self, digest: str) -> OperatorAccount | None:
        row = self._c.execute(select(operator_accounts).where(operator_accounts.c.token_sha256 == digest)).first()
        return _account(row) if row is not None else None

    def list(self, *, limit: int, after: str | None) -> Page[OperatorAccount]:
        query = select(operator_accounts).order_by(operator_accounts.c.name).limit(limit + 1)
        if after:
            query = query.where(operator_accounts.c.name > after)
        rows = self._c.execute(query).all()
        items = [_account(r) for r in rows[:limit]]
        return Page(items=tuple(items), next_cursor=items[-1].name if len(rows) > limit else None)


def record_delivery_attempt(  # noqa: PLR0913 - one attempt's facts
    connection: Connection,
    *,
    delivery: str,
    attempt: int,
    group: str,
    url: str,
    event: str,
    task_id: str | None,
    status_code: int | None,
    error: str | None,
    delivered: bool,
    at: dt.datetime,
) -> None:
    connection.execute(
        insert(webhook_deliveries).values(
            delivery=delivery,
            attempt=attempt,
            group_name=group,
            url=url,
            event=event,
            task_id=task_id,
            status_code=status_code,
            error=error,
            delivered=int(delivered),
            at=at,
        )
    )
