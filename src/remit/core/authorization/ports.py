"""Ports of the decision path: the policy engine, the policy store, live elevations, and objective strikes."""

from __future__ import annotations

import datetime as dt

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from remit.core.audit.ports import AuditStore
from remit.core.authorization.models import Elevation, PolicyRequest, PolicyResult
from remit.core.authorization.policies import PolicyDiagnostic, PolicyDocument, PolicySchema, PolicyVersion
from remit.core.registry.models import Page, RiskClass, Sensitivity, Tool
from remit.core.registry.ports import RegistryStore

__all__ = [
    "ApprovalRequests",
    "ElevationView",
    "Elevations",
    "NoElevations",
    "ObjectiveStrikes",
    "PolicyEvaluator",
    "PolicyStore",
    "PolicyTransaction",
    "PolicyUnitOfWork",
    "PolicyValidator",
    "TaskEnder",
]


class PolicyEvaluator(Protocol):
    """Evaluates the active policy set, compiled once per version; swapped atomically on activation."""

    @property
    def version(self) -> int | None:
        """The active policy-set version, or None when no policy set is loaded (then everything is denied)."""
        ...

    def evaluate(self, request: PolicyRequest) -> PolicyResult:
        """Never raises for a well-formed request: evaluation errors come back in `PolicyResult.errors`."""
        ...


class ElevationView(Protocol):
    """What the decision path reads of an elevation (the approvals feature's records satisfy it)."""

    @property
    def id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    @property
    def expires_at(self) -> dt.datetime: ...


class Elevations(Protocol):
    """Live just-in-time elevations, bound to task, action and resource (implemented by approvals)."""

    def find(
        self,
        *,
        task_id: str,
        epoch: int,
        tool: str,
        action: str,
        resource: str,
        context: Mapping[str, str | int | bool],
    ) -> ElevationView | None:
        """A live elevation matching exactly (task at this epoch, tool, action, resource, request facts), or None.

        The request facts (amount, record count...) are part of what a person approved: a call with
        other facts is not covered, and asks for its own approval.
        """
        ...

    def consume(self, elevation: ElevationView) -> bool:
        """Use the elevation once; False when it was used up or expired in the meantime."""
        ...


class NoElevations:
    """Without approvals wired: there is never an elevation, so every high-risk action needs a step-up."""

    def find(
        self,
        *,
        task_id: str,  # noqa: ARG002
        epoch: int,  # noqa: ARG002
        tool: str,  # noqa: ARG002
        action: str,  # noqa: ARG002
        resource: str,  # noqa: ARG002
        context: Mapping[str, str | int | bool],  # noqa: ARG002
    ) -> Elevation | None:
        return None

    def consume(self, elevation: ElevationView) -> bool:  # noqa: ARG002
        return False


class ApprovalRequests(Protocol):
    """Opens (or reuses an identical pending) approval request for a `step_up` decision (implemented by approvals)."""

    def open(  # noqa: PLR0913 - the decision's facts, each named
        self,
        *,
        decision_id: str,
        task_id: str,
        tool: str,
        action: str,
        resource: str,
        risk_class: RiskClass,
        sensitivity: Sensitivity | None,
        environment: str | None,
        context: Mapping[str, str | int | bool],
    ) -> str:
        """The approval request's id."""
        ...


class ObjectiveStrikes(Protocol):
    """Counts out-of-objective requests per task, durably and across replicas."""

    def count(self, task_id: str) -> int:
        """Out-of-objective refusals recorded for the task so far (including the one just recorded)."""
        ...


class TaskEnder(Protocol):
    """Ends a running task (and its descendants) with a reason; a task already ended is left alone."""

    def __call__(self, task_id: str, *, reason: str) -> None: ...


# ---------------------------------------------------------------- policy storage and validation


class PolicyStore(Protocol):
    """Persistence of policy documents, their versions, which version is active, and the set's generation.

    `add_version` creates the document on its first version and raises `Conflict` on a duplicate
    (name, version). `bump_generation` increments the one generation counter and returns the new
    value; on PostgreSQL its row lock also serialises concurrent activations.
    """

    def add_version(self, version: PolicyVersion) -> None: ...
    def get_version(self, name: str, version: int) -> PolicyVersion | None: ...
    def versions(self, name: str) -> Sequence[PolicyVersion]: ...
    def get_document(self, name: str) -> PolicyDocument | None: ...
    def list_documents(self, *, limit: int, after: str | None) -> Page[PolicyDocument]: ...
    def set_active(self, name: str, version: int | None, *, by: str, at: dt.datetime) -> None: ...
    def active_versions(self) -> Sequence[PolicyVersion]: ...
    def generation(self) -> int: ...
    def bump_generation(self, at: dt.datetime) -> int: ...


class PolicyTransaction(Protocol):
    """What one policy use case reads and writes atomically: policies, the registry's tools, the audit log."""

    @property
    def policies(self) -> PolicyStore: ...

    @property
    def registry(self) -> RegistryStore: ...

    @property
    def audit(self) -> AuditStore: ...


class PolicyUnitOfWork(Protocol):
    """Opens a policy transaction: committed on normal exit, rolled back on an exception."""

    def __call__(self) -> AbstractContextManager[PolicyTransaction]: ...


class PolicyValidator(Protocol):
    """The policy language's checks: parse and validate text against the schema generated from the tools."""

    def check(self, text: str, *, tools: Sequence[Tool]) -> tuple[PolicyDiagnostic, ...]:
        """Every problem found (syntax, unknown action or attribute, type error); empty when the text is valid."""
        ...

    def schema(self, *, tools: Sequence[Tool]) -> PolicySchema:
        """The schema generated from `tools`, for policy authors."""
        ...
