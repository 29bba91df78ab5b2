"""Ports of the decision path: the policy engine, the policy store, live elevations, and objective strikes."""

from __future__ import annotations

from typing import Protocol

from remit.core.authorization.models import Elevation, PolicyRequest, PolicyResult

__all__ = ["Elevations", "NoElevations", "ObjectiveStrikes", "PolicyEvaluator", "TaskEnder"]


class PolicyEvaluator(Protocol):
    """Evaluates the active policy set, compiled once per version; swapped atomically on activation."""

    @property
    def version(self) -> int | None:
        """The active policy-set version, or None when no policy set is loaded (then everything is denied)."""
        ...

    def evaluate(self, request: PolicyRequest) -> PolicyResult:
        """Never raises for a well-formed request: evaluation errors come back in `PolicyResult.errors`."""
        ...


class Elevations(Protocol):
    """Live just-in-time elevations, bound to task, action and resource (implemented by the approvals issue)."""

    def find(self, *, task_id: str, tool: str, action: str, resource: str) -> Elevation | None:
        """A live elevation matching exactly, or None."""
        ...

    def consume(self, elevation: Elevation) -> bool:
        """Use the elevation once; False when it was used up or expired in the meantime."""
        ...


class NoElevations:
    """Before approvals exist: there is never an elevation, so every high-risk action needs a step-up."""

    def find(self, *, task_id: str, tool: str, action: str, resource: str) -> Elevation | None:  # noqa: ARG002
        return None

    def consume(self, elevation: Elevation) -> bool:  # noqa: ARG002
        return False


class ObjectiveStrikes(Protocol):
    """Counts out-of-objective requests per task, durably and across replicas."""

    def count(self, task_id: str) -> int:
        """Out-of-objective refusals recorded for the task so far (including the one just recorded)."""
        ...


class TaskEnder(Protocol):
    """Ends a running task (and its descendants) with a reason; a task already ended is left alone."""

    def __call__(self, task_id: str, *, reason: str) -> None: ...
