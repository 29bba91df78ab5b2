"""Task lifecycle: every end is recorded with its revocation entry, cascades to descendants, and is final."""

from __future__ import annotations

import contextlib
import datetime as dt

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.factories import make_agent, make_function, make_owner, make_tool, make_workflow
from tests.racing import Waiting

from remit.adapters.sql.engine import SqlDatabase, SqlTransaction
from remit.core.audit.models import AuditActor
from remit.core.credentials.revocation import subscribe_revocation_handlers
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import AgentStatus
from remit.core.registry.service import RegistryService
from remit.core.tasks.models import Task, TaskState, parse_authorization_details
from remit.core.tasks.revocations import RevocationKind
from remit.core.tasks.service import TaskService
from remit.errors import InvalidRequest, NotFound, TaskNotActive
from remit.testing import FrozenClock

AGENT = AuditActor.system()


@pytest.fixture
def tasks(database: SqlDatabase, clock: FrozenClock, ids: SequentialIdFactory) -> TaskService:
    return TaskService(database.transaction, clock=clock, ids=ids)


@pytest.fixture
def world(registry: RegistryService) -> dict[str, str]:
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    workflow = registry.approve_workflow(make_workflow(registry, function).id, actor="alice")
    agent = make_agent(registry, owner=owner, function=function)
    other = make_agent(registry, owner=owner, function=function, name="other-bot")
    return {"agent": agent.id, "other": other.id, "owner": owner.id, "function": function.id, "workflow": workflow.id}


def _start(
    database: SqlDatabase,
    clock: FrozenClock,
    world: dict[str, str],
    task_id: str,
    *,
    parent: Task | None = None,
    agent: str = "agent",
) -> Task:
    task = Task(
        id=task_id,
        agent_id=world[agent],
        owner_id=world["owner"],
        function_id=world["function"],
        workflow_id=world["workflow"],
        workflow_ref="release-docs@1",
        objective="publish the docs",
        details=parse_authorization_details(
            [{"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs"]}]
        ),
        environment="prod",
        audience="tool:github",
        created_at=clock.now(),
        deadline=clock.now() + dt.timedelta(minutes=30),
        parent_id=parent.id if parent else None,
        lineage=((parent.id, *parent.lineage) if parent else ()),
    )
    with database.transaction() as tx:
        tx.tasks.add_task(task)
    return task


def _log(database: SqlDatabase) -> list[tuple[str, str]]:
    with database.transaction() as tx:
        return [(e.kind.value, e.subject) for e in tx.revocations.since(0)]


def test_completion_records_the_end_and_its_revocation_entry(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    """Completing a task sets its final state and appends task_ended in the same transaction."""
    task = _start(database, clock, world, "tsk_1")

    done = tasks.finish(task.id, TaskState.COMPLETED, reason="", actor=AGENT)

    assert (done.state, done.end_reason) == (TaskState.COMPLETED, "completed")
    assert tasks.get(task.id).state is TaskState.COMPLETED
    assert _log(database) == [("task_ended", "tsk_1")]
    with pytest.raises(TaskNotActive):
        tasks.finish(task.id, TaskState.FAILED, reason="again", actor=AGENT)


def test_ending_a_task_revokes_its_running_descendants_only(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    """A failed root ends its child and grandchild; an unrelated task keeps running."""
    root = _start(database, clock, world, "tsk_root")
    child = _start(database, clock, world, "tsk_child", parent=root, agent="other")
    grandchild = _start(database, clock, world, "tsk_grand", parent=child)
    unrelated = _start(database, clock, world, "tsk_else")

    tasks.finish(root.id, TaskState.FAILED, reason="tool crashed", actor=AGENT)

    assert tasks.get(child.id).state is TaskState.REVOKED
    assert tasks.get(grandchild.id).state is TaskState.REVOKED
    assert tasks.get(unrelated.id).state is TaskState.RUNNING
    index = RevocationIndex()
    with database.transaction() as tx:
        index.apply(tx.revocations.since(0), now=clock.now())
    assert index.revoked_reason(jti="x", task_id=grandchild.id, lineage=grandchild.lineage, epoch=0)
    assert index.revoked_reason(jti="x", task_id=unrelated.id, lineage=(), epoch=0) is None


def test_ending_a_child_leaves_the_parent_running(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    root = _start(database, clock, world, "tsk_root")
    child = _start(database, clock, world, "tsk_child", parent=root)

    tasks.finish(child.id, TaskState.COMPLETED, reason="", actor=AGENT)

    assert tasks.get(root.id).is_running


def test_objective_change_bumps_the_epoch_and_keeps_the_task(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    """A new objective is a context change: epoch + 1 and a task_epoch entry; the task keeps running."""
    task = _start(database, clock, world, "tsk_1")

    changed = tasks.change_objective(task.id, "publish and translate the docs", actor=AGENT)

    assert (changed.epoch, changed.state) == (1, TaskState.RUNNING)
    assert _log(database) == [(RevocationKind.TASK_EPOCH.value, "tsk_1")]
    assert tasks.change_objective(task.id, "publish and translate the docs", actor=AGENT).epoch == 1


def test_an_agent_cannot_end_another_agents_task(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    """Cross-agent: ending or re-scoping someone else's task reads as not found and changes nothing."""
    task = _start(database, clock, world, "tsk_1")

    with pytest.raises(NotFound):
        tasks.finish(task.id, TaskState.COMPLETED, reason="", actor=AGENT, agent_id=world["other"])
    with pytest.raises(NotFound):
        tasks.change_objective(task.id, "exfiltrate", actor=AGENT, agent_id=world["other"])
    assert tasks.get(task.id).is_running


def test_kill_switch_ends_every_running_task_of_the_agent(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    first = _start(database, clock, world, "tsk_1")
    second = _start(database, clock, world, "tsk_2")
    theirs = _start(database, clock, world, "tsk_3", agent="other")

    assert tasks.revoke_agent_tasks(world["agent"], reason="agent_suspended", actor=AGENT) == 2

    assert {tasks.get(t.id).state for t in (first, second)} == {TaskState.REVOKED}
    assert tasks.get(theirs.id).is_running


def test_overdue_tasks_are_recorded_expired(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    task = _start(database, clock, world, "tsk_1")
    clock.advance(dt.timedelta(minutes=31))
    with pytest.raises(TaskNotActive):
        tasks.finish(task.id, TaskState.COMPLETED, reason="", actor=AGENT)

    assert tasks.expire_overdue() == 1
    assert tasks.get(task.id).state is TaskState.EXPIRED


def test_finish_only_accepts_finishing_states(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    task = _start(database, clock, world, "tsk_1")
    with pytest.raises(InvalidRequest):
        tasks.finish(task.id, TaskState.REVOKED, reason="", actor=AGENT)


def test_reconcile_ends_tasks_whose_agent_or_workflow_no_longer_allows_them(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService, registry: RegistryService
) -> None:
    """The sweeper closes the crash window between a registry change and its reaction."""
    mine = _start(database, clock, world, "tsk_1")
    theirs = _start(database, clock, world, "tsk_2", agent="other")
    # Change the registry without any subscriber: as if the process died before reacting.
    registry.set_agent_status(world["agent"], AgentStatus.SUSPENDED, reason="compromised", actor="sec")

    assert tasks.reconcile() == 1

    assert tasks.get(mine.id).state is TaskState.REVOKED
    assert tasks.get(mine.id).end_reason == "agent_not_active"
    assert tasks.get(theirs.id).is_running


def test_reconcile_finding_nothing_never_takes_the_writer_lock(
    database: SqlDatabase, clock: FrozenClock, ids: SequentialIdFactory, world: dict[str, str]
) -> None:
    """The sweeper's scan reads a snapshot: with nothing to end, no write transaction is opened at all."""
    writes: list[str] = []

    @contextlib.contextmanager
    def counted() -> Iterator[SqlTransaction]:
        writes.append("write")
        with database.transaction() as tx:
            yield tx

    for n in range(5):
        _start(database, clock, world, f"tsk_{n}")
    tasks = TaskService(counted, clock=clock, ids=ids, reads=database.reading)

    assert tasks.reconcile() == 0
    assert writes == []


def test_reconcile_decides_again_in_the_write_transaction(
    database: SqlDatabase,
    clock: FrozenClock,
    ids: SequentialIdFactory,
    world: dict[str, str],
    registry: RegistryService,
) -> None:
    """A task found on the snapshot is ended only if the writer's rows still say so (agent reactivated meanwhile)."""
    kept = _start(database, clock, world, "tsk_1")
    registry.set_agent_status(world["agent"], AgentStatus.SUSPENDED, reason="compromised", actor="sec")

    @contextlib.contextmanager
    def snapshot_then_reactivate() -> Iterator[SqlTransaction]:
        with database.reading() as tx:
            yield tx
        registry.set_agent_status(world["agent"], AgentStatus.ACTIVE, reason="cleared", actor="sec")

    tasks = TaskService(database.transaction, clock=clock, ids=ids, reads=snapshot_then_reactivate)

    assert tasks.reconcile() == 0
    assert tasks.get(kept.id).is_running


def test_registry_events_end_tasks_through_the_handlers(
    database: SqlDatabase,
    clock: FrozenClock,
    world: dict[str, str],
    tasks: TaskService,
    registry: RegistryService,
    bus: InProcessEventBus,
) -> None:
    """Suspending an agent (the kill switch) and retiring a workflow end the running tasks at once."""
    subscribe_revocation_handlers(bus, tasks)
    first = _start(database, clock, world, "tsk_1")
    second = _start(database, clock, world, "tsk_2", agent="other")

    registry.set_agent_status(world["agent"], AgentStatus.SUSPENDED, reason="compromised", actor="sec")
    assert tasks.get(first.id).state is TaskState.REVOKED
    assert tasks.get(second.id).is_running

    registry.retire_workflow(world["workflow"], reason="replaced", actor="alice")
    assert tasks.get(second.id).state is TaskState.REVOKED
    assert tasks.get(second.id).end_reason == "workflow_retired"


def test_an_end_waiting_on_a_task_held_elsewhere_finds_it_ended_never_a_conflict(
    database: SqlDatabase, clock: FrozenClock, world: dict[str, str], tasks: TaskService
) -> None:
    """An end reads its task with the row held: one racing another end waits, then reads `task_not_active`."""
    task = _start(database, clock, world, "tsk_1")

    with database.transaction() as tx:
        held = tx.tasks.lock_task(task.id)
        assert held is not None
        late = Waiting(lambda: tasks.finish(task.id, TaskState.FAILED, reason="late", actor=AGENT))
        assert late.still_waiting()
        done = replace(held, state=TaskState.COMPLETED, ended_at=clock.now(), end_reason="done", revision=2)
        tx.tasks.update_task(done, expected_revision=held.revision)

    assert isinstance(late.outcome(), TaskNotActive)
    assert tasks.get(task.id).state is TaskState.COMPLETED
