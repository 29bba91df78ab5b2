"""Typed factories: valid registry objects by default, every field overridable."""

from __future__ import annotations

import datetime as dt

from remit.core.registry.models import (
    Agent,
    BusinessFunction,
    Owner,
    RiskClass,
    Sensitivity,
    SpiffeId,
    Tool,
    ToolAction,
    ToolResource,
    WorkflowStep,
    WorkflowVersion,
    WorkloadBinding,
)
from remit.core.registry.service import RegistryService

OPERATOR = "operator"


def spiffe(path: str = "agents/invoice-bot", domain: str = "acme.example") -> WorkloadBinding:
    return WorkloadBinding(spiffe_id=SpiffeId.parse(f"spiffe://{domain}/{path}"))


def make_owner(registry: RegistryService, *, name: str = "Ada Lovelace", email: str = "ada@acme.example") -> Owner:
    return registry.register_owner(name=name, email=email, actor=OPERATOR)


def make_function(registry: RegistryService, owner: Owner, *, name: str = "invoice-reconciliation") -> BusinessFunction:
    return registry.register_function(
        name=name, description="Match supplier invoices to payments", owner=owner.id, actor=OPERATOR
    )


def make_agent(
    registry: RegistryService,
    *,
    owner: Owner | None,
    function: BusinessFunction | None,
    name: str = "invoice-bot",
    binding: WorkloadBinding | None = None,
    environments: tuple[str, ...] = ("prod",),
    review_by: dt.date | None = None,
    today: dt.date = dt.date(2026, 1, 15),
) -> Agent:
    return registry.register_agent(
        name=name,
        binding=binding or spiffe(f"agents/{name}"),
        owner=owner.id if owner else None,
        function=function.id if function else None,
        environments=environments,
        review_by=review_by or today + dt.timedelta(days=90),
        actor=OPERATOR,
    )


def make_tool(registry: RegistryService, *, name: str = "github") -> Tool:
    return registry.register_tool(
        name=name,
        description="Source hosting",
        actions=(
            ToolAction("read_file", RiskClass.READ),
            ToolAction("merge_pr", RiskClass.WRITE),
            ToolAction("deploy", RiskClass.DEPLOY),
        ),
        resources=(
            ToolResource("repo:acme/docs*", Sensitivity.PUBLIC),
            ToolResource("repo:acme/app*", Sensitivity.INTERNAL),
            ToolResource("repo:acme/payroll*", Sensitivity.RESTRICTED),
        ),
        actor=OPERATOR,
    )


def make_workflow(
    registry: RegistryService,
    function: BusinessFunction,
    *,
    name: str = "release-docs",
    steps: tuple[WorkflowStep, ...] = (WorkflowStep("github", "read_file", "repo:acme/docs*"),),
    max_duration: dt.timedelta = dt.timedelta(minutes=30),
) -> WorkflowVersion:
    return registry.create_workflow_version(
        name=name, function=function.id, description="", steps=steps, max_duration=max_duration, actor=OPERATOR
    )
