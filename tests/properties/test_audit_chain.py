"""Property: any single-byte change to any stored field of any audit row breaks verification (real SQLite file)."""

from __future__ import annotations

import datetime as dt
import itertools
import shutil

from pathlib import Path

import pytest

from hypothesis import assume, given
from hypothesis import strategies as st
from sqlalchemy import text

from remit.adapters.audit_keys import Ed25519CheckpointSigner
from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.engine import SqlDatabase
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.audit.service import AuditLog
from remit.testing import FrozenClock

ROWS = 4
TEXT_FIELDS = ("id", "type", "task_id", "agent_id", "record", "prev_hash", "hash")
INTEGER_FIELDS = ("seq",)
_copies = itertools.count()


@pytest.fixture(scope="module")
def sealed_template(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Path:
    path = tmp_path_factory.mktemp("audit-property") / "sealed.db"
    shutil.copyfile(sqlite_template, path)
    database = SqlDatabase.connect(f"sqlite:///{path}")
    with database.transaction() as tx:
        for number in range(1, ROWS + 1):
            tx.audit.append(
                AuditEvent(
                    id=f"evt_{number:026d}",
                    type="decision.made",
                    occurred_at=dt.datetime(2026, 1, 15, 9, 0, number, 123456, tzinfo=dt.UTC),
                    actor=AuditActor(ActorKind.AGENT, "agt_1"),
                    subject_kind="task",
                    subject_id="tsk_1",
                    data={"effect": "allow", "reasons": ["pol_1", "guard_2"], "n": number, "w": 0.25},
                    task_id="tsk_1",
                    agent_id="agt_1",
                    owner_id="own_1",
                    function_id="fn_1",
                    correlation_id="tsk_1",
                )
            )
    database.dispose()
    return path


def verifies(path: Path) -> bool:
    database = SqlDatabase.connect(f"sqlite:///{path}")
    try:
        log = AuditLog(
            appender=None,  # type: ignore[arg-type]  # read-only use
            ledger=SqlAuditLedger(database.engine),
            clock=FrozenClock(),
            hmac_key=b"k" * 32,
            signer=Ed25519CheckpointSigner.generate(),
        )
        return log.verify(page_size=2).ok
    finally:
        database.dispose()


def flip(value: bytes, position: int, mask: int) -> bytes:
    changed = bytearray(value)
    changed[position % len(changed)] ^= mask
    return bytes(changed)


@given(
    row=st.integers(1, ROWS),
    field=st.sampled_from(TEXT_FIELDS + INTEGER_FIELDS),
    position=st.integers(0, 10_000),
    mask=st.integers(1, 255),
)
def test_any_single_byte_change_breaks_verification(
    sealed_template: Path, row: int, field: str, position: int, mask: int
) -> None:
    """Flipping bits of one byte in any stored field of any row makes verification fail."""
    path = sealed_template.with_name(f"copy-{next(_copies)}.db")
    shutil.copyfile(sealed_template, path)
    try:
        assert verifies(path)
        database = SqlDatabase.connect(f"sqlite:///{path}")
        with database.engine.begin() as connection:
            select_field = text(f"SELECT {field} FROM audit_events WHERE seq = :s")  # noqa: S608 - a fixed column name
            stored = connection.execute(select_field, {"s": row}).scalar()
            if field in INTEGER_FIELDS:
                assert isinstance(stored, int)
                raw = stored.to_bytes(8, "big", signed=True)
                changed: object = int.from_bytes(flip(raw, position, mask), "big", signed=True)
                # Moving a row onto another row's sequence is refused by the primary key: not storable.
                assume(field != "seq" or changed not in range(1, ROWS + 1))
            else:
                assert isinstance(stored, str)
                try:
                    changed = flip(stored.encode(), position, mask).decode()
                except UnicodeDecodeError:
                    changed = None
                assume(changed is not None)
            update_field = text(f"UPDATE audit_events SET {field} = :v WHERE seq = :s")  # noqa: S608 - a fixed column name
            connection.execute(update_field, {"v": changed, "s": row})
        database.dispose()
        assert not verifies(path)
    finally:
        path.unlink(missing_ok=True)
