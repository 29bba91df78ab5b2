"""Approvals, break-glass and operator accounts over HTTP.

* `GET /v1/approvals` — approvers, auditors and admins list requests.
* `GET /v1/approvals/{id}[?wait=s]` — an operator, or the agent with its task credential (its own
  task's requests only), reads one request; `wait` long-polls until it is no longer pending.
* `POST /v1/approvals/{id}/approve|deny` — an operator account with the approver role. A task
  credential (any workload identity) is never an operator token, so an agent can never answer.
* `POST /v1/breakglass`, `GET /v1/breakglass`, `POST /v1/breakglass/{id}/review` — break-glass
  holders grant, auditors review.
* `/v1/operators` — admins manage accounts (under the operator-guarded /v1 router).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, QueryParameter

from remit.bootstrap import ACCOUNT_TOKEN_PREFIX, Operator, Remit
from remit.core.approvals.models import ApprovalKind, ApprovalRequest, ApprovalState, OperatorAccount, OperatorRole
from remit.core.audit.models import SealedRecord
from remit.core.registry.service import MAX_PAGE
from remit.errors import Forbidden, NotFound, Unauthenticated
from remit.http.auth import bearer_token
from remit.http.problems import problem_responses
from remit.http.routes.tasks import presented_credential
from remit.wire.approvals import (
    ApprovalAnswer,
    ApprovalOut,
    BreakGlassIn,
    BreakGlassReview,
    ElevationOut,
    HistoryItem,
    OperatorCreated,
    OperatorDisableIn,
    OperatorIn,
    OperatorOut,
    VoteOut,
)
from remit.wire.registry import Page

__all__ = ["ApprovalController", "BreakGlassController", "OperatorController", "approval_out", "operator_out"]

_Id = Parameter(min_length=5, max_length=40, pattern=r"^apr_[0-9a-z]{26}$", description="approval request id")
_Name = Parameter(min_length=1, max_length=63, description="operator account name")
_State = QueryParameter(name="state", description="only requests in this state")
_Wait = QueryParameter(name="wait", description="long-poll: seconds to wait while the request is pending")
_POLL_SECONDS: Final = 0.2
_HISTORY: Final = 50
_READERS: Final = (OperatorRole.ADMIN, OperatorRole.APPROVER, OperatorRole.AUDITOR, OperatorRole.BREAK_GLASS)


def operator_out(account: OperatorAccount) -> OperatorOut:
    return OperatorOut(
        id=account.id,
        name=account.name,
        roles=sorted(r.value for r in account.roles),
        groups=list(account.groups),
        email=account.email,
        owner_id=account.owner_id,
        active=account.is_active,
        created_at=account.created_at,
        created_by=account.created_by,
        disabled_at=account.disabled_at,
        disabled_by=account.disabled_by,
        disable_reason=account.disable_reason,
    )


def approval_out(remit: Remit, request: ApprovalRequest, *, history: bool = False) -> ApprovalOut:
    elevation = remit.approvals.elevation(request)
    events: list[HistoryItem] | None = None
    if history:
        # Only the task's last records: one indexed read for where they start, then one page.
        after = remit.approvals.history_start(request.task_id, last=_HISTORY)
        page = remit.audit.page(after=after, limit=_HISTORY, task_id=request.task_id)
        records = [r for r in page.records if isinstance(r, SealedRecord)]
        events = [
            HistoryItem(
                sequence=r.sequence,
                type=r.event.type,
                occurred_at=r.event.occurred_at,
                actor_kind=r.event.actor.kind.value,
                actor_id=r.event.actor.id,
                subject_id=r.event.subject_id,
            )
            for r in records[-_HISTORY:]
        ]
    return ApprovalOut(
        id=request.id,
        kind=request.kind.value,
        state=request.state.value,
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
        authorization_details=request.authorization_details,
        uses=request.uses,
        ttl_seconds=int(request.ttl.total_seconds()),
        approvers=list(request.approvers),
        required=request.required,
        approvals=len(request.approvals),
        votes=[VoteOut(approver=v.approver, approve=v.approve, reason=v.reason, at=v.at) for v in request.votes],
        created_at=request.created_at,
        expires_at=request.expires_at,
        decided_at=request.decided_at,
        reason=request.reason,
        decision_id=request.decision_id,
        requested_by=request.requested_by,
        elevation=None if elevation is None else ElevationOut.model_validate(elevation.as_json()),
        justification=request.justification,
        review_state=request.review_state.value if request.review_state else None,
        reviewed_by=request.reviewed_by,
        reviewed_at=request.reviewed_at,
        review_notes=request.review_notes,
        history=events,
    )


def _operator(remit: Remit, request: Request[Any, Any, Any], *roles: OperatorRole) -> Operator:
    operator = remit.operator.identify(bearer_token(request.headers.get("authorization")))
    if not any(operator.has(r) for r in roles):
        wanted = " or ".join(r.value for r in roles)
        msg = f"this needs the {wanted} role"
        raise Forbidden(msg)
    return operator


def _account(operator: Operator, role: OperatorRole) -> OperatorAccount:
    """Answers and grants are personal: they need an operator account, not the shared bootstrap token."""
    if operator.account is None or not operator.account.has(role):
        msg = f"this needs an operator account with the {role.value} role"
        raise Forbidden(msg)
    return operator.account


def _reader(remit: Remit, request: Request[Any, Any, Any]) -> str | None:
    """Who reads: an operator (returns None) or an agent by its task credential (returns the task id)."""
    header = request.headers.get("authorization") or ""
    scheme, _, presented = header.strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() == "bearer" and presented.startswith(ACCOUNT_TOKEN_PREFIX):
        _operator(remit, request, *_READERS)
        return None
    credential = presented_credential(remit, request)
    if credential is not None:
        return credential.task_id
    if scheme.lower() == "bearer":
        _operator(remit, request, *_READERS)  # the bootstrap token, whatever its shape
        return None
    raise Unauthenticated("an operator token or the task's own credential is required")


class ApprovalController(Controller):
    """Approval requests: read by approvers and by the agent whose task asked; answered by approvers."""

    path = "/v1/approvals"
    tags = ["approvals"]  # noqa: RUF012 - Litestar reads a plain list

    @get("/", sync_to_thread=True, responses=problem_responses(400, 401, 403, 503))
    def list_approvals(
        self,
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        limit: int = Parameter(default=100, ge=1, le=MAX_PAGE),
        after: str | None = Parameter(default=None, max_length=40),
        task: str | None = Parameter(default=None, max_length=40, description="task id"),
        approval_state: Annotated[ApprovalState | None, _State] = None,
    ) -> Page[ApprovalOut]:
        """Approval requests by id (oldest first): approvers, auditors and admins."""
        _operator(remit, request, OperatorRole.ADMIN, OperatorRole.APPROVER, OperatorRole.AUDITOR)
        page = remit.approvals.list(
            limit=limit, after=after, state=approval_state, kind=ApprovalKind.APPROVAL, task_id=task
        )
        return Page[ApprovalOut](items=[approval_out(remit, a) for a in page.items], next_cursor=page.next_cursor)

    @get("/{approval_id:str}", responses=problem_responses(400, 401, 403, 404, 503))
    async def show(
        self,
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        approval_id: str = _Id,
        wait: Annotated[float, _Wait] = 0.0,
    ) -> ApprovalOut:
        """One request; with `wait`, answered once it is no longer pending or after `wait` seconds (long-poll).

        The agent reads its own task's requests with its task credential (CIBA-style polling); once
        approved, `elevation` says what was granted: the next decision for exactly that call is allowed.
        """
        own_task = await asyncio.to_thread(_reader, remit, request)
        deadline = time.monotonic() + max(0.0, min(wait, remit.settings.approvals.max_wait_seconds))
        while True:
            found = await asyncio.to_thread(remit.approvals.get, approval_id)
            if own_task is not None and found.task_id != own_task:
                msg = f"no approval request {approval_id!r}"
                raise NotFound(msg)  # another task's request reads as absent
            remaining = deadline - time.monotonic()
            if found.state is not ApprovalState.PENDING or remaining <= 0:
                break
            await asyncio.sleep(min(_POLL_SECONDS, remaining))
        return await asyncio.to_thread(approval_out, remit, found, history=own_task is None)

    @post(
        "/{approval_id:str}/approve",
        status_code=200,
        sync_to_thread=True,
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    def approve(
        self,
        data: JSONBody[ApprovalAnswer],
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        approval_id: str = _Id,
    ) -> ApprovalOut:
        """Approve (an approver of the request's groups, never the task's principal, each person once)."""
        account = _account(_operator(remit, request, OperatorRole.APPROVER), OperatorRole.APPROVER)
        return approval_out(remit, remit.approvals.approve(approval_id, approver=account, reason=data.reason))

    @post(
        "/{approval_id:str}/deny",
        status_code=200,
        sync_to_thread=True,
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    def deny(
        self,
        data: JSONBody[ApprovalAnswer],
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        approval_id: str = _Id,
    ) -> ApprovalOut:
        """Deny with a reason: the request ends at once."""
        account = _account(_operator(remit, request, OperatorRole.APPROVER), OperatorRole.APPROVER)
        return approval_out(remit, remit.approvals.deny(approval_id, approver=account, reason=data.reason))


class BreakGlassController(Controller):
    """Break-glass: a holder self-grants a short elevation, loudly; an auditor closes the review."""

    path = "/v1/breakglass"
    tags = ["approvals"]  # noqa: RUF012 - Litestar reads a plain list

    @post("/", status_code=201, sync_to_thread=True, responses=problem_responses(400, 401, 403, 404, 409))
    def grant(
        self, data: JSONBody[BreakGlassIn], remit: NamedDependency[Remit], request: Request[Any, Any, Any]
    ) -> Response[ApprovalOut]:
        """Grant an elevation for one call of a running task (break-glass role, written justification)."""
        holder = _account(_operator(remit, request, OperatorRole.BREAK_GLASS), OperatorRole.BREAK_GLASS)
        granted, _ = remit.approvals.break_glass(
            holder=holder,
            task_id=data.task_id,
            tool=data.tool,
            action=data.action,
            resource=data.resource,
            justification=data.justification,
            ttl=dt.timedelta(seconds=data.ttl_seconds) if data.ttl_seconds else None,
            context=data.context,
        )
        return Response(approval_out(remit, granted), status_code=201)

    @get("/", sync_to_thread=True, responses=problem_responses(400, 401, 403, 503))
    def list_grants(
        self,
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        limit: int = Parameter(default=100, ge=1, le=MAX_PAGE),
        after: str | None = Parameter(default=None, max_length=40),
        unreviewed: bool = Parameter(default=False, description="only grants whose review is open"),
    ) -> Page[ApprovalOut]:
        """Break-glass grants (auditors, admins and holders)."""
        _operator(remit, request, OperatorRole.ADMIN, OperatorRole.AUDITOR, OperatorRole.BREAK_GLASS)
        page = remit.approvals.list(limit=limit, after=after, kind=ApprovalKind.BREAK_GLASS, unreviewed=unreviewed)
        return Page[ApprovalOut](items=[approval_out(remit, a) for a in page.items], next_cursor=page.next_cursor)

    @post(
        "/{approval_id:str}/review",
        status_code=200,
        sync_to_thread=True,
        responses=problem_responses(400, 401, 403, 404, 409),
    )
    def review(
        self,
        data: JSONBody[BreakGlassReview],
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        approval_id: str = _Id,
    ) -> ApprovalOut:
        """Close a grant's post-use review (an auditor other than the holder)."""
        auditor = _account(_operator(remit, request, OperatorRole.AUDITOR), OperatorRole.AUDITOR)
        return approval_out(remit, remit.approvals.review(approval_id, auditor=auditor, notes=data.notes), history=True)


class OperatorController(Controller):
    """Operator accounts (admin only): people with roles and their own tokens."""

    path = "/operators"  # under the /v1 router
    tags = ["operators"]  # noqa: RUF012 - Litestar reads a plain list

    @post("/", status_code=201, sync_to_thread=True, responses=problem_responses(400, 401, 403, 404, 409))
    def add(
        self, data: JSONBody[OperatorIn], remit: NamedDependency[Remit], actor: NamedDependency[str]
    ) -> Response[OperatorCreated]:
        """Create an account; its token is in this response only (stored as a SHA-256 digest)."""
        account, token = remit.operators.add(
            name=data.name, roles=data.roles, groups=data.groups, email=data.email, owner=data.owner, actor=actor
        )
        return Response(
            OperatorCreated(operator=operator_out(account), token=token),
            status_code=201,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    @get("/", sync_to_thread=True, responses=problem_responses(400, 401, 403))
    def list_operators(
        self,
        remit: NamedDependency[Remit],
        limit: int = Parameter(default=100, ge=1, le=MAX_PAGE),
        after: str | None = Parameter(default=None, max_length=63),
    ) -> Page[OperatorOut]:
        """Accounts by name."""
        page = remit.operators.list(limit=limit, after=after)
        return Page[OperatorOut](items=[operator_out(a) for a in page.items], next_cursor=page.next_cursor)

    @post("/{name:str}/disable", status_code=200, sync_to_thread=True, responses=problem_responses(400, 401, 403, 404))
    def disable(
        self,
        data: JSONBody[OperatorDisableIn],
        remit: NamedDependency[Remit],
        actor: NamedDependency[str],
        name: str = _Name,
    ) -> OperatorOut:
        """Disable an account: its token stops working at once."""
        return operator_out(remit.operators.disable(name, reason=data.reason, actor=actor))
