"""Adversarial cases of approvals (security review): who counts as a person, what an approval is bound to.

Each test is the regression test of one finding: principal bypass through another identifier of
the same person, break-glass by or reviewed by the same person, two accounts of one person,
reserved group names, elevations bound to the request facts and the task's epoch, a disabled
account's vote, the pending-request cap, reads off the writer, the reserved operator name, and an
elevation that dies with its task.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sqlalchemy import select
from tests.unit.core.credentials.conftest import Stack, declaration, make_stack, workload

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.tables import audit_events
from remit.core.approvals.models import (
    ApprovalState,
    OperatorAccount,
    OperatorRole,
    context_digest,
    normalise_identity,
    parse_group,
)
from remit.core.approvals.ports import ApprovalTransaction, NoNotifier
from remit.core.approvals.rules import ApprovalRule, ApprovalRules, Window
from remit.core.approvals.service import ApprovalService, ElevationBook, OperatorService
from remit.core.audit.models import AuditActor
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import OidcSubject, Owner, RiskClass, Sensitivity
from remit.core.registry.service import RegistryService
from remit.core.tasks.models import Task, parse_authorization_details
from remit.errors import Conflict, Forbidden, InvalidRequest, RateLimited
from remit.testing import FrozenClock

CALL = {"tool": "github", "action": "merge_pr", "resource": "repo:acme/docs"}
LOGIN = "https://login.acme.example"
WHY = "production incident INC-42, paging failed"
BG: dict[str, Any] = dict(CALL)


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


@pytest.fixture
def bob(stack: Stack) -> Owner:
    """A person in the registry with a human sign-in identity (not the owner of the tasks)."""
    return stack.registry.register_owner(
        name="Bob", email="bob@acme.example", human_identities=[OidcSubject.parse(LOGIN, "bob-77")], actor="test"
    )


def _service(
    stack: Stack, ids: SequentialIdFactory, *, required: int = 1, uses: int | None = 1, **extra: object
) -> ApprovalService:
    return ApprovalService(
        stack.database.transaction,
        clock=stack.clock,
        ids=ids,
        rules=ApprovalRules(rules=(ApprovalRule(approvers=("owner", "approvers"), required=required),)),
        notifier=NoNotifier(),
        request_timeout=dt.timedelta(minutes=10),
        window=Window(uses=uses, ttl=dt.timedelta(minutes=5)),
        breakglass_ttl=dt.timedelta(minutes=10),
        reads=stack.database.reading,
        **extra,  # type: ignore[arg-type]
    )


def _book(stack: Stack, ids: SequentialIdFactory) -> ElevationBook:
    return ElevationBook(stack.database.transaction, stack.database.reading, clock=stack.clock, ids=ids)


def _task(stack: Stack, *, principal: str | None = None) -> Task:
    details = parse_authorization_details(
        [{"type": "remit_tool", "tool": "github", "actions": ["merge_pr"], "resources": ["repo:acme/docs"]}]
    )
    task, _ = stack.issuance.start_task(workload(), declaration(details=details, principal=principal))
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


def _account(stack: Stack, name: str, *roles: OperatorRole, **fields: object) -> OperatorAccount:
    values: dict[str, object] = {
        "id": f"opr_{name}",
        "name": name,
        "roles": frozenset(roles or {OperatorRole.APPROVER}),
        "groups": ("approvers",),
        "created_at": stack.clock.now(),
        "created_by": "test",
        "token_sha256": f"{name:0<64}"[:64],
    }
    values.update(fields)
    account = OperatorAccount(**values)  # type: ignore[arg-type]
    with stack.database.transaction() as tx:
        tx.operators.add(account)
    return account


def _disable(stack: Stack, account: OperatorAccount) -> None:
    with stack.database.transaction() as tx:
        tx.operators.update(replace(account, disabled_at=stack.clock.now(), disabled_by="test"))


def _operators(stack: Stack, ids: SequentialIdFactory, **extra: object) -> OperatorService:
    return OperatorService(
        stack.database.transaction,
        clock=stack.clock,
        ids=ids,
        new_token=lambda: "rmo_" + ids.new("event"),
        reads=stack.database.reading,
        **extra,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------------------------- 1. principal bypass


def test_identifiers_are_normalised() -> None:
    assert normalise_identity("  MAILTO:Bob@Acme.Example ") == "bob@acme.example"
    assert normalise_identity("mailto: bob@acme.example") == "bob@acme.example"
    assert normalise_identity(None) == ""


@pytest.mark.parametrize(
    "principal",
    ["MAILTO:Bob@Acme.example", "bob@ACME.example", f"oidc:{LOGIN}#bob-77", "BOB-77", "own_placeholder"],
)
def test_a_principal_naming_the_approver_through_the_linked_owner_cannot_approve(
    stack: Stack, ids: SequentialIdFactory, bob: Owner, principal: str
) -> None:
    # The account itself has no email: the person is known only through its linked owner.
    grace = _account(stack, "grace", owner_id=bob.id)
    task = _task(stack, principal=bob.id if principal == "own_placeholder" else principal)
    service = _service(stack, ids)
    approval_id = _open(service, task)
    with pytest.raises(Forbidden, match="own behalf"):
        service.approve(approval_id, approver=grace)
    assert service.get(approval_id).state is ApprovalState.PENDING


def test_a_principal_matching_the_email_of_the_owner_the_account_resolves_to_cannot_approve(
    stack: Stack, ids: SequentialIdFactory, bob: Owner
) -> None:
    del bob
    # No owner link, but the account's email is Bob's: the human identity of that owner counts too.
    grace = _account(stack, "grace", email="bob@acme.example")
    service = _service(stack, ids)
    approval_id = _open(service, _task(stack, principal=f"oidc:{LOGIN}#bob-77"))
    with pytest.raises(Forbidden, match="own behalf"):
        service.approve(approval_id, approver=grace)


# ---------------------------------------------------------------------------------- 2. break-glass


def test_break_glass_is_refused_to_the_tasks_principal(stack: Stack, ids: SequentialIdFactory, bob: Owner) -> None:
    holder = _account(stack, "bg-bob", OperatorRole.BREAK_GLASS, owner_id=bob.id)
    task = _task(stack, principal="mailto:BOB@acme.example")
    with pytest.raises(Forbidden, match="own behalf"):
        _service(stack, ids).break_glass(holder=holder, task_id=task.id, justification=WHY, **BG)


def test_the_break_glass_reviewer_is_another_person_not_merely_another_account(
    stack: Stack, ids: SequentialIdFactory, bob: Owner
) -> None:
    holder = _account(stack, "bg-bob", OperatorRole.BREAK_GLASS, owner_id=bob.id)
    # Same person, other account: linked to nobody, but with Bob's email.
    same = _account(stack, "audit-bob", OperatorRole.AUDITOR, email="bob@acme.example")
    other = _account(stack, "audit-eve", OperatorRole.AUDITOR, email="eve@acme.example")
    service = _service(stack, ids)
    grant, _ = service.break_glass(holder=holder, task_id=_task(stack).id, justification=WHY, **BG)
    with pytest.raises(Forbidden, match="holder"):
        service.review(grant.id, auditor=same, notes="looks fine")
    assert service.review(grant.id, auditor=other, notes="INC-42 confirmed").reviewed_by == "audit-eve"


# ---------------------------------------------------------------------------------- 3. distinct persons


def test_two_accounts_of_one_person_count_once(stack: Stack, ids: SequentialIdFactory, bob: Owner) -> None:
    # Stored directly (the service refuses the second one): the count must hold even so.
    first = _account(stack, "bob-a", email="bob@acme.example")
    second = _account(stack, "bob-b", owner_id=bob.id)
    third = _account(stack, "carol", email="carol@acme.example")
    service = _service(stack, ids, required=2)
    approval_id = _open(service, _task(stack))
    service.approve(approval_id, approver=first)
    with pytest.raises(Conflict, match="already answered"):
        service.approve(approval_id, approver=second)
    assert service.get(approval_id).state is ApprovalState.PENDING
    assert service.approve(approval_id, approver=third).state is ApprovalState.APPROVED


def test_one_person_cannot_hold_two_active_accounts(stack: Stack, ids: SequentialIdFactory, bob: Owner) -> None:
    operators = _operators(stack, ids)
    first, _ = operators.add(name="bob-a", roles=["approver"], email="Bob@Acme.example", actor="admin")
    for duplicate in ({"email": "bob@acme.example"}, {"owner": bob.id}, {"owner": "bob@acme.example"}):
        with pytest.raises(Conflict, match="already holds"):
            operators.add(name="bob-b", roles=["approver"], actor="admin", **duplicate)
    # The store refuses it too (partial unique index among active accounts).
    with pytest.raises(Conflict):
        _account(stack, "bob-c", email="bob@acme.example")
    operators.disable(first.name, reason="left", actor="admin")
    again, _ = operators.add(name="bob-b", roles=["approver"], owner=bob.id, actor="admin")
    assert again.owner_id == bob.id


# ---------------------------------------------------------------------------------- 4. reserved groups


def test_owner_and_break_glass_are_never_groups(stack: Stack, ids: SequentialIdFactory) -> None:
    for reserved in ("owner", "break-glass", " Owner "):
        with pytest.raises(InvalidRequest, match="reserved"):
            parse_group(reserved)
        with pytest.raises(InvalidRequest, match="reserved"):
            _operators(stack, ids).add(name="x", roles=["approver"], groups=[reserved], actor="admin")
    with pytest.raises(ValueError, match="reserved"):
        ApprovalRules(rules=(ApprovalRule(approvers=("break-glass",)),))
    with pytest.raises(ValueError, match="reserved"):
        ApprovalRules(default_approvers=("owner", "break-glass"))
    # An account stored with the sentinel as a group (an old row) is still no approver of `owner`.
    sneaky = _account(stack, "sneaky", groups=("owner",))
    service = _service(stack, ids)
    with pytest.raises(Forbidden, match="not an approver"):
        service.approve(_open(service, _task(stack)), approver=sneaky)


# ---------------------------------------------------------------------------------- 5. request facts


def test_an_elevation_covers_exactly_the_approved_request_facts(stack: Stack, ids: SequentialIdFactory) -> None:
    service, book, task = _service(stack, ids), _book(stack, ids), _task(stack)
    approved = service.approve(_open(service, task, amount=500, currency="EUR"), approver=_account(stack, "grace"))
    assert approved.state is ApprovalState.APPROVED
    elevation = service.elevation(approved)
    assert elevation is not None
    assert elevation.context_sha256 == context_digest({"currency": "EUR", "amount": 500})
    assert book.find(task_id=task.id, epoch=0, context={"currency": "EUR", "amount": 500}, **CALL) is not None
    others: list[dict[str, str | int | bool]] = [
        {"amount": 50000, "currency": "EUR"},
        {"amount": 500},
        {},
        {"amount": "500", "currency": "EUR"},
    ]
    for other in others:
        assert book.find(task_id=task.id, epoch=0, context=other, **CALL) is None


def test_a_break_glass_grant_covers_exactly_its_stated_facts(stack: Stack, ids: SequentialIdFactory) -> None:
    service, book, task = _service(stack, ids), _book(stack, ids), _task(stack)
    holder = _account(stack, "holder", OperatorRole.BREAK_GLASS)
    service.break_glass(
        holder=holder,
        task_id=task.id,
        justification="production incident INC-42, paging failed",
        context={"amount": 20},
        tool="github",
        action="merge_pr",
        resource="repo:acme/docs",
    )
    assert book.find(task_id=task.id, epoch=0, context={"amount": 20}, **CALL) is not None
    assert book.find(task_id=task.id, epoch=0, context={"amount": 20000}, **CALL) is None


# ---------------------------------------------------------------------------------- 6. epoch


def test_a_request_made_before_the_task_changed_cannot_be_approved(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids), _task(stack)
    approval_id = _open(service, task)
    changed = stack.tasks.change_objective(task.id, "publish the Q2 docs", actor=AuditActor.system())
    assert changed.epoch == 1
    with pytest.raises(Conflict, match="context changed"):
        service.approve(approval_id, approver=_account(stack, "grace"))
    assert service.get(approval_id).state is ApprovalState.EXPIRED
    assert _open(service, changed) != approval_id  # the pending key includes the epoch


def test_an_elevation_is_bound_to_the_epoch_it_was_granted_at(stack: Stack, ids: SequentialIdFactory) -> None:
    service, book, task = _service(stack, ids, uses=None), _book(stack, ids), _task(stack)
    service.approve(_open(service, task), approver=_account(stack, "grace"))
    found = book.find(task_id=task.id, epoch=0, context={}, **CALL)
    assert found is not None
    assert book.find(task_id=task.id, epoch=1, context={}, **CALL) is None
    stack.tasks.change_objective(task.id, "publish the Q2 docs", actor=AuditActor.system())
    assert not book.consume(found)  # the task moved on: the elevation is dead


# ---------------------------------------------------------------------------------- 7. disabled voters


def test_a_disabled_accounts_vote_no_longer_counts(stack: Stack, ids: SequentialIdFactory) -> None:
    grace, hopper, ada = (_account(stack, n) for n in ("grace", "hopper", "lin"))
    service = _service(stack, ids, required=2)
    approval_id = _open(service, _task(stack))
    service.approve(approval_id, approver=grace)
    _disable(stack, grace)
    assert service.approve(approval_id, approver=hopper).state is ApprovalState.PENDING
    _disable(stack, ada)
    with pytest.raises(Forbidden):
        service.approve(approval_id, approver=ada)  # the account object is stale: it is re-read
    approved = service.approve(approval_id, approver=_account(stack, "kay"))
    assert approved.state is ApprovalState.APPROVED
    elevation = service.elevation(approved)
    assert elevation is not None
    assert elevation.granted_by == ("hopper", "kay")


# ---------------------------------------------------------------------------------- 8. flood


def test_pending_requests_per_task_are_capped(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids, max_pending_per_task=2), _task(stack)
    first, second = _open(service, task, amount=1), _open(service, task, amount=2)
    assert _open(service, task, amount=1) == first  # an identical request is reused, not counted again
    with pytest.raises(RateLimited):
        _open(service, task, amount=3)
    service.deny(second, approver=_account(stack, "grace"), reason="no")
    assert _open(service, task, amount=3) not in {first, second}


# ---------------------------------------------------------------------------------- 9. reads


def test_reads_never_take_the_writer_transaction(stack: Stack, ids: SequentialIdFactory) -> None:
    writes = 0

    @contextmanager
    def counted() -> Iterator[ApprovalTransaction]:
        nonlocal writes
        writes += 1
        with stack.database.transaction() as tx:
            yield tx

    def writer() -> AbstractContextManager[ApprovalTransaction]:
        return counted()

    service = ApprovalService(
        writer,
        clock=stack.clock,
        ids=ids,
        rules=ApprovalRules(),
        notifier=NoNotifier(),
        request_timeout=dt.timedelta(minutes=10),
        window=Window(uses=1, ttl=dt.timedelta(minutes=5)),
        breakglass_ttl=dt.timedelta(minutes=10),
        reads=stack.database.reading,
    )
    task = _task(stack)
    request = service.get(_open(service, task))
    before = writes
    service.get(request.id)
    service.elevation(request)
    service.list(task_id=task.id)
    service.history_start(task.id)
    assert writes == before
    operators = _operators(stack, ids)
    operators.add(name="grace", roles=["approver"], actor="admin")
    assert operators.get("grace").name == "grace"


def test_the_history_start_leaves_only_the_last_records(stack: Stack, ids: SequentialIdFactory) -> None:
    service, task = _service(stack, ids), _task(stack)
    for amount in range(5):
        _open(service, task, amount=amount)
    with stack.database.reading() as tx:
        everything = list(
            tx.connection.execute(
                select(audit_events.c.seq).where(audit_events.c.task_id == task.id).order_by(audit_events.c.seq)
            ).scalars()
        )
    assert len(everything) > 3
    start = service.history_start(task.id, last=3)
    assert [s for s in everything if s > start] == everything[-3:]
    assert service.history_start(task.id, last=1000) == 0


# ---------------------------------------------------------------------------------- 10. operator name


def test_the_bootstrap_operator_name_is_never_an_account_name(stack: Stack, ids: SequentialIdFactory) -> None:
    operators = _operators(stack, ids, reserved_names=["root-op"])
    for reserved in ("operator", "root-op", "ROOT-OP"):
        with pytest.raises(InvalidRequest, match="reserved"):
            operators.add(name=reserved, roles=["admin"], actor="admin")


# ---------------------------------------------------------------------------------- 11. consume


def test_an_elevation_of_an_ended_task_cannot_be_used(stack: Stack, ids: SequentialIdFactory) -> None:
    service, book, task = _service(stack, ids, uses=None), _book(stack, ids), _task(stack)
    service.approve(_open(service, task), approver=_account(stack, "grace"))
    found = book.find(task_id=task.id, epoch=0, context={}, **CALL)
    assert found is not None
    assert book.consume(found)
    stack.tasks.revoke(task.id, reason="done", actor=AuditActor.system())
    assert not book.consume(found)
