"""Requests in Cedar's terms: the entities and context conform to the generated schema, and odd input never raises."""

from __future__ import annotations

import json

from dataclasses import replace

import cedarpy
import pytest

from hypothesis import given
from hypothesis import strategies as st
from tests.policy_requests import STRIPE, TASK, TOOLS, WAREHOUSE, active_set, policy_request

from remit.adapters.cedar import (
    CedarPolicyEngine,
    CedarPolicyValidator,
    cedar_entities,
    cedar_request,
    cedar_schema,
    compile_policies,
    resource_id,
)
from remit.adapters.cedar.engine import build_entities
from remit.adapters.sql.engine import SqlDatabase
from remit.core.authorization.models import REQUEST_CONTEXT_TYPES, PolicyRequest
from remit.core.authorization.policies import PolicyService
from remit.core.authorization.ports import PolicyEvaluator
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import Sensitivity
from remit.testing import FrozenClock

SCHEMA = cedarpy.Schema.from_json_str(json.dumps(cedar_schema(TOOLS)))
PERMIT = '@id("all") permit (principal, action, resource);'

SHAPES = {
    "read": policy_request(),
    "restricted deploy, elevated": policy_request(action="deploy", resource="env:production", elevated=True),
    "payment with facts": policy_request(
        tool=STRIPE, action="refund", resource="account:acme/x", context={"amount": 5, "currency": "EUR"}
    ),
    "export with a count and a reason": policy_request(
        tool=WAREHOUSE, action="export_table", resource="dataset:finance/q", context={"record_count": 9, "reason": "r"}
    ),
    "delegated, on behalf of a person": policy_request(
        task=replace(TASK, lineage=("tsk_a", "tsk_b"), principal="user:ada@acme.example"),
        delegation_chain=("spiffe://acme.example/agents/a", "spiffe://acme.example/agents/b"),
    ),
}


@pytest.mark.parametrize("request_", SHAPES.values(), ids=SHAPES.keys())
def test_entities_and_context_conform_to_the_generated_schema(request_: PolicyRequest) -> None:
    """Cedar, given the schema, accepts the entities and the request as built: the two can never drift apart."""
    entities = cedarpy.Entities.from_json_str(json.dumps(cedar_entities(request_)), SCHEMA)

    result = cedarpy.is_authorized(cedar_request(request_), PERMIT, entities, schema=SCHEMA)

    assert result.diagnostics.errors == []
    assert result.allowed


def test_the_entities_link_agent_function_resource_tool_and_action_group() -> None:
    """Agent in its function, resource in its tool, the action in its risk-class group; ids prefixed as documented."""
    request = policy_request(action="deploy", resource="env:production")
    by_uid = {(e["uid"]["type"], e["uid"]["id"]): e for e in cedar_entities(request)}

    assert by_uid["Agent", "agt_01"]["parents"] == [{"type": "BusinessFunction", "id": "fn_01"}]
    assert by_uid["Resource", "github:env:production"]["parents"] == [{"type": "Tool", "id": "github"}]
    assert by_uid["Action", "github:deploy"]["parents"] == [{"type": "Action", "id": "deploy"}]
    assert by_uid["Resource", "github:env:production"]["attrs"]["sensitivity_level"] == 3
    assert by_uid["Resource", "github:env:production"]["attrs"]["environment"] == "prod"
    assert by_uid["Task", "tsk_01"]["attrs"]["workflow_name"] == "ship-release"
    assert resource_id(request) == "github:env:production"


def test_the_engine_is_a_policy_evaluator(sqlite_database: SqlDatabase) -> None:
    """CedarPolicyEngine satisfies the core's PolicyEvaluator port (checked by mypy at this assignment)."""
    policies = PolicyService(
        sqlite_database.transaction,
        validator=CedarPolicyValidator(),
        clock=FrozenClock(),
        ids=SequentialIdFactory(),
        bus=InProcessEventBus(),
    )

    engine: PolicyEvaluator = CedarPolicyEngine(policies)

    assert engine.version is None
    assert engine.evaluate(policy_request()).errors == ("no policy set is active",)


_facts = st.dictionaries(
    st.sampled_from([*REQUEST_CONTEXT_TYPES, "other", "amount "]),
    st.one_of(st.integers(), st.text(max_size=50), st.booleans(), st.floats(), st.none()),
    max_size=5,
)


@given(resource=st.text(max_size=200), facts=_facts, sensitivity=st.sampled_from(Sensitivity))
def test_evaluation_never_raises_whatever_the_caller_sends(
    resource: str, facts: dict[str, object], sensitivity: Sensitivity
) -> None:
    """Any resource id and any request facts give a result: well-typed known facts decide, anything else denies."""
    compiled = compile_policies(active_set(("base", PERMIT)))
    request = replace(policy_request(), resource=resource, sensitivity=sensitivity, context=facts)  # type: ignore[arg-type]

    result = compiled.evaluate(request, build_entities)

    well_formed = all(
        name in REQUEST_CONTEXT_TYPES
        and type(value) is REQUEST_CONTEXT_TYPES[name]
        and (not isinstance(value, int) or -(2**63) <= value < 2**63)
        for name, value in facts.items()
    )
    assert result.allowed is well_formed
    assert bool(result.errors) is not well_formed
