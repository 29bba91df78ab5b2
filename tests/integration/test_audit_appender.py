"""`remit.audit.append` as wired: group commit while the server runs, one transaction each for one-shot commands."""

from __future__ import annotations

import datetime as dt
import shutil
import threading

from pathlib import Path

from tests.integration.conftest import sqlite_settings

from remit.bootstrap import Remit, build
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent, SealedRecord

CALLERS = 16
PER_CALLER = 40


def decision(caller: int, number: int) -> AuditEvent:
    return AuditEvent(
        id=f"evt_{caller:02d}_{number:05d}",
        type="decision.made",
        occurred_at=dt.datetime(2026, 1, 15, 9, 0, tzinfo=dt.UTC),
        actor=AuditActor(ActorKind.AGENT, f"agt_{caller}"),
        subject_kind="task",
        subject_id=f"tsk_{caller}",
        data={"effect": "allow", "n": number},
        task_id=f"tsk_{caller}",
        agent_id=f"agt_{caller}",
    )


def group_committing(remit: Remit) -> bool:
    return remit.audit_writer.is_running


def test_appends_are_durable_before_start_while_running_and_after_close(tmp_path: Path, sqlite_template: Path) -> None:
    """Before start() and after close() each append commits alone; in between, concurrent callers share commits."""
    shutil.copyfile(sqlite_template, tmp_path / "remit.db")
    settings = sqlite_settings(tmp_path, "remit_op_" + "x" * 32)
    remit = build(settings)
    try:
        assert not group_committing(remit)
        first = remit.audit.append(decision(99, 0))  # a one-shot command's path
        assert first.sequence == 1

        remit.start()
        assert group_committing(remit)
        errors: list[BaseException] = []

        def caller(number: int) -> None:
            try:
                for n in range(PER_CALLER):
                    record = remit.audit.append(decision(number, n))
                    assert record.event.id == f"evt_{number:02d}_{n:05d}"
            except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    finally:
        remit.close()
    assert not group_committing(remit)

    reopened = build(settings)
    try:
        last = reopened.audit.append(decision(98, 0))  # closed or never started: still durable
        report = reopened.audit.verify()
        assert report.ok, report.first_fault
        assert report.records_checked == last.sequence == 2 + CALLERS * PER_CALLER
        ids = [r.event.id for r in reopened.audit.records(agent_id="agt_3") if isinstance(r, SealedRecord)]
        assert ids == [f"evt_03_{n:05d}" for n in range(PER_CALLER)]
    finally:
        reopened.close()
