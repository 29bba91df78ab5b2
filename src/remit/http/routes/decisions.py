"""Per-call decisions over HTTP: native `POST /v1/decisions` and OpenID AuthZEN 1.0 evaluation(s).

The enforcement point (a tool, a gateway, an AuthZEN PEP) forwards the agent's task credential and
the call it is about to make; the answer is always 200 with the decision (a deny is a value). The
credential is the authority: its audience must be the asking enforcement point, and a DPoP-bound
credential needs the proof the agent sent. Every decision is durably recorded before the answer;
when it cannot be, the answer is 503 `audit_unavailable` and the enforcement point must not act.

The routes run on the event loop: the decision itself is CPU work on memory in the common case
(`DecisionService.prepare`), and the durable record is awaited through the group-commit writer's
future, so no worker thread is taken per request. A queue that is full, a writer that is not
running, and the rare strike that may end a task fall back to a worker thread.
"""

from __future__ import annotations

import asyncio

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final

import anyio

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from remit.bootstrap import Remit
from remit.core.attestation.waiting import WouldWait, without_waiting
from remit.core.audit.models import AuditEvent
from remit.core.authorization.models import AccessRequest, Decision, Effect, parse_request_context
from remit.core.authorization.service import PendingDecision
from remit.core.credentials.verification import DpopRequest
from remit.core.registry.models import Sensitivity
from remit.errors import AuditUnavailable, InvalidRequest
from remit.http.problems import problem_responses
from remit.wire.decisions import (
    AuthzenConfiguration,
    AuthzenEvaluation,
    AuthzenEvaluationIn,
    AuthzenEvaluationOut,
    AuthzenEvaluationsIn,
    AuthzenEvaluationsOut,
    DecisionIn,
    DecisionOut,
    ReasonOut,
)

__all__ = ["authzen_configuration", "decide", "evaluation", "evaluations"]

_REQUEST_ID: Final = "X-Request-ID"
_MAX_HEADER: Final = 128
# A record not durable after this long is treated as not written: the caller gets 503 and must not act.
_RECORD_TIMEOUT_SECONDS: Final = 30.0
_Explain = QueryParameter(
    name="explain", description="dry run: include the facts decided on; uses no elevation, counts no strike"
)


def decision_out(decision: Decision, *, explain: bool = False) -> DecisionOut:
    # An explain is a dry run: it used no elevation, so it must never read as permission to act.
    return DecisionOut(
        decision_id=decision.id,
        effect=decision.effect.value,
        allowed=decision.allowed and not explain,
        dry_run=explain,
        reasons=[ReasonOut.model_validate(r.as_json()) for r in decision.reasons],
        policy_version=decision.policy_version,
        decided_at=decision.decided_at,
        task_id=decision.inputs.task_id,
        elevation_id=decision.elevation_id,
        approval_id=decision.approval_id,
        inputs=decision.inputs.as_json() if explain else None,
    )


def _sensitivity(raw: object, *, field: str) -> Sensitivity | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidRequest("sensitivity is public, internal, confidential or restricted", field=field)
    return Sensitivity.parse(raw, field=field)


def _optional_text(raw: object, *, field: str, limit: int = 255) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > limit:
        msg = f"{field} is a non-empty string of at most {limit} characters"
        raise InvalidRequest(msg, field=field)
    return raw


def request_id_of(header: str | None) -> str | None:
    """The caller's `X-Request-ID` when it is short and printable (it is echoed and recorded), else None."""
    if header is not None and 0 < len(header) <= _MAX_HEADER and header.isprintable():
        return header
    return None


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    return request_id_of(request.headers.get(_REQUEST_ID))


def access_request_of(body: DecisionIn, request_id: str | None) -> AccessRequest:
    context, _ = parse_request_context(body.context)
    return AccessRequest(
        token=body.credential,
        audience=body.audience or f"tool:{body.tool}",
        tool=body.tool,
        action=body.action,
        resource=body.resource,
        environment=body.environment,
        sensitivity=_sensitivity(body.sensitivity, field="sensitivity"),
        context=context,
        dpop=DpopRequest(body.dpop.proof, body.dpop.method, body.dpop.url) if body.dpop else None,
        correlation_id=request_id or body.correlation_id,
    )


async def _record(remit: Remit, event: AuditEvent) -> None:
    """Return once `event` is durable; AuditUnavailable (503) when it cannot be made so."""
    future = remit.record_soon(event)
    if future is None:
        await anyio.to_thread.run_sync(remit.audit.append, event)
        return
    try:
        async with asyncio.timeout(_RECORD_TIMEOUT_SECONDS):
            await future
    except TimeoutError as exc:
        msg = "the audit record could not be made durable in time"
        raise AuditUnavailable(msg) from exc


async def _prepare(remit: Remit, request: AccessRequest, *, dry_run: bool) -> PendingDecision:
    """Evaluate on the loop (memory only in the common case); settle off it when that writes.

    An evaluation that must read the store (a fact not kept, an elevation lookup) or spend a DPoP proof
    says so (`WouldWait`) before touching it, and runs again in a worker thread.
    """
    service = remit.decisions
    try:
        with without_waiting():
            evaluation = service.evaluate(request)
    except WouldWait:
        # Evaluate and settle in one worker-thread hop: a step-up's elevation lookup and the approval
        # request it opens stay as close together as they can (an approval granted in between would
        # otherwise leave the agent waiting on a second, new request).
        return await anyio.to_thread.run_sync(
            lambda: service.settle(request, service.evaluate(request), dry_run=dry_run)
        )
    if service.settling_writes(evaluation, dry_run=dry_run):
        return await anyio.to_thread.run_sync(lambda: service.settle(request, evaluation, dry_run=dry_run))
    return service.settle(request, evaluation, dry_run=dry_run)


async def decide_and_record(
    remit: Remit, requests: Sequence[AccessRequest], *, dry_run: bool = False
) -> list[Decision]:
    """Decide each request, make every record durable (one group commit for a batch), then answer."""
    pending = [await _prepare(remit, r, dry_run=dry_run) for r in requests]
    if len(pending) == 1:  # the common case, without a task per record
        await _record(remit, pending[0].record)
    else:
        await asyncio.gather(*(_record(remit, p.record) for p in pending))
    decisions = []
    for item in pending:
        if item.counts_strike:
            decisions.append(await anyio.to_thread.run_sync(remit.decisions.complete, item))
        else:
            decisions.append(remit.decisions.complete(item))
    return decisions


@post(
    "/v1/decisions",
    status_code=200,
    tags=["decisions"],
    security=[],
    responses=problem_responses(400, 413, 503),
)
async def decide(
    remit: NamedDependency[Remit],
    request: Request[Any, Any, Any],
    data: JSONBody[DecisionIn],
    explain: Annotated[bool, _Explain] = False,
) -> DecisionOut:
    """Decide one tool call (guardrails, then Cedar); recorded durably before the answer."""
    return await answer_decision(remit, data, _request_id(request), explain=explain)


async def answer_decision(
    remit: Remit, data: DecisionIn, request_id: str | None, *, explain: bool = False
) -> DecisionOut:
    """`POST /v1/decisions`, whichever door it came in by (the framework's route or `http.fast`)."""
    (decision,) = await decide_and_record(remit, [access_request_of(data, request_id)], dry_run=explain)
    return decision_out(decision, explain=explain)


# ------------------------------------------------------------------ AuthZEN 1.0


def _authzen_access_request(item: AuthzenEvaluationIn, request_id: str | None) -> tuple[AccessRequest, tuple[str, ...]]:
    """Map an AuthZEN evaluation onto an access request; returns it and the context names ignored."""
    subject, resource = item.subject.properties, item.resource.properties
    token = subject.get("credential", subject.get("token", ""))
    if not isinstance(token, str):
        raise InvalidRequest("subject.properties.credential is the task credential", field="subject.properties")
    dpop = subject.get("dpop")
    check: DpopRequest | None = None
    if dpop is not None:
        if not isinstance(dpop, Mapping):
            raise InvalidRequest("subject.properties.dpop is {proof, htm, htu}", field="subject.properties.dpop")
        check = DpopRequest(
            _optional_text(dpop.get("proof"), field="subject.properties.dpop.proof", limit=8192),
            _optional_text(dpop.get("htm"), field="subject.properties.dpop.htm", limit=16) or "",
            _optional_text(dpop.get("htu"), field="subject.properties.dpop.htu", limit=2048) or "",
        )
    context, ignored = parse_request_context(item.context, ignore_unknown=True)
    tool = item.resource.type
    return (
        AccessRequest(
            token=token,
            audience=_optional_text(resource.get("audience"), field="resource.properties.audience") or f"tool:{tool}",
            subject=item.subject.id,
            tool=tool,
            action=item.action.name,
            resource=item.resource.id,
            environment=_optional_text(resource.get("environment"), field="resource.properties.environment"),
            sensitivity=_sensitivity(resource.get("sensitivity"), field="resource.properties.sensitivity"),
            context=context,
            dpop=check,
            correlation_id=request_id,
        ),
        ignored,
    )


def _authzen_out(decision: Decision, ignored: tuple[str, ...]) -> AuthzenEvaluationOut:
    reasons = [r.as_json() for r in decision.reasons]
    first = decision.reasons[0] if decision.reasons else None
    context: dict[str, Any] = {
        "id": decision.id,
        "effect": decision.effect.value,
        "reasons": reasons,
        "policy_version": decision.policy_version,
    }
    if first is not None and decision.effect is not Effect.ALLOW:
        context["reason_admin"] = {"en": f"{first.id}: {first.detail}" if first.detail else first.id}
    if decision.approval_id is not None:
        context["approval_id"] = decision.approval_id
    if ignored:
        context["ignored_context"] = list(ignored)
    return AuthzenEvaluationOut(decision=decision.allowed, context=context)


def _echo(request_id: str | None, body: Any) -> Response[Any]:  # noqa: ANN401 - any response model
    return Response(body, status_code=200, headers={_REQUEST_ID: request_id} if request_id else None)


@post(
    "/access/v1/evaluation",
    status_code=200,
    tags=["authzen"],
    security=[],
    responses=problem_responses(400, 413, 503),
)
async def evaluation(
    remit: NamedDependency[Remit], request: Request[Any, Any, Any], data: JSONBody[AuthzenEvaluationIn]
) -> Response[AuthzenEvaluationOut]:
    """AuthZEN 1.0 Access Evaluation: `decision` is true only when Remit allows the call."""
    request_id = _request_id(request)
    return _echo(request_id, await answer_evaluation(remit, data, request_id))


async def answer_evaluation(remit: Remit, item: AuthzenEvaluationIn, request_id: str | None) -> AuthzenEvaluationOut:
    """`POST /access/v1/evaluation`, whichever door it came in by (the framework's route or `http.fast`)."""
    access, ignored = _authzen_access_request(item, request_id)
    (decision,) = await decide_and_record(remit, [access])
    return _authzen_out(decision, ignored)


def _merged(batch: AuthzenEvaluationsIn, item: AuthzenEvaluation) -> AuthzenEvaluationIn:
    subject, action, resource = (
        item.subject or batch.subject,
        item.action or batch.action,
        item.resource or batch.resource,
    )
    if subject is None or action is None or resource is None:
        msg = "each evaluation needs a subject, an action and a resource (its own or the request's)"
        raise InvalidRequest(msg, field="evaluations")
    context = item.context if item.context is not None else (batch.context or {})
    return AuthzenEvaluationIn(subject=subject, action=action, resource=resource, context=context)


@post(
    "/access/v1/evaluations",
    status_code=200,
    tags=["authzen"],
    security=[],
    responses=problem_responses(400, 413, 503),
)
async def evaluations(
    remit: NamedDependency[Remit], request: Request[Any, Any, Any], data: JSONBody[AuthzenEvaluationsIn]
) -> Response[Any]:
    """AuthZEN 1.0 Access Evaluations: several decisions, each recorded, answered in request order."""
    request_id = _request_id(request)
    if not data.evaluations:
        # Without items the request is a single evaluation, answered as one (AuthZEN 1.0 §7.1).
        return _echo(request_id, await answer_evaluation(remit, _merged(data, AuthzenEvaluation()), request_id))
    items = [_authzen_access_request(_merged(data, item), request_id) for item in data.evaluations]
    semantic = data.options.evaluations_semantic
    if semantic == "execute_all":
        decided = await decide_and_record(remit, [access for access, _ in items])
        answers = [_authzen_out(d, ignored) for d, (_, ignored) in zip(decided, items, strict=True)]
        return _echo(request_id, AuthzenEvaluationsOut(evaluations=answers))
    # Short-circuiting semantics: decide (and record) one at a time, and stop where the semantic says.
    answers = []
    for access, ignored in items:
        (decision,) = await decide_and_record(remit, [access])
        answers.append(answer := _authzen_out(decision, ignored))
        if (semantic == "deny_on_first_deny" and not answer.decision) or (
            semantic == "permit_on_first_permit" and answer.decision
        ):
            break
    return _echo(request_id, AuthzenEvaluationsOut(evaluations=answers))


@get("/.well-known/authzen-configuration", sync_to_thread=False, tags=["discovery"], security=[])
def authzen_configuration(remit: NamedDependency[Remit]) -> AuthzenConfiguration:
    """PDP metadata (AuthZEN 1.0 §9)."""
    base = remit.settings.public_url.rstrip("/")
    return AuthzenConfiguration(
        policy_decision_point=base,
        access_evaluation_endpoint=f"{base}/access/v1/evaluation",
        access_evaluations_endpoint=f"{base}/access/v1/evaluations",
    )
