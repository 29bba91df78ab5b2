"""Cedar gets only the context attributes some active policy can read, and that never changes an answer."""

from __future__ import annotations

import datetime as dt

from dataclasses import replace
from pathlib import Path

import pytest

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.policy_requests import GITHUB, STRIPE, TASK, active_set, policy_request

from remit.adapters.cedar import CompiledPolicies, compile_policies
from remit.adapters.cedar.engine import build_entities
from remit.adapters.cedar.schema import parse_policies
from remit.adapters.cedar.translate import CONTEXT_ATTRIBUTES, context_attributes
from remit.core.authorization.models import PolicyRequest

PACK = Path(__file__).resolve().parents[3] / "examples" / "policies"


def _attributes(text: str) -> frozenset[str] | None:
    return context_attributes(parse_policies(text)["staticPolicies"].values())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("permit (principal, action, resource);", frozenset()),
        ("permit (principal, action, resource) when { context.elevated };", {"elevated"}),
        ('permit (principal, action, resource) when { context["environment"] == "prod" };', {"environment"}),
        (
            "permit (principal, action, resource) when { context has request && context.request.amount < 5 };",
            {"request"},
        ),
        ("forbid (principal, action, resource) unless { context has time };", {"time"}),
        ("permit (principal, action, resource) when { resource.owner == context.task.owner };", {"task"}),
        # `context` used whole: every attribute is sent
        ("forbid (principal, action, resource) when { context == {} };", None),
        ('permit (principal, action, resource) when { context has a.b || context.x == "y" };', {"a", "x"}),
    ],
)
def test_the_attributes_a_policy_can_read_are_found(text: str, expected: frozenset[str] | set[str] | None) -> None:
    assert _attributes(text) == (frozenset(expected) if expected is not None else None)


def test_the_default_pack_reads_four_attributes() -> None:
    texts = [path.read_text() for path in sorted(PACK.glob("*.cedar"))]
    compiled = compile_policies(active_set(*((f"p{i}", t) for i, t in enumerate(texts))))

    assert compiled.context == frozenset({"delegation_depth", "elevated", "environment", "request"})
    sent = compiled.cedar_request(policy_request())
    assert set(sent["context"].split('"')[1::4]) <= compiled.context | {"amount"}  # keys of the JSON text


def test_request_facts_are_checked_even_when_no_policy_reads_them() -> None:
    """A malformed request is refused the same way under any policy set."""
    compiled = compile_policies(active_set(("all", '@id("all") permit (principal, action, resource);')))

    result = compiled.evaluate(policy_request(context={"colour": "red"}), build_entities)

    assert not result.allowed
    assert "unknown request fact" in result.errors[0]


_POLICIES = [
    '@id("reads") permit (principal, action in Action::"read", resource) when { context.environment == "prod" };',
    '@id("elevated") permit (principal, action, resource) when { context.elevated };',
    '@id("small") permit (principal, action, resource) when { context has request && context.request has amount && context.request.amount < 1000 };',
    '@id("deep") forbid (principal, action, resource) when { context.delegation_depth > 1 };',
    '@id("office") forbid (principal, action, resource) unless { context.time.toTime() < duration("18h") };',
    '@id("mine") permit (principal, action, resource) when { context.task.workflow_name == "ship-release" };',
    '@id("risky") forbid (principal, action, resource) when { context.risk_class == "payment" && context.sensitivity_level > 1 };',
    '@id("whole") forbid (principal, action, resource) when { context == {} };',
]


def _unpruned(compiled: CompiledPolicies) -> CompiledPolicies:
    return replace(compiled, context=None)


@settings(max_examples=150, deadline=None)
@given(
    chosen=st.sets(st.sampled_from(_POLICIES), min_size=1),
    action=st.sampled_from(["read_repo", "merge_pr", "deploy"]),
    environment=st.sampled_from(["prod", "staging"]),
    elevated=st.booleans(),
    amount=st.one_of(st.none(), st.integers(min_value=0, max_value=5000)),
    depth=st.integers(min_value=0, max_value=2),
    hour=st.integers(min_value=0, max_value=23),
    payment=st.booleans(),
)
def test_pruning_never_changes_an_answer(  # noqa: PLR0917 - one drawn value per fact
    chosen: set[str],
    action: str,
    environment: str,
    elevated: bool,
    amount: int | None,
    depth: int,
    hour: int,
    payment: bool,
) -> None:
    """The same request under the same policies: the pruned context and the whole one give the same result."""
    compiled = compile_policies(active_set(*((f"p{i}", text) for i, text in enumerate(sorted(chosen)))))
    request: PolicyRequest = policy_request(
        tool=STRIPE if payment else GITHUB,
        action="refund" if payment else action,
        resource="account:acme/main" if payment else "repo:acme/app",
        environment=environment,
        elevated=elevated,
        context={} if amount is None else {"amount": amount, "currency": "EUR"},
        task=replace(TASK, lineage=("tsk_a", "tsk_b")[:depth]),
        now=dt.datetime(2026, 1, 15, hour, 30, tzinfo=dt.UTC),
    )

    pruned = compiled.evaluate(request, build_entities)
    whole = _unpruned(compiled).evaluate(request, build_entities)

    assert pruned == whole


def test_every_attribute_is_known() -> None:
    assert set(CONTEXT_ATTRIBUTES) >= {"environment", "elevated", "request", "time", "task", "delegation_depth"}
