"""The default policy pack (examples/policies/) does what docs/policies.md says, policy by policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tests.policy_requests import STRIPE, TASK, TOOLS, WAREHOUSE, policy_request, policy_version

from remit.adapters.cedar import CedarPolicyValidator, CompiledPolicies, compile_policies
from remit.adapters.cedar.engine import build_entities
from remit.core.authorization.models import PolicyRequest, PolicyResult
from remit.core.authorization.policies import ActivePolicySet
from remit.core.registry.models import Sensitivity

PACK = Path(__file__).resolve().parents[3] / "examples" / "policies"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "policies.md"


def pack() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(PACK.glob("*.cedar"))}


@pytest.fixture(scope="module")
def compiled() -> CompiledPolicies:
    versions = tuple(policy_version(name, text) for name, text in pack().items())
    return compile_policies(ActivePolicySet(generation=1, versions=versions))


def decide(compiled: CompiledPolicies, request: PolicyRequest) -> PolicyResult:
    result = compiled.evaluate(request, build_entities)
    assert result.errors == (), result.errors
    return result


def test_every_policy_in_the_pack_validates_against_any_registry() -> None:
    """Each file validates against an empty registry and against the example tools."""
    validator = CedarPolicyValidator()
    for name, text in pack().items():
        assert validator.check(text, tools=()) == (), name
        assert validator.check(text, tools=TOOLS) == (), name


def test_every_policy_has_an_id_and_is_documented(compiled: CompiledPolicies) -> None:
    """Each policy carries an @id, and docs/policies.md explains it by that id."""
    docs = DOCS.read_text(encoding="utf-8")

    assert compiled.policy_ids
    for policy_id in compiled.policy_ids:
        label = policy_id.partition("/")[2]
        assert not label.startswith("policy"), f"{policy_id} has no @id"
        assert f"`{label}`" in docs, f"docs/policies.md does not document {label}"


def test_base_permits_what_the_guardrails_let_through(compiled: CompiledPolicies) -> None:
    """permit-task-scope: an ordinary read of internal data in the task's environment is allowed."""
    result = decide(compiled, policy_request())

    assert result.allowed
    assert result.policy_ids == ("base@1/permit-task-scope",)


def test_restricted_data_needs_an_elevation(compiled: CompiledPolicies) -> None:
    """forbid-restricted-without-elevation: restricted data is refused without, and allowed with, an elevation."""
    restricted = policy_request(resource="repo:acme/payroll", sensitivity=Sensitivity.RESTRICTED)

    refused = decide(compiled, restricted)
    allowed = decide(compiled, replace(restricted, elevated=True))

    assert not refused.allowed
    assert refused.policy_ids == ("restricted-data@1/forbid-restricted-without-elevation",)
    assert allowed.allowed


@pytest.mark.parametrize("sensitivity", [Sensitivity.PUBLIC, Sensitivity.INTERNAL, Sensitivity.CONFIDENTIAL])
def test_less_than_restricted_data_needs_no_elevation(compiled: CompiledPolicies, sensitivity: Sensitivity) -> None:
    """Only `restricted` is covered by the restricted-data policy."""
    assert decide(compiled, policy_request(sensitivity=sensitivity)).allowed


def test_a_task_never_reaches_another_environments_resource(compiled: CompiledPolicies) -> None:
    """forbid-cross-environment: a staging task is refused a resource registered for prod, even elevated."""
    result = decide(
        compiled,
        policy_request(environment="staging", resource="repo:acme/app", resource_environment="prod", elevated=True),
    )

    assert not result.allowed
    assert result.policy_ids == ("environments@1/forbid-cross-environment",)


def test_resources_without_an_environment_are_usable_from_any(compiled: CompiledPolicies) -> None:
    """A resource registered without an environment is not constrained by forbid-cross-environment."""
    assert decide(compiled, policy_request(environment="ci", resource="repo:acme/docs")).allowed


@pytest.mark.parametrize("environment", ["prod", "production"])
def test_production_deploys_need_an_elevation(compiled: CompiledPolicies, environment: str) -> None:
    """forbid-production-deploy-without-approval: a deploy in production is refused unless elevated."""
    deploy = policy_request(
        action="deploy", resource="service:api", environment=environment, sensitivity=Sensitivity.INTERNAL
    )

    refused = decide(compiled, deploy)

    assert not refused.allowed
    assert refused.policy_ids == ("environments@1/forbid-production-deploy-without-approval",)
    assert decide(compiled, replace(deploy, elevated=True)).allowed


def test_staging_deploys_need_no_elevation(compiled: CompiledPolicies) -> None:
    """A deploy of a staging resource from a staging task is left to the guardrails."""
    deploy = policy_request(
        action="deploy",
        resource="service:api",
        environment="staging",
        resource_environment="staging",
        sensitivity=Sensitivity.INTERNAL,
    )

    assert decide(compiled, deploy).allowed


def test_the_production_deploy_of_the_example_organisation(compiled: CompiledPolicies) -> None:
    """Github `env:production` (restricted, prod) from a prod task: two forbids without elevation, allowed with."""
    deploy = policy_request(action="deploy", resource="env:production")

    refused = decide(compiled, deploy)

    assert set(refused.policy_ids) == {
        "environments@1/forbid-production-deploy-without-approval",
        "restricted-data@1/forbid-restricted-without-elevation",
    }
    assert decide(compiled, replace(deploy, elevated=True)).allowed


def export(**context: str | int | bool) -> PolicyRequest:
    return policy_request(tool=WAREHOUSE, action="export_table", resource="dataset:finance/q1", context=context)


def test_an_export_must_state_its_record_count(compiled: CompiledPolicies) -> None:
    """forbid-export-without-record-count: an export of unknown size is refused, even elevated."""
    refused = decide(compiled, replace(export(), elevated=True))

    assert not refused.allowed
    assert refused.policy_ids == ("exports@1/forbid-export-without-record-count",)


def test_bulk_exports_need_an_elevation(compiled: CompiledPolicies) -> None:
    """forbid-bulk-export-without-elevation: 10,000 records pass, 10,001 need an elevation."""
    assert decide(compiled, export(record_count=10_000)).allowed
    refused = decide(compiled, export(record_count=10_001))
    assert refused.policy_ids == ("exports@1/forbid-bulk-export-without-elevation",)
    assert decide(compiled, replace(export(record_count=10_001), elevated=True)).allowed


def payment(**context: str | int | bool) -> PolicyRequest:
    return policy_request(tool=STRIPE, action="refund", resource="account:acme/main", context=context)


@pytest.mark.parametrize("context", [{}, {"amount": 500}, {"currency": "EUR"}])
def test_a_payment_must_state_amount_and_currency(compiled: CompiledPolicies, context: dict[str, str | int]) -> None:
    """forbid-payment-without-amount: without both facts a payment is refused, even elevated."""
    refused = decide(compiled, replace(payment(**context), elevated=True))

    assert not refused.allowed
    assert refused.policy_ids == ("payments@1/forbid-payment-without-amount",)


def test_large_payments_need_an_elevation(compiled: CompiledPolicies) -> None:
    """forbid-large-payment-without-elevation: up to 100000 minor units pass; above needs an elevation."""
    assert decide(compiled, payment(amount=100_000, currency="EUR")).allowed
    refused = decide(compiled, payment(amount=100_001, currency="EUR"))
    assert refused.policy_ids == ("payments@1/forbid-large-payment-without-elevation",)
    assert decide(compiled, replace(payment(amount=100_001, currency="EUR"), elevated=True)).allowed


def test_delegated_tasks_never_administer(compiled: CompiledPolicies) -> None:
    """forbid-admin-when-delegated: an admin action in a delegated task is refused, even elevated."""
    delegated = replace(TASK, lineage=("tsk_parent",))
    admin = policy_request(action="delete_repo", task=delegated, elevated=True)

    refused = decide(compiled, admin)

    assert not refused.allowed
    assert refused.policy_ids == ("delegation@1/forbid-admin-when-delegated",)
    assert decide(compiled, policy_request(action="delete_repo", elevated=True)).allowed
