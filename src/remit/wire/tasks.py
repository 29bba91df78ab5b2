"""Task payloads of the v1 API: the declaration (RFC 9396 details), the credential response, lifecycle calls.

The same shapes serve the SDK; the RFC 8693 token endpoint speaks form encoding and maps onto them.
"""

from __future__ import annotations

import datetime as dt

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ACCESS_TOKEN_TYPE",
    "AuthorizationDetailIn",
    "CredentialOut",
    "EvidenceIn",
    "IntrospectionOut",
    "ObjectiveChange",
    "ReissueIn",
    "TaskEnd",
    "TaskIn",
    "TaskOut",
    "TaskStarted",
    "TokenExchangeOut",
]

ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105 - an RFC 8693 URN


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=16_384)


class EvidenceIn(_In):
    """Workload evidence: a JWT-SVID, an X.509-SVID assertion or an OIDC workload token. Never logged."""

    kind: Literal["jwt_svid", "x509_svid", "oidc"]
    token: str = Field(min_length=1, max_length=16_384)


class AuthorizationDetailIn(_In):
    """One RFC 9396 authorization detail of type `remit_tool`."""

    type: Literal["remit_tool"] = "remit_tool"
    tool: str = Field(min_length=1, max_length=63)
    actions: list[str] = Field(min_length=1, max_length=64)
    resources: list[str] = Field(min_length=1, max_length=64)


class TaskIn(_In):
    """Declare a task (C07): who (evidence), under which workflow, why, what, for how long, where."""

    evidence: EvidenceIn
    workflow: str = Field(min_length=3, max_length=80, examples=["release-docs@1"])
    objective: str = Field(min_length=1, max_length=2000)
    authorization_details: list[AuthorizationDetailIn] = Field(min_length=1, max_length=64)
    expected_duration_seconds: int = Field(ge=1, le=7 * 86_400)
    environment: str = Field(min_length=1, max_length=63)
    audience: str = Field(min_length=1, max_length=512, examples=["tool:github"])
    parent_token: str | None = Field(
        default=None, max_length=16_384, description="a delegation credential of the parent task (aud = the issuer)"
    )
    principal: str | None = Field(default=None, max_length=512, description="the person the task acts for")
    labels: dict[str, str] = Field(default_factory=dict, max_length=16)


class ReissueIn(_In):
    """A new credential for a running task; `audience` may be the issuer, to delegate."""

    evidence: EvidenceIn
    audience: str | None = Field(default=None, max_length=512)


class TaskEnd(_In):
    """Finish a task: completed, failed or cancelled, with an optional reason."""

    outcome: Literal["completed", "failed", "cancelled"]
    reason: str = Field(default="", max_length=2000)


class ObjectiveChange(_In):
    """A new objective: revokes every credential of the task; re-issue afterwards."""

    objective: str = Field(min_length=1, max_length=2000)


class CredentialOut(BaseModel):
    """A credential as issued (RFC 6749 §5.1 names); `access_token` is shown once, here."""

    access_token: str
    token_type: Literal["Bearer", "DPoP"]
    issued_token_type: str = ACCESS_TOKEN_TYPE
    expires_in: int
    expires_at: dt.datetime
    scope: str
    jti: str


class TaskOut(BaseModel):
    """A task as stored."""

    id: str
    agent_id: str
    owner_id: str
    function_id: str
    workflow: str
    objective: str
    authorization_details: list[dict[str, Any]]
    environment: str
    audience: str
    state: Literal["running", "completed", "failed", "cancelled", "expired", "revoked"]
    created_at: dt.datetime
    deadline: dt.datetime
    ended_at: dt.datetime | None
    end_reason: str | None
    parent_id: str | None
    lineage: list[str]
    principal: str | None
    epoch: int
    # Whether its credentials for its own audience need a DPoP proof from one key (ADR 0016); the key stays private.
    dpop_bound: bool


class TaskStarted(BaseModel):
    """The started task and its first credential."""

    task: TaskOut
    credential: CredentialOut


class TokenExchangeOut(BaseModel):
    """RFC 8693 §2.2.1 response; never a refresh token (C09)."""

    access_token: str
    issued_token_type: str = ACCESS_TOKEN_TYPE
    token_type: Literal["Bearer", "DPoP"]
    expires_in: int
    scope: str
    authorization_details: list[dict[str, Any]]
    txn: str


class OAuthErrorOut(BaseModel):
    """RFC 6749 §5.2 error response of the token endpoint."""

    error: str
    error_description: str


class IntrospectionOut(BaseModel):
    """RFC 7662 §2.2: `active` and, only when active, the token's claims."""

    model_config = ConfigDict(extra="allow")

    active: bool
