"""Migration 0005: rows written in the column format keep verifying, and rows altered before it still fail there."""

from __future__ import annotations

import datetime as dt
import json
import secrets

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sqlalchemy import create_engine, text
from tests.conftest import POSTGRES_ADMIN_URL

from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import downgrade, upgrade
from remit.core.audit.chain import seal
from remit.core.audit.models import GENESIS_HASH, ActorKind, AuditActor, AuditEvent, FaultKind, SealedRecord
from remit.core.audit.service import AuditLog
from remit.testing import FrozenClock

COLUMNS = (
    "seq, id, schema, type, occurred_at, actor_kind, actor_id, subject_kind, subject_id, task_id, agent_id, "
    "owner_id, function_id, correlation_id, data, prev_hash, hash"
)
INSERT_OLD = f"INSERT INTO audit_events ({COLUMNS}) VALUES ({', '.join(':' + c for c in COLUMNS.split(', '))})"  # noqa: S608 - fixed names


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    """A database migrated only up to 0003: audit rows in the column format."""
    if request.param == "sqlite":
        database = SqlDatabase.connect(f"sqlite:///{tmp_path / 'old.db'}")
        upgrade(database.engine, "0003")
        yield database
        database.dispose()
        return
    request.getfixturevalue("postgres_url")  # skips (or fails, in CI) without PostgreSQL
    schema = f"remit_mig_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = SqlDatabase.connect(f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}")
    upgrade(database.engine, "0003")
    yield database
    database.dispose()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def event(number: int) -> AuditEvent:
    return AuditEvent(
        id=f"evt_{number:026d}",
        type="credential.issued",
        occurred_at=dt.datetime(2026, 1, 15, 9, 0, number, 250_000, tzinfo=dt.UTC),
        actor=AuditActor(ActorKind.AGENT, "agt_1"),
        subject_kind="task",
        subject_id="tsk_1",
        data={"n": number, "ratio": 0.5, "big": 1e20, "name": "é"},
        task_id="tsk_1",
        agent_id="agt_1" if number % 2 else None,
        owner_id="own_1",
        correlation_id="tsk_1",
    )


def write_old_rows(database: SqlDatabase, count: int) -> list[SealedRecord]:
    """Rows as revision 0003 stored them: one column per field, sealed with the same hash definition."""
    records: list[SealedRecord] = []
    previous = GENESIS_HASH
    with database.engine.begin() as connection:
        for number in range(1, count + 1):
            record = seal(previous, number, event(number))
            e = record.event
            connection.execute(
                text(INSERT_OLD),
                {
                    "seq": number,
                    "id": e.id,
                    "schema": 1,
                    "type": e.type,
                    "occurred_at": e.occurred_at.replace(tzinfo=None),
                    "actor_kind": e.actor.kind.value,
                    "actor_id": e.actor.id,
                    "subject_kind": e.subject_kind,
                    "subject_id": e.subject_id,
                    "task_id": e.task_id,
                    "agent_id": e.agent_id,
                    "owner_id": e.owner_id,
                    "function_id": e.function_id,
                    "correlation_id": e.correlation_id,
                    "data": json.dumps(e.data),
                    "prev_hash": record.prev_hash,
                    "hash": record.hash,
                },
            )
            records.append(record)
            previous = record.hash
    return records


def audit_log(database: SqlDatabase) -> AuditLog:
    return AuditLog(
        appender=None,  # type: ignore[arg-type]  # read-only use
        ledger=SqlAuditLedger(database.engine),
        clock=FrozenClock(),
        hmac_key=b"k" * 32,
    )


def test_old_rows_keep_their_hashes_and_read_back_the_same(old_database: SqlDatabase) -> None:
    """After 0005 the old rows verify from their stored bytes, and decode to the events that were written."""
    written = write_old_rows(old_database, 5)
    upgrade(old_database.engine)
    log = audit_log(old_database)
    report = log.verify()
    assert (report.ok, report.records_checked, report.head_hash) == (True, 5, written[-1].hash)
    assert list(log.records()) == written
    assert [r.sequence for r in log.records(agent_id="agt_1")] == [1, 3, 5]


def test_rows_altered_before_the_upgrade_still_fail_at_their_sequence(old_database: SqlDatabase) -> None:
    """A row edited (or made undecodable) in the column format is still named by verify after 0005."""
    write_old_rows(old_database, 5)
    with old_database.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor_id = 'agt_other' WHERE seq = 3"))
        connection.execute(text("UPDATE audit_events SET actor_kind = 'robot' WHERE seq = 4"))
    upgrade(old_database.engine)
    log = audit_log(old_database)
    fault = log.verify().first_fault
    assert fault is not None
    assert (fault.kind, fault.sequence) == (FaultKind.ALTERED, 3)
    with old_database.engine.begin() as connection:
        kept: Any = connection.execute(text("SELECT record FROM audit_events WHERE seq = 4")).scalar_one()
    assert json.loads(kept)["columns"]["actor_kind"] == "robot"  # the altered values are kept for review


def test_downgrade_restores_the_columns(old_database: SqlDatabase) -> None:
    """0005 can be undone: the columns come back from the documents, and upgrading again still verifies."""
    written = write_old_rows(old_database, 3)
    upgrade(old_database.engine)
    downgrade(old_database.engine, "0003")
    with old_database.engine.begin() as connection:
        row = connection.execute(text("SELECT actor_id, owner_id, data FROM audit_events WHERE seq = 2")).one()
    data = json.loads(row.data) if isinstance(row.data, str) else row.data
    assert (row.actor_id, row.owner_id, data) == ("agt_1", "own_1", written[1].event.data)
    upgrade(old_database.engine)
    assert audit_log(old_database).verify().ok
