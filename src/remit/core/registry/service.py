"""Register, change and offboard owners, functions, agents, tools, workflows and standing grants.

Every change is one transaction that also appends its audit event, so a registry change and its
record are durable together or not at all. The traceability rule lives here: an agent that cannot
be traced to an active owner and a business function is untraceable, gets no credential, and is
listed as over-exposed.
"""

from __future__ import annotations

import datetime as dt

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.events import DomainEvent, EventBus
from remit.core.ids import IdFactory
from remit.core.registry.events import AgentStatusChanged, OwnerOffboarded, WorkflowVersionEnded
from remit.core.registry.models import (
    Agent,
    AgentStatus,
    BusinessFunction,
    Grant,
    OidcSubject,
    Owner,
    OwnerStatus,
    Page,
    RiskClass,
    Sensitivity,
    Tool,
    ToolAction,
    ToolResource,
    Traceability,
    WorkflowState,
    WorkflowStep,
    WorkflowVersion,
    WorkloadBinding,
    parse_email,
    parse_environment,
    parse_name,
    parse_text,
)
from remit.core.registry.patterns import parse_pattern, pattern_within
from remit.core.registry.ports import RegistryStore, RegistryTransaction, RegistryUnitOfWork
from remit.errors import Conflict, InvalidRequest, NotFound

__all__ = ["STANDING_CEILING", "RegistryService", "UntraceableAgent"]

# Only reads of public or internal data may be standing; everything else is just-in-time.
STANDING_CEILING = Sensitivity.INTERNAL
MAX_PAGE = 500
MAX_ENVIRONMENTS = 32
MAX_ITEMS = 256


@dataclass(frozen=True, slots=True)
class UntraceableAgent:
    """An agent listed as over-exposed, with every reason it cannot be traced or trusted."""

    agent: Agent
    problems: tuple[str, ...]


def _page_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        msg = f"limit must be between 1 and {MAX_PAGE}"
        raise InvalidRequest(msg, field="limit")
    return limit


def _unique_environments(raw: Iterable[str]) -> frozenset[str]:
    environments = frozenset(parse_environment(e, field="environments") for e in raw)
    if not environments:
        raise InvalidRequest("an agent needs at least one allowed environment", field="environments")
    if len(environments) > MAX_ENVIRONMENTS:
        msg = f"at most {MAX_ENVIRONMENTS} environments"
        raise InvalidRequest(msg, field="environments")
    return environments


class RegistryService:
    """The registry use cases."""

    def __init__(self, uow: RegistryUnitOfWork, *, clock: Clock, ids: IdFactory, bus: EventBus) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._bus = bus

    # ------------------------------------------------------------ helpers

    def _record(
        self,
        tx: RegistryTransaction,
        event_type: str,
        actor: str,
        subject_kind: str,
        subject_id: str,
        data: dict[str, Any] | None = None,
        **context: str | None,
    ) -> None:
        tx.audit.append(
            AuditEvent(
                id=self._ids.new("event"),
                type=event_type,
                occurred_at=self._clock.now(),
                actor=AuditActor(ActorKind.OPERATOR, actor),
                subject_kind=subject_kind,
                subject_id=subject_id,
                data=data or {},
                **context,
            )
        )

    def _publish(self, events: Sequence[DomainEvent]) -> None:
        # After commit: handlers see the committed state. A crash in between leaves agents
        # suspended (which already blocks issuance and decisions), so this fails closed.
        for event in events:
            self._bus.publish(event)

    @staticmethod
    def _owner(store: RegistryStore, ref: str) -> Owner:
        owner = store.get_owner(ref) if ref.startswith("own_") else store.get_owner_by_email(ref.strip().lower())
        if owner is None:
            msg = f"no owner {ref!r}"
            raise NotFound(msg)
        return owner

    @staticmethod
    def _function(store: RegistryStore, ref: str) -> BusinessFunction:
        function = store.get_function(ref) if ref.startswith("fn_") else store.get_function_by_name(ref)
        if function is None:
            msg = f"no business function {ref!r}"
            raise NotFound(msg)
        return function

    @staticmethod
    def _agent(store: RegistryStore, ref: str) -> Agent:
        agent = store.get_agent(ref) if ref.startswith("agt_") else store.get_agent_by_name(ref)
        if agent is None:
            msg = f"no agent {ref!r}"
            raise NotFound(msg)
        return agent

    @staticmethod
    def _tool(store: RegistryStore, ref: str) -> Tool:
        tool = store.get_tool(ref) if ref.startswith("tool_") else store.get_tool_by_name(ref)
        if tool is None:
            msg = f"no tool {ref!r}"
            raise NotFound(msg)
        return tool

    @staticmethod
    def _workflow(store: RegistryStore, ref: str) -> WorkflowVersion:
        if ref.startswith("wf_"):
            workflow = store.get_workflow(ref)
        else:
            name, at, version = ref.partition("@")
            if not at or not version.isdigit():
                msg = "name a workflow version as 'name@version' or by its id"
                raise InvalidRequest(msg, field="workflow")
            workflow = store.get_workflow_version(name, int(version))
        if workflow is None:
            msg = f"no workflow {ref!r}"
            raise NotFound(msg)
        return workflow

    def _check_binding_free(self, store: RegistryStore, binding: WorkloadBinding, *, agent_id: str | None) -> None:
        bound = store.find_agent_by_binding(binding.key)
        if bound is not None and bound.id != agent_id:
            msg = f"workload identity {binding.key} is already bound to agent {bound.name}; identities are never shared"
            raise Conflict(msg, details={"agent_id": bound.id})
        if binding.oidc is not None:
            human = store.find_owner_by_human_identity(binding.key)
            if human is None and "@" in binding.oidc.subject:
                human = store.get_owner_by_email(binding.oidc.subject.lower())
            if human is not None:
                msg = "that identity belongs to a human owner and can never be bound to an agent"
                raise InvalidRequest(msg, field="identity", details={"owner_id": human.id})

    # ------------------------------------------------------------ owners

    def register_owner(
        self, *, name: str, email: str, human_identities: Sequence[OidcSubject] = (), actor: str
    ) -> Owner:
        now = self._clock.now()
        owner = Owner(
            id=self._ids.new("owner"),
            name=parse_text(name, field="name", max_length=200),
            email=parse_email(email),
            status=OwnerStatus.ACTIVE,
            human_identities=tuple(dict.fromkeys(human_identities)),
            created_at=now,
            updated_at=now,
        )
        with self._uow() as tx:
            if tx.registry.get_owner_by_email(owner.email) is not None:
                msg = f"an owner with email {owner.email} already exists"
                raise Conflict(msg)
            self._check_human_identities(tx.registry, owner)
            tx.registry.add_owner(owner)
            self._record(tx, "owner.registered", actor, "owner", owner.id, {"email": owner.email}, owner_id=owner.id)
        return owner

    @staticmethod
    def _check_human_identities(store: RegistryStore, owner: Owner) -> None:
        for identity in owner.human_identities:
            bound = store.find_agent_by_binding(str(identity))
            if bound is not None:
                msg = f"{identity} is bound to agent {bound.name}; a human identity cannot also be an agent"
                raise Conflict(msg, details={"agent_id": bound.id})
            other = store.find_owner_by_human_identity(str(identity))
            if other is not None and other.id != owner.id:
                msg = f"{identity} already belongs to another owner"
                raise Conflict(msg, details={"owner_id": other.id})

    def change_owner(
        self,
        ref: str,
        *,
        name: str | None = None,
        email: str | None = None,
        human_identities: Sequence[OidcSubject] | None = None,
        expected_revision: int | None = None,
        actor: str,
    ) -> Owner:
        with self._uow() as tx:
            current = self._owner(tx.registry, ref)
            self._expect(current.revision, expected_revision)
            changed = replace(
                current,
                name=current.name if name is None else parse_text(name, field="name", max_length=200),
                email=current.email if email is None else parse_email(email),
                human_identities=current.human_identities
                if human_identities is None
                else tuple(dict.fromkeys(human_identities)),
                updated_at=self._clock.now(),
                revision=current.revision + 1,
            )
            if changed.email != current.email:
                other = tx.registry.get_owner_by_email(changed.email)
                if other is not None:
                    msg = f"an owner with email {changed.email} already exists"
                    raise Conflict(msg)
            self._check_human_identities(tx.registry, changed)
            tx.registry.update_owner(changed, expected_revision=current.revision)
            self._record(tx, "owner.changed", actor, "owner", current.id, owner_id=current.id)
        return changed

    def offboard_owner(self, ref: str, *, reason: str, actor: str) -> tuple[Owner, tuple[Agent, ...]]:
        """Offboard an owner: every agent they own is suspended, and `OwnerOffboarded` is published."""
        reason = parse_text(reason, field="reason", max_length=500)
        now = self._clock.now()
        with self._uow() as tx:
            owner = self._owner(tx.registry, ref)
            if owner.status is OwnerStatus.OFFBOARDED:
                msg = f"owner {owner.email} is already offboarded"
                raise Conflict(msg)
            offboarded = replace(
                owner, status=OwnerStatus.OFFBOARDED, offboarded_at=now, updated_at=now, revision=owner.revision + 1
            )
            tx.registry.update_owner(offboarded, expected_revision=owner.revision)
            suspended = []
            for agent in tx.registry.agents_of_owner(owner.id):
                if agent.status is AgentStatus.ACTIVE:
                    changed = replace(agent, status=AgentStatus.SUSPENDED, updated_at=now, revision=agent.revision + 1)
                    tx.registry.update_agent(changed, expected_revision=agent.revision)
                    self._record(
                        tx,
                        "agent.suspended",
                        actor,
                        "agent",
                        agent.id,
                        {"reason": "owner_offboarded"},
                        agent_id=agent.id,
                        owner_id=owner.id,
                        function_id=agent.function_id,
                    )
                    suspended.append(changed)
            self._record(
                tx,
                "owner.offboarded",
                actor,
                "owner",
                owner.id,
                {"reason": reason, "suspended_agents": [a.id for a in suspended]},
                owner_id=owner.id,
            )
        self._publish(
            [
                OwnerOffboarded(owner_id=owner.id, suspended_agent_ids=tuple(a.id for a in suspended)),
                *(
                    AgentStatusChanged(agent_id=a.id, status=a.status.value, reason="owner_offboarded")
                    for a in suspended
                ),
            ]
        )
        return offboarded, tuple(suspended)

    def get_owner(self, ref: str) -> Owner:
        with self._uow() as tx:
            return self._owner(tx.registry, ref)

    def list_owners(self, *, limit: int = 100, after: str | None = None) -> Page[Owner]:
        with self._uow() as tx:
            return tx.registry.list_owners(limit=_page_limit(limit), after=after)

    # ------------------------------------------------------------ business functions

    def register_function(self, *, name: str, description: str, owner: str, actor: str) -> BusinessFunction:
        now = self._clock.now()
        with self._uow() as tx:
            accountable = self._owner(tx.registry, owner)
            if not accountable.is_active:
                msg = "a business function needs an active owner"
                raise InvalidRequest(msg, field="owner")
            function = BusinessFunction(
                id=self._ids.new("function"),
                name=parse_name(name),
                description=parse_text(description, field="description"),
                owner_id=accountable.id,
                created_at=now,
                updated_at=now,
            )
            if tx.registry.get_function_by_name(function.name) is not None:
                msg = f"a business function named {function.name} already exists"
                raise Conflict(msg)
            tx.registry.add_function(function)
            self._record(
                tx,
                "function.registered",
                actor,
                "function",
                function.id,
                {"name": function.name},
                owner_id=accountable.id,
                function_id=function.id,
            )
        return function

    def change_function(
        self,
        ref: str,
        *,
        description: str | None = None,
        owner: str | None = None,
        expected_revision: int | None = None,
        actor: str,
    ) -> BusinessFunction:
        with self._uow() as tx:
            current = self._function(tx.registry, ref)
            self._expect(current.revision, expected_revision)
            owner_id = current.owner_id
            if owner is not None:
                accountable = self._owner(tx.registry, owner)
                if not accountable.is_active:
                    raise InvalidRequest("a business function needs an active owner", field="owner")
                owner_id = accountable.id
            changed = replace(
                current,
                description=current.description
                if description is None
                else parse_text(description, field="description"),
                owner_id=owner_id,
                updated_at=self._clock.now(),
                revision=current.revision + 1,
            )
            tx.registry.update_function(changed, expected_revision=current.revision)
            self._record(tx, "function.changed", actor, "function", current.id, function_id=current.id)
        return changed

    def get_function(self, ref: str) -> BusinessFunction:
        with self._uow() as tx:
            return self._function(tx.registry, ref)

    def list_functions(self, *, limit: int = 100, after: str | None = None) -> Page[BusinessFunction]:
        with self._uow() as tx:
            return tx.registry.list_functions(limit=_page_limit(limit), after=after)

    # ------------------------------------------------------------ agents

    def register_agent(  # noqa: PLR0913 - one keyword per registry fact, all required to be explicit
        self,
        *,
        name: str,
        binding: WorkloadBinding,
        owner: str | None,
        function: str | None,
        environments: Iterable[str],
        review_by: dt.date,
        description: str = "",
        actor: str,
    ) -> Agent:
        now = self._clock.now()
        with self._uow() as tx:
            owner_id = self._owner(tx.registry, owner).id if owner else None
            function_id = self._function(tx.registry, function).id if function else None
            if review_by <= now.date():
                raise InvalidRequest("review_by must be in the future", field="review_by")
            agent = Agent(
                id=self._ids.new("agent"),
                name=parse_name(name),
                binding=binding,
                owner_id=owner_id,
                function_id=function_id,
                environments=_unique_environments(environments),
                status=AgentStatus.ACTIVE,
                review_by=review_by,
                description=parse_text(description, field="description", required=False),
                created_at=now,
                updated_at=now,
            )
            if tx.registry.get_agent_by_name(agent.name) is not None:
                msg = f"an agent named {agent.name} already exists"
                raise Conflict(msg)
            self._check_binding_free(tx.registry, binding, agent_id=None)
            tx.registry.add_agent(agent)
            traceability = self._traceability(tx.registry, agent, today=now.date())
            self._record(
                tx,
                "agent.registered",
                actor,
                "agent",
                agent.id,
                {
                    "identity": binding.key,
                    "traceable": traceability.is_traceable,
                    "problems": list(traceability.problems),
                },
                agent_id=agent.id,
                owner_id=owner_id,
                function_id=function_id,
            )
        return agent

    def change_agent(  # noqa: PLR0913 - a partial update names each changeable fact
        self,
        ref: str,
        *,
        binding: WorkloadBinding | None = None,
        owner: str | None = None,
        function: str | None = None,
        environments: Iterable[str] | None = None,
        review_by: dt.date | None = None,
        description: str | None = None,
        expected_revision: int | None = None,
        actor: str,
    ) -> Agent:
        now = self._clock.now()
        with self._uow() as tx:
            current = self._agent(tx.registry, ref)
            self._expect(current.revision, expected_revision)
            if current.status is AgentStatus.RETIRED:
                msg = f"agent {current.name} is retired; register a new agent instead"
                raise Conflict(msg)
            if review_by is not None and review_by <= now.date():
                raise InvalidRequest("review_by must be in the future", field="review_by")
            changed = replace(
                current,
                binding=binding or current.binding,
                owner_id=self._owner(tx.registry, owner).id if owner else current.owner_id,
                function_id=self._function(tx.registry, function).id if function else current.function_id,
                environments=current.environments if environments is None else _unique_environments(environments),
                review_by=review_by or current.review_by,
                description=current.description
                if description is None
                else parse_text(description, field="description", required=False),
                updated_at=now,
                revision=current.revision + 1,
            )
            if changed.binding != current.binding:
                self._check_binding_free(tx.registry, changed.binding, agent_id=current.id)
            tx.registry.update_agent(changed, expected_revision=current.revision)
            self._record(
                tx,
                "agent.changed",
                actor,
                "agent",
                current.id,
                {"fields": sorted(self._changed_fields(current, changed))},
                agent_id=current.id,
                owner_id=changed.owner_id,
                function_id=changed.function_id,
            )
        return changed

    @staticmethod
    def _changed_fields(before: Agent, after: Agent) -> set[str]:
        names = ("binding", "owner_id", "function_id", "environments", "review_by", "description")
        return {n for n in names if getattr(before, n) != getattr(after, n)}

    def set_agent_status(self, ref: str, status: AgentStatus, *, reason: str, actor: str) -> Agent:
        """Suspend (the kill switch), retire, or reactivate an agent; retirement is final."""
        reason = parse_text(reason, field="reason", max_length=500)
        now = self._clock.now()
        with self._uow() as tx:
            current = self._agent(tx.registry, ref)
            if current.status is status:
                msg = f"agent {current.name} is already {status.value}"
                raise Conflict(msg)
            if current.status is AgentStatus.RETIRED:
                msg = f"agent {current.name} is retired; retirement is final"
                raise Conflict(msg)
            if status is AgentStatus.ACTIVE:
                traceability = self._traceability(tx.registry, current, today=now.date())
                if not traceability.is_traceable:
                    msg = "an untraceable agent cannot be reactivated: " + ", ".join(traceability.problems)
                    raise Conflict(msg, details={"problems": list(traceability.problems)})
            changed = replace(current, status=status, updated_at=now, revision=current.revision + 1)
            tx.registry.update_agent(changed, expected_revision=current.revision)
            verb = {
                AgentStatus.ACTIVE: "reactivated",
                AgentStatus.SUSPENDED: "suspended",
                AgentStatus.RETIRED: "retired",
            }
            self._record(
                tx,
                f"agent.{verb[status]}",
                actor,
                "agent",
                current.id,
                {"reason": reason},
                agent_id=current.id,
                owner_id=current.owner_id,
                function_id=current.function_id,
            )
        self._publish([AgentStatusChanged(agent_id=current.id, status=status.value, reason=reason)])
        return changed

    def get_agent(self, ref: str) -> Agent:
        with self._uow() as tx:
            return self._agent(tx.registry, ref)

    def find_agent_by_binding(self, key: str) -> Agent | None:
        with self._uow() as tx:
            return tx.registry.find_agent_by_binding(key)

    def list_agents(self, *, limit: int = 100, after: str | None = None) -> Page[Agent]:
        with self._uow() as tx:
            return tx.registry.list_agents(limit=_page_limit(limit), after=after)

    @staticmethod
    def _traceability(store: RegistryStore, agent: Agent, *, today: dt.date) -> Traceability:
        problems: list[str] = []
        if agent.owner_id is None:
            problems.append("no_owner")
        else:
            owner = store.get_owner(agent.owner_id)
            if owner is None:
                problems.append("no_owner")
            elif not owner.is_active:
                problems.append("owner_offboarded")
        if agent.function_id is None or store.get_function(agent.function_id) is None:
            problems.append("no_business_function")
        if agent.review_overdue(today):
            problems.append("review_overdue")
        return Traceability(agent_id=agent.id, problems=tuple(problems))

    def traceability(self, ref: str) -> Traceability:
        """Whether the agent may hold credentials at all: active owner, business function, review date."""
        with self._uow() as tx:
            return self._traceability(tx.registry, self._agent(tx.registry, ref), today=self._clock.now().date())

    def untraceable_agents(self) -> tuple[UntraceableAgent, ...]:
        """Every non-retired agent that fails traceability: the over-exposed list."""
        today = self._clock.now().date()
        found = []
        with self._uow() as tx:
            for agent in tx.registry.all_agents():
                if agent.status is AgentStatus.RETIRED:
                    continue
                traceability = self._traceability(tx.registry, agent, today=today)
                if not traceability.is_traceable:
                    found.append(UntraceableAgent(agent=agent, problems=traceability.problems))
        return tuple(found)

    # ------------------------------------------------------------ tools

    def register_tool(
        self,
        *,
        name: str,
        description: str,
        actions: Sequence[ToolAction],
        resources: Sequence[ToolResource],
        actor: str,
    ) -> Tool:
        now = self._clock.now()
        tool = Tool(
            id=self._ids.new("tool"),
            name=parse_name(name),
            description=parse_text(description, field="description", required=False),
            actions=self._parse_actions(actions),
            resources=self._parse_resources(resources),
            created_at=now,
            updated_at=now,
        )
        with self._uow() as tx:
            if tx.registry.get_tool_by_name(tool.name) is not None:
                msg = f"a tool named {tool.name} already exists"
                raise Conflict(msg)
            tx.registry.add_tool(tool)
            self._record(tx, "tool.registered", actor, "tool", tool.id, self._tool_summary(tool))
        return tool

    @staticmethod
    def _parse_actions(actions: Sequence[ToolAction]) -> tuple[ToolAction, ...]:
        if len(actions) > MAX_ITEMS:
            msg = f"at most {MAX_ITEMS} actions"
            raise InvalidRequest(msg, field="actions")
        return tuple(
            ToolAction(
                name=parse_name(a.name, field=f"actions.{i}.name"),
                risk_class=a.risk_class,
                description=parse_text(a.description, field=f"actions.{i}.description", required=False),
            )
            for i, a in enumerate(actions)
        )

    @staticmethod
    def _parse_resources(resources: Sequence[ToolResource]) -> tuple[ToolResource, ...]:
        if len(resources) > MAX_ITEMS:
            msg = f"at most {MAX_ITEMS} resources"
            raise InvalidRequest(msg, field="resources")
        return tuple(
            ToolResource(
                pattern=parse_pattern(r.pattern, field=f"resources.{i}.pattern"),
                sensitivity=r.sensitivity,
                environment=None
                if r.environment is None
                else parse_environment(r.environment, field=f"resources.{i}.environment"),
                description=parse_text(r.description, field=f"resources.{i}.description", required=False),
            )
            for i, r in enumerate(resources)
        )

    @staticmethod
    def _tool_summary(tool: Tool) -> dict[str, Any]:
        return {
            "name": tool.name,
            "actions": {a.name: a.risk_class.value for a in tool.actions},
            "resources": {r.pattern: r.sensitivity.label for r in tool.resources},
        }

    def change_tool(
        self,
        ref: str,
        *,
        description: str | None = None,
        actions: Sequence[ToolAction] | None = None,
        resources: Sequence[ToolResource] | None = None,
        expected_revision: int | None = None,
        actor: str,
    ) -> Tool:
        with self._uow() as tx:
            current = self._tool(tx.registry, ref)
            self._expect(current.revision, expected_revision)
            changed = replace(
                current,
                description=current.description
                if description is None
                else parse_text(description, field="description", required=False),
                actions=current.actions if actions is None else self._parse_actions(actions),
                resources=current.resources if resources is None else self._parse_resources(resources),
                updated_at=self._clock.now(),
                revision=current.revision + 1,
            )
            tx.registry.update_tool(changed, expected_revision=current.revision)
            self._record(
                tx,
                "tool.changed",
                actor,
                "tool",
                current.id,
                {"before": self._tool_summary(current), "after": self._tool_summary(changed)},
            )
        return changed

    def get_tool(self, ref: str) -> Tool:
        with self._uow() as tx:
            return self._tool(tx.registry, ref)

    def list_tools(self, *, limit: int = 100, after: str | None = None) -> Page[Tool]:
        with self._uow() as tx:
            return tx.registry.list_tools(limit=_page_limit(limit), after=after)

    # ------------------------------------------------------------ workflows

    def _check_steps(self, store: RegistryStore, steps: Sequence[WorkflowStep]) -> None:
        for i, step in enumerate(steps):
            tool = store.get_tool_by_name(step.tool)
            if tool is None:
                msg = f"no tool named {step.tool}"
                raise InvalidRequest(msg, field=f"steps.{i}.tool")
            if tool.action(step.action) is None:
                msg = f"tool {tool.name} has no action {step.action}"
                raise InvalidRequest(msg, field=f"steps.{i}.action")
            if tool.ceiling_for(step.resource) is None:
                msg = f"resource pattern {step.resource!r} matches none of tool {tool.name}'s registered resources"
                raise InvalidRequest(msg, field=f"steps.{i}.resource")

    def create_workflow_version(
        self,
        *,
        name: str,
        function: str,
        description: str,
        steps: Sequence[WorkflowStep],
        max_duration: dt.timedelta,
        actor: str,
    ) -> WorkflowVersion:
        """Create the next version of a workflow (version 1 for a new name), as a draft."""
        now = self._clock.now()
        if len(steps) > MAX_ITEMS:
            msg = f"at most {MAX_ITEMS} steps"
            raise InvalidRequest(msg, field="steps")
        with self._uow() as tx:
            owning = self._function(tx.registry, function)
            versions = tx.registry.workflow_versions(parse_name(name))
            if any(v.state is WorkflowState.DRAFT for v in versions):
                msg = f"workflow {name} already has a draft; change or approve it first"
                raise Conflict(msg)
            if versions and versions[-1].function_id != owning.id:
                msg = f"workflow {name} belongs to another business function"
                raise Conflict(msg)
            self._check_steps(tx.registry, steps)
            workflow = WorkflowVersion(
                id=self._ids.new("workflow"),
                name=name,
                version=(versions[-1].version + 1) if versions else 1,
                function_id=owning.id,
                description=parse_text(description, field="description", required=False),
                steps=tuple(steps),
                max_duration=max_duration,
                state=WorkflowState.DRAFT,
                created_at=now,
                updated_at=now,
            )
            tx.registry.add_workflow(workflow)
            self._record(
                tx,
                "workflow.drafted",
                actor,
                "workflow",
                workflow.id,
                {"ref": workflow.ref, "hash": workflow.compute_hash()},
                function_id=owning.id,
            )
        return workflow

    def change_workflow_draft(
        self,
        ref: str,
        *,
        description: str | None = None,
        steps: Sequence[WorkflowStep] | None = None,
        max_duration: dt.timedelta | None = None,
        expected_revision: int | None = None,
        actor: str,
    ) -> WorkflowVersion:
        """Change a draft; an approved version is immutable, so its change is a new version."""
        with self._uow() as tx:
            current = self._workflow(tx.registry, ref)
            self._expect(current.revision, expected_revision)
            if current.state is not WorkflowState.DRAFT:
                msg = f"workflow {current.ref} is {current.state.value} and immutable; create a new version"
                raise Conflict(msg)
            if steps is not None:
                if len(steps) > MAX_ITEMS:
                    msg = f"at most {MAX_ITEMS} steps"
                    raise InvalidRequest(msg, field="steps")
                self._check_steps(tx.registry, steps)
            changed = replace(
                current,
                description=current.description
                if description is None
                else parse_text(description, field="description", required=False),
                steps=current.steps if steps is None else tuple(steps),
                max_duration=max_duration or current.max_duration,
                updated_at=self._clock.now(),
                revision=current.revision + 1,
            )
            tx.registry.update_workflow(changed, expected_revision=current.revision)
            self._record(
                tx,
                "workflow.changed",
                actor,
                "workflow",
                current.id,
                {"ref": current.ref, "hash": changed.compute_hash()},
                function_id=current.function_id,
            )
        return changed

    def approve_workflow(self, ref: str, *, actor: str, expected_hash: str | None = None) -> WorkflowVersion:
        """Approve a draft; older approved versions become superseded and their tasks must end."""
        now = self._clock.now()
        ended: list[WorkflowVersion] = []
        with self._uow() as tx:
            current = self._workflow(tx.registry, ref)
            if current.state is not WorkflowState.DRAFT:
                msg = f"workflow {current.ref} is {current.state.value}; only a draft can be approved"
                raise Conflict(msg)
            if expected_hash is not None and expected_hash != current.compute_hash():
                msg = "the draft changed since you reviewed it (content hash differs)"
                raise Conflict(msg, details={"content_hash": current.compute_hash()})
            # Tools may have changed since the draft was written: approve only what still resolves.
            self._check_steps(tx.registry, current.steps)
            approved = replace(current.approved(by=actor, at=now), revision=current.revision + 1)
            tx.registry.update_workflow(approved, expected_revision=current.revision)
            for older in tx.registry.workflow_versions(current.name):
                if older.state is WorkflowState.APPROVED and older.id != current.id:
                    superseded = replace(
                        older, state=WorkflowState.SUPERSEDED, ended_at=now, updated_at=now, revision=older.revision + 1
                    )
                    tx.registry.update_workflow(superseded, expected_revision=older.revision)
                    ended.append(superseded)
                    self._record(
                        tx,
                        "workflow.superseded",
                        actor,
                        "workflow",
                        older.id,
                        {"ref": older.ref, "by": approved.ref},
                        function_id=older.function_id,
                    )
            self._record(
                tx,
                "workflow.approved",
                actor,
                "workflow",
                current.id,
                {"ref": approved.ref, "hash": approved.content_hash, "approved_by": actor},
                function_id=current.function_id,
            )
        self._publish([WorkflowVersionEnded(workflow_id=w.id, ref=w.ref, state=w.state.value) for w in ended])
        return approved

    def retire_workflow(self, ref: str, *, reason: str, actor: str) -> WorkflowVersion:
        reason = parse_text(reason, field="reason", max_length=500)
        now = self._clock.now()
        with self._uow() as tx:
            current = self._workflow(tx.registry, ref)
            if current.state in {WorkflowState.RETIRED, WorkflowState.SUPERSEDED}:
                msg = f"workflow {current.ref} is already {current.state.value}"
                raise Conflict(msg)
            retired = replace(
                current, state=WorkflowState.RETIRED, ended_at=now, updated_at=now, revision=current.revision + 1
            )
            tx.registry.update_workflow(retired, expected_revision=current.revision)
            self._record(
                tx,
                "workflow.retired",
                actor,
                "workflow",
                current.id,
                {"ref": current.ref, "reason": reason},
                function_id=current.function_id,
            )
        self._publish([WorkflowVersionEnded(workflow_id=retired.id, ref=retired.ref, state=retired.state.value)])
        return retired

    def get_workflow(self, ref: str) -> WorkflowVersion:
        with self._uow() as tx:
            return self._workflow(tx.registry, ref)

    def workflow_versions(self, name: str) -> tuple[WorkflowVersion, ...]:
        with self._uow() as tx:
            versions = tuple(tx.registry.workflow_versions(parse_name(name)))
        if not versions:
            msg = f"no workflow {name!r}"
            raise NotFound(msg)
        return versions

    def list_workflows(self, *, limit: int = 100, after: str | None = None) -> Page[WorkflowVersion]:
        with self._uow() as tx:
            return tx.registry.list_workflows(limit=_page_limit(limit), after=after)

    # ------------------------------------------------------------ standing grants

    def create_grant(self, *, agent: str, tool: str, action: str, resource: str, reason: str, actor: str) -> Grant:
        """Create a standing grant; refused unless it is a `read` on public or internal resources only."""
        now = self._clock.now()
        pattern = parse_pattern(resource, field="resource")
        with self._uow() as tx:
            holder = self._agent(tx.registry, agent)
            target = self._tool(tx.registry, tool)
            tool_action = target.action(action)
            if tool_action is None:
                msg = f"tool {target.name} has no action {action}"
                raise InvalidRequest(msg, field="action")
            if tool_action.risk_class is not RiskClass.READ:
                msg = (
                    f"{target.name}:{action} is a {tool_action.risk_class.value} action; only read actions may be "
                    "standing, everything else needs just-in-time elevation"
                )
                raise InvalidRequest(msg, field="action", details={"risk_class": tool_action.risk_class.value})
            ceiling = target.ceiling_for(pattern)
            if ceiling is None:
                msg = f"resource pattern {pattern!r} matches none of tool {target.name}'s registered resources"
                raise InvalidRequest(msg, field="resource")
            if ceiling > STANDING_CEILING:
                msg = (
                    f"resource pattern {pattern!r} can reach {ceiling.label} data; standing grants are limited to "
                    "public and internal resources"
                )
                raise InvalidRequest(msg, field="resource", details={"sensitivity": ceiling.label})
            if any(
                g.tool == target.name and g.action == action and pattern_within(pattern, g.resource)
                for g in tx.registry.grants_of_agent(holder.id)
            ):
                msg = "an existing grant already covers this"
                raise Conflict(msg)
            grant = Grant(
                id=self._ids.new("grant"),
                agent_id=holder.id,
                tool=target.name,
                action=action,
                resource=pattern,
                created_by=actor,
                created_at=now,
                reason=parse_text(reason, field="reason", max_length=500),
            )
            tx.registry.add_grant(grant)
            self._record(
                tx,
                "grant.created",
                actor,
                "grant",
                grant.id,
                {"tool": grant.tool, "action": action, "resource": pattern, "ceiling": ceiling.label},
                agent_id=holder.id,
                owner_id=holder.owner_id,
                function_id=holder.function_id,
            )
        return grant

    def delete_grant(self, grant_id: str, *, actor: str) -> None:
        with self._uow() as tx:
            grant = tx.registry.get_grant(grant_id)
            if grant is None:
                msg = f"no grant {grant_id!r}"
                raise NotFound(msg)
            tx.registry.delete_grant(grant_id)
            self._record(tx, "grant.deleted", actor, "grant", grant_id, agent_id=grant.agent_id)

    def list_grants(self, *, limit: int = 100, after: str | None = None) -> Page[Grant]:
        with self._uow() as tx:
            return tx.registry.list_grants(limit=_page_limit(limit), after=after)

    # ------------------------------------------------------------ shared

    @staticmethod
    def _expect(revision: int, expected: int | None) -> None:
        if expected is not None and expected != revision:
            msg = f"revision is {revision}, not {expected}: someone changed it first; reload and retry"
            raise Conflict(msg, details={"revision": revision})
