"""Registry payloads of the v1 API: owners, business functions, agents, tools, workflows, grants.

Inputs forbid unknown fields, so a typo is a 400 rather than a silently ignored setting.
"""

from __future__ import annotations

import datetime as dt

from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "AgentChange",
    "AgentIn",
    "AgentOut",
    "FunctionChange",
    "FunctionIn",
    "FunctionOut",
    "GrantIn",
    "GrantOut",
    "OffboardOut",
    "OidcIdentity",
    "OwnerChange",
    "OwnerIn",
    "OwnerOut",
    "Page",
    "ReasonIn",
    "ToolActionIn",
    "ToolChange",
    "ToolIn",
    "ToolOut",
    "ToolResourceIn",
    "TraceabilityOut",
    "UntraceableOut",
    "WorkflowApproveIn",
    "WorkflowChange",
    "WorkflowIn",
    "WorkflowOut",
    "WorkflowStepIn",
    "WorkloadIdentity",
]

T = TypeVar("T")

RiskClassName = Literal["read", "write", "deploy", "payment", "export", "admin"]
SensitivityName = Literal["public", "internal", "confidential", "restricted"]
Name = str  # validated by the core: 1-63 of [a-z0-9._-]
Ref = str  # an id, or a name / email / name@version


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class Page(BaseModel, Generic[T]):
    """One page of a listing; pass `next_cursor` as `after` to continue (null on the last page)."""

    items: list[T]
    next_cursor: str | None = None


class ReasonIn(_In):
    """Why: recorded in the audit trail."""

    reason: str = Field(min_length=1, max_length=500)


# ------------------------------------------------------------------ identities


class OidcIdentity(_In):
    """An OIDC issuer (https URL) and subject."""

    issuer: str = Field(max_length=1024)
    subject: str = Field(min_length=1, max_length=1024)


class WorkloadIdentity(_In):
    """Exactly one of a SPIFFE ID or an OIDC issuer + subject."""

    spiffe_id: str | None = Field(default=None, max_length=2048, examples=["spiffe://acme.example/agents/invoice-bot"])
    oidc: OidcIdentity | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WorkloadIdentity:
        if (self.spiffe_id is None) == (self.oidc is None):
            msg = "give exactly one of spiffe_id or oidc"
            raise ValueError(msg)
        return self


# ------------------------------------------------------------------ owners


class OwnerIn(_In):
    """Register an accountable owner."""

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    human_identities: list[OidcIdentity] = Field(default_factory=list, max_length=32)


class OwnerChange(_In):
    """Change an owner; omitted fields stay as they are."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, min_length=3, max_length=320)
    human_identities: list[OidcIdentity] | None = Field(default=None, max_length=32)
    expected_revision: int | None = Field(default=None, ge=1)


class OwnerOut(BaseModel):
    """An owner as stored."""

    id: str
    name: str
    email: str
    status: Literal["active", "offboarded"]
    human_identities: list[OidcIdentity]
    created_at: dt.datetime
    updated_at: dt.datetime
    offboarded_at: dt.datetime | None
    revision: int


class OffboardOut(BaseModel):
    """The offboarded owner and the agents that were suspended with them."""

    owner: OwnerOut
    suspended_agents: list[str]


# ------------------------------------------------------------------ business functions


class FunctionIn(_In):
    """Register a business function: why agents exist."""

    name: Name = Field(min_length=1, max_length=63)
    description: str = Field(min_length=1, max_length=2000)
    owner: Ref = Field(min_length=1, max_length=320, description="owner id or email")


class FunctionChange(_In):
    """Change a business function; omitted fields stay as they are."""

    description: str | None = Field(default=None, min_length=1, max_length=2000)
    owner: Ref | None = Field(default=None, min_length=1, max_length=320)
    expected_revision: int | None = Field(default=None, ge=1)


class FunctionOut(BaseModel):
    """A business function as stored."""

    id: str
    name: str
    description: str
    owner_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int


# ------------------------------------------------------------------ agents


class AgentIn(_In):
    """Register an agent: one workload identity with owner, function, environments and review date."""

    name: Name = Field(min_length=1, max_length=63)
    identity: WorkloadIdentity
    owner: Ref | None = Field(default=None, max_length=320, description="owner id or email")
    function: Ref | None = Field(default=None, max_length=63, description="business function id or name")
    environments: list[str] = Field(min_length=1, max_length=32)
    review_by: dt.date
    description: str = Field(default="", max_length=2000)


class AgentChange(_In):
    """Change an agent; omitted fields stay as they are."""

    identity: WorkloadIdentity | None = None
    owner: Ref | None = Field(default=None, min_length=1, max_length=320)
    function: Ref | None = Field(default=None, min_length=1, max_length=63)
    environments: list[str] | None = Field(default=None, min_length=1, max_length=32)
    review_by: dt.date | None = None
    description: str | None = Field(default=None, max_length=2000)
    expected_revision: int | None = Field(default=None, ge=1)


class AgentOut(BaseModel):
    """An agent as stored."""

    id: str
    name: str
    identity: WorkloadIdentity
    identity_key: str
    owner_id: str | None
    function_id: str | None
    environments: list[str]
    status: Literal["active", "suspended", "retired"]
    review_by: dt.date
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int


class TraceabilityOut(BaseModel):
    """Whether an agent traces to an active owner and a business function, and if not, why."""

    agent_id: str
    traceable: bool
    problems: list[str]


class UntraceableOut(BaseModel):
    """An over-exposed agent and every reason it is untraceable."""

    agent: AgentOut
    problems: list[str]


# ------------------------------------------------------------------ tools


class ToolActionIn(_In):
    """One action of a tool and its risk class."""

    name: Name = Field(min_length=1, max_length=63)
    risk_class: RiskClassName
    description: str = Field(default="", max_length=2000)


class ToolResourceIn(_In):
    """A resource pattern of a tool and how sensitive its resources are."""

    pattern: str = Field(min_length=1, max_length=512, examples=["repo:acme/*"])
    sensitivity: SensitivityName
    environment: str | None = Field(default=None, max_length=63)
    description: str = Field(default="", max_length=2000)


class ToolIn(_In):
    """Register a tool with its actions and resources."""

    name: Name = Field(min_length=1, max_length=63)
    description: str = Field(default="", max_length=2000)
    actions: list[ToolActionIn] = Field(min_length=1, max_length=256)
    resources: list[ToolResourceIn] = Field(min_length=1, max_length=256)


class ToolChange(_In):
    """Change a tool; given lists replace the stored ones."""

    description: str | None = Field(default=None, max_length=2000)
    actions: list[ToolActionIn] | None = Field(default=None, min_length=1, max_length=256)
    resources: list[ToolResourceIn] | None = Field(default=None, min_length=1, max_length=256)
    expected_revision: int | None = Field(default=None, ge=1)


class ToolOut(BaseModel):
    """A tool as stored."""

    id: str
    name: str
    description: str
    actions: list[ToolActionIn]
    resources: list[ToolResourceIn]
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int


# ------------------------------------------------------------------ workflows


class WorkflowStepIn(_In):
    """One (tool, action, resource pattern) a workflow needs."""

    tool: Name = Field(min_length=1, max_length=63)
    action: Name = Field(min_length=1, max_length=63)
    resource: str = Field(min_length=1, max_length=512)


class WorkflowIn(_In):
    """Create the next version of a workflow as a draft."""

    name: Name = Field(min_length=1, max_length=63)
    function: Ref = Field(min_length=1, max_length=63, description="business function id or name")
    description: str = Field(default="", max_length=2000)
    steps: list[WorkflowStepIn] = Field(min_length=1, max_length=256)
    max_duration_seconds: int = Field(ge=1, le=7 * 24 * 3600)


class WorkflowChange(_In):
    """Change a draft workflow version; approved versions are immutable."""

    description: str | None = Field(default=None, max_length=2000)
    steps: list[WorkflowStepIn] | None = Field(default=None, min_length=1, max_length=256)
    max_duration_seconds: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    expected_revision: int | None = Field(default=None, ge=1)


class WorkflowApproveIn(_In):
    """Approve a draft, optionally pinning the content hash you reviewed."""

    expected_hash: str | None = Field(
        default=None, max_length=80, description="the content hash you reviewed; refused if the draft changed since"
    )


class WorkflowOut(BaseModel):
    """A workflow version as stored."""

    id: str
    name: str
    version: int
    ref: str
    function_id: str
    description: str
    steps: list[WorkflowStepIn]
    max_duration_seconds: int
    state: Literal["draft", "approved", "superseded", "retired"]
    content_hash: str = Field(description="hash of the content; pinned at approval")
    approved_by: str | None
    approved_at: dt.datetime | None
    ended_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int


# ------------------------------------------------------------------ grants


class GrantIn(_In):
    """Create a standing grant (only reads of public or internal resources)."""

    agent: Ref = Field(min_length=1, max_length=63)
    tool: Name = Field(min_length=1, max_length=63)
    action: Name = Field(min_length=1, max_length=63)
    resource: str = Field(min_length=1, max_length=512)
    reason: str = Field(min_length=1, max_length=500)


class GrantOut(BaseModel):
    """A standing grant as stored."""

    id: str
    agent_id: str
    tool: str
    action: str
    resource: str
    reason: str
    created_by: str
    created_at: dt.datetime
