"""The decision path's fact view: served from memory, fresh within its TTL, dropped on local registry events."""

from __future__ import annotations

import contextlib
import datetime as dt

from collections.abc import Iterator
from dataclasses import replace

import pytest

from tests.factories import make_agent, make_function, make_owner

from remit.adapters.sql.engine import SqlDatabase, SqlTransaction
from remit.core.attestation.waiting import WouldWait, without_waiting
from remit.core.authorization.facts import CachedFacts
from remit.core.events import InProcessEventBus
from remit.core.registry.models import AgentStatus
from remit.core.registry.service import RegistryService


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_facts_are_cached_until_the_ttl_and_dropped_on_a_local_event(
    database: SqlDatabase, registry: RegistryService, bus: InProcessEventBus
) -> None:
    owner = make_owner(registry)
    agent = make_agent(registry, owner=owner, function=make_function(registry, owner))
    ticker = Ticker()
    facts = CachedFacts(database.transaction, ttl=dt.timedelta(seconds=2), monotonic=ticker)
    assert facts.agent(agent.id) == agent

    # Changed behind the cache's back (as another replica would): still the old row within the TTL.
    with database.transaction() as tx:
        tx.registry.update_agent(replace(agent, description="x", revision=2), expected_revision=1)
    assert facts.agent(agent.id).description == ""  # type: ignore[union-attr]
    ticker.now = 2.5
    assert facts.agent(agent.id).description == "x"  # type: ignore[union-attr]

    # A change made through this process's registry is seen at once.
    facts.subscribe(bus)
    registry.set_agent_status(agent.id, AgentStatus.SUSPENDED, reason="incident", actor="op")
    assert facts.agent(agent.id).status is AgentStatus.SUSPENDED  # type: ignore[union-attr]


def test_on_an_event_loop_a_miss_says_it_would_wait_and_reads_nothing(
    database: SqlDatabase, registry: RegistryService
) -> None:
    """Under `without_waiting()` a kept fact is served; a miss raises WouldWait before any read."""
    owner = make_owner(registry)
    agent = make_agent(registry, owner=owner, function=make_function(registry, owner))
    reads: list[str] = []

    @contextlib.contextmanager
    def counted() -> Iterator[SqlTransaction]:
        reads.append("read")
        with database.transaction() as tx:
            yield tx

    facts = CachedFacts(counted, ttl=dt.timedelta(seconds=2), monotonic=Ticker())
    with without_waiting(), pytest.raises(WouldWait):
        facts.agent(agent.id)
    assert reads == []
    assert facts.agent(agent.id) == agent  # off the loop: read and kept
    with without_waiting():
        assert facts.agent(agent.id) == agent
    assert reads == ["read"]
