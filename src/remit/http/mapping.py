"""Registry core objects ⇄ v1 wire models: parse wire input into core types, render core objects as output."""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Sequence
from typing import TypeVar

from remit.core.registry.models import (
    Agent,
    BusinessFunction,
    Grant,
    OidcSubject,
    Owner,
    RiskClass,
    Sensitivity,
    SpiffeId,
    Tool,
    ToolAction,
    ToolResource,
    Traceability,
    WorkflowStep,
    WorkflowVersion,
    WorkloadBinding,
)
from remit.core.registry.models import Page as CorePage
from remit.core.registry.service import UntraceableAgent
from remit.wire import registry as wire

__all__ = [
    "actions_in",
    "agent_out",
    "binding_in",
    "duration_in",
    "function_out",
    "grant_out",
    "human_identities_in",
    "owner_out",
    "page_out",
    "resources_in",
    "steps_in",
    "tool_out",
    "traceability_out",
    "untraceable_out",
    "workflow_out",
]

C = TypeVar("C")
W = TypeVar("W")

# ------------------------------------------------------------------ wire → core


def human_identities_in(identities: Sequence[wire.OidcIdentity]) -> tuple[OidcSubject, ...]:
    return tuple(
        OidcSubject.parse(i.issuer, i.subject, field=f"human_identities.{n}") for n, i in enumerate(identities)
    )


def binding_in(identity: wire.WorkloadIdentity) -> WorkloadBinding:
    if identity.spiffe_id is not None:
        return WorkloadBinding(spiffe_id=SpiffeId.parse(identity.spiffe_id, field="identity.spiffe_id"))
    if identity.oidc is not None:
        return WorkloadBinding(
            oidc=OidcSubject.parse(identity.oidc.issuer, identity.oidc.subject, field="identity.oidc")
        )
    return WorkloadBinding()  # raises InvalidRequest: exactly one identity is required


def actions_in(actions: Sequence[wire.ToolActionIn]) -> tuple[ToolAction, ...]:
    return tuple(
        ToolAction(name=a.name, risk_class=RiskClass(a.risk_class), description=a.description) for a in actions
    )


def resources_in(resources: Sequence[wire.ToolResourceIn]) -> tuple[ToolResource, ...]:
    return tuple(
        ToolResource(
            pattern=r.pattern,
            sensitivity=Sensitivity.parse(r.sensitivity, field=f"resources.{n}.sensitivity"),
            environment=r.environment,
            description=r.description,
        )
        for n, r in enumerate(resources)
    )


def steps_in(steps: Sequence[wire.WorkflowStepIn]) -> tuple[WorkflowStep, ...]:
    return tuple(WorkflowStep.parse(s.tool, s.action, s.resource, field=f"steps.{n}") for n, s in enumerate(steps))


def duration_in(seconds: int) -> dt.timedelta:
    return dt.timedelta(seconds=seconds)


# ------------------------------------------------------------------ core → wire


def _oidc_out(subject: OidcSubject) -> wire.OidcIdentity:
    return wire.OidcIdentity(issuer=subject.issuer, subject=subject.subject)


def owner_out(owner: Owner) -> wire.OwnerOut:
    return wire.OwnerOut(
        id=owner.id,
        name=owner.name,
        email=owner.email,
        status=owner.status.value,
        human_identities=[_oidc_out(i) for i in owner.human_identities],
        created_at=owner.created_at,
        updated_at=owner.updated_at,
        offboarded_at=owner.offboarded_at,
        revision=owner.revision,
    )


def function_out(function: BusinessFunction) -> wire.FunctionOut:
    return wire.FunctionOut(
        id=function.id,
        name=function.name,
        description=function.description,
        owner_id=function.owner_id,
        created_at=function.created_at,
        updated_at=function.updated_at,
        revision=function.revision,
    )


def _identity_out(binding: WorkloadBinding) -> wire.WorkloadIdentity:
    if binding.spiffe_id is not None:
        return wire.WorkloadIdentity(spiffe_id=str(binding.spiffe_id))
    if binding.oidc is None:  # pragma: no cover - a WorkloadBinding always holds exactly one identity
        msg = "a workload binding without an identity"
        raise AssertionError(msg)
    return wire.WorkloadIdentity(oidc=_oidc_out(binding.oidc))


def agent_out(agent: Agent) -> wire.AgentOut:
    return wire.AgentOut(
        id=agent.id,
        name=agent.name,
        identity=_identity_out(agent.binding),
        identity_key=agent.binding.key,
        owner_id=agent.owner_id,
        function_id=agent.function_id,
        environments=sorted(agent.environments),
        status=agent.status.value,
        review_by=agent.review_by,
        description=agent.description,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
        revision=agent.revision,
    )


def traceability_out(traceability: Traceability) -> wire.TraceabilityOut:
    return wire.TraceabilityOut(
        agent_id=traceability.agent_id, traceable=traceability.is_traceable, problems=list(traceability.problems)
    )


def untraceable_out(found: UntraceableAgent) -> wire.UntraceableOut:
    return wire.UntraceableOut(agent=agent_out(found.agent), problems=list(found.problems))


def tool_out(tool: Tool) -> wire.ToolOut:
    return wire.ToolOut(
        id=tool.id,
        name=tool.name,
        description=tool.description,
        actions=[
            wire.ToolActionIn(name=a.name, risk_class=a.risk_class.value, description=a.description)
            for a in tool.actions
        ],
        resources=[
            wire.ToolResourceIn(
                pattern=r.pattern, sensitivity=r.sensitivity.label, environment=r.environment, description=r.description
            )
            for r in tool.resources
        ],
        created_at=tool.created_at,
        updated_at=tool.updated_at,
        revision=tool.revision,
    )


def workflow_out(workflow: WorkflowVersion) -> wire.WorkflowOut:
    return wire.WorkflowOut(
        id=workflow.id,
        name=workflow.name,
        version=workflow.version,
        ref=workflow.ref,
        function_id=workflow.function_id,
        description=workflow.description,
        steps=[wire.WorkflowStepIn(tool=s.tool, action=s.action, resource=s.resource) for s in workflow.steps],
        max_duration_seconds=int(workflow.max_duration.total_seconds()),
        state=workflow.state.value,
        # A draft's hash is what an approver reviews; approval pins it.
        content_hash=workflow.content_hash or workflow.compute_hash(),
        approved_by=workflow.approved_by,
        approved_at=workflow.approved_at,
        ended_at=workflow.ended_at,
        created_at=workflow.created_at,
        updated_at=workflow.updated_at,
        revision=workflow.revision,
    )


def grant_out(grant: Grant) -> wire.GrantOut:
    return wire.GrantOut(
        id=grant.id,
        agent_id=grant.agent_id,
        tool=grant.tool,
        action=grant.action,
        resource=grant.resource,
        reason=grant.reason,
        created_by=grant.created_by,
        created_at=grant.created_at,
    )


def page_out(model: type[wire.Page[W]], page: CorePage[C], render: Callable[[C], W]) -> wire.Page[W]:
    """A core page as the wire page `model` (e.g. `Page[OwnerOut]`), rendering each item."""
    return model(items=[render(item) for item in page.items], next_cursor=page.next_cursor)
