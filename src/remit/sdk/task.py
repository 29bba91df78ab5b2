"""`with client.task(...) as task:` — a task whose credentials live and die with the block.

On normal exit the task is completed, on an exception it is failed (with the exception's type, never its
message, which may hold data), so a crashed agent does not leave a live credential behind. The credential is
re-issued with fresh evidence when it nears expiry or after an objective change.
"""

from __future__ import annotations

import datetime as dt
import time

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from remit.errors import ApprovalDenied, ApprovalExpired, ApprovalRequired, Denied, RemitError, TaskNotActive
from remit.wire.approvals import ApprovalOut
from remit.wire.decisions import DecisionIn, DecisionOut
from remit.wire.tasks import CredentialOut, TaskIn, TaskOut

if TYPE_CHECKING:
    from remit.sdk.client import RemitClient
    from remit.sdk.evidence import EvidenceSource

__all__ = ["TaskSession"]

# Re-issue this long before expiry so a call in flight never carries an expired credential.
REFRESH_MARGIN: Final = dt.timedelta(seconds=30)
# One long-poll asks the server to hold the request at most this long.
LONG_POLL_SECONDS: Final = 25.0


class TaskSession:
    """A declared task and its current credential."""

    def __init__(self, client: RemitClient, declaration: TaskIn, evidence: EvidenceSource) -> None:
        self._client = client
        self._declaration = declaration
        self._evidence = evidence
        self._task: TaskOut | None = None
        self._credential: CredentialOut | None = None
        self._ended = False

    def __enter__(self) -> Self:
        started = self._client.start_task(self._declaration)
        self._task, self._credential = started.task, started.credential
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._ended or self._task is None:
            return
        try:
            if exc_type is None:
                self.complete()
            else:
                self.fail(f"agent raised {exc_type.__name__}")
        except TaskNotActive:
            # Already ended elsewhere (deadline, revocation, an operator): nothing is left to revoke.
            self._ended = True
        except RemitError:
            if exc_type is None:
                raise

    @property
    def id(self) -> str:
        return self._require_task().id

    @property
    def task(self) -> TaskOut:
        return self._require_task()

    def _require_task(self) -> TaskOut:
        if self._task is None:
            raise TaskNotActive("the task has not started; use it as a context manager")
        return self._task

    @property
    def token(self) -> str:
        """The current credential, re-issued first when it is about to expire."""
        credential = self._credential
        if credential is None or self._ended:
            raise TaskNotActive("the task has ended")
        if credential.expires_at - REFRESH_MARGIN <= dt.datetime.now(dt.UTC):  # noqa: TID251 - SDK runs on the host clock
            credential = self.refresh()
        return credential.access_token

    def headers(self) -> dict[str, str]:
        """The `Authorization` header for a call to the task's tool or gateway."""
        return {"Authorization": f"Bearer {self.token}"}

    def check(
        self, tool: str, action: str, resource: str, *, context: Mapping[str, str | int | bool] | None = None
    ) -> DecisionOut:
        """Ask whether this task may make a call now, without acting: a recorded dry run.

        It uses no elevation and counts no out-of-objective strike; the enforcement point decides
        again, for real, when the call is made.
        """
        request = DecisionIn(
            credential=self.token, tool=tool, action=action, resource=resource, context=dict(context or {})
        )
        return self._client.decide(request, explain=True)

    def call(
        self,
        tool: str,
        action: str,
        resource: str,
        *,
        context: Mapping[str, str | int | bool] | None = None,
        audience: str | None = None,
        wait_for_approval: float | None = None,
    ) -> DecisionOut:
        """Decide this call for real (it uses an elevation when one covers it); returns the allow.

        On `step_up`, without `wait_for_approval` it raises `ApprovalRequired` naming the approval
        request; with it, it waits up to that many seconds for the approvers (long-polling with the
        task credential), then decides again: the approved elevation covers exactly this call.
        Raises `ApprovalDenied` or `ApprovalExpired` when the request ends without approval,
        `ApprovalRequired` when the wait ran out, and `Denied` for a refusal.
        """

        def decide() -> DecisionOut:
            request = DecisionIn(
                credential=self.token,
                tool=tool,
                action=action,
                resource=resource,
                audience=audience,
                context=dict(context or {}),
            )
            return self._client.decide(request)

        decision = decide()
        if decision.effect == "step_up" and decision.approval_id is not None:
            if wait_for_approval is None:
                raise ApprovalRequired(
                    "this call needs a human approval",
                    details={"approval_id": decision.approval_id, "decision_id": decision.decision_id},
                )
            self.wait_for_approval(decision.approval_id, timeout=wait_for_approval)
            decision = decide()
        if decision.allowed:
            return decision
        reasons = [r.id for r in decision.reasons]
        details = {"decision_id": decision.decision_id, "reasons": reasons, "effect": decision.effect}
        if decision.approval_id is not None:
            details["approval_id"] = decision.approval_id
        raise Denied(f"the call was not allowed ({', '.join(reasons) or decision.effect})", details=details)

    def wait_for_approval(self, approval_id: str, *, timeout: float) -> ApprovalOut:
        """Wait (long-poll) until the approval request is approved; raise if it is denied, expires, or time runs out."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            remaining = deadline - time.monotonic()
            approval = self._client.get_approval(
                approval_id, wait=max(0.0, min(remaining, LONG_POLL_SECONDS)), credential=self.token
            )
            details = {"approval_id": approval_id, "state": approval.state}
            if approval.state == "approved":
                return approval
            if approval.state == "denied":
                raise ApprovalDenied(
                    f"the approval request was denied: {approval.reason or 'no reason'}",
                    details={**details, "reason": approval.reason},
                )
            if approval.state == "expired":
                raise ApprovalExpired("the approval request timed out before it was approved", details=details)
            if time.monotonic() >= deadline:
                raise ApprovalRequired(f"still waiting for approval after {timeout:g} s", details=details)

    def refresh(self) -> CredentialOut:
        """A new credential for this task, with fresh evidence."""
        self._credential = self._client.reissue_credential(self.id, self._evidence.evidence())
        return self._credential

    def change_objective(self, objective: str) -> TaskOut:
        """Declare a new objective: every earlier credential dies; a new one is issued at once."""
        assert self._credential is not None  # noqa: S101 - set on enter
        self._task = self._client.change_objective(self.id, objective, credential=self._credential.access_token)
        self.refresh()
        return self._task

    def complete(self, reason: str = "") -> TaskOut:
        return self._end("completed", reason)

    def fail(self, reason: str = "") -> TaskOut:
        return self._end("failed", reason)

    def cancel(self, reason: str = "") -> TaskOut:
        return self._end("cancelled", reason)

    def _end(self, outcome: str, reason: str) -> TaskOut:
        if self._credential is None:
            raise TaskNotActive("the task has not started")
        self._task = self._client.end_task(self.id, outcome, reason=reason, credential=self._credential.access_token)
        self._ended = True
        return self._task
