"""Evaluating the compiled policy set: permit, forbid wins, default deny, errors deny, and the entity cache."""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterator
from dataclasses import replace

import cedarpy
import pytest

from tests.policy_requests import AGENT, GITHUB, NOW, OWNER, TASK, active_set, policy_request

from remit.adapters.cedar import (
    CedarPolicyEngine,
    CedarPolicyValidator,
    CompiledPolicies,
    EntityCache,
    cedar_context,
    compile_policies,
)
from remit.adapters.cedar.engine import build_entities
from remit.adapters.sql.engine import SqlDatabase
from remit.core.authorization.models import PolicyRequest, PolicyResult
from remit.core.authorization.policies import ActivePolicySet, PolicyService
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import Sensitivity
from remit.testing import FrozenClock

PERMIT_ALL = '@id("all") permit (principal, action, resource);'
FORBID_RESTRICTED = (
    '@id("no-restricted") forbid (principal, action, resource) '
    "when { resource.sensitivity_level >= 3 } unless { context.elevated };"
)


def decide(compiled: CompiledPolicies, request: PolicyRequest) -> PolicyResult:
    return compiled.evaluate(request, build_entities)


def test_a_matching_permit_allows_and_is_named_name_at_version() -> None:
    """An allow names the permit that decided it as `<policy>@<version>/<@id>`."""
    compiled = compile_policies(active_set(("base", PERMIT_ALL), generation=7))

    result = decide(compiled, policy_request())

    assert result == PolicyResult(allowed=True, policy_ids=("base@1/all",), policy_version=7)


def test_a_forbid_wins_over_a_permit() -> None:
    """A matching forbid denies even when a permit also matches, and the forbid is the reason."""
    compiled = compile_policies(active_set(("base", PERMIT_ALL), ("restricted", FORBID_RESTRICTED)))

    result = decide(compiled, policy_request(action="deploy", resource="env:production"))

    assert not result.allowed
    assert result.policy_ids == ("restricted@1/no-restricted",)
    assert result.errors == ()


def test_the_forbid_lifts_only_with_an_elevation() -> None:
    """The same request with a live elevation is allowed by the permit."""
    compiled = compile_policies(active_set(("base", PERMIT_ALL), ("restricted", FORBID_RESTRICTED)))

    result = decide(compiled, policy_request(action="deploy", resource="env:production", elevated=True))

    assert result.allowed
    assert result.policy_ids == ("base@1/all",)


def test_without_a_matching_permit_the_answer_is_deny() -> None:
    """Cedar's default deny: no permit matched, so no reason and no error."""
    compiled = compile_policies(
        active_set(("reads", '@id("reads") permit (principal, action in Action::"read", resource);'))
    )

    result = decide(compiled, policy_request(action="merge_pr"))

    assert result == PolicyResult(allowed=False, policy_version=1)


def test_a_policy_that_fails_to_evaluate_denies_even_when_a_permit_matched() -> None:
    """Cedar skips a failing forbid; Remit denies instead, naming the failing policy in `errors`."""
    failing_forbid = '@id("big") forbid (principal, action, resource) when { context.request.amount > 5 };'
    compiled = compile_policies(active_set(("base", PERMIT_ALL), ("amounts", failing_forbid)))

    result = decide(compiled, policy_request())

    assert not result.allowed
    assert result.policy_ids == ()
    assert len(result.errors) == 1
    assert "`amounts@1/big`" in result.errors[0]


def test_an_agent_without_a_function_fails_policies_that_read_it() -> None:
    """A missing attribute is an evaluation error, so the request is denied rather than judged on less."""
    reads_function = '@id("fn") permit (principal, action, resource) when { principal.function.name == "x" };'
    compiled = compile_policies(active_set(("fn", reads_function)))

    result = decide(compiled, policy_request(function=None))

    assert not result.allowed
    assert result.errors


@pytest.mark.parametrize(
    ("context", "problem"),
    [
        ({"surprise": 1}, "unknown request fact 'surprise'"),
        ({"amount": "12"}, "must be int"),
        ({"amount": True}, "must be int"),
        ({"record_count": 2**63}, "outside a 64-bit integer"),
        ({"reason": "x" * 5000}, "longer than"),
    ],
)
def test_a_malformed_request_context_is_a_deny_not_an_exception(
    context: dict[str, str | int | bool], problem: str
) -> None:
    """Unknown facts, wrong types and out-of-range numbers deny with the reason; nothing raises."""
    compiled = compile_policies(active_set(("base", PERMIT_ALL)))

    result = decide(compiled, policy_request(context=context))

    assert not result.allowed
    assert problem in result.errors[0]


def test_resource_ids_are_data_never_policy_syntax() -> None:
    """A resource id with quotes, braces and new lines is just an id: it cannot change what a policy means."""
    only_app = '@id("app") permit (principal, action, resource) when { resource.id == "repo:acme/app" };'
    compiled = compile_policies(active_set(("app", only_app)))
    sneaky = 'repo:acme/x" } || true; permit (principal, action, resource) when { "a\nb'

    assert decide(compiled, policy_request(resource="repo:acme/app")).allowed
    assert not decide(compiled, policy_request(resource=sneaky)).allowed


def test_with_nothing_active_everything_is_denied_and_the_version_is_none() -> None:
    """An empty active set has no version and denies with a reason."""
    compiled = compile_policies(ActivePolicySet(generation=3))

    result = decide(compiled, policy_request())

    assert compiled.version is None
    assert result == PolicyResult(allowed=False, errors=("no policy set is active",), policy_version=None)


def test_a_stored_set_that_does_not_compile_denies_everything_saying_why() -> None:
    """Text that no longer parses (say, after an engine upgrade) denies every request instead of half-applying."""
    compiled = compile_policies(active_set(("base", PERMIT_ALL), ("broken", "permit (principal, action, resource")))

    result = decide(compiled, policy_request())

    assert compiled.version == 1
    assert not result.allowed
    assert "does not compile" in result.errors[0]


def test_context_carries_the_task_time_and_delegation_facts() -> None:
    """The context record holds what docs/policies.md lists, with the time as a Cedar datetime."""
    delegated = replace(TASK, lineage=("tsk_parent",), principal="alice@acme.example")
    request = policy_request(
        task=delegated,
        delegation_chain=("spiffe://acme.example/agents/planner",),
        now=dt.datetime(2026, 1, 15, 9, 30, 5, 250_000, tzinfo=dt.UTC),
        context={"amount": 1200, "currency": "EUR"},
    )

    context = cedar_context(request)

    assert context["delegation_depth"] == 1
    assert context["delegation_chain"] == ["spiffe://acme.example/agents/planner"]
    assert context["now"] == int(request.now.timestamp())
    assert context["time"] == {"__extn": {"fn": "datetime", "arg": "2026-01-15T09:30:05.250Z"}}
    assert context["task"] == {"__entity": {"type": "Task", "id": TASK.id}}
    assert context["request"] == {"amount": 1200, "currency": "EUR"}
    assert context["risk_class"] == "read"


def test_policies_can_use_time_and_task_attributes() -> None:
    """`context.time` compares with Cedar datetimes, and the task entity's attributes are readable."""
    policy = (
        '@id("office") permit (principal, action, resource) when { '
        'context.time.toTime() >= duration("8h") && context.time.toTime() < duration("18h") && '
        'context.task.workflow_name == "ship-release" && context.task.principal == "" };'
    )
    compiled = compile_policies(active_set(("office", policy)))

    morning = decide(compiled, policy_request(now=NOW.replace(hour=9)))
    night = decide(compiled, policy_request(now=NOW.replace(hour=23)))

    assert morning.allowed
    assert not night.allowed


def test_resources_belong_to_their_tool_and_agents_to_their_function() -> None:
    """`resource in Tool::"github"` and `principal in BusinessFunction::"<id>"` hold through entity parents."""
    policy = (
        '@id("gh") permit (principal in BusinessFunction::"fn_01", action, resource in Tool::"github") '
        'when { principal.owner.email == "grace@acme.example" };'
    )
    compiled = compile_policies(active_set(("gh", policy)))

    assert decide(compiled, policy_request()).allowed
    assert not decide(compiled, policy_request(function=None)).allowed


# ------------------------------------------------------------------ the entity cache


def test_entity_cache_returns_the_same_handle_for_the_same_key() -> None:
    """A hit returns the stored handle without building; a miss builds once."""
    cache = EntityCache(4)
    built: list[str] = []

    def build() -> cedarpy.Entities:
        built.append("x")
        return build_entities(policy_request())

    first = cache.get("k", build)
    second = cache.get("k", build)

    assert first is second
    assert built == ["x"]
    assert (cache.hits, cache.misses) == (1, 1)


def test_entity_cache_is_bounded_and_forgets_the_least_recently_used() -> None:
    """Past its size the cache drops the entry used longest ago."""
    cache = EntityCache(2)
    handle = build_entities(policy_request())
    cache.get("a", lambda: handle)
    cache.get("b", lambda: handle)
    cache.get("a", lambda: handle)
    cache.get("c", lambda: handle)

    cache.get("a", lambda: handle)
    cache.get("b", lambda: handle)

    assert len(cache) == 2
    assert (cache.hits, cache.misses) == (2, 4)


@pytest.fixture
def engine(sqlite_database: SqlDatabase) -> Iterator[CedarPolicyEngine]:
    service = PolicyService(
        sqlite_database.transaction,
        validator=CedarPolicyValidator(),
        clock=FrozenClock(),
        ids=SequentialIdFactory(),
        bus=InProcessEventBus(),
    )
    engine = CedarPolicyEngine(service, entity_cache_size=64)
    engine.load(active_set(("base", PERMIT_ALL), ("restricted", FORBID_RESTRICTED)))
    yield engine
    engine.stop()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda r: replace(r, agent=replace(AGENT, revision=2, environments=frozenset({"ci"}))), id="agent"
        ),
        pytest.param(lambda r: replace(r, owner=replace(OWNER, revision=2, email="g@acme.example")), id="owner"),
        pytest.param(lambda r: replace(r, tool=replace(GITHUB, revision=2)), id="tool"),
        pytest.param(lambda r: replace(r, task=replace(r.task, epoch=1, objective="Other")), id="task-epoch"),
        pytest.param(lambda r: replace(r, resource="repo:acme/other"), id="resource"),
        pytest.param(lambda r: replace(r, sensitivity=Sensitivity.RESTRICTED), id="sensitivity"),
    ],
)
def test_a_registry_or_task_change_builds_fresh_entities(engine: CedarPolicyEngine, change: object) -> None:
    """Entities are keyed by the revisions they came from: any change is a miss, the same request a hit."""
    request = policy_request()
    engine.evaluate(request)
    engine.evaluate(request)
    assert (engine.entities.hits, engine.entities.misses) == (1, 1)

    assert callable(change)
    engine.evaluate(change(request))

    assert engine.entities.misses == 2


def test_a_changed_sensitivity_changes_the_answer_not_just_the_cache(engine: CedarPolicyEngine) -> None:
    """A resource whose sensitivity is raised to restricted is denied on the next decision (no stale entities)."""
    request = policy_request()
    assert engine.evaluate(request).allowed

    result = engine.evaluate(replace(request, sensitivity=Sensitivity.RESTRICTED))

    assert result.policy_ids == ("restricted@1/no-restricted",)
    assert not result.allowed


def test_an_older_generation_never_replaces_a_newer_one(engine: CedarPolicyEngine) -> None:
    """`load` keeps the newest generation: a slow reload cannot swap an older set back in."""
    engine.load(active_set(("base", PERMIT_ALL), generation=5))

    kept = engine.load(active_set(("restricted", FORBID_RESTRICTED), generation=4))

    assert kept.generation == 5
    assert engine.version == 5
