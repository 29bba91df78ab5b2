"""Approvals on the real store (SQLite and PostgreSQL).

Reuse of pending requests, expiry, single-use elevations (also under concurrency), windows that
never outlive the task, separation of duties, and the risk-tier defaults.
"""

from __future__ import annotations

import datetime as dt
import threading

from dataclasses import replace
from pathlib import Path

import pytest

from tests.unit.core.credentials.conftest import Stack, declaration, make_stack, workload

from remit.adapters.sql.engine import SqlDatabase
from remit.core.approvals.models import ApprovalState, OperatorAccount, OperatorRole
from remit.core.approvals.ports import NoNotifier
from remit.core.approvals.rules import ApprovalRule, ApprovalRules, Window
from remit.core.approvals.service import ApprovalService, ElevationBook
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import RiskClass, Sensitivity
from remit.core.registry.service import RegistryService
from remit.core.tasks.models import Task, parse_authorization_details
from remit.errors import Conflict, Forbidden
from remit.testing import FrozenClock

CALL = {"tool": "github", "action": "merge_pr", "resource": "repo:acme/docs"}


@pytest.fixture
def stack(
    database: SqlDatabase,
    clock: FrozenClock,
    ids: SequentialIdFactory,
    bus: InProcessEventBus,
    registry: RegistryService,
    tmp_path: Path,
) -> Stack:
    return make_stack(database, clock, ids, bus, registry, tmp_path / "keys")


def _service(stack: Stack, ids: SequentialIdFactory, *, uses: int | None = 1) -> ApprovalService:
    return ApprovalService(
        stack.database.transaction,
        clock=stack.clock,
        ids=ids,
        rules=ApprovalRules(),
        notifier=NoNotifier(),
        request_timeout=dt.timedelta(minutes=10),
        window=Window(uses=uses, ttl=dt.timedelta(minutes=5)),
        breakglass_ttl=dt.timedelta(minutes=10),
    )


def _task(stack: Stack) -> Task:
    details = parse_authorization_details(
        [{"type": "remit_tool", "tool": "github", "actions": ["merge_pr"], "resources": ["repo:acme/docs"]}]
    )
    task, _ = stack.issuance.start_task(workload(), declaration(details=details))
    return task


def _open(service: ApprovalService, task: Task, **context: str | int | bool) -> str:
    return service.open(
        decision_id="dec_" + "0" * 26,
        task_id=task.id,
        risk_class=RiskClass.WRITE,
        sensitivity=Sensitivity.INTERNAL,
        environment="prod",
        context=context,
        **CALL,
    )


def _store(stack: Stack, account: OperatorAccount) -> OperatorAccount:
    """Approvers are re-read inside each transaction: every account a test uses is stored."""
    with stack.database.transaction() as tx:
        if tx.operators.get_by_name(account.name) is None:
            tx.operators.add(account)
    return account


def _approver(name: str, clock: FrozenClock, stack: Stack | None = None, **fields: object) -> OperatorAccount:
    values: dict[str, object] = {
        "id": f"opr_{name}",
        "name": name,
        "roles": frozenset({OperatorRole.APPROVER}),
        "groups": ("approvers",),
        "created_at": clock.now(),
        "created_by": "test",
        "token_sha256": f"{name:0<64}"[:64],
    }
    values.update(fields)
    account = OperatorAccount(**values)  # type: ignore[arg-type]
    return _store(stack, account) if stack is not None else account


def test_identical_pending_requests_are_reused_and_expiry_ends_them(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids), _task(stack)
    first = _open(service, task)
    assert _open(service, task) == first
    assert _open(service, task, amount=5) != first  # a different context is a different request

    stack.clock.advance(dt.timedelta(minutes=11))
    with pytest.raises(Conflict):
        service.approve(first, approver=_approver("grace", stack.clock, stack))
    assert service.get(first).state is ApprovalState.EXPIRED
    assert _open(service, task) != first
    assert service.expire_overdue() == 1  # the request with a context, overdue too


def test_an_elevation_is_used_exactly_once_even_concurrently(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids), _task(stack)
    book = ElevationBook(stack.database.transaction, stack.database.reading, clock=stack.clock, ids=ids)
    approval = service.approve(_open(service, task), approver=_approver("grace", stack.clock, stack))
    assert approval.state is ApprovalState.APPROVED

    found = book.find(task_id=task.id, epoch=0, context={}, **CALL)
    assert found is not None
    other = {"tool": "github", "action": "merge_pr", "resource": "repo:acme/other"}
    assert book.find(task_id=task.id, epoch=0, context={}, **other) is None
    assert book.find(task_id="tsk_" + "1" * 26, epoch=0, context={}, **CALL) is None

    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(book.consume(found))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 5 + [True]
    assert book.find(task_id=task.id, epoch=0, context={}, **CALL) is None


def test_a_window_expires_and_never_outlives_the_task(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids, uses=None), _task(stack)
    book = ElevationBook(stack.database.transaction, stack.database.reading, clock=stack.clock, ids=ids)
    service.approve(_open(service, task), approver=_approver("grace", stack.clock, stack))
    found = book.find(task_id=task.id, epoch=0, context={}, **CALL)
    assert found is not None
    assert found.expires_at <= min(stack.clock.now() + dt.timedelta(minutes=5), task.deadline)
    assert book.consume(found)
    assert book.consume(found)  # a window is not counted down

    stack.clock.advance(dt.timedelta(minutes=5))
    assert book.find(task_id=task.id, epoch=0, context={}, **CALL) is None
    assert not book.consume(found)


def test_separation_of_duties(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids), _task(stack)
    approval_id = _open(service, task)
    outsider = OperatorAccount(
        id="opr_x",
        name="x",
        roles=frozenset({OperatorRole.APPROVER}),
        groups=("other",),
        created_at=stack.clock.now(),
        created_by="t",
    )
    admin = OperatorAccount(
        id="opr_y",
        name="y",
        roles=frozenset({OperatorRole.ADMIN}),
        groups=("approvers",),
        created_at=stack.clock.now(),
        created_by="t",
    )
    for who in (outsider, admin):
        _store(stack, replace(who, token_sha256=who.name * 64))
        with pytest.raises(Forbidden):
            service.approve(approval_id, approver=who)
    assert service.get(approval_id).state is ApprovalState.PENDING


def test_risk_tier_defaults_and_rules() -> None:
    rules = ApprovalRules()
    assert rules.rule_for(["fn_x"], RiskClass.WRITE) == (("owner", "approvers"), 1)
    assert rules.rule_for(["fn_x"], RiskClass.DEPLOY)[1] == 1
    for two in (RiskClass.PAYMENT, RiskClass.EXPORT, RiskClass.ADMIN):
        assert rules.rule_for(["fn_x"], two)[1] == 2
    custom = ApprovalRules(
        rules=(
            ApprovalRule(function="finance", risk_class="payment", approvers=("cfo",), required=3),
            ApprovalRule(risk_class="deploy", approvers=("sre",)),
        )
    )
    assert custom.rule_for(["fn_1", "finance"], RiskClass.PAYMENT) == (("cfo",), 3)
    assert custom.rule_for(["fn_2", "docs"], RiskClass.PAYMENT) == (("owner", "approvers"), 2)
    assert custom.rule_for(["fn_2", "docs"], RiskClass.DEPLOY) == (("sre",), 1)
    with pytest.raises(ValueError, match="at least one"):
        ApprovalRules(rules=(ApprovalRule(required=0),))


def test_a_step_up_decided_just_before_an_approval_points_at_that_approval(
    stack: Stack, ids: SequentialIdFactory
) -> None:
    """The race: a decision found no elevation, then the identical request was approved, then it opens one."""
    service, task = _service(stack, ids), _task(stack)
    first = _open(service, task)
    service.approve(first, approver=_approver("grace", stack.clock, stack))

    assert _open(service, task) == first  # the approved request, whose live elevation allows the retry
    assert [a.id for a in service.list(state=ApprovalState.PENDING, limit=10).items] == []
    # Only this task's own approval, for exactly this call: another task, or another context, asks anew.
    other = _task(stack)
    assert _open(service, other) != first
    assert _open(service, task, amount=5) != first

    book = ElevationBook(stack.database.transaction, stack.database.reading, clock=stack.clock, ids=ids)
    elevation = book.find(task_id=task.id, epoch=0, context={}, **CALL)
    assert elevation is not None
    assert book.consume(elevation)
    assert _open(service, task) != first  # once the elevation is spent, the same call needs a new approval
