"""Policy payloads of the v1 API: Cedar policy documents, their versions, activation and the schema.

Inputs forbid unknown fields, so a typo is a 400 rather than a silently ignored setting.
"""

from __future__ import annotations

import datetime as dt

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ActivateIn",
    "ActivationOut",
    "ActivePolicySetOut",
    "PolicyDetailOut",
    "PolicyIn",
    "PolicyOut",
    "PolicySchemaOut",
    "PolicyVersionOut",
    "PolicyVersionSummary",
]

# The server's limit on a policy's text (characters), as remit.core.authorization.policies has it.
MAX_POLICY_TEXT = 65_536


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=4096)


class PolicyIn(_In):
    """Add the next version of a policy (version 1 for a new name); validated against the schema, not yet active."""

    name: str = Field(min_length=1, max_length=63, examples=["restricted-data"])
    text: str = Field(
        min_length=1,
        max_length=MAX_POLICY_TEXT,
        description="Cedar policies; give each an @id annotation so decisions can name it",
        examples=['@id("forbid-restricted-without-elevation")\nforbid (principal, action, resource)\n'],
    )
    description: str = Field(default="", max_length=500, description="what this version changes, for reviewers")


class ActivateIn(_In):
    """Which version of the policy becomes its active one."""

    version: int = Field(ge=1, le=999_999_999)


class PolicyVersionSummary(BaseModel):
    """One version of a policy, without its text."""

    id: str
    name: str
    version: int
    ref: str = Field(description="NAME@VERSION")
    sha256: str
    description: str
    created_by: str
    created_at: dt.datetime
    active: bool


class PolicyVersionOut(PolicyVersionSummary):
    """One version of a policy, with its Cedar text exactly as added."""

    text: str


class PolicyOut(BaseModel):
    """A policy: its newest version and the active one (null when the policy is not in the active set)."""

    name: str
    latest_version: int
    active_version: int | None = None
    active_ref: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    activated_by: str | None = None
    activated_at: dt.datetime | None = None


class PolicyDetailOut(PolicyOut):
    """A policy and every one of its versions, oldest first."""

    versions: list[PolicyVersionSummary]


class ActivationOut(BaseModel):
    """The policy after an activation or deactivation, and the generation the active set moved to."""

    policy: PolicyOut
    generation: int


class ActivePolicySetOut(BaseModel):
    """The active policy set: its generation, the version decisions report (null: none active), its versions."""

    generation: int
    version: int | None = None
    policies: list[PolicyVersionSummary]


class PolicySchemaOut(BaseModel):
    """The Cedar schema policies are validated against, generated from the registry's tools."""

    cedar: str = Field(description="Cedar schema syntax")
    cedar_json: dict[str, Any] = Field(description="the same schema in Cedar's JSON schema format")
