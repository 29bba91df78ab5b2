"""Versioned policy documents, the active policy set and its generation, and the use cases that change them.

A policy document has a name and immutable, numbered versions (Cedar text pinned by its SHA-256).
At most one version of each name is active; the active policy set is every active version, and its
`generation` increases on each activation or deactivation, so every replica can tell cheaply whether
the set it compiled is still the current one. Text is validated against the schema generated from
the registry's tools before it is stored, and again when it is activated (tools may have changed).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.events import DomainEvent
from remit.core.registry.models import Page, Tool, parse_name, parse_text
from remit.errors import Conflict, FieldError, InvalidRequest, NotFound

if TYPE_CHECKING:
    from remit.core.authorization.ports import PolicyTransaction, PolicyUnitOfWork, PolicyValidator
    from remit.core.clock import Clock
    from remit.core.events import EventBus
    from remit.core.ids import IdFactory

__all__ = [
    "MAX_POLICY_TEXT",
    "RESERVED_NAMES",
    "ActivePolicySet",
    "PolicyDiagnostic",
    "PolicyDocument",
    "PolicySchema",
    "PolicyService",
    "PolicySetChanged",
    "PolicyVersion",
    "parse_policy_ref",
]

# A policy document is for people to review: 64 KiB of Cedar is far more than any sane one needs.
MAX_POLICY_TEXT: Final = 65_536
MAX_DESCRIPTION: Final = 500
MAX_PAGE: Final = 500
_TOOLS_PAGE: Final = 500
# Names that are paths of the policy API (`/v1/policies/schema`), never policy names.
RESERVED_NAMES: Final = frozenset({"schema", "active"})
_REF = re.compile(r"^(?P<name>[^@]+)@(?P<version>[1-9][0-9]{0,8})$")


def parse_policy_ref(raw: str, *, field: str = "ref") -> tuple[str, int]:
    """`name@version` → (name, version); anything else is InvalidRequest."""
    found = _REF.match(raw.strip())
    if found is None:
        raise InvalidRequest("name a policy version as NAME@VERSION (for example base@1)", field=field)
    return parse_name(found["name"], field=field), int(found["version"])


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyVersion:
    """One immutable version of a policy document: Cedar text, pinned by its SHA-256."""

    id: str
    name: str
    version: int
    text: str
    sha256: str
    description: str
    created_by: str
    created_at: dt.datetime

    @property
    def ref(self) -> str:
        """`name@version`: how decisions, audit records and commands name it."""
        return f"{self.name}@{self.version}"

    @staticmethod
    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyDocument:
    """A named policy: how many versions it has and which one (if any) is active."""

    name: str
    latest_version: int
    active_version: int | None
    created_at: dt.datetime
    updated_at: dt.datetime
    activated_by: str | None = None
    activated_at: dt.datetime | None = None

    @property
    def active_ref(self) -> str | None:
        return None if self.active_version is None else f"{self.name}@{self.active_version}"


@dataclass(frozen=True, slots=True)
class ActivePolicySet:
    """Every active version at one generation; `version` is None when nothing is active (deny everything)."""

    generation: int
    versions: tuple[PolicyVersion, ...] = ()

    @property
    def version(self) -> int | None:
        return self.generation if self.versions else None

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(v.ref for v in self.versions)


@dataclass(frozen=True, slots=True)
class PolicyDiagnostic:
    """One problem the policy language found: in which policy (its `@id` or position; empty when unknown), and what."""

    policy: str
    message: str


@dataclass(frozen=True, slots=True)
class PolicySchema:
    """The schema policies are validated against, in the policy language's own syntax and as JSON."""

    text: str
    json: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicySetChanged(DomainEvent):
    """A policy version was activated or deactivated: the active set is now at `generation`."""

    generation: int


def _invalid(message: str, diagnostics: Sequence[PolicyDiagnostic], *, ref: str | None = None) -> InvalidRequest:
    # Each diagnostic is one `errors` entry: loc names the text and the policy inside it.
    errors = [
        FieldError(loc=("text", d.policy) if d.policy else ("text",), type="cedar", msg=d.message) for d in diagnostics
    ]
    details = {} if ref is None else {"policy": ref}
    return InvalidRequest(message, details=details, errors=errors)


def _page_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        msg = f"limit must be between 1 and {MAX_PAGE}"
        raise InvalidRequest(msg, field="limit")
    return limit


class PolicyService:
    """Add, list, show, activate and deactivate policy versions; each change is audited in its transaction."""

    def __init__(
        self,
        uow: PolicyUnitOfWork,
        *,
        validator: PolicyValidator,
        clock: Clock,
        ids: IdFactory,
        bus: EventBus,
    ) -> None:
        self._uow = uow
        self._validator = validator
        self._clock = clock
        self._ids = ids
        self._bus = bus

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _tools(tx: PolicyTransaction) -> tuple[Tool, ...]:
        tools: list[Tool] = []
        after: str | None = None
        while True:
            page = tx.registry.list_tools(limit=_TOOLS_PAGE, after=after)
            tools.extend(page.items)
            if page.next_cursor is None:
                return tuple(tools)
            after = page.next_cursor

    def _record(self, tx: PolicyTransaction, event_type: str, actor: str, subject: str, data: dict[str, Any]) -> None:
        tx.audit.append(
            AuditEvent(
                id=self._ids.new("event"),
                type=event_type,
                occurred_at=self._clock.now(),
                actor=AuditActor(ActorKind.OPERATOR, actor),
                subject_kind="policy",
                subject_id=subject,
                data=data,
            )
        )

    @staticmethod
    def _document(tx: PolicyTransaction, name: str) -> PolicyDocument:
        document = tx.policies.get_document(parse_name(name))
        if document is None:
            msg = f"no policy {name!r}"
            raise NotFound(msg)
        return document

    @staticmethod
    def _version(tx: PolicyTransaction, name: str, version: int) -> PolicyVersion:
        found = tx.policies.get_version(parse_name(name), version)
        if found is None:
            msg = f"no policy version {name}@{version}"
            raise NotFound(msg)
        return found

    def _changed(self, tx: PolicyTransaction) -> tuple[int, tuple[str, ...]]:
        generation = tx.policies.bump_generation(self._clock.now())
        return generation, tuple(v.ref for v in tx.policies.active_versions())

    # ------------------------------------------------------------ use cases

    def add(self, *, name: str, text: str, description: str = "", actor: str) -> PolicyVersion:
        """Store the next version of a policy (version 1 for a new name) after validating it; it is not active yet."""
        name = parse_name(name)
        if name in RESERVED_NAMES:
            msg = f"{name!r} is reserved; choose another name"
            raise InvalidRequest(msg, field="name")
        if not text.strip():
            raise InvalidRequest("a policy needs at least one Cedar policy", field="text")
        if len(text) > MAX_POLICY_TEXT:
            msg = f"a policy is at most {MAX_POLICY_TEXT} characters"
            raise InvalidRequest(msg, field="text")
        description = parse_text(description, field="description", max_length=MAX_DESCRIPTION, required=False)
        now = self._clock.now()
        with self._uow() as tx:
            diagnostics = self._validator.check(text, tools=self._tools(tx))
            if diagnostics:
                raise _invalid("the policy does not validate against the schema", diagnostics)
            existing = tx.policies.get_document(name)
            version = PolicyVersion(
                id=self._ids.new("policy"),
                name=name,
                version=1 if existing is None else existing.latest_version + 1,
                text=text,
                sha256=PolicyVersion.digest(text),
                description=description,
                created_by=actor,
                created_at=now,
            )
            if existing is not None:
                latest = tx.policies.get_version(name, existing.latest_version)
                if latest is not None and latest.sha256 == version.sha256:
                    msg = f"the text is identical to {latest.ref}"
                    raise Conflict(msg, details={"policy": latest.ref})
            tx.policies.add_version(version)
            self._record(
                tx,
                "policy.added",
                actor,
                version.id,
                {"ref": version.ref, "sha256": version.sha256, "description": description},
            )
        return version

    def activate(self, name: str, version: int, *, actor: str) -> tuple[PolicyDocument, int]:
        """Make `name@version` the active version of its policy (replacing any other); returns the new generation."""
        now = self._clock.now()
        with self._uow() as tx:
            document = self._document(tx, name)
            target = self._version(tx, document.name, version)
            if document.active_version == version:
                msg = f"{target.ref} is already active"
                raise Conflict(msg)
            # Tools may have changed since the text was added: activate only what still validates.
            diagnostics = self._validator.check(target.text, tools=self._tools(tx))
            if diagnostics:
                raise _invalid(f"{target.ref} no longer validates against the schema", diagnostics, ref=target.ref)
            tx.policies.set_active(document.name, version, by=actor, at=now)
            generation, active = self._changed(tx)
            self._record(
                tx,
                "policy.activated",
                actor,
                target.id,
                {
                    "ref": target.ref,
                    "sha256": target.sha256,
                    "replaced": document.active_ref,
                    "generation": generation,
                    "active": list(active),
                },
            )
            changed = self._document(tx, document.name)
        self._bus.publish(PolicySetChanged(generation=generation))
        return changed, generation

    def deactivate(self, name: str, *, actor: str) -> tuple[PolicyDocument, int]:
        """Take a policy out of the active set; returns the new generation."""
        now = self._clock.now()
        with self._uow() as tx:
            document = self._document(tx, name)
            if document.active_version is None:
                msg = f"policy {document.name} has no active version"
                raise Conflict(msg)
            current = self._version(tx, document.name, document.active_version)
            tx.policies.set_active(document.name, None, by=actor, at=now)
            generation, active = self._changed(tx)
            self._record(
                tx,
                "policy.deactivated",
                actor,
                current.id,
                {"ref": current.ref, "generation": generation, "active": list(active)},
            )
            changed = self._document(tx, document.name)
        self._bus.publish(PolicySetChanged(generation=generation))
        return changed, generation

    def get(self, name: str) -> PolicyDocument:
        with self._uow() as tx:
            return self._document(tx, name)

    def versions(self, name: str) -> tuple[PolicyDocument, tuple[PolicyVersion, ...]]:
        """A policy and every one of its versions, oldest first."""
        with self._uow() as tx:
            document = self._document(tx, name)
            return document, tuple(tx.policies.versions(document.name))

    def get_version(self, name: str, version: int) -> PolicyVersion:
        with self._uow() as tx:
            return self._version(tx, name, version)

    def list(self, *, limit: int = 100, after: str | None = None) -> Page[PolicyDocument]:
        with self._uow() as tx:
            return tx.policies.list_documents(limit=_page_limit(limit), after=after)

    def schema(self) -> PolicySchema:
        """The schema generated from the registry's current tools: what a policy is validated against."""
        with self._uow() as tx:
            return self._validator.schema(tools=self._tools(tx))

    def check(self, text: str) -> tuple[PolicyDiagnostic, ...]:
        """Validate text against the current schema without storing it (for `policy test` and editors)."""
        if len(text) > MAX_POLICY_TEXT:
            msg = f"a policy is at most {MAX_POLICY_TEXT} characters"
            raise InvalidRequest(msg, field="text")
        with self._uow() as tx:
            return self._validator.check(text, tools=self._tools(tx))

    # ------------------------------------------------------------ what the policy engine reads

    def generation(self) -> int:
        """The current generation: one indexed read, cheap enough to poll every second."""
        with self._uow() as tx:
            return tx.policies.generation()

    def active_set(self) -> ActivePolicySet:
        """Every active version and the generation they belong to, read consistently."""
        with self._uow() as tx:
            # Read the generation on both sides of the versions: under READ COMMITTED an activation
            # may commit in between, and a set must never be labelled with another set's generation.
            for _ in range(5):
                before = tx.policies.generation()
                versions = tuple(tx.policies.active_versions())
                if tx.policies.generation() == before:
                    return ActivePolicySet(generation=before, versions=versions)
        msg = "the active policy set kept changing while it was read"
        raise Conflict(msg)
