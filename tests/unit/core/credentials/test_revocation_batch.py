"""Group commit of revocation: concurrent revocations share transactions, each logged and audited exactly once.

As in test_group_commit.py, a gate holds the first caller's transaction open until the others have
queued behind it, so the tests know which revocations share a batch.
"""

from __future__ import annotations

import contextlib
import threading
import time

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from sqlalchemy import func, select
from tests.unit.core.credentials.conftest import Stack, declaration, fingerprint, workload

from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.engine import SqlDatabase, SqlTransaction
from remit.adapters.sql.tables import audit_events, credentials, revocations
from remit.core.audit.chain import verify
from remit.core.audit.models import AuditActor
from remit.core.credentials.revocation import RevocationService
from remit.core.ids import IdFactory, SequentialIdFactory
from remit.errors import Conflict, RemitError

SYSTEM = AuditActor.system()


class Gate:
    """A unit of work that, when armed, holds the next transaction until `expected` more units are queued."""

    def __init__(self, database: SqlDatabase) -> None:
        self._database = database
        self.service: RevocationService | None = None
        self._expected = 0
        self.holding = threading.Event()  # set while an armed transaction waits for the queue

    def arm(self, expected: int) -> None:
        self._expected = expected

    @contextlib.contextmanager
    def __call__(self) -> Iterator[SqlTransaction]:
        expected, self._expected = self._expected, 0
        if expected and self.service is not None:
            self.holding.set()
            deadline = time.monotonic() + 10
            while self.service.commits.pending < expected and time.monotonic() < deadline:
                time.sleep(0.005)
        with self._database.transaction() as tx:
            yield tx


def gated(stack: Stack, database: SqlDatabase, ids: IdFactory) -> tuple[RevocationService, Gate]:
    gate = Gate(database)
    service = RevocationService(gate, clock=stack.clock, ids=ids, fingerprint=fingerprint, index=stack.index)
    gate.service = service
    return service, gate


@dataclass
class Outcome:
    revoked: bool | None
    error: RemitError | None
    in_index: bool  # the index refused the credential as soon as the call returned


def together(stack: Stack, service: RevocationService, calls: list[tuple[str, str | None]]) -> list[Outcome]:
    """Revoke each `(jti, agent_id)` on its own thread, all at once."""
    start = threading.Barrier(len(calls))

    def run(call: tuple[str, str | None]) -> Outcome:
        jti, agent_id = call
        start.wait()
        try:
            revoked = service.revoke_credential(jti, reason="leaked", actor=SYSTEM, agent_id=agent_id)
        except RemitError as error:
            return Outcome(None, error, in_index=False)
        return Outcome(revoked, None, in_index=revoked_in_index(stack, jti))

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def revoked_in_index(stack: Stack, jti: str) -> bool:
    return stack.index.revoked_reason(jti=jti, task_id="", lineage=(), epoch=0) is not None


def issue(stack: Stack, n: int) -> list[tuple[str, str]]:
    """`n` credentials of distinct tasks: (jti, agent id)."""
    issued = []
    for i in range(n):
        task, credential = stack.issuance.start_task(workload(jti=f"evidence-{i}"), declaration())
        issued.append((credential.jti, task.agent_id))
    return issued


def count(database: SqlDatabase, table: object, *where: object) -> int:
    with database.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one())  # type: ignore[arg-type]


def revoked_events(database: SqlDatabase, jti: str) -> int:
    return count(
        database,
        audit_events,
        audit_events.c.type == "credential.revoked",
        audit_events.c.record.contains(fingerprint(jti)),
    )


def assert_chain_verifies(database: SqlDatabase) -> None:
    report = verify(SqlAuditLedger(database.engine).read(limit=100_000))
    assert report.faults == ()


def test_concurrent_revocations_share_a_batch_and_each_is_logged_and_audited_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Seven callers queued behind one share a transaction; each credential gets one entry and one event."""
    service, gate = gated(stack, database, ids)
    issued = issue(stack, 8)
    gate.arm(7)
    outcomes = together(stack, service, [(jti, None) for jti, _ in issued])
    assert [(o.revoked, o.error, o.in_index) for o in outcomes] == [(True, None, True)] * 8
    assert service.commits.largest_batch == 7
    for jti, _ in issued:
        assert count(database, revocations, revocations.c.subject == jti) == 1
        assert count(database, credentials, credentials.c.jti == jti, credentials.c.revoked_at.is_not(None)) == 1
        assert revoked_events(database, jti) == 1
    with database.engine.connect() as connection:
        # The index applied every entry, leaving no gap behind.
        assert stack.index.watermark == connection.execute(select(func.max(revocations.c.seq))).scalar_one()
    assert_chain_verifies(database)


def test_many_threads_without_a_gate_each_revoke_exactly_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Twenty-four threads, each revoking its own credential twice: one entry and one event per credential."""
    service = RevocationService(
        database.transaction, clock=stack.clock, ids=ids, fingerprint=fingerprint, index=stack.index
    )
    issued = issue(stack, 24)
    outcomes = together(stack, service, [(jti, agent) for jti, agent in issued for _ in range(2)])
    assert all(o.revoked and o.in_index for o in outcomes)
    assert count(database, revocations) == 24
    assert count(database, audit_events, audit_events.c.type == "credential.revoked") == 24
    assert service.commits.batches <= 48
    assert_chain_verifies(database)


def test_duplicates_in_a_batch_and_revoked_before_are_idempotent(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """One batch: a jti four times, one revoked before, one unknown, one named with another agent's id."""
    service, gate = gated(stack, database, ids)
    (fresh, _), (before, _), (foreign, owner) = issue(stack, 3)
    assert service.revoke_credential(before, reason="earlier", actor=SYSTEM)
    other = "agt_" + "9" * 26
    assert other != owner
    gate.arm(7)
    outcomes = together(
        stack,
        service,
        [(fresh, None)] * 4 + [(before, None), ("crd_unknown", None), (foreign, other), (foreign, None)],
    )
    assert [o.revoked for o in outcomes] == [True] * 5 + [False, False, True]
    assert all(o.error is None for o in outcomes)
    assert all(o.in_index for o in outcomes if o.revoked)
    assert service.commits.largest_batch == 7
    assert count(database, revocations, revocations.c.subject == fresh) == 1
    assert count(database, revocations, revocations.c.subject == before) == 1
    assert count(database, revocations, revocations.c.subject == foreign) == 1
    assert [revoked_events(database, jti) for jti in (fresh, before, foreign)] == [1, 1, 1]
    with database.engine.connect() as connection:
        reason = connection.execute(select(credentials.c.revoke_reason).where(credentials.c.jti == before))
        assert reason.scalar_one() == "earlier"  # the first revocation stands
    assert_chain_verifies(database)


class CollidingEventIds:
    """The test's ids, except that once armed, the next audit event id is one already in the log."""

    def __init__(self, ids: IdFactory) -> None:
        self._ids = ids
        self.taken: str | None = None

    def new(self, prefix: str) -> str:
        if prefix == "event" and self.taken is not None:
            taken, self.taken = self.taken, None
            return taken
        return self._ids.new(prefix)


def test_a_unit_that_breaks_its_batch_fails_alone(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """An audit event id already taken fails its own revocation (nothing of it written); the seven others commit."""
    colliding = CollidingEventIds(ids)
    service, gate = gated(stack, database, colliding)
    (lead, _), *issued = issue(stack, 9)
    # A first revocation holds its transaction open until the eight others are queued behind it.
    gate.arm(8)
    leader = threading.Thread(target=lambda: service.revoke_credential(lead, reason="leaked", actor=SYSTEM))
    leader.start()
    assert gate.holding.wait(10)
    with database.engine.connect() as connection:
        colliding.taken = connection.execute(select(audit_events.c.id).limit(1)).scalar_one()
    outcomes = together(stack, service, [(jti, None) for jti, _ in issued])
    leader.join()
    failed = [(jti, o.error) for (jti, _), o in zip(issued, outcomes, strict=True) if o.error is not None]
    assert len(failed) == 1
    broken, error = failed[0]
    assert isinstance(error, Conflict)
    # The batch of eight did not commit; each of its units was then written alone.
    assert (service.commits.batches, service.commits.largest_batch) == (1 + 7, 1)
    assert count(database, revocations) == 8
    assert count(database, revocations, revocations.c.subject == broken) == 0
    assert count(database, credentials, credentials.c.jti == broken, credentials.c.revoked_at.is_(None)) == 1
    assert revoked_events(database, broken) == 0
    assert not revoked_in_index(stack, broken)
    assert all(o.revoked and o.in_index for o in outcomes if o.error is None)
    # Named again, it is revoked.
    assert service.revoke_credential(broken, reason="leaked", actor=SYSTEM)
    assert revoked_in_index(stack, broken)
    assert_chain_verifies(database)


@pytest.mark.parametrize("max_batch", [1, 3])
def test_batches_never_exceed_their_bound(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory, max_batch: int
) -> None:
    service = RevocationService(
        database.transaction,
        clock=stack.clock,
        ids=ids,
        fingerprint=fingerprint,
        index=stack.index,
        max_batch=max_batch,
    )
    issued = issue(stack, 9)
    assert all(o.revoked for o in together(stack, service, [(jti, None) for jti, _ in issued]))
    assert service.commits.largest_batch <= max_batch
    assert count(database, revocations) == 9


def test_two_instances_revoking_the_same_credentials_log_each_once(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Two Remit instances on one database (separate engines and batches) revoke the same credentials at once."""
    second = SqlDatabase.connect(database.engine.url.render_as_string(hide_password=False))
    try:
        ours = RevocationService(
            database.transaction, clock=stack.clock, ids=ids, fingerprint=fingerprint, index=stack.index
        )
        theirs = RevocationService(second.transaction, clock=stack.clock, ids=ids, fingerprint=fingerprint)
        issued = [jti for jti, _ in issue(stack, 4)]
        calls = [(service, jti) for jti in issued for service in (ours, theirs, ours, theirs)]
        start = threading.Barrier(len(calls))

        def run(call: tuple[RevocationService, str]) -> bool:
            start.wait()
            return call[0].revoke_credential(call[1], reason="leaked", actor=SYSTEM)

        with ThreadPoolExecutor(len(calls)) as pool:
            assert all(pool.map(run, calls))
    finally:
        second.dispose()
    for jti in issued:
        assert count(database, revocations, revocations.c.subject == jti) == 1
        assert revoked_events(database, jti) == 1
    assert_chain_verifies(database)
