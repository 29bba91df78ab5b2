"""The registry rows issuance keeps: a change committed anywhere is honoured by the very next issuance.

"Anywhere" includes a second Remit instance on the same database, with its own cache and no shared
event bus: only the revisions re-read in the write transaction can tell it.
"""

from __future__ import annotations

import threading

from collections.abc import Iterator
from dataclasses import replace

import pytest

from sqlalchemy import event
from tests.factories import OPERATOR
from tests.unit.core.credentials.conftest import ISSUER, Stack, declaration, fingerprint, workload

from remit.adapters.sql.engine import SqlDatabase
from remit.core.credentials.issuance import IssuanceService
from remit.core.credentials.models import Limits
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import AgentStatus, OwnerStatus, SpiffeId, WorkloadBinding
from remit.core.registry.service import RegistryService
from remit.errors import AgentUntraceable, Forbidden, RemitError


@pytest.fixture(params=["same instance", "other instance"])
def elsewhere(
    request: pytest.FixtureRequest, stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> Iterator[RegistryService]:
    """Where the registry change is made: this instance's registry service, or another instance's."""
    if request.param == "same instance":
        yield stack.registry
        return
    other = SqlDatabase.connect(database.engine.url.render_as_string(hide_password=False))
    try:
        yield RegistryService(other.transaction, clock=stack.clock, ids=ids, bus=InProcessEventBus())
    finally:
        other.dispose()


def warm(stack: Stack) -> IssuanceService:
    """An issuance service whose cache holds the agent, owner, function, workflow and tool."""
    stack.issuance.start_task(workload(), declaration())
    assert len(stack.issuance.cache) >= 5
    return stack.issuance


def test_kept_rows_serve_the_next_issuance_without_reading_them(stack: Stack, database: SqlDatabase) -> None:
    """With the cache warm, an issuance reads no registry row: only its batch re-reads revisions."""
    issuance = warm(stack)
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(database.engine, "before_cursor_execute", seen)
    try:
        issuance.start_task(workload(), declaration())
    finally:
        event.remove(database.engine, "before_cursor_execute", seen)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "revision" not in s]
    assert not [s for s in reads if "FROM agents" in s or "FROM owners" in s or "FROM workflows" in s]


def test_a_suspension_is_honoured_by_the_next_issuance(stack: Stack, elsewhere: RegistryService) -> None:
    warm(stack)
    elsewhere.set_agent_status("invoice-bot", AgentStatus.SUSPENDED, reason="incident", actor=OPERATOR)
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload(), declaration())
    assert caught.value.details["reason"] == "agent_suspended"


def test_an_offboarding_is_honoured_by_the_next_issuance(stack: Stack, elsewhere: RegistryService) -> None:
    warm(stack)
    owner = stack.registry.get_agent("invoice-bot").owner_id
    assert owner is not None
    elsewhere.offboard_owner(owner, reason="left the company", actor=OPERATOR)
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload(), declaration())
    assert caught.value.details["reason"] == "agent_suspended"  # offboarding suspends the owner's agents


def test_an_owner_change_alone_is_honoured(stack: Stack) -> None:
    """Only the owner row changes (status offboarded, agent untouched): its revision alone refuses."""
    warm(stack)
    owner = stack.registry.get_agent("invoice-bot").owner_id
    assert owner is not None
    with stack.database.transaction() as tx:
        current = tx.registry.get_owner(owner)
        assert current is not None
        tx.registry.update_owner(
            replace(current, status=OwnerStatus.OFFBOARDED, revision=current.revision + 1),
            expected_revision=current.revision,
        )
    with pytest.raises(AgentUntraceable) as caught:
        stack.issuance.start_task(workload(), declaration())
    assert caught.value.details["reason"] == "owner_offboarded"


def test_a_retired_workflow_is_honoured_by_the_next_issuance(stack: Stack, elsewhere: RegistryService) -> None:
    warm(stack)
    elsewhere.retire_workflow("release-docs@1", reason="replaced", actor=OPERATOR)
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload(), declaration())
    assert caught.value.details["reason"] == "workflow_not_approved"


def test_a_reactivation_elsewhere_is_honoured_too(stack: Stack, elsewhere: RegistryService) -> None:
    """A refusal decided on kept rows is decided again on fresh ones: a re-allowed agent is not kept out."""
    warm(stack)
    stack.registry.set_agent_status("invoice-bot", AgentStatus.SUSPENDED, reason="incident", actor=OPERATOR)
    with pytest.raises(Forbidden):
        stack.issuance.start_task(workload(), declaration())  # the cache now holds the suspended agent
    elsewhere.set_agent_status("invoice-bot", AgentStatus.ACTIVE, reason="resolved", actor=OPERATOR)
    task, _ = stack.issuance.start_task(workload(), declaration())
    assert task.agent_id == stack.registry.get_agent("invoice-bot").id


def test_two_instances_each_keep_their_own_rows_and_both_honour_a_change(
    stack: Stack, database: SqlDatabase, ids: SequentialIdFactory
) -> None:
    """Instance B, warm, issues after instance A suspended the agent: refused, with no bus between them."""
    other = SqlDatabase.connect(database.engine.url.render_as_string(hide_password=False))
    try:
        b = IssuanceService(
            other.transaction,
            clock=stack.clock,
            ids=ids,
            signer=stack.signer,
            verifier=stack.tokens,
            index=stack.index,
            issuer=ISSUER,
            limits=Limits(),
            fingerprint=fingerprint,
            reads=other.reading,
        )
        b.start_task(workload(), declaration())
        warm(stack)
        stack.registry.set_agent_status("invoice-bot", AgentStatus.SUSPENDED, reason="incident", actor=OPERATOR)
        with pytest.raises(Forbidden):
            b.start_task(workload(), declaration())
        with pytest.raises(Forbidden):
            stack.issuance.start_task(workload(), declaration())
    finally:
        other.dispose()


def test_registry_writes_and_issuance_batches_interleave_without_deadlock(stack: Stack) -> None:
    """Issuances on four threads while the agent is changed ten times: every issuance ends, none as an outage.

    On PostgreSQL both sides take the registry lock before the audit chain lock, never the other way round.
    """
    warm(stack)
    failures: list[RemitError] = []
    done = threading.Event()

    def issue() -> None:
        while not done.is_set():
            try:
                stack.issuance.start_task(workload(), declaration())
            except RemitError as error:
                failures.append(error)

    threads = [threading.Thread(target=issue) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for i in range(10):
            stack.registry.change_agent("invoice-bot", description=f"change {i}", actor=OPERATOR)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert failures == []


def test_a_binding_moved_elsewhere_is_refused_and_forgotten(stack: Stack, elsewhere: RegistryService) -> None:
    """The agent now proves another SPIFFE ID: the old one is refused, its kept entry dropped, the new one works."""
    issuance = warm(stack)
    old = workload().binding_key
    moved = WorkloadBinding(spiffe_id=SpiffeId.parse("spiffe://acme.example/agents/invoice-bot-v2"))
    elsewhere.change_agent("invoice-bot", binding=moved, actor=OPERATOR)

    with pytest.raises(AgentUntraceable):
        issuance.start_task(workload(), declaration())
    task, _ = issuance.start_task(workload("agents/invoice-bot-v2"), declaration())

    assert old not in issuance.cache.agents_by_binding
    assert task.agent_id == stack.registry.get_agent("invoice-bot").id
