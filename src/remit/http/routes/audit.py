"""The reviewer's audit routes: a task's trace, chain verification, paged and OCSF export, and checkpoints.

Every route needs the operator token. Records carry credentials only as `jti_hmac`; the OCSF mapping
(`remit.adapters.sinks`, OCSF 1.8.0) also masks anything shaped like a token.
"""

from __future__ import annotations

import datetime as dt
import json

from collections.abc import Iterable
from typing import Annotated, Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from remit.adapters.sinks import to_ocsf
from remit.adapters.sql.audit import SqlAuditLedger
from remit.bootstrap import Remit
from remit.core.audit.chain import checkpoint_to_json
from remit.core.audit.models import SealedRecord, UnreadableRecord, VerificationReport
from remit.core.tasks.models import Task
from remit.http.auth import AUDIT_READERS, bearer_token
from remit.http.problems import problem_responses
from remit.http.routes.tasks import task_out
from remit.wire.audit import (
    AuditEventOut,
    AuditEventsOut,
    FaultOut,
    OcsfEventsOut,
    TraceOut,
    UnreadableOut,
    VerificationOut,
)

__all__ = ["AuditController", "event_out", "task_trace"]

_MAX_EVENTS: Final = 1000
_TASK_PAGE: Final = 500
# Ids and creation times come from each replica's clock: allow for skew when stopping the scan.
_CLOCK_SLACK: Final = dt.timedelta(minutes=5)
_REFUSED: Final = "credential.refused"
_Type = QueryParameter(name="type", description="only records of these event types")
_TaskId = Parameter(min_length=5, max_length=40, pattern=r"^tsk_[0-9a-z]{26}$", description="task id")


def _operator(remit: Remit, request: Request[Any, Any, Any]) -> None:
    remit.operator.authenticate(bearer_token(request.headers.get("authorization")), roles=AUDIT_READERS)


def event_out(record: SealedRecord) -> AuditEventOut:
    event = record.event
    return AuditEventOut(
        sequence=record.sequence,
        id=event.id,
        type=event.type,
        occurred_at=event.occurred_at,
        actor_kind=event.actor.kind.value,
        actor_id=event.actor.id,
        subject_kind=event.subject_kind,
        subject_id=event.subject_id,
        data=event.data,
        task_id=event.task_id,
        agent_id=event.agent_id,
        owner_id=event.owner_id,
        function_id=event.function_id,
        correlation_id=event.correlation_id,
        schema_version=record.schema,
        prev_hash=record.prev_hash,
        hash=record.hash,
    )


def _split(records: Iterable[SealedRecord | UnreadableRecord]) -> tuple[list[AuditEventOut], list[UnreadableOut]]:
    events: list[AuditEventOut] = []
    unreadable: list[UnreadableOut] = []
    for record in records:
        if isinstance(record, SealedRecord):
            events.append(event_out(record))
        else:
            unreadable.append(UnreadableOut(sequence=record.sequence, reason=record.reason))
    return events, unreadable


def _descendants(remit: Remit, task: Task) -> list[Task]:
    """Ids of the tasks delegated from `task` (at any depth): their lineage names it.

    Ids sort by creation time and a descendant is created while its ancestor runs, so only tasks
    created from `task` until its end (or deadline), plus slack for clocks of other replicas, are read.
    """
    until = max(task.deadline, task.ended_at or task.deadline) + _CLOCK_SLACK
    found: list[Task] = []
    after: str | None = task.id
    while after is not None:
        page = remit.tasks.list(limit=_TASK_PAGE, after=after)
        for candidate in page.items:
            if candidate.created_at > until:
                return found
            if task.id in candidate.lineage:
                found.append(candidate)
        after = page.next_cursor
    return found


def task_trace(remit: Remit, task_id: str) -> TraceOut:
    """The task's timeline from the audit log: its events and its descendants', plus refused re-issues, by sequence."""
    task = remit.tasks.get(task_id)
    covered = [task, *_descendants(remit, task)]
    ids = [t.id for t in covered]
    wanted = set(ids)
    records: dict[int, SealedRecord | UnreadableRecord] = {}
    for one in ids:
        for record in remit.audit.records(task_id=one):
            records[record.sequence] = record
    # A refused re-issue names the task it asked for, not as task_id (no credential was issued for it).
    for agent_id in sorted({t.agent_id for t in covered}):
        for record in remit.audit.records(agent_id=agent_id, types=(_REFUSED,)):
            if isinstance(record, SealedRecord) and record.event.data.get("requested") in wanted:
                records[record.sequence] = record
    events, unreadable = _split(records[sequence] for sequence in sorted(records))
    return TraceOut(task=task_out(task), task_ids=ids, events=events, unreadable=unreadable)


def verification_out(report: VerificationReport) -> VerificationOut:
    first = report.first_fault
    return VerificationOut(
        ok=report.ok,
        records_checked=report.records_checked,
        head_sequence=report.head_sequence,
        head_hash=report.head_hash,
        checkpoints_checked=report.checkpoints_checked,
        latest_checkpoint=report.latest_checkpoint,
        first_fault=None
        if first is None
        else FaultOut(kind=first.kind.value, sequence=first.sequence, message=first.message),
        faults=[FaultOut(kind=f.kind.value, sequence=f.sequence, message=f.message) for f in report.faults],
    )


@get(
    "/v1/tasks/{task_id:str}/trace",
    tags=["audit"],
    sync_to_thread=True,
    responses=problem_responses(401, 404, 503),
)
def trace(remit: NamedDependency[Remit], request: Request[Any, Any, Any], task_id: str = _TaskId) -> TraceOut:
    """A task reconstructed from the audit log (operator only): objective, credentials, refusals, ends, by sequence."""
    _operator(remit, request)
    return task_trace(remit, task_id)


class AuditController(Controller):
    """The audit log: read it, verify it, export it, checkpoint it (operator only)."""

    path = "/audit"  # under the /v1 router
    tags = ["audit"]  # noqa: RUF012 - Litestar reads a plain list

    @get("/events", sync_to_thread=True, responses=problem_responses(400, 401, 503))
    def events(  # noqa: PLR0913 - one parameter per documented filter
        self,
        *,
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        after_seq: int = Parameter(default=0, ge=0, description="only records after this sequence"),
        limit: int = Parameter(default=100, ge=1, le=_MAX_EVENTS),
        task: str | None = Parameter(default=None, max_length=40, description="task id"),
        agent: str | None = Parameter(default=None, max_length=40, description="agent id"),
        event_type: Annotated[list[str] | None, _Type] = None,
    ) -> AuditEventsOut:
        """Records in sequence order after `after_seq`, filtered by task, agent and type."""
        _operator(remit, request)
        page = remit.audit.page(after=after_seq, limit=limit, task_id=task, agent_id=agent, types=event_type or ())
        events, unreadable = _split(page.records)
        head, _ = SqlAuditLedger(remit.database.engine).head()
        return AuditEventsOut(items=events, unreadable=unreadable, next_after=page.next_after, head_sequence=head)

    @get("/ocsf", sync_to_thread=True, responses=problem_responses(400, 401, 503))
    def ocsf(  # noqa: PLR0913 - one parameter per documented filter
        self,
        *,
        remit: NamedDependency[Remit],
        request: Request[Any, Any, Any],
        after_seq: int = Parameter(default=0, ge=0, description="only records after this sequence"),
        limit: int = Parameter(default=100, ge=1, le=_MAX_EVENTS),
        task: str | None = Parameter(default=None, max_length=40, description="task id"),
        agent: str | None = Parameter(default=None, max_length=40, description="agent id"),
        event_type: Annotated[list[str] | None, _Type] = None,
    ) -> OcsfEventsOut:
        """The same records as OCSF 1.8.0 events (unreadable rows are left out: verify reports them)."""
        _operator(remit, request)
        page = remit.audit.page(after=after_seq, limit=limit, task_id=task, agent_id=agent, types=event_type or ())
        items = [to_ocsf(r) for r in page.records if isinstance(r, SealedRecord)]
        return OcsfEventsOut(items=items, next_after=page.next_after)

    @get("/verify", sync_to_thread=True, responses=problem_responses(401, 503))
    def verify(self, remit: NamedDependency[Remit], request: Request[Any, Any, Any]) -> VerificationOut:
        """Verify the whole chain against the signed checkpoints; names the first fault."""
        _operator(remit, request)
        return verification_out(remit.audit.verify())

    @get("/checkpoints", sync_to_thread=True, responses=problem_responses(401, 503))
    def checkpoints(self, remit: NamedDependency[Remit], request: Request[Any, Any, Any]) -> list[dict[str, Any]]:
        """Every signed checkpoint, oldest first, to anchor outside this database."""
        _operator(remit, request)
        exported: list[dict[str, Any]] = json.loads(remit.audit.export_checkpoints())
        return exported

    @post("/checkpoints", status_code=201, sync_to_thread=True, responses=problem_responses(401, 503))
    def checkpoint(self, remit: NamedDependency[Remit], request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Sign a checkpoint of the head now; 200 with `created: false` when the head is already checkpointed."""
        _operator(remit, request)
        made = remit.audit.checkpoint()
        if made is None:
            return Response({"created": False, "checkpoint": None}, status_code=200)
        return Response({"created": True, "checkpoint": checkpoint_to_json(made)}, status_code=201)
