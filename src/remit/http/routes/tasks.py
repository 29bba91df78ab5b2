"""The agent-facing task routes: declare a task and get its credential, re-issue, change objective, finish.

Agents never hold operator tokens. They authenticate with workload evidence (to start a task or get a
new credential) or with the task's own credential (to finish it or change its objective: acts that
only ever reduce access). Operators may read and end any task with the operator token.
"""

from __future__ import annotations

import contextlib

from typing import Annotated, Any, Final

import anyio

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter, QueryParameter

from remit.bootstrap import Remit
from remit.core.attestation.models import DeferredCheck, Evidence, WorkloadIdentity
from remit.core.attestation.waiting import WouldWait, without_waiting
from remit.core.audit.models import ActorKind, AuditActor
from remit.core.credentials.issuance import TaskDeclaration
from remit.core.credentials.models import IssuedCredential, VerifiedCredential
from remit.core.credentials.verification import DpopRequest
from remit.core.registry.service import MAX_PAGE
from remit.core.tasks.models import Task, TaskState, parse_authorization_details
from remit.errors import NotFound, Unauthenticated
from remit.http.auth import bearer_token
from remit.http.mapping import duration_in
from remit.http.problems import problem_responses
from remit.wire.registry import Page
from remit.wire.tasks import (
    CredentialOut,
    EvidenceIn,
    ObjectiveChange,
    ReissueIn,
    TaskEnd,
    TaskIn,
    TaskOut,
    TaskStarted,
)

__all__ = [
    "TaskController",
    "caller_of",
    "credential_out",
    "dpop_key_of",
    "presented_credential",
    "start_task",
    "task_out",
]

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_State = QueryParameter(name="state", description="only tasks in this state")
_Id = Parameter(min_length=5, max_length=40, pattern=r"^tsk_[0-9a-z]{26}$", description="task id")


def task_out(task: Task) -> TaskOut:
    return TaskOut(
        id=task.id,
        agent_id=task.agent_id,
        owner_id=task.owner_id,
        function_id=task.function_id,
        workflow=task.workflow_ref,
        objective=task.objective,
        authorization_details=[d.as_json() for d in task.details],
        environment=task.environment,
        audience=task.audience,
        state=task.state.value,
        created_at=task.created_at,
        deadline=task.deadline,
        ended_at=task.ended_at,
        end_reason=task.end_reason,
        parent_id=task.parent_id,
        lineage=list(task.lineage),
        principal=task.principal,
        epoch=task.epoch,
        dpop_bound=task.dpop_jkt is not None,
    )


def credential_out(issued: IssuedCredential) -> CredentialOut:
    return CredentialOut(
        access_token=issued.token,
        token_type="DPoP" if issued.dpop_bound else "Bearer",
        expires_in=issued.expires_in(),
        expires_at=issued.expires_at,
        scope=issued.scope,
        jti=issued.jti,
    )


def evidence_in(evidence: EvidenceIn) -> Evidence:
    return Evidence.parse(evidence.kind, evidence.token)


def request_url(remit: Remit, request: Request[Any, Any, Any]) -> str:
    """The URL the client addressed, for DPoP `htu`: the configured public URL plus the request path."""
    return remit.settings.public_url.rstrip("/") + request.url.path


def dpop_key_of(remit: Remit, proof: str | None, *, method: str, path: str) -> str | None:
    """The jkt of the DPoP proof sent at issuance (None without one); the proof must be for this request."""
    if proof is None:
        return None
    return remit.proofs.verify(proof, method=method, url=remit.settings.public_url.rstrip("/") + path).jkt


async def attested_for_issuance(
    remit: Remit, evidence: Evidence, *, dpop: str | None, path: str
) -> tuple[WorkloadIdentity, DeferredCheck, str | None]:
    """The workload, its evidence signature check left to issuance's batch (ADR 0015), and the DPoP proof's key.

    On the event loop, from the keys already loaded (in a worker thread, and checked whole, when a key set
    must be fetched first). A DPoP proof at issuance is checked in a worker thread (its replay guard is the
    store), after the evidence signature, so a forged SVID spends no proof. Every issuance door uses it:
    task start, the token exchange and re-issue.
    """
    try:
        with without_waiting():
            identity, check = remit.attestation.verify_deferred(evidence)  # single use: spent by issuance
    except WouldWait:
        identity = await anyio.to_thread.run_sync(remit.attestation.verify, evidence)
        check = DeferredCheck.done()
    jkt = None
    if dpop is not None:

        def checked_proof() -> str | None:
            check()
            return dpop_key_of(remit, dpop, method="POST", path=path)

        jkt = await anyio.to_thread.run_sync(checked_proof)
    return identity, check, jkt


async def start_task(remit: Remit, data: TaskIn, *, dpop: str | None, path: str) -> tuple[TaskStarted, dict[str, str]]:
    """`POST /v1/tasks`, whichever door it came in by: the answer (201) and its headers.

    Runs on the event loop (`attested_for_issuance`, then issuance awaiting its group commit).
    """
    identity, check, jkt = await attested_for_issuance(remit, evidence_in(data.evidence), dpop=dpop, path=path)
    declaration = TaskDeclaration(
        workflow=data.workflow,
        objective=data.objective,
        details=parse_authorization_details([d.model_dump() for d in data.authorization_details]),
        expected_duration=duration_in(data.expected_duration_seconds),
        environment=data.environment,
        audience=data.audience,
        parent_token=data.parent_token,
        principal=data.principal,
        labels=data.labels,
    )
    task, issued = await remit.issuance.start_task_async(identity, declaration, dpop_jkt=jkt, evidence_check=check)
    answer = TaskStarted(task=task_out(task), credential=credential_out(issued))
    return answer, {**_NO_STORE, "Location": f"/v1/tasks/{task.id}"}


def presented_credential(remit: Remit, request: Request[Any, Any, Any]) -> VerifiedCredential | None:
    """The task credential in `Authorization: Bearer|DPoP <compact JWS>`, verified with the request's DPoP proof.

    None when the header holds no JWS (an operator token, or nothing); a JWS that fails is an error.
    """
    scheme, _, presented = (request.headers.get("authorization") or "").strip().partition(" ")
    presented = presented.strip()
    if scheme.lower() not in {"dpop", "bearer"} or presented.count(".") != 2:  # noqa: PLR2004 - a compact JWS
        return None
    dpop = DpopRequest(request.headers.get("dpop"), request.method, request_url(remit, request))
    return remit.verify_own_credential(presented, dpop=dpop)


def caller_of(remit: Remit, request: Request[Any, Any, Any]) -> tuple[AuditActor, str | None]:
    """Who calls: the operator (no agent restriction) or an agent by its task credential (restricted to its task).

    Returns the audit actor and, for an agent, the task id its credential is for.
    """
    header = request.headers.get("authorization") or ""
    if header.strip().lower().startswith("bearer "):
        # The operator token first (constant time), so an operator token that happens to contain
        # dots is never mistaken for a credential.
        with contextlib.suppress(Unauthenticated):
            return AuditActor(ActorKind.OPERATOR, remit.operator.authenticate(bearer_token(header))), None
    credential = presented_credential(remit, request)
    if credential is not None:
        return AuditActor(ActorKind.AGENT, credential.agent_id), credential.task_id
    raise Unauthenticated("an operator token or the task's own credential is required")


def _own(task_id: str, credential_task: str | None) -> None:
    if credential_task is not None and credential_task != task_id:
        # A credential only speaks for its own task; another task reads as absent.
        msg = f"no task {task_id!r}"
        raise NotFound(msg)


class TaskController(Controller):
    """Tasks: declared by attested agents, ended by them or by operators."""

    path = "/v1/tasks"
    tags = ["tasks"]  # noqa: RUF012 - Litestar reads a plain list

    @post(
        "/",
        status_code=201,
        responses=problem_responses(400, 401, 403, 409, 413, 503),
        security=[],
    )
    async def start(
        self, data: JSONBody[TaskIn], remit: NamedDependency[Remit], request: Request[Any, Any, Any]
    ) -> Response[TaskStarted]:
        """Declare a task with workload evidence; returns the task and its first credential (shown once)."""
        answer, headers = await start_task(remit, data, dpop=request.headers.get("dpop"), path=request.url.path)
        return Response(answer, status_code=201, headers=headers)

    @get("/", sync_to_thread=True, responses=problem_responses(400, 401, 503))
    def list_tasks(
        self,
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        limit: int = Parameter(default=100, ge=1, le=MAX_PAGE),
        after: str | None = Parameter(default=None, max_length=40),
        agent: str | None = Parameter(default=None, max_length=40, description="agent id"),
        task_state: Annotated[TaskState | None, _State] = None,
    ) -> Page[TaskOut]:
        """List tasks (operator only), newest id last; filter by agent id and state."""
        remit.operator.authenticate(bearer_token(request.headers.get("authorization")))
        page = remit.tasks.list(limit=limit, after=after, agent_id=agent, state=task_state)
        return Page[TaskOut](items=[task_out(t) for t in page.items], next_cursor=page.next_cursor)

    @get("/{task_id:str}", sync_to_thread=True, responses=problem_responses(401, 404, 503))
    def show(self, remit: NamedDependency[Remit], request: Request[Any, Any, Any], task_id: str = _Id) -> TaskOut:
        """A task, for the operator or for the agent holding one of its credentials."""
        _, own_task = caller_of(remit, request)
        _own(task_id, own_task)
        return task_out(remit.tasks.get(task_id))

    @post("/{task_id:str}/end", status_code=200, sync_to_thread=True, responses=problem_responses(400, 401, 404, 409))
    def end(
        self,
        data: JSONBody[TaskEnd],
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        task_id: str = _Id,
    ) -> TaskOut:
        """Finish a task (completed, failed, cancelled): every credential of it and its descendants dies."""
        actor, own_task = caller_of(remit, request)
        _own(task_id, own_task)
        task = remit.tasks.finish(task_id, TaskState(data.outcome), reason=data.reason, actor=actor)
        return task_out(task)

    @post(
        "/{task_id:str}/objective",
        status_code=200,
        sync_to_thread=True,
        responses=problem_responses(400, 401, 404, 409),
    )
    def change_objective(
        self,
        data: JSONBody[ObjectiveChange],
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        task_id: str = _Id,
    ) -> TaskOut:
        """Change the objective: a context change that revokes every credential issued so far (C23)."""
        actor, own_task = caller_of(remit, request)
        _own(task_id, own_task)
        return task_out(remit.tasks.change_objective(task_id, data.objective, actor=actor))

    @post(
        "/{task_id:str}/credentials",
        status_code=201,
        responses=problem_responses(400, 401, 403, 404, 409),
        security=[],
    )
    async def reissue(
        self,
        data: JSONBody[ReissueIn],
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        task_id: str = _Id,
    ) -> Response[CredentialOut]:
        """A new credential for a running task, with fresh evidence; `audience` = the issuer for delegation.

        As `POST /v1/tasks`: the evidence signature is checked in the issuance batch before anything is
        written (ADR 0015), and the write is awaited on the event loop.
        """
        evidence = evidence_in(data.evidence)
        dpop = request.headers.get("dpop")
        identity, check, jkt = await attested_for_issuance(remit, evidence, dpop=dpop, path=request.url.path)
        issued = await remit.issuance.reissue_async(
            identity, task_id, audience=data.audience, dpop_jkt=jkt, evidence_check=check
        )
        return Response(credential_out(issued), status_code=201, headers=_NO_STORE)
