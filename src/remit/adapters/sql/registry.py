"""RegistryStore over SQL: rows ⇄ registry domain objects."""

from __future__ import annotations

import datetime as dt

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any, Final, TypeVar

from sqlalchemy import Connection, Row, Select, Table, bindparam, delete, func, insert, select, update

from remit.adapters.sql.tables import agents, business_functions, grants, owner_identities, owners, tools, workflows
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
    SpiffeId,
    Tool,
    ToolAction,
    ToolResource,
    WorkflowState,
    WorkflowStep,
    WorkflowVersion,
    WorkloadBinding,
)
from remit.errors import Conflict

__all__ = ["REGISTRY_LOCK_KEY", "SqlRegistryStore"]

T = TypeVar("T")

# The PostgreSQL advisory lock between registry writes (exclusive, from a transaction's first registry
# write to its commit) and issuance batches (shared, see SqlIssuanceStore.hold_registry): a batch that
# re-reads the revisions it decided on sees every registry change committed before, and a change
# commits only after the batches already holding it ("REMITREG" as a signed 64-bit key). Taken before
# the audit chain lock by both sides, so the two never wait on each other in opposite orders.
REGISTRY_LOCK_KEY: Final = 0x52454D4954524547
_HOLD_REGISTRY_EXCLUSIVE: Final = select(func.pg_advisory_xact_lock(REGISTRY_LOCK_KEY))


def _binding_to_json(binding: WorkloadBinding) -> dict[str, str]:
    if binding.spiffe_id is not None:
        return {"kind": "spiffe", "spiffe_id": str(binding.spiffe_id)}
    assert binding.oidc is not None  # noqa: S101 - WorkloadBinding holds exactly one
    return {"kind": "oidc", "issuer": binding.oidc.issuer, "subject": binding.oidc.subject}


def _binding_from_json(data: dict[str, str]) -> WorkloadBinding:
    if data["kind"] == "spiffe":
        return WorkloadBinding(spiffe_id=SpiffeId.parse(data["spiffe_id"]))
    return WorkloadBinding(oidc=OidcSubject(issuer=data["issuer"], subject=data["subject"]))


def _function(row: Row[Any]) -> BusinessFunction:
    return BusinessFunction(
        id=row.id,
        name=row.name,
        description=row.description,
        owner_id=row.owner_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _agent(row: Row[Any]) -> Agent:
    return Agent(
        id=row.id,
        name=row.name,
        binding=_binding_from_json(row.identity),
        owner_id=row.owner_id,
        function_id=row.function_id,
        environments=frozenset(row.environments),
        status=AgentStatus(row.status),
        review_by=row.review_by,
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _tool(row: Row[Any]) -> Tool:
    return Tool(
        id=row.id,
        name=row.name,
        description=row.description,
        actions=tuple(ToolAction(a["name"], RiskClass(a["risk_class"]), a.get("description", "")) for a in row.actions),
        resources=tuple(
            ToolResource(
                r["pattern"], Sensitivity.parse(r["sensitivity"]), r.get("environment"), r.get("description", "")
            )
            for r in row.resources
        ),
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _tool_values(tool: Tool) -> dict[str, Any]:
    return {
        "name": tool.name,
        "description": tool.description,
        "actions": [
            {"name": a.name, "risk_class": a.risk_class.value, "description": a.description} for a in tool.actions
        ],
        "resources": [
            {
                "pattern": r.pattern,
                "sensitivity": r.sensitivity.label,
                "environment": r.environment,
                "description": r.description,
            }
            for r in tool.resources
        ],
        "created_at": tool.created_at,
        "updated_at": tool.updated_at,
        "revision": tool.revision,
    }


def _workflow(row: Row[Any]) -> WorkflowVersion:
    return WorkflowVersion(
        id=row.id,
        name=row.name,
        version=row.version,
        function_id=row.function_id,
        description=row.description,
        steps=tuple(WorkflowStep(s["tool"], s["action"], s["resource"]) for s in row.steps),
        max_duration=dt.timedelta(seconds=row.max_duration_seconds),
        state=WorkflowState(row.state),
        approved_by=row.approved_by,
        approved_at=row.approved_at,
        content_hash=row.content_hash,
        ended_at=row.ended_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        revision=row.revision,
    )


def _workflow_values(workflow: WorkflowVersion) -> dict[str, Any]:
    return {
        "name": workflow.name,
        "version": workflow.version,
        "function_id": workflow.function_id,
        "description": workflow.description,
        "steps": [{"tool": s.tool, "action": s.action, "resource": s.resource} for s in workflow.steps],
        "max_duration_seconds": int(workflow.max_duration.total_seconds()),
        "state": workflow.state.value,
        "approved_by": workflow.approved_by,
        "approved_at": workflow.approved_at,
        "content_hash": workflow.content_hash,
        "ended_at": workflow.ended_at,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        "revision": workflow.revision,
    }


def _grant(row: Row[Any]) -> Grant:
    return Grant(
        id=row.id,
        agent_id=row.agent_id,
        tool=row.tool,
        action=row.action,
        resource=row.resource,
        reason=row.reason,
        created_by=row.created_by,
        created_at=row.created_at,
    )


@cache
def _lookup(table: Table, columns: tuple[str, ...]) -> Select[Any]:
    """A select by equality on `columns`, built once: building statements per call costs more than running them."""
    query = select(table)
    for column in columns:
        query = query.where(table.c[column] == bindparam(column))
    return query


class SqlRegistryStore:
    """The registry's rows, read and written on one connection (the caller's transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection
        self._writing = False

    # ------------------------------------------------------------ shared

    def _write(self) -> Connection:
        """The connection, for a write: on PostgreSQL the first write of a transaction takes the registry lock."""
        if not self._writing:
            if self._c.dialect.name == "postgresql":
                self._c.execute(_HOLD_REGISTRY_EXCLUSIVE)
            self._writing = True
        return self._c

    def _page(self, table: Table, convert: Callable[[Row[Any]], T], *, limit: int, after: str | None) -> Page[T]:
        query = select(table).order_by(table.c.id).limit(limit + 1)
        if after is not None:
            query = query.where(table.c.id > after)
        rows = self._c.execute(query).all()
        items = tuple(convert(r) for r in rows[:limit])
        return Page(items=items, next_cursor=rows[limit - 1].id if len(rows) > limit else None)

    def _one(self, table: Table, convert: Callable[[Row[Any]], T], **where: object) -> T | None:
        row = self._c.execute(_lookup(table, tuple(where)), where).first()
        return None if row is None else convert(row)

    def _update(self, table: Table, entity_id: str, values: dict[str, Any], *, expected_revision: int) -> None:
        result = self._write().execute(
            update(table).where(table.c.id == entity_id, table.c.revision == expected_revision).values(**values)
        )
        if result.rowcount != 1:
            msg = "changed concurrently; reload and retry"
            raise Conflict(msg)

    # ------------------------------------------------------------ owners

    def _owner(self, row: Row[Any]) -> Owner:
        identities = self._c.execute(
            select(owner_identities.c.issuer, owner_identities.c.subject)
            .where(owner_identities.c.owner_id == row.id)
            .order_by(owner_identities.c.identity_key)
        ).all()
        return Owner(
            id=row.id,
            name=row.name,
            email=row.email,
            status=OwnerStatus(row.status),
            human_identities=tuple(OidcSubject(issuer=i.issuer, subject=i.subject) for i in identities),
            created_at=row.created_at,
            updated_at=row.updated_at,
            offboarded_at=row.offboarded_at,
            revision=row.revision,
        )

    def _write_identities(self, owner: Owner) -> None:
        self._write().execute(delete(owner_identities).where(owner_identities.c.owner_id == owner.id))
        if owner.human_identities:
            self._c.execute(
                insert(owner_identities),
                [
                    {"identity_key": str(i), "owner_id": owner.id, "issuer": i.issuer, "subject": i.subject}
                    for i in owner.human_identities
                ],
            )

    def add_owner(self, owner: Owner) -> None:
        self._write().execute(
            insert(owners).values(
                id=owner.id,
                name=owner.name,
                email=owner.email,
                status=owner.status.value,
                created_at=owner.created_at,
                updated_at=owner.updated_at,
                offboarded_at=owner.offboarded_at,
                revision=owner.revision,
            )
        )
        self._write_identities(owner)

    def update_owner(self, owner: Owner, *, expected_revision: int) -> None:
        self._update(
            owners,
            owner.id,
            {
                "name": owner.name,
                "email": owner.email,
                "status": owner.status.value,
                "updated_at": owner.updated_at,
                "offboarded_at": owner.offboarded_at,
                "revision": expected_revision + 1,
            },
            expected_revision=expected_revision,
        )
        self._write_identities(owner)

    def get_owner(self, owner_id: str) -> Owner | None:
        return self._one(owners, self._owner, id=owner_id)

    def get_owner_by_email(self, email: str) -> Owner | None:
        return self._one(owners, self._owner, email=email)

    def find_owner_by_human_identity(self, key: str) -> Owner | None:
        row = self._c.execute(select(owner_identities.c.owner_id).where(owner_identities.c.identity_key == key)).first()
        return None if row is None else self.get_owner(row.owner_id)

    def list_owners(self, *, limit: int, after: str | None) -> Page[Owner]:
        return self._page(owners, self._owner, limit=limit, after=after)

    # ------------------------------------------------------------ business functions

    def add_function(self, function: BusinessFunction) -> None:
        self._write().execute(
            insert(business_functions).values(
                id=function.id,
                name=function.name,
                description=function.description,
                owner_id=function.owner_id,
                created_at=function.created_at,
                updated_at=function.updated_at,
                revision=function.revision,
            )
        )

    def update_function(self, function: BusinessFunction, *, expected_revision: int) -> None:
        self._update(
            business_functions,
            function.id,
            {
                "description": function.description,
                "owner_id": function.owner_id,
                "updated_at": function.updated_at,
                "revision": expected_revision + 1,
            },
            expected_revision=expected_revision,
        )

    def get_function(self, function_id: str) -> BusinessFunction | None:
        return self._one(business_functions, _function, id=function_id)

    def get_function_by_name(self, name: str) -> BusinessFunction | None:
        return self._one(business_functions, _function, name=name)

    def list_functions(self, *, limit: int, after: str | None) -> Page[BusinessFunction]:
        return self._page(business_functions, _function, limit=limit, after=after)

    # ------------------------------------------------------------ agents

    @staticmethod
    def _agent_values(agent: Agent) -> dict[str, Any]:
        return {
            "name": agent.name,
            "identity_key": agent.binding.key,
            "identity": _binding_to_json(agent.binding),
            "owner_id": agent.owner_id,
            "function_id": agent.function_id,
            "environments": sorted(agent.environments),
            "status": agent.status.value,
            "review_by": agent.review_by,
            "description": agent.description,
            "created_at": agent.created_at,
            "updated_at": agent.updated_at,
        }

    def add_agent(self, agent: Agent) -> None:
        self._write().execute(insert(agents).values(id=agent.id, revision=agent.revision, **self._agent_values(agent)))

    def update_agent(self, agent: Agent, *, expected_revision: int) -> None:
        values = self._agent_values(agent) | {"revision": expected_revision + 1}
        self._update(agents, agent.id, values, expected_revision=expected_revision)

    def get_agent(self, agent_id: str) -> Agent | None:
        return self._one(agents, _agent, id=agent_id)

    def get_agent_by_name(self, name: str) -> Agent | None:
        return self._one(agents, _agent, name=name)

    def find_agent_by_binding(self, key: str) -> Agent | None:
        return self._one(agents, _agent, identity_key=key)

    def agents_of_owner(self, owner_id: str) -> Sequence[Agent]:
        rows = self._c.execute(select(agents).where(agents.c.owner_id == owner_id).order_by(agents.c.id))
        return [_agent(r) for r in rows]

    def list_agents(self, *, limit: int, after: str | None) -> Page[Agent]:
        return self._page(agents, _agent, limit=limit, after=after)

    def all_agents(self) -> Sequence[Agent]:
        return [_agent(r) for r in self._c.execute(select(agents).order_by(agents.c.id))]

    # ------------------------------------------------------------ tools

    def add_tool(self, tool: Tool) -> None:
        self._write().execute(insert(tools).values(id=tool.id, **_tool_values(tool)))

    def update_tool(self, tool: Tool, *, expected_revision: int) -> None:
        values = _tool_values(tool) | {"revision": expected_revision + 1}
        self._update(tools, tool.id, values, expected_revision=expected_revision)

    def get_tool(self, tool_id: str) -> Tool | None:
        return self._one(tools, _tool, id=tool_id)

    def get_tool_by_name(self, name: str) -> Tool | None:
        return self._one(tools, _tool, name=name)

    def list_tools(self, *, limit: int, after: str | None) -> Page[Tool]:
        return self._page(tools, _tool, limit=limit, after=after)

    # ------------------------------------------------------------ workflows

    def add_workflow(self, workflow: WorkflowVersion) -> None:
        self._write().execute(insert(workflows).values(id=workflow.id, **_workflow_values(workflow)))

    def update_workflow(self, workflow: WorkflowVersion, *, expected_revision: int) -> None:
        values = _workflow_values(workflow) | {"revision": expected_revision + 1}
        self._update(workflows, workflow.id, values, expected_revision=expected_revision)

    def get_workflow(self, workflow_id: str) -> WorkflowVersion | None:
        return self._one(workflows, _workflow, id=workflow_id)

    def get_workflow_version(self, name: str, version: int) -> WorkflowVersion | None:
        return self._one(workflows, _workflow, name=name, version=version)

    def workflow_versions(self, name: str) -> Sequence[WorkflowVersion]:
        rows = self._c.execute(select(workflows).where(workflows.c.name == name).order_by(workflows.c.version))
        return [_workflow(r) for r in rows]

    def list_workflows(self, *, limit: int, after: str | None) -> Page[WorkflowVersion]:
        return self._page(workflows, _workflow, limit=limit, after=after)

    # ------------------------------------------------------------ grants

    def add_grant(self, grant: Grant) -> None:
        self._write().execute(
            insert(grants).values(
                id=grant.id,
                agent_id=grant.agent_id,
                tool=grant.tool,
                action=grant.action,
                resource=grant.resource,
                reason=grant.reason,
                created_by=grant.created_by,
                created_at=grant.created_at,
            )
        )

    def get_grant(self, grant_id: str) -> Grant | None:
        return self._one(grants, _grant, id=grant_id)

    def delete_grant(self, grant_id: str) -> None:
        self._write().execute(delete(grants).where(grants.c.id == grant_id))

    def grants_of_agent(self, agent_id: str) -> Sequence[Grant]:
        rows = self._c.execute(select(grants).where(grants.c.agent_id == agent_id).order_by(grants.c.id))
        return [_grant(r) for r in rows]

    def list_grants(self, *, limit: int, after: str | None) -> Page[Grant]:
        return self._page(grants, _grant, limit=limit, after=after)
