"""The Cedar schema generated from the registry, and policy validation against it with readable diagnostics."""

from __future__ import annotations

import json

from dataclasses import replace

import cedarpy
import pytest

from tests.policy_requests import GITHUB, TOOLS

from remit.adapters.cedar import RISK_GROUPS, CedarPolicyValidator, action_id, cedar_schema
from remit.core.authorization.models import REQUEST_CONTEXT_TYPES
from remit.core.authorization.policies import PolicyDiagnostic
from remit.core.registry.models import RiskClass, ToolAction


@pytest.fixture
def validator() -> CedarPolicyValidator:
    return CedarPolicyValidator()


def test_every_registered_action_is_in_its_risk_class_group() -> None:
    """Each tool action becomes `Action::"tool:action"`, a member of the group named for its risk class."""
    actions = cedar_schema(TOOLS)[""]["actions"]

    for tool in TOOLS:
        for action in tool.actions:
            assert actions[action_id(tool.name, action.name)]["memberOf"] == [{"id": action.risk_class.value}]
    assert set(RISK_GROUPS) == {r.value for r in RiskClass} <= set(actions)


def test_the_generated_schema_is_a_valid_cedar_schema_with_the_registry_entity_types() -> None:
    """Cedar accepts the schema, and it declares the registry's entity types and the request facts."""
    document = cedar_schema(TOOLS)

    cedarpy.Schema.from_json_str(json.dumps(document))
    space = document[""]
    assert set(space["entityTypes"]) == {"Agent", "Owner", "BusinessFunction", "Tool", "Resource", "Task"}
    assert set(space["commonTypes"]["RequestFacts"]["attributes"]) == set(REQUEST_CONTEXT_TYPES)
    assert all(not a["required"] for a in space["commonTypes"]["RequestFacts"]["attributes"].values())


def test_the_schema_follows_the_registry(validator: CedarPolicyValidator) -> None:
    """A policy naming an action is valid once the tool has it, and refused before."""
    policy = 'permit (principal, action == Action::"github:archive", resource);'
    before = validator.check(policy, tools=TOOLS)
    archived = replace(GITHUB, actions=(*GITHUB.actions, ToolAction("archive", RiskClass.ADMIN)), revision=2)

    after = validator.check(policy, tools=(archived,))

    assert any('unrecognized action `Action::"github:archive"`' in d.message for d in before)
    assert after == ()


def test_schema_text_is_cedar_syntax_for_authors(validator: CedarPolicyValidator) -> None:
    """The schema shown to authors is Cedar schema syntax that Cedar parses back, without `__cedar::` noise."""
    schema = validator.schema(tools=TOOLS)

    assert 'action "github:deploy" in [Action::"deploy"]' in schema.text
    assert "__cedar::" not in schema.text
    assert "entity Agent in [BusinessFunction]" in schema.text
    cedarpy.Schema.from_str(schema.text)


def test_group_only_policies_validate_against_an_empty_registry(validator: CedarPolicyValidator) -> None:
    """A policy naming only risk-class groups validates even before any tool is registered."""
    policy = 'forbid (principal, action in Action::"deploy", resource) unless { context.elevated };'

    assert validator.check(policy, tools=()) == ()


def test_a_syntax_error_is_reported_with_cedars_message(validator: CedarPolicyValidator) -> None:
    """Unparsable text gives one diagnostic carrying Cedar's parser message."""
    found = validator.check("permit (principal, action, resource) when { 1 + };", tools=TOOLS)

    assert found == (PolicyDiagnostic("", "syntax error: unexpected token `}`"),)


def test_unknown_attribute_is_reported_under_the_policy_id(validator: CedarPolicyValidator) -> None:
    """Cedar's positional policy ids are replaced by the author's `@id` in the diagnostic."""
    text = '@id("fine") permit (principal, action, resource);\n@id("typo") forbid (principal, action, resource) when { principal.clearance > 2 };'

    found = validator.check(text, tools=TOOLS)

    assert found
    assert {d.policy for d in found} == {"typo"}
    assert all("`typo`" in d.message and "policy1" not in d.message for d in found)
    assert any("attribute `clearance` on entity type `Agent` not found" in d.message for d in found)


def test_optional_request_facts_must_be_tested_with_has(validator: CedarPolicyValidator) -> None:
    """Reading `context.request.amount` without `has` is refused: the fact may be absent at decision time."""
    unsafe = 'forbid (principal, action in Action::"payment", resource) when { context.request.amount > 5 };'
    safe = (
        'forbid (principal, action in Action::"payment", resource) '
        "when { context.request has amount && context.request.amount > 5 };"
    )

    assert any("optional attribute" in d.message for d in validator.check(unsafe, tools=TOOLS))
    assert validator.check(safe, tools=TOOLS) == ()


def test_type_errors_are_refused(validator: CedarPolicyValidator) -> None:
    """Comparing a string attribute with a number is a validation error, not a silent never-match."""
    found = validator.check("forbid (principal, action, resource) when { resource.sensitivity > 2 };", tools=TOOLS)

    assert found
    assert found[0].policy == "policy0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the text holds no policy"),
        ("// a comment only\n", "the text holds no policy"),
        ("permit (principal == ?principal, action, resource);", "templates"),
        ('@id("a") permit (principal, action, resource);\n@id("a") forbid (principal, action, resource);', "share"),
        ('@id("has space") permit (principal, action, resource);', "an @id is"),
        ('@id("a/b") permit (principal, action, resource);', "an @id is"),
    ],
)
def test_structural_problems_are_refused_before_schema_validation(
    validator: CedarPolicyValidator, text: str, message: str
) -> None:
    """Empty documents, templates, duplicate or malformed `@id`s are refused with a clear message."""
    found = validator.check(text, tools=TOOLS)

    assert found
    assert any(message in d.message for d in found)


def test_many_diagnostics_are_capped(validator: CedarPolicyValidator) -> None:
    """A policy wrong for every action of many tools yields a bounded list ending with a count of the rest."""
    tools = tuple(
        replace(
            GITHUB,
            id=f"tool_{i}",
            name=f"tool{i}",
            actions=tuple(ToolAction(f"a{j}", RiskClass.READ) for j in range(5)),
        )
        for i in range(20)
    )
    unsafe = "forbid (principal, action, resource) when { context.request.amount > 5 };"

    found = validator.check(unsafe, tools=tools)

    assert len(found) == 51
    assert found[-1].message.startswith("... and ")
