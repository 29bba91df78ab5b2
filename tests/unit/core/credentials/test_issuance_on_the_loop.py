"""Issuance on an event loop never reads the store on the loop: a decision that needs a row not kept runs in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from collections.abc import Iterator

import pytest

from tests.unit.core.credentials.conftest import ISSUER, Stack, declaration, workload
from tests.unit.core.credentials.test_group_commit import issuance_on

from remit.adapters.sql.engine import SqlDatabase, SqlTransaction
from remit.core.audit.models import AuditActor
from remit.core.credentials.issuance import IssuanceService
from remit.core.ids import SequentialIdFactory
from remit.core.tasks.models import Task, TaskState
from remit.errors import TaskNotActive

HELPER = "agents/helper-bot"


def _observed(stack: Stack, database: SqlDatabase, ids: SequentialIdFactory) -> tuple[IssuanceService, list[int]]:
    """An issuance service whose store reads note the thread they run on."""
    readers: list[int] = []

    @contextlib.contextmanager
    def reads() -> Iterator[SqlTransaction]:
        readers.append(threading.get_ident())
        with database.reading() as tx:
            yield tx

    return issuance_on(stack, database.transaction, database, ids, reads=reads), readers


def _on_a_loop(issuance: IssuanceService, agent: str = "agents/invoice-bot", **overrides: object) -> tuple[int, Task]:
    """Start a task for `agent` from an event loop: the loop's thread id and the task."""

    async def start() -> tuple[int, Task]:
        task, _ = await issuance.start_task_async(workload(agent), declaration(**overrides))
        return threading.get_ident(), task

    return asyncio.run(start())


def test_rows_not_kept_are_read_in_a_worker_thread(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """The first issuance (nothing kept) reads the store off the loop; the next, on kept rows, reads nothing."""
    issuance, readers = _observed(stack, database, ids)

    loop, _ = _on_a_loop(issuance)
    first = list(readers)
    _on_a_loop(issuance)

    assert first
    assert loop not in first
    assert readers == first  # the second decided on kept rows alone


def test_a_delegated_start_reads_rows_not_kept_off_the_loop_then_nothing(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """A parent task not kept (started by another replica) is read once, off the loop; then it is kept."""
    issuance, readers = _observed(stack, database, ids)
    parent, _ = issuance.start_task(workload(), declaration())
    delegations = [issuance.reissue(workload(), parent.id, audience=ISSUER) for _ in range(2)]
    _on_a_loop(issuance, HELPER)  # the child agent's rows are kept now, as the parent's are
    issuance.cache.tasks.clear()  # as if the parent had started elsewhere
    readers.clear()

    loop, child = _on_a_loop(issuance, HELPER, parent_token=delegations[0].token)
    first = list(readers)
    _, second = _on_a_loop(issuance, HELPER, parent_token=delegations[1].token)

    assert (child.parent_id, second.parent_id) == (parent.id, parent.id)
    assert first
    assert loop not in first
    assert readers == first  # the second child was decided on kept rows alone


def test_a_reissue_for_a_task_started_here_reads_nothing(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """The task (with its DPoP binding, ADR 0016) is kept from its start: the re-issue decides on the loop."""
    issuance, readers = _observed(stack, database, ids)
    _, task = _on_a_loop(issuance)
    readers.clear()

    async def reissue() -> bool:
        return (await issuance.reissue_async(workload(), task.id)).task_id == task.id

    assert asyncio.run(reissue())
    assert readers == []


def test_a_refused_reissue_keeps_what_other_issuances_decide_on(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Re-issuing for an ended task is refused on the store's rows, which forgets nothing the next task uses."""
    issuance, readers = _observed(stack, database, ids)
    _, ended = _on_a_loop(issuance)
    _, running = _on_a_loop(issuance)
    stack.tasks.finish(ended.id, TaskState.COMPLETED, reason="done", actor=AuditActor.system())
    readers.clear()

    async def reissue(task: Task) -> str:
        return (await issuance.reissue_async(workload(), task.id)).task_id

    with pytest.raises(TaskNotActive):
        asyncio.run(reissue(ended))  # refused on kept rows, then again in the transaction that would write
    assert asyncio.run(reissue(running)) == running.id

    assert readers == []  # the running task's re-issue still read nothing
