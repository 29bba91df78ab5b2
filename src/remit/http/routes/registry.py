"""The /v1 registry routes: owners, business functions, agents, tools, workflows and standing grants.

Handlers only translate: wire input → core types (`remit.http.mapping`), one service call with the
authenticated operator as `actor`, core result → wire output. Every rule lives in the service.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Controller, Response, delete, get, patch, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import JSONBody, Parameter

from remit.core.registry.models import AgentStatus
from remit.core.registry.service import MAX_PAGE, RegistryService
from remit.http import mapping
from remit.http.problems import problem_responses
from remit.wire.registry import (
    AgentChange,
    AgentIn,
    AgentOut,
    FunctionChange,
    FunctionIn,
    FunctionOut,
    GrantIn,
    GrantOut,
    OffboardOut,
    OwnerChange,
    OwnerIn,
    OwnerOut,
    Page,
    ReasonIn,
    ToolChange,
    ToolIn,
    ToolOut,
    TraceabilityOut,
    UntraceableOut,
    WorkflowApproveIn,
    WorkflowChange,
    WorkflowIn,
    WorkflowOut,
)

__all__ = [
    "AgentController",
    "FunctionController",
    "GrantController",
    "OwnerController",
    "ReportController",
    "ToolController",
    "WorkflowController",
]

DEFAULT_PAGE: Final = 100
MAX_CURSOR: Final = 200
MAX_REF: Final = 320

_LOCATION: Final = [
    ResponseHeader(name="Location", description="path of the created resource", documentation_only=True)
]

# Error statuses every operator route can answer with.
_COMMON: Final = (400, 401, 503)
_READ = problem_responses(*_COMMON, 404)
_LIST = problem_responses(*_COMMON)
_CREATE = problem_responses(*_COMMON, 404, 409, 413)
_CHANGE = problem_responses(*_COMMON, 404, 409, 413)

_Limit = Parameter(
    default=DEFAULT_PAGE, ge=1, le=MAX_PAGE, description=f"page size, 1-{MAX_PAGE} (default {DEFAULT_PAGE})"
)
_After = Parameter(
    default=None, min_length=1, max_length=MAX_CURSOR, description="cursor: `next_cursor` of the previous page"
)
_Ref = Parameter(min_length=1, max_length=MAX_REF, description="id or natural key")


def _created(content: Any, location: str) -> Response[Any]:  # noqa: ANN401 - any wire model
    return Response(content=content, status_code=201, headers={"Location": location})


class OwnerController(Controller):
    """Accountable owners: registered by email; offboarding suspends their agents."""

    path = "/owners"
    tags = ["owners"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(status_code=201, sync_to_thread=True, response_headers=_LOCATION, responses=_CREATE)
    def register_owner(
        self, data: JSONBody[OwnerIn], registry: NamedDependency[RegistryService], actor: NamedDependency[str]
    ) -> Response[OwnerOut]:
        """Register an accountable owner."""
        owner = registry.register_owner(
            name=data.name,
            email=data.email,
            human_identities=mapping.human_identities_in(data.human_identities),
            actor=actor,
        )
        return _created(mapping.owner_out(owner), f"/v1/owners/{owner.id}")

    @get(sync_to_thread=True, responses=_LIST)
    def list_owners(
        self, registry: NamedDependency[RegistryService], limit: int = _Limit, after: str | None = _After
    ) -> Page[OwnerOut]:
        """List owners by id."""
        return mapping.page_out(Page[OwnerOut], registry.list_owners(limit=limit, after=after), mapping.owner_out)

    @get("/{ref:str}", sync_to_thread=True, responses=_READ)
    def get_owner(self, registry: NamedDependency[RegistryService], ref: str = _Ref) -> OwnerOut:
        """Show an owner by id or email."""
        return mapping.owner_out(registry.get_owner(ref))

    @patch("/{ref:str}", sync_to_thread=True, responses=_CHANGE)
    def change_owner(
        self,
        data: JSONBody[OwnerChange],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> OwnerOut:
        """Change an owner; omitted fields stay as they are."""
        owner = registry.change_owner(
            ref,
            name=data.name,
            email=data.email,
            human_identities=None
            if data.human_identities is None
            else mapping.human_identities_in(data.human_identities),
            expected_revision=data.expected_revision,
            actor=actor,
        )
        return mapping.owner_out(owner)

    @post("/{ref:str}/offboard", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def offboard_owner(
        self,
        data: JSONBody[ReasonIn],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> OffboardOut:
        """Offboard an owner: every agent they own is suspended."""
        owner, suspended = registry.offboard_owner(ref, reason=data.reason, actor=actor)
        return OffboardOut(owner=mapping.owner_out(owner), suspended_agents=[a.id for a in suspended])


class FunctionController(Controller):
    """Business functions: why agents exist, each owned by an active owner."""

    path = "/functions"
    tags = ["functions"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(status_code=201, sync_to_thread=True, response_headers=_LOCATION, responses=_CREATE)
    def register_function(
        self, data: JSONBody[FunctionIn], registry: NamedDependency[RegistryService], actor: NamedDependency[str]
    ) -> Response[FunctionOut]:
        """Register a business function."""
        function = registry.register_function(
            name=data.name, description=data.description, owner=data.owner, actor=actor
        )
        return _created(mapping.function_out(function), f"/v1/functions/{function.id}")

    @get(sync_to_thread=True, responses=_LIST)
    def list_functions(
        self, registry: NamedDependency[RegistryService], limit: int = _Limit, after: str | None = _After
    ) -> Page[FunctionOut]:
        """List business functions by id."""
        page = registry.list_functions(limit=limit, after=after)
        return mapping.page_out(Page[FunctionOut], page, mapping.function_out)

    @get("/{ref:str}", sync_to_thread=True, responses=_READ)
    def get_function(self, registry: NamedDependency[RegistryService], ref: str = _Ref) -> FunctionOut:
        """Show a business function by id or name."""
        return mapping.function_out(registry.get_function(ref))

    @patch("/{ref:str}", sync_to_thread=True, responses=_CHANGE)
    def change_function(
        self,
        data: JSONBody[FunctionChange],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> FunctionOut:
        """Change a business function's description or owner."""
        function = registry.change_function(
            ref,
            description=data.description,
            owner=data.owner,
            expected_revision=data.expected_revision,
            actor=actor,
        )
        return mapping.function_out(function)


class AgentController(Controller):
    """Agents: one workload identity each, traced to an owner and a business function."""

    path = "/agents"
    tags = ["agents"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(status_code=201, sync_to_thread=True, response_headers=_LOCATION, responses=_CREATE)
    def register_agent(
        self, data: JSONBody[AgentIn], registry: NamedDependency[RegistryService], actor: NamedDependency[str]
    ) -> Response[AgentOut]:
        """Register an agent; an identity bound to another agent or to a human is refused."""
        agent = registry.register_agent(
            name=data.name,
            binding=mapping.binding_in(data.identity),
            owner=data.owner,
            function=data.function,
            environments=data.environments,
            review_by=data.review_by,
            description=data.description,
            actor=actor,
        )
        return _created(mapping.agent_out(agent), f"/v1/agents/{agent.id}")

    @get(sync_to_thread=True, responses=_LIST)
    def list_agents(
        self, registry: NamedDependency[RegistryService], limit: int = _Limit, after: str | None = _After
    ) -> Page[AgentOut]:
        """List agents by id."""
        return mapping.page_out(Page[AgentOut], registry.list_agents(limit=limit, after=after), mapping.agent_out)

    @get("/{ref:str}", sync_to_thread=True, responses=_READ)
    def get_agent(self, registry: NamedDependency[RegistryService], ref: str = _Ref) -> AgentOut:
        """Show an agent by id or name."""
        return mapping.agent_out(registry.get_agent(ref))

    @patch("/{ref:str}", sync_to_thread=True, responses=_CHANGE)
    def change_agent(
        self,
        data: JSONBody[AgentChange],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> AgentOut:
        """Change an agent; a retired agent cannot change."""
        agent = registry.change_agent(
            ref,
            binding=None if data.identity is None else mapping.binding_in(data.identity),
            owner=data.owner,
            function=data.function,
            environments=data.environments,
            review_by=data.review_by,
            description=data.description,
            expected_revision=data.expected_revision,
            actor=actor,
        )
        return mapping.agent_out(agent)

    @post("/{ref:str}/suspend", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def suspend_agent(
        self,
        data: JSONBody[ReasonIn],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> AgentOut:
        """Suspend an agent (the kill switch)."""
        return mapping.agent_out(registry.set_agent_status(ref, AgentStatus.SUSPENDED, reason=data.reason, actor=actor))

    @post("/{ref:str}/retire", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def retire_agent(
        self,
        data: JSONBody[ReasonIn],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> AgentOut:
        """Retire an agent; retirement is final."""
        return mapping.agent_out(registry.set_agent_status(ref, AgentStatus.RETIRED, reason=data.reason, actor=actor))

    @post("/{ref:str}/reactivate", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def reactivate_agent(
        self,
        data: JSONBody[ReasonIn],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> AgentOut:
        """Reactivate a suspended agent; refused while it is untraceable."""
        return mapping.agent_out(registry.set_agent_status(ref, AgentStatus.ACTIVE, reason=data.reason, actor=actor))

    @get("/{ref:str}/traceability", sync_to_thread=True, responses=_READ)
    def agent_traceability(self, registry: NamedDependency[RegistryService], ref: str = _Ref) -> TraceabilityOut:
        """Whether the agent traces to an active owner and a business function, and if not, why."""
        return mapping.traceability_out(registry.traceability(ref))


class ReportController(Controller):
    """Registry reports."""

    path = "/reports"
    tags = ["reports"]  # noqa: RUF012 - Litestar reads this class attribute

    @get("/untraceable", sync_to_thread=True, responses=_LIST)
    def untraceable_agents(self, registry: NamedDependency[RegistryService]) -> list[UntraceableOut]:
        """Every non-retired agent that fails traceability, with its reasons."""
        return [mapping.untraceable_out(found) for found in registry.untraceable_agents()]


class ToolController(Controller):
    """Tools: actions with risk classes, resources with sensitivities."""

    path = "/tools"
    tags = ["tools"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(status_code=201, sync_to_thread=True, response_headers=_LOCATION, responses=_CREATE)
    def register_tool(
        self, data: JSONBody[ToolIn], registry: NamedDependency[RegistryService], actor: NamedDependency[str]
    ) -> Response[ToolOut]:
        """Register a tool with its actions and resources."""
        tool = registry.register_tool(
            name=data.name,
            description=data.description,
            actions=mapping.actions_in(data.actions),
            resources=mapping.resources_in(data.resources),
            actor=actor,
        )
        return _created(mapping.tool_out(tool), f"/v1/tools/{tool.id}")

    @get(sync_to_thread=True, responses=_LIST)
    def list_tools(
        self, registry: NamedDependency[RegistryService], limit: int = _Limit, after: str | None = _After
    ) -> Page[ToolOut]:
        """List tools by id."""
        return mapping.page_out(Page[ToolOut], registry.list_tools(limit=limit, after=after), mapping.tool_out)

    @get("/{ref:str}", sync_to_thread=True, responses=_READ)
    def get_tool(self, registry: NamedDependency[RegistryService], ref: str = _Ref) -> ToolOut:
        """Show a tool by id or name."""
        return mapping.tool_out(registry.get_tool(ref))

    @patch("/{ref:str}", sync_to_thread=True, responses=_CHANGE)
    def change_tool(
        self,
        data: JSONBody[ToolChange],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> ToolOut:
        """Change a tool; given lists replace the stored ones."""
        tool = registry.change_tool(
            ref,
            description=data.description,
            actions=None if data.actions is None else mapping.actions_in(data.actions),
            resources=None if data.resources is None else mapping.resources_in(data.resources),
            expected_revision=data.expected_revision,
            actor=actor,
        )
        return mapping.tool_out(tool)


class WorkflowController(Controller):
    """Workflows: versioned; a draft changes, an approved version is immutable."""

    path = "/workflows"
    tags = ["workflows"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(status_code=201, sync_to_thread=True, response_headers=_LOCATION, responses=_CREATE)
    def create_workflow_version(
        self, data: JSONBody[WorkflowIn], registry: NamedDependency[RegistryService], actor: NamedDependency[str]
    ) -> Response[WorkflowOut]:
        """Create the next version of a workflow as a draft."""
        workflow = registry.create_workflow_version(
            name=data.name,
            function=data.function,
            description=data.description,
            steps=mapping.steps_in(data.steps),
            max_duration=mapping.duration_in(data.max_duration_seconds),
            actor=actor,
        )
        return _created(mapping.workflow_out(workflow), f"/v1/workflows/{workflow.id}")

    @get(sync_to_thread=True, responses=_LIST)
    def list_workflows(
        self, registry: NamedDependency[RegistryService], limit: int = _Limit, after: str | None = _After
    ) -> Page[WorkflowOut]:
        """List workflow versions by id."""
        page = registry.list_workflows(limit=limit, after=after)
        return mapping.page_out(Page[WorkflowOut], page, mapping.workflow_out)

    @get("/{ref:str}", sync_to_thread=True, responses=_READ)
    def get_workflow(self, registry: NamedDependency[RegistryService], ref: str = _Ref) -> WorkflowOut:
        """Show a workflow version by id or `name@version`."""
        return mapping.workflow_out(registry.get_workflow(ref))

    @patch("/{ref:str}", sync_to_thread=True, responses=_CHANGE)
    def change_workflow_draft(
        self,
        data: JSONBody[WorkflowChange],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> WorkflowOut:
        """Change a draft; approved versions are immutable."""
        workflow = registry.change_workflow_draft(
            ref,
            description=data.description,
            steps=None if data.steps is None else mapping.steps_in(data.steps),
            max_duration=None if data.max_duration_seconds is None else mapping.duration_in(data.max_duration_seconds),
            expected_revision=data.expected_revision,
            actor=actor,
        )
        return mapping.workflow_out(workflow)

    @post("/{ref:str}/approve", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def approve_workflow(
        self,
        data: JSONBody[WorkflowApproveIn],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> WorkflowOut:
        """Approve a draft; the previously approved version is superseded."""
        return mapping.workflow_out(registry.approve_workflow(ref, actor=actor, expected_hash=data.expected_hash))

    @post("/{ref:str}/retire", status_code=200, sync_to_thread=True, responses=_CHANGE)
    def retire_workflow(
        self,
        data: JSONBody[ReasonIn],
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        ref: str = _Ref,
    ) -> WorkflowOut:
        """Retire a workflow version."""
        return mapping.workflow_out(registry.retire_workflow(ref, reason=data.reason, actor=actor))

    @get("/{name:str}/versions", sync_to_thread=True, responses=_READ)
    def workflow_versions(
        self, registry: NamedDependency[RegistryService], name: str = Parameter(min_length=1, max_length=63)
    ) -> list[WorkflowOut]:
        """Every version of a named workflow, oldest first."""
        return [mapping.workflow_out(w) for w in registry.workflow_versions(name)]


class GrantController(Controller):
    """Standing grants: only reads of public or internal resources."""

    path = "/grants"
    tags = ["grants"]  # noqa: RUF012 - Litestar reads this class attribute

    @post(status_code=201, sync_to_thread=True, response_headers=_LOCATION, responses=_CREATE)
    def create_grant(
        self, data: JSONBody[GrantIn], registry: NamedDependency[RegistryService], actor: NamedDependency[str]
    ) -> Response[GrantOut]:
        """Create a standing grant; anything but a read of public/internal resources is refused."""
        grant = registry.create_grant(
            agent=data.agent,
            tool=data.tool,
            action=data.action,
            resource=data.resource,
            reason=data.reason,
            actor=actor,
        )
        return _created(mapping.grant_out(grant), f"/v1/grants/{grant.id}")

    @get(sync_to_thread=True, responses=_LIST)
    def list_grants(
        self, registry: NamedDependency[RegistryService], limit: int = _Limit, after: str | None = _After
    ) -> Page[GrantOut]:
        """List standing grants by id."""
        return mapping.page_out(Page[GrantOut], registry.list_grants(limit=limit, after=after), mapping.grant_out)

    @delete("/{grant_id:str}", status_code=204, sync_to_thread=True, responses=_READ)
    def delete_grant(
        self,
        registry: NamedDependency[RegistryService],
        actor: NamedDependency[str],
        grant_id: str = Parameter(min_length=1, max_length=MAX_CURSOR),
    ) -> None:
        """Delete a standing grant."""
        registry.delete_grant(grant_id, actor=actor)
