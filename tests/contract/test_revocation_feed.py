"""Changes reach another replica: pushed by LISTEN/NOTIFY on PostgreSQL (revocations, policy sets), polled on SQLite."""

from __future__ import annotations

import threading

import pytest

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.notify import REVOCATIONS, ChangeListener
from remit.adapters.sql.revocation_feed import RevocationFeed
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.tasks.revocations import RevocationKind
from remit.testing import FrozenClock

# On PostgreSQL the other replica polls only every minute: seeing the revocation sooner proves the push.
PUSH_POLL_SECONDS = 60.0
POLL_SECONDS = 0.05


def _revoked(index: RevocationIndex, task_id: str) -> bool:
    return index.revoked_reason(jti="crd_x", task_id=task_id, lineage=(), epoch=0) is not None


def test_a_revocation_committed_elsewhere_reaches_this_replica(database: SqlDatabase, clock: FrozenClock) -> None:
    index = RevocationIndex()
    feed = RevocationFeed(database, index, clock=clock)
    listener = ChangeListener(database, {REVOCATIONS: feed.refresh})
    pushed = database.backend == "postgresql"
    feed.start(interval_seconds=PUSH_POLL_SECONDS if pushed else POLL_SECONDS)
    listener.start()
    try:
        pause = threading.Event()
        if pushed:
            assert listener.listening.wait(20)
        assert not _revoked(index, "tsk_elsewhere")

        # Another replica ends a task: its revocation-log entry commits (and, on PostgreSQL, notifies).
        with database.transaction() as tx:
            tx.revocations.append(RevocationKind.TASK_ENDED, "tsk_elsewhere", reason="completed", at=clock.now())

        for _ in range(400):  # up to 20 s, far below the 60 s poll on PostgreSQL
            if _revoked(index, "tsk_elsewhere") or pause.wait(0.05):
                break
        assert _revoked(index, "tsk_elsewhere")
    finally:
        listener.stop()
        feed.stop()


def test_a_rolled_back_revocation_is_never_applied(database: SqlDatabase, clock: FrozenClock) -> None:
    """NOTIFY is transactional: a revocation that does not commit neither arrives nor is read."""
    index = RevocationIndex()
    feed = RevocationFeed(database, index, clock=clock)

    class Abort(Exception):
        pass

    def revoke_then_fail() -> None:
        with database.transaction() as tx:
            tx.revocations.append(RevocationKind.TASK_ENDED, "tsk_rolled_back", reason="x", at=clock.now())
            raise Abort

    with pytest.raises(Abort):
        revoke_then_fail()
    feed.refresh()

    assert not _revoked(index, "tsk_rolled_back")
