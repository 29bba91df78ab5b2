"""A task's DPoP binding lives on its row (ADR 0016), and a kept task is only ever decided on at its current revision.

Issuance keeps the tasks it starts, binds and reads. These tests change a task behind this process's back, as
another replica would (a direct update of the row: no event, no revocation entry), and expect the next re-issue
to see the change all the same; and they race two bindings in one batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

import pytest

from tests.racing import Waiting
from tests.unit.core.credentials.conftest import ISSUER, Stack, declaration, workload
from tests.unit.core.credentials.test_group_commit import count, gated, together

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import downgrade, upgrade
from remit.adapters.sql.tables import tasks
from remit.core.attestation.models import DeferredCheck
from remit.core.ids import SequentialIdFactory
from remit.core.tasks.models import Task, TaskState
from remit.errors import AttestationFailed, CredentialInvalid, NotFound, TaskNotActive

HOLDER, OTHER = "h" * 43, "o" * 43


def _stored(database: SqlDatabase, task_id: str) -> Task:
    with database.transaction() as tx:
        task = tx.tasks.get_task(task_id)
    assert task is not None
    return task


def _change_elsewhere(database: SqlDatabase, task: Task, **changes: object) -> None:
    """Update the task's row as another replica would: a new revision, nothing said to this process."""
    with database.transaction() as tx:
        tx.tasks.update_task(dataclasses.replace(task, **changes), expected_revision=task.revision)  # type: ignore[arg-type]


def test_a_task_keeps_the_key_it_started_with_on_its_row(stack: Stack, database: SqlDatabase) -> None:
    bound, _ = stack.issuance.start_task(workload(), declaration(), dpop_jkt=HOLDER)
    bearer, _ = stack.issuance.start_task(workload(), declaration())

    assert (bound.dpop_jkt, bearer.dpop_jkt) == (HOLDER, None)
    assert (_stored(database, bound.id).dpop_jkt, _stored(database, bearer.id).dpop_jkt) == (HOLDER, None)


def test_binding_a_bearer_task_writes_a_new_revision(stack: Stack, database: SqlDatabase) -> None:
    task, _ = stack.issuance.start_task(workload(), declaration())

    stack.issuance.reissue(workload(), task.id, dpop_jkt=HOLDER)
    stack.issuance.reissue(workload(), task.id, dpop_jkt=HOLDER)  # bound already: no second write

    stored = _stored(database, task.id)
    assert (stored.dpop_jkt, stored.revision) == (HOLDER, task.revision + 1)
    with database.transaction() as tx:
        issued = [e.data for e in tx.audit.recent(limit=10) if e.type == "credential.issued"]
    assert [data.get("binds_task", False) for data in issued[:2]] == [False, True]  # newest first


def test_a_binding_made_by_another_replica_holds_for_a_kept_task(stack: Stack, database: SqlDatabase) -> None:
    """Kept here unbound, bound on its row: a Bearer re-issue is refused, the key's is not."""
    task, _ = stack.issuance.start_task(workload(), declaration())
    _change_elsewhere(database, task, dpop_jkt=HOLDER)

    with pytest.raises(CredentialInvalid) as caught:
        stack.issuance.reissue(workload(), task.id)
    again = stack.issuance.reissue(workload(), task.id, dpop_jkt=HOLDER)

    assert caught.value.details["reason"] == "dpop_proof_missing"
    assert again.dpop_bound


def test_a_task_ended_by_another_replica_is_not_reissued_from_memory(stack: Stack, database: SqlDatabase) -> None:
    """No revocation entry reaches this process: only the revision read in the batch tells it the task ended."""
    task, _ = stack.issuance.start_task(workload(), declaration())
    ended_at = stack.clock.now()
    _change_elsewhere(database, task, state=TaskState.COMPLETED, ended_at=ended_at, end_reason="done elsewhere")

    with pytest.raises(TaskNotActive):
        stack.issuance.reissue(workload(), task.id)
    with pytest.raises(TaskNotActive):
        stack.issuance.reissue(workload(), task.id, audience=ISSUER)


def test_an_objective_changed_by_another_replica_is_not_reissued_under_the_old_epoch(
    stack: Stack, database: SqlDatabase
) -> None:
    task, _ = stack.issuance.start_task(workload(), declaration())
    _change_elsewhere(database, task, epoch=task.epoch + 1, objective="something else")

    issued = stack.issuance.reissue(workload(), task.id)

    claims = stack.verifier.verify(issued.token, audience="tool:github").claims
    assert claims["remit_epoch"] == task.epoch + 1


def test_two_keys_binding_one_task_in_one_batch_bind_it_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Both re-issues were decided on the unbound task; the first written binds it, the other is decided again."""
    issuance, gate = gated(stack, database, ids)
    task, _ = issuance.start_task(workload(), declaration())
    gate.arm(2)  # the first caller writes its own unit; the two re-issues queue and share the next batch
    outcomes = together(
        [
            lambda: issuance.start_task(workload(), declaration()),
            lambda: issuance.reissue(workload(), task.id, dpop_jkt=HOLDER),
            lambda: issuance.reissue(workload(), task.id, dpop_jkt=OTHER),
        ]
    )

    assert outcomes[0].error is None
    binders = outcomes[1:]
    assert sum(o.error is None for o in binders) == 1
    refused = next(o.error for o in binders if o.error is not None)
    assert isinstance(refused, CredentialInvalid)
    assert refused.details["reason"] == "dpop_key_mismatch"
    winner = HOLDER if binders[0].error is None else OTHER
    assert _stored(database, task.id).dpop_jkt == winner


def test_kept_tasks_are_bounded_oldest_first(stack: Stack) -> None:
    cache = stack.issuance.cache
    started = [stack.issuance.start_task(workload(), declaration())[0] for _ in range(3)]
    small = type(cache)(max_tasks=2)
    for task in started:
        small.tasks.keep(task.id, task)

    assert list(small.tasks) == [started[1].id, started[2].id]
    assert {t.id for t in started} <= set(cache.tasks)


def test_the_upgrade_copies_each_tasks_first_bound_key_onto_its_row(stack: Stack, database: SqlDatabase) -> None:
    """Migration 0007 on tasks written before it: the first bound credential for the task's audience decides."""
    started_bound, _ = stack.issuance.start_task(workload(), declaration(), dpop_jkt=HOLDER)
    bound_later, _ = stack.issuance.start_task(workload(), declaration())
    stack.issuance.reissue(workload(), bound_later.id)
    stack.clock.advance(dt.timedelta(seconds=1))
    stack.issuance.reissue(workload(), bound_later.id, dpop_jkt=OTHER)
    stack.clock.advance(dt.timedelta(seconds=1))
    stack.issuance.reissue(workload(), bound_later.id, dpop_jkt=OTHER)
    never_bound, _ = stack.issuance.start_task(workload(), declaration())
    stack.issuance.reissue(workload(), never_bound.id, audience=ISSUER)  # another audience binds nothing

    downgrade(database.engine, "0006")
    upgrade(database.engine)

    with database.engine.connect() as connection:
        rows = dict(connection.execute(tasks.select().with_only_columns(tasks.c.id, tasks.c.dpop_jkt)).all())
    assert rows[started_bound.id] == HOLDER
    assert rows[bound_later.id] == OTHER
    assert rows[never_bound.id] is None
    assert count(database, tasks, tasks.c.dpop_jkt.is_(None)) == 1


def test_a_task_held_for_its_end_makes_a_racing_binding_wait_then_refuses_it(
    stack: Stack, database: SqlDatabase
) -> None:
    """The end reads its task with the row held (`lock_task`): the binding waits, then finds the task ended."""
    task, _ = stack.issuance.start_task(workload(), declaration())

    with database.transaction() as tx:
        held = tx.tasks.lock_task(task.id)
        assert held is not None
        binding = Waiting(lambda: stack.issuance.reissue(workload(), task.id, dpop_jkt=HOLDER))
        assert binding.still_waiting()  # for the row (PostgreSQL) or the database (SQLite)
        ended = dataclasses.replace(
            held, state=TaskState.COMPLETED, ended_at=stack.clock.now(), end_reason="done", revision=held.revision + 1
        )
        tx.tasks.update_task(ended, expected_revision=held.revision)  # never a Conflict: nothing landed meanwhile

    assert isinstance(binding.outcome(), TaskNotActive)
    stored = _stored(database, task.id)
    assert (stored.state, stored.dpop_jkt) == (TaskState.COMPLETED, None)


ATTACKER = "a" * 43


def test_replayed_evidence_never_binds_a_task_to_the_replayers_key(stack: Stack, database: SqlDatabase) -> None:
    """Whoever copies a spent SVID and adds their own DPoP key gets nothing, and the task stays unbound.

    Were the binding written before the evidence's single use was settled, a replay would lock the agent
    out of its own task (every later re-issue would need the replayer's key).
    """
    task, _ = stack.issuance.start_task(workload(), declaration())
    stack.issuance.reissue(workload(jti="seen-once"), task.id)

    with pytest.raises(AttestationFailed) as caught:
        stack.issuance.reissue(workload(jti="seen-once"), task.id, dpop_jkt=ATTACKER)
    again = stack.issuance.reissue(workload(), task.id)  # the agent, still Bearer

    assert caught.value.details == {"reason": "replayed"}
    stored = _stored(database, task.id)
    assert (stored.dpop_jkt, stored.revision) == (None, task.revision)
    assert not again.dpop_bound


def test_forged_evidence_never_binds_a_task_to_the_forgers_key(stack: Stack, database: SqlDatabase) -> None:
    """Evidence whose signature fails in the batch (ADR 0015) binds nothing, on the event-loop door too."""
    task, _ = stack.issuance.start_task(workload(), declaration())

    def forged() -> None:
        raise AttestationFailed(details={"reason": "bad_signature"})

    async def reissue() -> None:
        await stack.issuance.reissue_async(
            workload(jti="copied"), task.id, dpop_jkt=ATTACKER, evidence_check=DeferredCheck(forged)
        )

    with pytest.raises(AttestationFailed):
        asyncio.run(reissue())

    stored = _stored(database, task.id)
    assert (stored.dpop_jkt, stored.revision) == (None, task.revision)
    assert not stack.issuance.reissue(workload(jti="copied"), task.id).dpop_bound  # its jti not spent either


def test_another_agents_evidence_never_binds_a_task(stack: Stack, database: SqlDatabase) -> None:
    """Cross-agent: a registered agent naming someone else's task gets `not found` and binds nothing."""
    task, _ = stack.issuance.start_task(workload(), declaration())

    with pytest.raises(NotFound):
        stack.issuance.reissue(workload("agents/helper-bot"), task.id, dpop_jkt=ATTACKER)

    assert _stored(database, task.id).dpop_jkt is None
