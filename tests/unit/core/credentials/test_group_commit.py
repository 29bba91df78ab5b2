"""Group commit of issuance: concurrent issuances share transactions, each durable and recorded exactly once.

A gate holds the first caller's transaction open until the other callers have queued behind it, so
the tests know those share the next batch instead of hoping the scheduler interleaves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from sqlalchemy import func, select
from tests.unit.core.credentials.conftest import ISSUER, Stack, declaration, fingerprint, workload

from remit.adapters.sql.engine import SqlDatabase, SqlTransaction
from remit.adapters.sql.tables import audit_events, credentials, evidence_uses, tasks
from remit.core.audit.models import AuditActor
from remit.core.credentials import group_commit
from remit.core.credentials.issuance import IssuanceService
from remit.core.credentials.models import IssuedCredential, Limits
from remit.core.credentials.tokens import CredentialsUnitOfWork
from remit.core.ids import IdFactory, SequentialIdFactory
from remit.core.tasks.models import Task, TaskState
from remit.errors import AttestationFailed, Conflict, RemitError, TaskNotActive, Unavailable

SYSTEM = AuditActor.system()


class Gate:
    """A unit of work that, when armed, holds the next transaction until `expected` more units are queued."""

    def __init__(self, database: SqlDatabase) -> None:
        self._database = database
        self.issuance: IssuanceService | None = None
        self._expected = 0
        self.fail_in_batch: Callable[[SqlTransaction], None] | None = None
        self.before_batch: Callable[[], object] | None = None  # once, after the units queued, before their batch

    def arm(self, expected: int) -> None:
        self._expected = expected

    @contextlib.contextmanager
    def __call__(self) -> Iterator[SqlTransaction]:
        expected, self._expected = self._expected, 0
        if expected and self.issuance is not None:
            deadline = time.monotonic() + 10
            while self.issuance.commits.pending < expected and time.monotonic() < deadline:
                time.sleep(0.005)
            before, self.before_batch = self.before_batch, None
            if before is not None:
                before()
        with self._database.transaction() as tx:
            yield tx
            if self.fail_in_batch is not None:
                self.fail_in_batch(tx)


def issuance_on(
    stack: Stack,
    uow: CredentialsUnitOfWork,
    database: SqlDatabase,
    ids: IdFactory,
    *,
    reads: CredentialsUnitOfWork | None = None,
) -> IssuanceService:
    """An issuance service like the stack's, writing through `uow` (a gate, an observer), reading through `reads`."""
    return IssuanceService(
        uow,
        clock=stack.clock,
        ids=ids,
        signer=stack.signer,
        verifier=stack.tokens,
        index=stack.index,
        issuer=ISSUER,
        limits=Limits(),
        fingerprint=fingerprint,
        reads=reads or database.reading,
    )


def gated(stack: Stack, database: SqlDatabase, ids: IdFactory) -> tuple[IssuanceService, Gate]:
    gate = Gate(database)
    issuance = issuance_on(stack, gate, database, ids)
    gate.issuance = issuance
    return issuance, gate


@dataclass
class Outcome:
    result: Any
    error: RemitError | None


def together(calls: Sequence[Callable[[], object]]) -> list[Outcome]:
    """Run `calls` on threads at once; each returns its result or its RemitError."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> Outcome:
        start.wait()
        try:
            return Outcome(call(), None)
        except RemitError as error:
            return Outcome(None, error)

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def count(database: SqlDatabase, table: object, *where: object) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def start(issuance: IssuanceService, jti: str | None) -> Callable[[], tuple[Task, IssuedCredential]]:
    return lambda: issuance.start_task(workload(jti=jti), declaration())


def test_concurrent_issuances_share_a_batch_and_each_is_durable_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Seven callers queued behind one share a transaction; every row of each is there exactly once."""
    issuance, gate = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())  # fills the registry cache
    gate.arm(7)
    outcomes = together([start(issuance, f"jti-{i}") for i in range(8)])
    assert [o.error for o in outcomes] == [None] * 8
    assert issuance.commits.largest_batch == 7
    results = [o.result for o in outcomes if o.result is not None]
    task_ids = {task.id for task, _ in results}
    assert len(task_ids) == 8
    for task, credential in results:
        assert stack.verifier.verify(credential.token, audience="tool:github").task_id == task.id
        assert count(database, tasks, tasks.c.id == task.id) == 1
        assert count(database, credentials, credentials.c.jti == credential.jti) == 1
        assert count(database, audit_events, audit_events.c.task_id == task.id) == 2
    assert count(database, evidence_uses) == 9


def test_replays_in_one_batch_and_across_batches_are_refused_exactly_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """The same evidence presented eight times at once is accepted once; later presentations are refused too."""
    issuance, gate = gated(stack, database, ids)
    gate.arm(7)
    outcomes = together([start(issuance, "same") for _ in range(8)])
    assert sum(o.error is None for o in outcomes) == 1
    refused = [o.error for o in outcomes if o.error is not None]
    assert all(isinstance(e, AttestationFailed) and e.details == {"reason": "replayed"} for e in refused)
    with pytest.raises(AttestationFailed):
        issuance.start_task(workload(jti="same"), declaration())
    assert count(database, tasks) == 1
    assert count(database, audit_events, audit_events.c.type == "credential.refused") == 8


def test_replay_across_two_instances_is_refused_exactly_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Two Remit instances on one database (separate engines, caches and batches): one of them issues."""
    second = SqlDatabase.connect(database.engine.url.render_as_string(hide_password=False))
    try:
        ours, _ = gated(stack, database, ids)
        theirs, _ = gated(stack, second, ids)
        calls = [start(ours, "shared") for _ in range(4)] + [start(theirs, "shared") for _ in range(4)]
        outcomes = together(calls)
    finally:
        second.dispose()
    assert sum(o.error is None for o in outcomes) == 1
    assert all(isinstance(o.error, AttestationFailed) for o in outcomes if o.error is not None)
    assert count(database, tasks) == 1


def test_a_batch_of_new_tasks_reissues_a_stale_unit_and_a_replay_writes_each_as_decided(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Batched together: new tasks (one DPoP-bound), a re-issue, one for a task ended while it queued, a replay.

    The stale unit is decided again (refused: its task ended), the replay is refused, the rest are written,
    and every row reads back exactly as it was decided.
    """
    issuance, gate = gated(stack, database, ids)
    running, _ = issuance.start_task(workload(jti="warm"), declaration())
    ending, _ = issuance.start_task(workload(jti="to-end"), declaration())
    gate.arm(5)  # the first caller writes its own unit; the five others queue and share the next batch
    gate.before_batch = lambda: stack.tasks.finish(ending.id, TaskState.COMPLETED, reason="done", actor=SYSTEM)
    outcomes = together(
        [
            start(issuance, "new-1"),
            lambda: issuance.start_task(workload(jti="new-2"), declaration(), dpop_jkt="k" * 43),
            start(issuance, "dup"),
            start(issuance, "dup"),
            lambda: issuance.reissue(workload(jti="again"), running.id),
            lambda: issuance.reissue(workload(jti="stale"), ending.id),
        ]
    )
    assert issuance.commits.largest_batch == 5
    errors = [o.error for o in outcomes]
    assert errors[:2] == [None, None]
    assert sorted(type(e).__name__ for e in errors[2:4] if e is not None) == ["AttestationFailed"]
    assert errors[4] is None
    assert isinstance(errors[5], TaskNotActive)
    new = [o.result for o in outcomes[:4] if o.result is not None]
    assert len(new) == 3
    credentials_issued = [credential for _, credential in new] + [outcomes[4].result]
    with database.transaction() as tx:
        for task, _ in new:
            assert tx.tasks.get_task(task.id) == task
        for credential in credentials_issued:
            record = tx.credentials.get_credential(credential.jti)
            assert record is not None
            assert (record.task_id, record.audience, record.issued_at, record.expires_at) == (
                credential.task_id,
                credential.audience,
                credential.issued_at,
                credential.expires_at,
            )
            assert (record.cnf_jkt is not None) == credential.dpop_bound
            assert record.revoked_at is None
    assert count(database, evidence_uses) == 2 + 4  # warm, to-end; new-1, new-2, one dup, again
    assert count(database, credentials, credentials.c.task_id == ending.id) == 1


class CollidingIds:
    """The test's ids, except that one credential id is handed out twice: that unit cannot be inserted."""

    def __init__(self, ids: IdFactory) -> None:
        self._ids = ids
        self.collide = False
        self._first: str | None = None

    def new(self, prefix: str) -> str:
        value = self._ids.new(prefix)
        if prefix == "credential":
            if self._first is None:
                self._first = value
            elif self.collide:
                self.collide = False
                return self._first
        return value


def test_a_unit_that_breaks_its_batch_fails_alone(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """A credential id already taken fails its own caller (nothing of it written); the seven others commit."""
    colliding = CollidingIds(ids)
    issuance, gate = gated(stack, database, colliding)
    issuance.start_task(workload(jti="first"), declaration())
    colliding.collide = True  # the next credential id is the first one's
    gate.arm(7)
    outcomes = together([start(issuance, f"jti-{i}") for i in range(8)])
    failed = [o for o in outcomes if o.error is not None]
    assert len(failed) == 1
    assert isinstance(failed[0].error, Conflict)
    assert count(database, tasks) == 8  # the first task and seven of the batch
    assert count(database, credentials) == 8
    assert count(database, evidence_uses) == 8
    # The refused unit's evidence was not spent: presented again, it is accepted.
    spent = {f"jti-{i}" for i in range(8)}
    with database.engine.connect() as connection:
        spent -= set(connection.execute(select(evidence_uses.c.jti)).scalars())
    assert len(spent) == 1
    issuance.start_task(workload(jti=spent.pop()), declaration())


@pytest.mark.parametrize("failure", [Unavailable("the store went away"), RuntimeError("a bug in the batch")])
def test_a_failure_in_the_batch_commits_nothing_and_fails_every_caller(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory, failure: Exception
) -> None:
    """A crash between the inserts and the commit: no task, credential, audit record or evidence use survives.

    A store that is down fails the whole batch at once; any other failure is retried one unit per
    transaction, and each caller still gets an error (Unavailable), never a silent loss.
    """
    issuance, gate = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())
    before = (count(database, tasks), count(database, audit_events), count(database, evidence_uses))

    def crash(tx: SqlTransaction) -> None:
        # Only a batch that inserted tasks crashes; the refusals' own records are written.
        if tx.connection.execute(select(func.count()).select_from(tasks)).scalar_one() > before[0]:
            raise failure

    gate.fail_in_batch = crash
    gate.arm(3)
    outcomes = together([start(issuance, f"jti-{i}") for i in range(4)])
    assert all(isinstance(o.error, Unavailable) for o in outcomes)
    gate.fail_in_batch = None
    # Nothing of the failed batch exists (the refusals' own records aside).
    assert (count(database, tasks), count(database, evidence_uses)) == before[::2]
    assert count(database, audit_events, audit_events.c.type == "credential.issued") == 1
    # Nothing was spent either: the same evidence now issues.
    assert all(o.error is None for o in together([start(issuance, f"jti-{i}") for i in range(4)]))


# ---------------------------------------------------------------- callers on an event loop


def test_event_loop_callers_share_batches_with_threads_and_each_is_durable_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """`start_task_async` from a loop and `start_task` from threads interleave: every task once, every token good."""
    issuance, _ = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())

    async def on_the_loop() -> list[tuple[Task, IssuedCredential]]:
        return await asyncio.gather(
            *(issuance.start_task_async(workload(jti=f"loop-{i}"), declaration()) for i in range(24))
        )

    threads = together([start(issuance, f"thread-{i}") for i in range(6)] + [lambda: asyncio.run(on_the_loop())[0]])
    assert [o.error for o in threads] == [None] * 7
    assert count(database, tasks) == 1 + 6 + 24
    assert count(database, evidence_uses) == 1 + 6 + 24
    assert count(database, audit_events, audit_events.c.type == "credential.issued") == 31
    assert issuance.commits.batches < 31  # some were shared


def test_an_event_loop_callers_refusal_fails_only_its_own_future(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """The same evidence three times in one batch: one task, two refusals, each on its own caller."""
    issuance, _ = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())

    async def race() -> list[object]:
        calls = [issuance.start_task_async(workload(jti="same"), declaration()) for _ in range(3)]
        calls.append(issuance.start_task_async(workload(jti="other"), declaration()))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(race())
    refused = [r for r in results if isinstance(r, AttestationFailed)]
    assert len(refused) == 2
    assert all(r.details == {"reason": "replayed"} for r in refused)
    assert count(database, tasks) == 3  # warm, one of "same", other
    assert count(database, audit_events, audit_events.c.type == "credential.refused") == 2


def test_a_store_that_is_down_fails_event_loop_callers_with_unavailable(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    issuance, gate = gated(stack, database, ids)
    issuance.start_task(workload(jti="warm"), declaration())

    def down(_tx: SqlTransaction) -> None:
        raise Unavailable("the store is down")

    gate.fail_in_batch = down

    async def attempt() -> None:
        await issuance.start_task_async(workload(jti="late"), declaration())

    with pytest.raises(Unavailable):
        asyncio.run(attempt())
    assert count(database, tasks) == 1


def test_the_writer_thread_ends_when_idle_and_starts_again_on_demand(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "_WRITER_IDLE_SECONDS", 0.05)
    issuance, _ = gated(stack, database, ids)

    async def one(jti: str) -> None:
        await issuance.start_task_async(workload(jti=jti), declaration())

    asyncio.run(one("first"))
    deadline = time.monotonic() + 10
    while issuance.commits.writer_running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not issuance.commits.writer_running
    asyncio.run(one("second"))
    assert count(database, tasks) == 2


# ---------------------------------------------------------------- after the commit


def test_finish_runs_after_the_commit_and_its_failure_is_that_units_alone() -> None:
    """`finish` sees only committed units, in the leading thread; one that fails fails only its own caller."""
    committed: list[str] = []
    finished: list[tuple[str, bool]] = []

    @contextlib.contextmanager
    def uow() -> Iterator[list[str]]:
        pending: list[str] = []
        yield pending
        committed.extend(pending)  # "commit"

    def apply(tx: list[str], units: Sequence[str]) -> list[Exception | None]:
        tx.extend(units)
        return [None] * len(units)

    def finish(unit: str) -> None:
        finished.append((unit, unit in committed))
        if unit == "bad":
            raise Conflict("could not finish")

    commits: group_commit.GroupCommit[list[str], str] = group_commit.GroupCommit(uow, apply, finish=finish)

    async def run() -> list[object]:
        return await asyncio.gather(*(commits.submit_async(u) for u in ("a", "bad", "c")), return_exceptions=True)

    results = asyncio.run(run())
    assert results[0] is None
    assert isinstance(results[1], Conflict)
    assert results[2] is None
    commits.submit("d")
    assert sorted(committed) == ["a", "bad", "c", "d"]
    assert all(was_committed for _, was_committed in finished)
    assert sorted(u for u, _ in finished) == ["a", "bad", "c", "d"]


def test_tokens_are_signed_off_the_event_loop_after_their_batch(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """On the event-loop path the writer thread signs; the token verifies and names the recorded task."""
    issuance, _ = gated(stack, database, ids)
    loop_thread = threading.get_ident()
    signers: list[int] = []
    sign = stack.signer.sign

    def recording_sign(claims: Mapping[str, object], **kwargs: str) -> str:
        signers.append(threading.get_ident())
        return sign(claims, **kwargs)

    issuance._signer.sign = recording_sign  # type: ignore[method-assign]

    async def one() -> tuple[Task, IssuedCredential]:
        return await issuance.start_task_async(workload(jti="loop"), declaration())

    task, credential = asyncio.run(one())
    assert stack.verifier.verify(credential.token, audience="tool:github").task_id == task.id
    assert signers
    assert loop_thread not in signers
    assert count(database, tasks, tasks.c.id == task.id) == 1
