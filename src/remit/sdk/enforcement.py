"""Helpers for enforcement points: how to answer an agent whose call was not allowed.

A `step_up` decision opened an approval request; the enforcement point tells the agent which one,
either as an RFC 9457 problem (`code=approval_required`, HTTP 403) or, for OAuth-style resource
servers, as an RFC 6750 `insufficient_scope` challenge naming it. The agent then waits for the
approval (`GET /v1/approvals/{id}`) and tries again.
"""

from __future__ import annotations

from typing import Any

from remit.errors import ApprovalRequired, Denied, RemitError
from remit.wire.decisions import DecisionOut
from remit.wire.problem import PROBLEM_MEDIA_TYPE, problem_from_error

__all__ = ["denial_problem", "insufficient_scope_challenge", "refusal"]


def denial_problem(decision: DecisionOut, *, instance: str | None = None) -> dict[str, Any]:
    """The RFC 9457 problem body for a call not allowed: `approval_required` (naming the request) or `denied`."""
    details: dict[str, Any] = {"decision_id": decision.decision_id, "reasons": [r.id for r in decision.reasons]}
    error: RemitError
    if decision.effect == "step_up" and decision.approval_id is not None:
        details["approval_id"] = decision.approval_id
        error = ApprovalRequired(
            f"this call needs a human approval: wait for approval request {decision.approval_id}, then retry",
            details=details,
        )
    else:
        error = Denied("the call was not allowed", details=details)
    return problem_from_error(error, status=403, instance=instance).model_dump(mode="json", exclude_none=True)


def insufficient_scope_challenge(decision: DecisionOut, *, realm: str = "remit") -> str:
    """`WWW-Authenticate` for a refusal (RFC 6750 §3.1 `insufficient_scope`), naming the approval request if any."""
    params = [f'realm="{realm}"', 'error="insufficient_scope"']
    if decision.approval_id is not None:
        params.append(f'error_description="approval required: {decision.approval_id}"')
        params.append(f'approval_id="{decision.approval_id}"')
    else:
        params.append('error_description="not allowed"')
    return "Bearer " + ", ".join(params)


def refusal(decision: DecisionOut, *, oauth: bool = False) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, body) answering a call the decision did not allow; `oauth` adds the RFC 6750 challenge."""
    headers = {"Content-Type": PROBLEM_MEDIA_TYPE}
    if oauth:
        headers["WWW-Authenticate"] = insufficient_scope_challenge(decision)
    return 403, headers, denial_problem(decision)
