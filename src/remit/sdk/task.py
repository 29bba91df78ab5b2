"""`with client.task(...) as task:` — a task whose credentials live and die with the block.

On normal exit the task is completed, on an exception it is failed (with the exception's type, never its
message, which may hold data), so a crashed agent does not leave a live credential behind. The credential is
re-issued with fresh evidence when it nears expiry or after an objective change.

With a DPoP key (RFC 9449) the credential is bound to it at issuance, and every later use the session
makes of it carries a fresh proof for exactly that request. `task.delegate(...)` starts a child task
(docs/credentials.md, delegation): the parent gets a short-lived delegation credential (audience = the
issuer), the child presents it as `parent_token`, and the parent gives it up as soon as the child runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Self

from remit.errors import (
    ApprovalDenied,
    ApprovalExpired,
    ApprovalRequired,
    CredentialExpired,
    CredentialRevoked,
    Denied,
    Forbidden,
    RemitError,
    TaskNotActive,
)
from remit.sdk.dpop import DpopKey
from remit.wire.approvals import ApprovalOut
from remit.wire.decisions import DecisionIn, DecisionOut
from remit.wire.tasks import AuthorizationDetailIn, CredentialOut, TaskIn, TaskOut, TaskStarted

if TYPE_CHECKING:
    from remit.sdk.client import RemitClient
    from remit.sdk.evidence import EvidenceSource

__all__ = ["TaskSession", "authorization_details", "dpop_key_for"]

# Re-issue this long before expiry so a call in flight never carries an expired credential.
REFRESH_MARGIN: Final = dt.timedelta(seconds=30)
# One long-poll asks the server to hold the request at most this long.
LONG_POLL_SECONDS: Final = 25.0


def authorization_details(
    tools: Mapping[str, Sequence[str]] | Sequence[AuthorizationDetailIn], resources: Sequence[str]
) -> list[AuthorizationDetailIn]:
    """`tools` as {tool: [actions]} applied to `resources`, or explicit RFC 9396 details taken as they are."""
    if isinstance(tools, Mapping):
        return [
            AuthorizationDetailIn(tool=tool, actions=list(actions), resources=list(resources))
            for tool, actions in tools.items()
        ]
    return list(tools)


def dpop_key_for(dpop: bool | DpopKey) -> DpopKey | None:
    """`True` makes a fresh key (raises ImportError naming `remit[dpop]` without `cryptography`)."""
    if isinstance(dpop, DpopKey):
        return dpop
    return DpopKey.generate() if dpop else None


class TaskSession:
    """A declared task and its current credential (DPoP-bound when the session has a key)."""

    def __init__(
        self,
        client: RemitClient,
        declaration: TaskIn,
        evidence: EvidenceSource,
        *,
        dpop: DpopKey | None = None,
        parent: TaskSession | None = None,
    ) -> None:
        self._client = client
        self._declaration = declaration
        self._evidence = evidence
        self._dpop = dpop
        self._parent = parent
        self._task: TaskOut | None = None
        self._credential: CredentialOut | None = None
        self._ended = False

    def __enter__(self) -> Self:
        if self._parent is None:
            started = self._client.start_task(self._declaration, dpop=self._dpop)
        else:
            started = self._start_delegated(self._parent)
        self._task, self._credential = started.task, started.credential
        return self

    def _start_delegated(self, parent: TaskSession) -> TaskStarted:
        # The delegation credential is a Bearer token: the server verifies a `parent_token` without a
        # proof, so a DPoP-bound one could not delegate. It lives only until the child has started.
        delegation = parent.delegation_credential()
        try:
            declaration = self._declaration.model_copy(update={"parent_token": delegation.access_token})
            return self._client.start_task(declaration, dpop=self._dpop)
        except Forbidden as error:
            if error.details.get("reason") != "delegation_too_deep":
                raise
            depth = len(parent.task.lineage)
            msg = (
                f"task {parent.id} cannot delegate: it is already at delegation depth {depth} and the server "
                "refuses a deeper child (credentials.max_delegation_depth)"
            )
            raise Forbidden(msg, details=error.details) from error
        finally:
            with contextlib.suppress(RemitError):
                self._client.revoke_credential(delegation.access_token)

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
    def dpop_key(self) -> DpopKey | None:
        """The key the credential is bound to, or None for a Bearer credential."""
        return self._dpop

    @property
    def token_type(self) -> str:
        """`DPoP` or `Bearer`, as the server issued the current credential."""
        if self._credential is None:
            raise TaskNotActive("the task has not started; use it as a context manager")
        return self._credential.token_type

    @property
    def token(self) -> str:
        """The current credential, re-issued first when it is about to expire."""
        credential = self._credential
        if credential is None or self._ended:
            raise TaskNotActive("the task has ended")
        if credential.expires_at - REFRESH_MARGIN <= dt.datetime.now(dt.UTC):  # noqa: TID251 - SDK runs on the host clock
            credential = self.refresh()
        return credential.access_token

    def headers(self, method: str | None = None, url: str | None = None) -> dict[str, str]:
        """The headers for one call to the task's tool or gateway.

        A Bearer credential needs only `Authorization`. A DPoP-bound one needs the call's `method` and
        `url` too: it gets `Authorization: DPoP …` and a fresh `DPoP` proof for exactly that request.
        """
        token = self.token
        if self._dpop is None:
            return {"Authorization": f"Bearer {token}"}
        if method is None or url is None:
            msg = "a DPoP-bound credential needs the call's method and URL: task.headers('POST', url)"
            raise ValueError(msg)
        return {"Authorization": f"DPoP {token}", "DPoP": self._dpop.proof(method, url, access_token=token)}

    def dpop_proof(self, method: str, url: str) -> str:
        """A fresh DPoP proof of the current credential for one request (the tool forwards it with its decision)."""
        if self._dpop is None:
            msg = "this task's credential is not DPoP-bound: start it with client.task(..., dpop=True)"
            raise ValueError(msg)
        token = self.token
        return self._dpop.proof(method, url, access_token=token)

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
        return self._client.decide(request, explain=True, dpop=self._dpop)

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
            return self._client.decide(request, dpop=self._dpop)

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
                approval_id,
                wait=max(0.0, min(remaining, LONG_POLL_SECONDS)),
                credential=self.token,
                dpop=self._dpop,
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
        """A new credential for this task, with fresh evidence (bound to the session's DPoP key, if any)."""
        self._credential = self._client.reissue_credential(self.id, self._evidence.evidence(), dpop=self._dpop)
        return self._credential

    def delegation_credential(self) -> CredentialOut:
        """A credential of this task for the issuer, which a child task presents as `parent_token`.

        It is a Bearer credential: a bound one would need a proof from this session's key in the child's
        start request, which carries the child's own. Hand it only to the child, and revoke it once the
        child has started (`delegate` does both).
        """
        self._require_task()
        return self._client.reissue_credential(self.id, self._evidence.evidence(), audience=self._client.issuer())

    def delegate(  # noqa: PLR0913 - the child's declaration, each part named
        self,
        *,
        workflow: str,
        objective: str,
        tools: Mapping[str, Sequence[str]] | Sequence[AuthorizationDetailIn],
        resources: Sequence[str] = (),
        expected_duration_seconds: int,
        audience: str,
        evidence: EvidenceSource | None = None,
        dpop: bool | DpopKey | None = None,
    ) -> TaskSession:
        """`with task.delegate(...) as child:` — a child task inside this one's scope, ended like any session.

        The child's tools and resources must lie within this task's (else `InvalidRequest`,
        `wider_than_parent`); it runs in this task's environment and ends no later; it dies with this
        task. `evidence` is the child agent's (default: this agent's). `dpop` defaults to a fresh key of
        its own when this task is DPoP-bound. A child deeper than the server allows is `Forbidden`.
        """
        parent = self._require_task()
        source = evidence or self._evidence
        declaration = TaskIn(
            evidence=source.evidence(),
            workflow=workflow,
            objective=objective,
            authorization_details=authorization_details(tools, resources),
            expected_duration_seconds=expected_duration_seconds,
            environment=parent.environment,
            audience=audience,
        )
        key = dpop_key_for(self._dpop is not None if dpop is None else dpop)
        return TaskSession(self._client, declaration, source, dpop=key, parent=self)

    def change_objective(self, objective: str) -> TaskOut:
        """Declare a new objective: every earlier credential dies; a new one is issued at once."""
        assert self._credential is not None  # noqa: S101 - set on enter
        self._task = self._client.change_objective(
            self.id, objective, credential=self._credential.access_token, dpop=self._dpop
        )
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

        def end(credential: str) -> TaskOut:
            return self._client.end_task(self.id, outcome, reason=reason, credential=credential, dpop=self._dpop)

        try:
            self._task = end(self._credential.access_token)
        except (CredentialRevoked, CredentialExpired):
            # That one credential died (revoked alone, or expired) while the task may still run: end it
            # with a fresh one. A task that is over answers the re-issue with TaskNotActive.
            self._task = end(self.refresh().access_token)
        self._ended = True
        return self._task
