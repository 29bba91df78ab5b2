"""Registry domain objects: owners, business functions, agents, tools, workflows and standing grants.

Every object is a frozen, slotted dataclass that is valid by construction: parsing happens at the
edge (`parse_*` helpers and the `new` constructors), and the rest of the code trusts what it holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Generic, Self, TypeVar

from remit.core.registry.patterns import matches, parse_pattern, patterns_overlap
from remit.errors import InvalidRequest

__all__ = [
    "Agent",
    "AgentStatus",
    "BusinessFunction",
    "Grant",
    "OidcSubject",
    "Owner",
    "OwnerStatus",
    "Page",
    "RiskClass",
    "Sensitivity",
    "SpiffeId",
    "Tool",
    "ToolAction",
    "ToolResource",
    "Traceability",
    "WorkflowState",
    "WorkflowStep",
    "WorkflowVersion",
    "WorkloadBinding",
    "parse_email",
    "parse_environment",
    "parse_name",
    "parse_text",
]

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TRUST_DOMAIN = re.compile(r"^[a-z0-9._-]{1,255}$")
_SPIFFE_PATH_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TEXT = 2000
MAX_SPIFFE_ID = 2048
MAX_URL = 1024
MAX_DURATION = dt.timedelta(days=7)


def parse_name(raw: str, *, field: str = "name") -> str:
    """A machine name: lowercase letters, digits, `.`, `_`, `-`; starts alphanumeric; at most 63 characters."""
    if not _NAME.match(raw):
        msg = "must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"
        raise InvalidRequest(msg, field=field)
    return raw


def parse_text(raw: str, *, field: str, max_length: int = MAX_TEXT, required: bool = True) -> str:
    """Human text: trimmed, no control characters (new lines and tabs allowed), bounded length."""
    text = raw.strip()
    if required and not text:
        raise InvalidRequest("must not be empty", field=field)
    if len(text) > max_length:
        msg = f"must be at most {max_length} characters"
        raise InvalidRequest(msg, field=field)
    if _CONTROL.search(text):
        raise InvalidRequest("must not contain control characters", field=field)
    return text


def parse_email(raw: str, *, field: str = "email") -> str:
    email = raw.strip().lower()
    if not _EMAIL.match(email):
        raise InvalidRequest("not an email address", field=field)
    return email


def parse_environment(raw: str, *, field: str = "environment") -> str:
    return parse_name(raw, field=field)


class OwnerStatus(StrEnum):
    """Whether an owner is still accountable."""

    ACTIVE = "active"
    OFFBOARDED = "offboarded"


class AgentStatus(StrEnum):
    """Lifecycle of an agent; only `active` agents get credentials."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    RETIRED = "retired"


class RiskClass(StrEnum):
    """How much harm an action can do; everything but `read` needs just-in-time elevation."""

    READ = "read"
    WRITE = "write"
    DEPLOY = "deploy"
    PAYMENT = "payment"
    EXPORT = "export"
    ADMIN = "admin"


class Sensitivity(IntEnum):
    """How sensitive a resource is; ordered so that a larger value is stricter."""

    PUBLIC = 0
    INTERNAL = 1
    CONFIDENTIAL = 2
    RESTRICTED = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, raw: str, *, field: str = "sensitivity") -> Sensitivity:
        try:
            return cls[raw.upper()]
        except KeyError:
            msg = "must be one of public, internal, confidential, restricted"
            raise InvalidRequest(msg, field=field) from None


class WorkflowState(StrEnum):
    """Lifecycle of a workflow version: draft → approved → superseded | retired."""

    DRAFT = "draft"
    APPROVED = "approved"
    SUPERSEDED = "superseded"
    RETIRED = "retired"


# ---------------------------------------------------------------- workload identities


@dataclass(frozen=True, slots=True)
class SpiffeId:
    """A workload SPIFFE ID (`spiffe://<trust domain>/<path>`), per the SPIFFE ID standard §2."""

    trust_domain: str
    path: str

    @classmethod
    def parse(cls, raw: str, *, field: str = "spiffe_id") -> Self:
        """Parse a workload SPIFFE ID; anything else (query, fragment, port, empty segment) is InvalidRequest."""
        scheme, sep, rest = raw.partition("://")
        trust_domain, slash, path = rest.partition("/")
        segments = path.split("/") if path else []
        if (
            scheme != "spiffe"
            or not sep
            or len(raw) > MAX_SPIFFE_ID
            or not _TRUST_DOMAIN.match(trust_domain)
            or not slash
            or not segments
            or any(s in {"", ".", ".."} or not _SPIFFE_PATH_SEGMENT.match(s) for s in segments)
        ):
            msg = "not a workload SPIFFE ID (spiffe://<trust domain>/<path>)"
            raise InvalidRequest(msg, field=field)
        return cls(trust_domain=trust_domain, path="/" + path)

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}{self.path}"


@dataclass(frozen=True, slots=True)
class OidcSubject:
    """An OIDC identity: issuer URL plus subject, the pair a token's `iss` and `sub` name."""

    issuer: str
    subject: str

    @classmethod
    def parse(cls, issuer: str, subject: str, *, field: str = "oidc") -> Self:
        if not issuer.startswith("https://") or len(issuer) > MAX_URL or any(c.isspace() for c in issuer):
            raise InvalidRequest("an OIDC issuer is an https URL", field=f"{field}.issuer")
        if "#" in issuer or "?" in issuer:
            raise InvalidRequest("an OIDC issuer has no query or fragment", field=f"{field}.issuer")
        return cls(issuer=issuer.rstrip("/"), subject=parse_text(subject, field=f"{field}.subject", max_length=1024))

    def __str__(self) -> str:
        return f"oidc:{self.issuer}#{self.subject}"


@dataclass(frozen=True, slots=True)
class WorkloadBinding:
    """The one workload identity an agent proves at runtime: a SPIFFE ID or an OIDC issuer + subject."""

    spiffe_id: SpiffeId | None = None
    oidc: OidcSubject | None = None

    def __post_init__(self) -> None:
        if (self.spiffe_id is None) == (self.oidc is None):
            msg = "bind exactly one workload identity: a SPIFFE ID or an OIDC issuer and subject"
            raise InvalidRequest(msg, field="identity")

    @property
    def key(self) -> str:
        """The canonical string that must be unique across agents."""
        return str(self.spiffe_id if self.spiffe_id is not None else self.oidc)

    @property
    def kind(self) -> str:
        return "spiffe" if self.spiffe_id is not None else "oidc"


# ---------------------------------------------------------------- people and purposes


@dataclass(frozen=True, slots=True, kw_only=True)
class Owner:
    """An accountable human or team; agents are traced back to one."""

    id: str
    name: str
    email: str
    status: OwnerStatus
    # Human sign-in identities of this person: never bindable as an agent identity.
    human_identities: tuple[OidcSubject, ...] = ()
    created_at: dt.datetime
    updated_at: dt.datetime
    offboarded_at: dt.datetime | None = None
    revision: int = 1

    @property
    def is_active(self) -> bool:
        return self.status is OwnerStatus.ACTIVE


@dataclass(frozen=True, slots=True, kw_only=True)
class BusinessFunction:
    """Why agents exist ("invoice reconciliation"); each agent serves exactly one."""

    id: str
    name: str
    description: str
    owner_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    """A workload identity with an accountable owner, a business function and a review date."""

    id: str
    name: str
    binding: WorkloadBinding
    owner_id: str | None
    function_id: str | None
    environments: frozenset[str]
    status: AgentStatus
    review_by: dt.date
    description: str = ""
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int = 1

    @property
    def is_active(self) -> bool:
        return self.status is AgentStatus.ACTIVE

    def review_overdue(self, today: dt.date) -> bool:
        return today > self.review_by


@dataclass(frozen=True, slots=True)
class Traceability:
    """Whether an agent can be traced to an active owner and a business function, and if not, why."""

    agent_id: str
    problems: tuple[str, ...]

    @property
    def is_traceable(self) -> bool:
        return not self.problems


# ---------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class ToolAction:
    """One thing a tool can do, with the harm it can cause."""

    name: str
    risk_class: RiskClass
    description: str = ""


@dataclass(frozen=True, slots=True)
class ToolResource:
    """A family of resources a tool acts on; the registry, not the caller, says how sensitive they are."""

    pattern: str
    sensitivity: Sensitivity
    environment: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """Something agents call (`github`), its actions with risk classes and its resources with sensitivities."""

    id: str
    name: str
    description: str
    actions: tuple[ToolAction, ...]
    resources: tuple[ToolResource, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    revision: int = 1

    def __post_init__(self) -> None:
        names = [a.name for a in self.actions]
        if not names:
            raise InvalidRequest("a tool needs at least one action", field="actions")
        if len(set(names)) != len(names):
            raise InvalidRequest("action names must be unique within a tool", field="actions")
        patterns = [r.pattern for r in self.resources]
        if not patterns:
            raise InvalidRequest("a tool needs at least one resource pattern", field="resources")
        if len(set(patterns)) != len(patterns):
            raise InvalidRequest("resource patterns must be unique within a tool", field="resources")

    def action(self, name: str) -> ToolAction | None:
        return next((a for a in self.actions if a.name == name), None)

    def sensitivity_of(self, resource: str) -> Sensitivity | None:
        """The strictest sensitivity among the registered patterns the resource matches; None if unknown."""
        found = [r.sensitivity for r in self.resources if matches(r.pattern, resource)]
        return max(found) if found else None

    def ceiling_for(self, pattern: str) -> Sensitivity | None:
        """The strictest sensitivity any resource matching `pattern` can have; None if it matches no registered one."""
        found = [r.sensitivity for r in self.resources if patterns_overlap(r.pattern, pattern)]
        return max(found) if found else None


# ---------------------------------------------------------------- workflows and grants


@dataclass(frozen=True, slots=True, order=True)
class WorkflowStep:
    """One (tool, action, resource pattern) a workflow version may need."""

    tool: str
    action: str
    resource: str

    @classmethod
    def parse(cls, tool: str, action: str, resource: str, *, field: str = "steps") -> Self:
        return cls(
            tool=parse_name(tool, field=f"{field}.tool"),
            action=parse_name(action, field=f"{field}.action"),
            resource=parse_pattern(resource, field=f"{field}.resource"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowVersion:
    """One version of a named workflow: what a kind of task may do and for how long.

    A draft may change; an approved version is immutable and pinned by its content hash.
    """

    id: str
    name: str
    version: int
    function_id: str
    description: str
    steps: tuple[WorkflowStep, ...]
    max_duration: dt.timedelta
    state: WorkflowState
    created_at: dt.datetime
    updated_at: dt.datetime
    approved_by: str | None = None
    approved_at: dt.datetime | None = None
    content_hash: str | None = None
    ended_at: dt.datetime | None = None
    revision: int = 1

    def __post_init__(self) -> None:
        if not self.steps:
            raise InvalidRequest("a workflow needs at least one step", field="steps")
        if len(set(self.steps)) != len(self.steps):
            raise InvalidRequest("workflow steps must be unique", field="steps")
        if not (dt.timedelta(seconds=1) <= self.max_duration <= MAX_DURATION):
            msg = f"max_duration must be between 1 second and {MAX_DURATION.days} days"
            raise InvalidRequest(msg, field="max_duration_seconds")

    @property
    def ref(self) -> str:
        """`name@version`, how tasks name it."""
        return f"{self.name}@{self.version}"

    def compute_hash(self) -> str:
        """SHA-256 over a canonical JSON of everything approval vouches for."""
        content = {
            "name": self.name,
            "version": self.version,
            "function_id": self.function_id,
            "description": self.description,
            "steps": [[s.tool, s.action, s.resource] for s in sorted(self.steps)],
            "max_duration_seconds": int(self.max_duration.total_seconds()),
        }
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return "sha256:" + hashlib.sha256(encoded.encode()).hexdigest()

    def approved(self, *, by: str, at: dt.datetime) -> WorkflowVersion:
        return replace(
            self,
            state=WorkflowState.APPROVED,
            approved_by=by,
            approved_at=at,
            content_hash=self.compute_hash(),
            updated_at=at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """A standing permission: only `read` on `public`/`internal` resources may stand."""

    id: str
    agent_id: str
    tool: str
    action: str
    resource: str
    created_by: str
    created_at: dt.datetime
    reason: str = ""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, ordered by id; `next_cursor` continues it (None on the last page)."""

    items: tuple[T, ...]
    next_cursor: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
