"""TaskStore and RevocationLog over SQL."""

from __future__ import annotations

import datetime as dt

from collections.abc import Collection, Sequence
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, Integer, Row, bindparam, insert, select, update

from remit.adapters.sql.driver import Driver, insert_statements
from remit.adapters.sql.notify import REVOCATIONS, notify
from remit.adapters.sql.tables import revocations, tasks
from remit.core.registry.models import Page
from remit.core.tasks.models import AuthorizationDetail, Task, TaskParties, TaskState
from remit.core.tasks.revocations import RevocationEntry, RevocationKind
from remit.errors import Conflict

__all__ = ["SqlRevocationLog", "SqlTaskStore", "insert_tasks"]


def _task(row: Row[Any]) -> Task:
    return Task(
        id=row.id,
        agent_id=row.agent_id,
        owner_id=row.owner_id,
        function_id=row.function_id,
        workflow_id=row.workflow_id,
        workflow_ref=row.workflow_ref,
        objective=row.objective,
        details=tuple(AuthorizationDetail(d["tool"], tuple(d["actions"]), tuple(d["resources"])) for d in row.details),
        environment=row.environment,
        audience=row.audience,
        created_at=row.created_at,
        deadline=row.deadline,
        state=TaskState(row.state),
        parent_id=row.parent_id,
        lineage=tuple(row.lineage.split()),
        principal=row.principal,
        epoch=row.epoch,
        ended_at=row.ended_at,
        end_reason=row.end_reason,
        labels=dict(row.labels),
        revision=row.revision,
        dpop_jkt=row.dpop_jkt,
    )


# Every column a task writes but `id` and `revision`, in the order `_columns` gives their values.
_VALUE_COLUMNS: Final = (
    "agent_id",
    "owner_id",
    "function_id",
    "workflow_id",
    "workflow_ref",
    "objective",
    "details",
    "environment",
    "audience",
    "created_at",
    "deadline",
    "state",
    "parent_id",
    "root_id",
    "lineage",
    "principal",
    "epoch",
    "ended_at",
    "end_reason",
    "labels",
    "dpop_jkt",
)


def _columns(task: Task) -> list[Any]:
    """The values of `_VALUE_COLUMNS` for `task`, as SQLAlchemy binds them (the one mapping of both writes)."""
    return [
        task.agent_id,
        task.owner_id,
        task.function_id,
        task.workflow_id,
        task.workflow_ref,
        task.objective,
        [d.as_json() for d in task.details],
        task.environment,
        task.audience,
        task.created_at,
        task.deadline,
        task.state.value,
        task.parent_id,
        task.lineage[-1] if task.lineage else task.id,  # root_id
        " ".join(task.lineage),
        task.principal,
        task.epoch,
        task.ended_at,
        task.end_reason,
        task.labels,
        task.dpop_jkt,
    ]


def _values(task: Task) -> dict[str, Any]:
    return dict(zip(_VALUE_COLUMNS, _columns(task), strict=True))


# A new task on the driver (see driver.py): datetimes and JSON encoded as their column types store them.
_INSERT_TASKS: Final = insert_statements("tasks", ("id", "revision", *_VALUE_COLUMNS))
_TIMES_AT: Final = tuple(_VALUE_COLUMNS.index(name) for name in ("created_at", "deadline", "ended_at"))
_JSON_AT: Final = tuple(_VALUE_COLUMNS.index(name) for name in ("details", "labels"))


def insert_tasks(db: Driver, new: Sequence[Task]) -> None:
    """Insert new tasks in one statement, in the transaction open on `db`."""
    if not new:
        return
    rows = []
    for task in new:
        values = _columns(task)
        for at in _TIMES_AT:
            values[at] = db.time(values[at])
        for at in _JSON_AT:
            values[at] = db.json(values[at])
        rows.append((task.id, task.revision, *values))
    db.insert(_INSERT_TASKS, rows)


# Built once: constructing a statement per call costs more than executing it.
_GET_TASK = select(tasks).where(tasks.c.id == bindparam("id"))
# PostgreSQL: FOR UPDATE. SQLite renders none: its write transaction already holds the whole database.
_LOCK_TASK = _GET_TASK.with_for_update()
_HOLD_TASKS = (
    select(tasks.c.id).where(tasks.c.id.in_(bindparam("ids", expanding=True))).order_by(tasks.c.id).with_for_update()
)
_APPEND_REVOCATION = insert(revocations).returning(revocations.c.seq)
# Several entries in one statement. PostgreSQL: seqs returned in the order given. SQLite (where
# SQLAlchemy would otherwise insert row by row to keep that order): the one writer inserts the VALUES
# rows in order, each taking the next rowid, so the seqs sorted are in the order given.
_APPEND_REVOCATIONS = {
    "postgresql": insert(revocations).returning(revocations.c.seq, sort_by_parameter_order=True),
    "sqlite": insert(revocations).returning(revocations.c.seq),
}

_SINCE = (
    select(revocations)
    .where(revocations.c.seq > bindparam("seq"))
    .order_by(revocations.c.seq)
    .limit(bindparam("limit", type_=Integer))
)


class SqlTaskStore:
    """Tasks, read and written on the caller's transaction."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add_task(self, task: Task) -> None:
        insert_tasks(Driver(self._c), [task])

    def update_task(self, task: Task, *, expected_revision: int) -> None:
        result = self._c.execute(
            update(tasks)
            .where(tasks.c.id == task.id, tasks.c.revision == expected_revision)
            .values(**_values(task), revision=expected_revision + 1)
        )
        if result.rowcount != 1:
            msg = "the task changed concurrently; reload and retry"
            raise Conflict(msg)

    def get_task(self, task_id: str) -> Task | None:
        row = self._c.execute(_GET_TASK, {"id": task_id}).first()
        return None if row is None else _task(row)

    def lock_task(self, task_id: str) -> Task | None:
        row = self._c.execute(_LOCK_TASK, {"id": task_id}).first()
        return None if row is None else _task(row)

    def hold_tasks(self, task_ids: Collection[str]) -> None:
        """Hold the rows of `task_ids` to commit (PostgreSQL), taken in id order: never a deadlock cycle."""
        self._c.execute(_HOLD_TASKS, {"ids": sorted(task_ids)}).all()

    def _running(self, *conditions: ColumnElement[bool]) -> Sequence[Task]:
        query = select(tasks).where(tasks.c.state == TaskState.RUNNING.value, *conditions).order_by(tasks.c.id)
        return [_task(r) for r in self._c.execute(query)]

    def running_task_parties(self) -> Sequence[TaskParties]:
        # The distinct parties, not the tasks: the database scans, and the sweeper gets a few rows.
        query = (
            select(tasks.c.agent_id, tasks.c.owner_id, tasks.c.workflow_id)
            .where(tasks.c.state == TaskState.RUNNING.value)
            .distinct()
        )
        return [TaskParties(*row) for row in self._c.execute(query)]

    def running_task_ids(self, parties: TaskParties) -> Sequence[str]:
        query = select(tasks.c.id).where(
            tasks.c.state == TaskState.RUNNING.value,
            tasks.c.agent_id == parties.agent_id,
            tasks.c.owner_id == parties.owner_id,
            tasks.c.workflow_id == parties.workflow_id,
        )
        return list(self._c.execute(query).scalars())

    def running_tasks_of_agent(self, agent_id: str) -> Sequence[Task]:
        return self._running(tasks.c.agent_id == agent_id)

    def running_tasks_of_workflow(self, workflow_id: str) -> Sequence[Task]:
        return self._running(tasks.c.workflow_id == workflow_id)

    def running_descendants(self, task: Task) -> Sequence[Task]:
        root = task.lineage[-1] if task.lineage else task.id
        # Descendants share the root; among those, the ones whose lineage names this task.
        return self._running(tasks.c.root_id == root, tasks.c.lineage.contains(task.id, autoescape=True))

    def running_past_deadline(self, now: dt.datetime, *, limit: int) -> Sequence[Task]:
        query = (
            select(tasks)
            .where(tasks.c.state == TaskState.RUNNING.value, tasks.c.deadline <= now)
            .order_by(tasks.c.deadline)
            .limit(limit)
        )
        return [_task(r) for r in self._c.execute(query)]

    def list_tasks(
        self, *, limit: int, after: str | None, agent_id: str | None = None, state: TaskState | None = None
    ) -> Page[Task]:
        query = select(tasks).order_by(tasks.c.id).limit(limit + 1)
        if after is not None:
            query = query.where(tasks.c.id > after)
        if agent_id is not None:
            query = query.where(tasks.c.agent_id == agent_id)
        if state is not None:
            query = query.where(tasks.c.state == state.value)
        rows = self._c.execute(query).all()
        return Page(
            items=tuple(_task(r) for r in rows[:limit]), next_cursor=rows[limit - 1].id if len(rows) > limit else None
        )


class SqlRevocationLog:
    """The sequenced revocation log; the row's autoincrement key is the sequence."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def append(self, kind: RevocationKind, subject: str, *, reason: str, at: dt.datetime, epoch: int = 0) -> int:
        result = self._c.execute(
            _APPEND_REVOCATION, {"kind": kind.value, "subject": subject, "reason": reason, "epoch": epoch, "at": at}
        )
        seq = int(result.scalar_one())
        notify(self._c, REVOCATIONS)  # other replicas hear of it when (and only if) this commits
        return seq

    def append_credentials(self, entries: Sequence[tuple[str, str, dt.datetime]]) -> list[int]:
        """Append one `credential` entry per `(jti, reason, at)` in one statement; their seqs, in order."""
        if not entries:
            return []
        rows = [
            {"kind": RevocationKind.CREDENTIAL.value, "subject": jti, "reason": reason, "epoch": 0, "at": at}
            for jti, reason, at in entries
        ]
        dialect = self._c.dialect.name
        seqs = [int(seq) for seq in self._c.execute(_APPEND_REVOCATIONS[dialect], rows).scalars()]
        if dialect == "sqlite":
            seqs.sort()
        notify(self._c, REVOCATIONS)  # one per transaction: identical notifications are coalesced anyway
        return seqs

    def since(self, seq: int, *, limit: int = 10_000) -> Sequence[RevocationEntry]:
        return [
            RevocationEntry(
                seq=r.seq, kind=RevocationKind(r.kind), subject=r.subject, reason=r.reason, at=r.at, epoch=r.epoch
            )
            for r in self._c.execute(_SINCE, {"seq": seq, "limit": limit})
        ]
