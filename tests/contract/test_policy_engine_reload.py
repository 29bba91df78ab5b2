"""Two replicas on one database: the activating one swaps at once, the other on its next generation check."""

from __future__ import annotations

import logging
import threading

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.factories import OPERATOR
from tests.policy_requests import policy_request

from remit.adapters.cedar import CedarPolicyEngine, CedarPolicyValidator
from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.notify import POLICIES, ChangeListener
from remit.core.authorization.policies import PolicyService, PolicySetChanged
from remit.core.events import InProcessEventBus
from remit.core.ids import RandomIdFactory
from remit.errors import Unavailable
from remit.testing import FrozenClock

PERMIT = '@id("all") permit (principal, action, resource);'
FORBID_RESTRICTED = (
    '@id("no-restricted") forbid (principal, action, resource) '
    "when { resource.sensitivity_level >= 3 } unless { context.elevated };"
)


@dataclass
class Replica:
    """One process: its own connection pool, services, bus and engine."""

    database: SqlDatabase
    policies: PolicyService
    engine: CedarPolicyEngine


def replica(url: str) -> Replica:
    database = SqlDatabase.connect(url)
    bus = InProcessEventBus()
    policies = PolicyService(
        database.transaction,
        validator=CedarPolicyValidator(),
        clock=FrozenClock(),
        ids=RandomIdFactory(lambda: 0),
        bus=bus,
    )
    engine = CedarPolicyEngine(policies)
    bus.subscribe(PolicySetChanged, engine.on_policy_set_changed)
    return Replica(database, policies, engine)


@pytest.fixture
def replicas(database: SqlDatabase) -> Iterator[tuple[Replica, Replica]]:
    url = database.engine.url.render_as_string(hide_password=False)
    first, second = replica(url), replica(url)
    yield first, second
    for each in (first, second):
        each.engine.stop()
        each.database.dispose()


def test_an_activation_reaches_the_other_replica_on_its_next_check(replicas: tuple[Replica, Replica]) -> None:
    """Replica A swaps in its own activation at once; B keeps its set until `refresh`, then matches A."""
    a, b = replicas
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    before = (a.engine.version, b.engine.version)

    a.policies.activate("base", 1, actor=OPERATOR)

    assert before == (None, None)
    assert (a.engine.version, b.engine.version) == (1, None)
    assert b.engine.refresh() is True
    assert b.engine.version == 1
    assert b.engine.evaluate(policy_request()).allowed


def test_a_new_forbid_takes_effect_on_both_replicas(replicas: tuple[Replica, Replica]) -> None:
    """After B reloads, both replicas deny what the newly activated forbid covers."""
    a, b = replicas
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    a.policies.activate("base", 1, actor=OPERATOR)
    b.engine.refresh()
    restricted = policy_request(action="deploy", resource="env:production")
    assert b.engine.evaluate(restricted).allowed

    a.policies.add(name="restricted", text=FORBID_RESTRICTED, actor=OPERATOR)
    a.policies.activate("restricted", 1, actor=OPERATOR)
    b.engine.refresh()

    for each in (a, b):
        result = each.engine.evaluate(restricted)
        assert not result.allowed
        assert result.policy_ids == ("restricted@1/no-restricted",)
        assert result.policy_version == 2


def test_the_set_is_compiled_once_per_generation(replicas: tuple[Replica, Replica]) -> None:
    """Checking an unchanged generation keeps the same compiled set: nothing is re-parsed."""
    a, _ = replicas
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    a.policies.activate("base", 1, actor=OPERATOR)
    compiled = a.engine.compiled

    assert a.engine.refresh() is False
    assert a.engine.compiled is compiled


def test_a_deactivation_leaves_no_version_everywhere(replicas: tuple[Replica, Replica]) -> None:
    """Deactivating the last policy makes both replicas report no version and deny."""
    a, b = replicas
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    a.policies.activate("base", 1, actor=OPERATOR)
    b.engine.refresh()

    a.policies.deactivate("base", actor=OPERATOR)
    b.engine.refresh()

    assert a.engine.version is None
    assert b.engine.version is None
    assert not b.engine.evaluate(policy_request()).allowed


def test_the_background_poll_picks_up_another_replicas_change(replicas: tuple[Replica, Replica]) -> None:
    """B's poll thread swaps in A's activation without anyone calling refresh."""
    a, b = replicas
    b.engine.start(interval_seconds=0.05)
    pause = threading.Event()
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    a.policies.activate("base", 1, actor=OPERATOR)

    for _ in range(200):
        if b.engine.version == 1:
            break
        pause.wait(0.05)

    assert b.engine.version == 1


def test_a_store_outage_keeps_the_loaded_set(
    replicas: tuple[Replica, Replica], caplog: pytest.LogCaptureFixture
) -> None:
    """When the store cannot be read, the engine keeps deciding with the set it has and reports itself unhealthy."""
    a, _ = replicas
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    a.policies.activate("base", 1, actor=OPERATOR)
    # The driver's own error on every new connection: what a database that went away looks like.
    driver_error = a.database.engine.dialect.loaded_dbapi.OperationalError

    def refuse() -> object:
        raise driver_error("the store is down")

    a.database.engine.dispose()
    a.database.engine.pool._creator = refuse  # type: ignore[assignment]

    with pytest.raises(Unavailable):
        a.engine.refresh()
    with caplog.at_level(logging.WARNING):
        a.engine.on_policy_set_changed(PolicySetChanged(generation=2))

    assert not a.engine.healthy
    assert a.engine.version == 1
    assert a.engine.evaluate(policy_request()).allowed
    assert "policy reload after a change failed" in caplog.text


def test_a_process_that_never_refreshed_loads_on_first_use(replicas: tuple[Replica, Replica]) -> None:
    """Without start() or refresh(), the first decision loads the active set once; later ones read nothing."""
    a, b = replicas
    a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
    a.policies.activate("base", 1, actor=OPERATOR)
    assert b.engine.compiled is None

    first = b.engine.evaluate(policy_request())
    loaded = b.engine.compiled

    assert first.allowed
    assert first.policy_version == 1
    assert b.engine.evaluate(policy_request()).allowed
    assert b.engine.compiled is loaded


def test_on_postgresql_an_activation_is_pushed_to_the_other_replica(replicas: tuple[Replica, Replica]) -> None:
    """B never polls here: on PostgreSQL the activation's NOTIFY alone makes it reload (SQLite: not applicable)."""
    a, b = replicas
    if a.database.backend != "postgresql":
        pytest.skip("change notification is PostgreSQL's; a single SQLite host relies on the poll")
    listener = ChangeListener(b.database, {POLICIES: b.engine.refresh})
    listener.start()
    try:
        assert listener.listening.wait(20)
        b.engine.refresh()
        a.policies.add(name="base", text=PERMIT, actor=OPERATOR)
        a.policies.activate("base", 1, actor=OPERATOR)
        pause = threading.Event()
        for _ in range(400):  # bounded wait for the pushed reload; never an assertion on time
            if b.engine.version == 1 or pause.wait(0.05):
                break
        assert b.engine.version == 1
    finally:
        listener.stop()
