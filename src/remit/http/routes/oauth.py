"""OAuth doors to the same functions: token exchange, introspection, revocation, discovery.

RFC 8693 token exchange, RFC 7662 introspection, RFC 7009 revocation, RFC 8414 metadata and the JWKS.

Token exchange runs exactly the issuance of `POST /v1/tasks`: `subject_token` is the workload evidence,
`actor_token` a delegation credential of the parent task, the RFC 9396 `authorization_details` carry the
tools and one `remit_task` detail with workflow, objective, duration and environment, and
`resource`/`audience` name the one audience. Errors on these endpoints use the RFC 6749 §5.2 shape.
"""

from __future__ import annotations

import json
import logging

from collections.abc import Mapping
from typing import Annotated, Any, Final

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body

from remit.adapters.jose import parse_compact
from remit.bootstrap import Remit
from remit.core.attestation.models import Evidence
from remit.core.audit.models import ActorKind, AuditActor
from remit.core.credentials.issuance import TaskDeclaration
from remit.core.credentials.models import VerifiedCredential
from remit.core.tasks.models import parse_authorization_details
from remit.errors import (
    AgentUntraceable,
    AttestationFailed,
    CredentialExpired,
    CredentialInvalid,
    CredentialRevoked,
    Forbidden,
    InvalidRequest,
    RemitError,
    TaskNotActive,
    Unauthenticated,
)
from remit.http.auth import bearer_token
from remit.http.mapping import duration_in
from remit.http.routes.tasks import attested_for_issuance
from remit.wire.tasks import ACCESS_TOKEN_TYPE, IntrospectionOut, OAuthErrorOut, TokenExchangeOut

__all__ = [
    "NO_STORE",
    "exchange_token",
    "introspect",
    "introspection_of",
    "jwks",
    "metadata",
    "oauth_refusal",
    "revoke",
    "revoke_presented",
    "token",
]

_log = logging.getLogger("remit.http")

TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a URN
JWT_TYPE: Final = "urn:ietf:params:oauth:token-type:jwt"
ID_TOKEN_TYPE: Final = "urn:ietf:params:oauth:token-type:id_token"  # noqa: S105 - a URN
TASK_DETAIL: Final = "remit_task"
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FIELD: Final = 16_384
_MAX_DURATION: Final = 7 * 86_400

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


def _oauth_error(error: str, description: str) -> OAuthErrorOut:
    return OAuthErrorOut(error=error, error_description=description)


class _Refused(Exception):
    """A token request refused with an RFC 6749 §5.2 error before any RemitError could say why."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.body = _oauth_error(error, description)


def oauth_refusal(failure: RemitError) -> OAuthErrorOut:
    """The RFC 6749 §5.2 body (status 400) for a refused token request; anything else is raised again."""
    match failure:
        case InvalidRequest() if failure.errors and str(failure.errors[0].loc[0]) == "authorization_details":
            return _oauth_error("invalid_authorization_details", failure.message)
        case InvalidRequest() if failure.errors and str(failure.errors[0].loc[0]) == "audience":
            return _oauth_error("invalid_target", failure.message)
        case InvalidRequest():
            return _oauth_error("invalid_request", failure.message)
        case AttestationFailed() | CredentialInvalid() | CredentialExpired() | CredentialRevoked():
            # Which check failed stays in the audit record (ARCHITECTURE §3.6).
            return _oauth_error("invalid_grant", "the subject or actor token was not accepted")
        case AgentUntraceable() | Forbidden() | TaskNotActive():
            return _oauth_error("invalid_grant", failure.message)
    raise failure


def _field(form: Mapping[str, str], name: str, *, required: bool = True) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            msg = f"{name} is required"
            raise InvalidRequest(msg, field=name)
        return None
    if len(value) > _MAX_FIELD:
        msg = f"{name} is too long"
        raise InvalidRequest(msg, field=name)
    return value


def _declaration(form: Mapping[str, str]) -> TaskDeclaration:
    raw = _field(form, "authorization_details")
    try:
        details = json.loads(raw or "")
    except (json.JSONDecodeError, RecursionError):  # nested past the parser's depth: not a declaration either
        raise InvalidRequest("authorization_details is a JSON array", field="authorization_details") from None
    if not isinstance(details, list):
        raise InvalidRequest("authorization_details is a JSON array", field="authorization_details")
    tasks = [d for d in details if isinstance(d, dict) and d.get("type") == TASK_DETAIL]
    tools = [d for d in details if not (isinstance(d, dict) and d.get("type") == TASK_DETAIL)]
    if len(tasks) != 1:
        msg = f"exactly one authorization detail of type {TASK_DETAIL} declares the task"
        raise InvalidRequest(msg, field="authorization_details")
    task = tasks[0]
    unknown = set(task) - {"type", "workflow", "objective", "expected_duration_seconds", "environment", "principal"}
    if unknown:
        msg = f"unknown member(s) of {TASK_DETAIL}: {', '.join(sorted(unknown))}"
        raise InvalidRequest(msg, field="authorization_details")
    duration = task.get("expected_duration_seconds")
    if isinstance(duration, bool) or not isinstance(duration, int) or not 1 <= duration <= _MAX_DURATION:
        msg = f"expected_duration_seconds is an integer from 1 to {_MAX_DURATION}"
        raise InvalidRequest(msg, field="authorization_details")
    for name in ("workflow", "objective", "environment"):
        if not isinstance(task.get(name), str):
            msg = f"{TASK_DETAIL}.{name} is a string"
            raise InvalidRequest(msg, field="authorization_details")
    audiences = [v for v in (form.get("resource"), form.get("audience")) if v]
    if len(set(audiences)) != 1:
        raise InvalidRequest("name exactly one resource or audience (C10)", field="audience")
    principal = task.get("principal")
    return TaskDeclaration(
        workflow=task["workflow"],
        objective=task["objective"],
        details=parse_authorization_details(tools),
        expected_duration=duration_in(duration),
        environment=task["environment"],
        audience=audiences[0],
        parent_token=_field(form, "actor_token", required=False),
        principal=principal if isinstance(principal, str) else None,
    )


def _carries_x5c(token: str) -> bool:
    """Whether a `jwt` subject token's JOSE header carries `x5c`: then it is an X.509-SVID assertion (ADR 0017).

    A JWT-SVID never carries one (its attestor refuses the header). A token that does not even parse is left
    to the JWT-SVID attestor, which refuses it with the parser's reason.
    """
    try:
        return "x5c" in parse_compact(token, max_bytes=_MAX_FIELD).header
    except CredentialInvalid:
        return False


def _exchange_parts(form: Mapping[str, str]) -> tuple[Evidence, TaskDeclaration]:
    """The evidence and the declaration of an RFC 8693 request; `_Refused` or InvalidRequest when malformed."""
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        raise _Refused("unauthorized_client", "agents never receive or use refresh tokens (C09)")
    if grant_type != TOKEN_EXCHANGE:
        raise _Refused("unsupported_grant_type", f"only {TOKEN_EXCHANGE} is supported")
    kind = {JWT_TYPE: "jwt_svid", ID_TOKEN_TYPE: "oidc"}.get(form.get("subject_token_type", ""))
    if kind is None:
        raise InvalidRequest("subject_token_type must be the jwt or id_token URN", field="subject_token_type")
    if form.get("actor_token") and form.get("actor_token_type") != ACCESS_TOKEN_TYPE:
        raise InvalidRequest("actor_token_type must be the access_token URN", field="actor_token_type")
    requested = form.get("requested_token_type")
    if requested not in {None, "", ACCESS_TOKEN_TYPE}:
        raise InvalidRequest("only access tokens are issued", field="requested_token_type")
    subject_token = _field(form, "subject_token") or ""
    if kind == "jwt_svid" and _carries_x5c(subject_token):
        kind = "x509_svid"
    evidence = Evidence.parse(kind, subject_token)
    return evidence, _declaration(form)


async def exchange_token(
    remit: Remit, form: Mapping[str, str], *, dpop: str | None, path: str
) -> tuple[int, TokenExchangeOut | OAuthErrorOut]:
    """RFC 8693 token exchange, whichever door it came in by: the status and body (headers: `NO_STORE`).

    Workload evidence (+ an optional delegation actor token) → a task credential, by the same issuance as
    `POST /v1/tasks` (`routes.tasks.attested_for_issuance`, then the group commit awaited on the loop). A
    refusal is a 400 in the RFC 6749 §5.2 shape; an outage is raised, as on every route.
    """
    try:
        evidence, declaration = _exchange_parts(form)
        identity, check, jkt = await attested_for_issuance(remit, evidence, dpop=dpop, path=path)
        task, issued = await remit.issuance.start_task_async(
            identity, declaration, dpop_jkt=jkt, channel="token_exchange", evidence_check=check
        )
    except _Refused as refused:
        return 400, refused.body
    except RemitError as failure:
        return 400, oauth_refusal(failure)
    return 200, TokenExchangeOut(
        access_token=issued.token,
        token_type="DPoP" if issued.dpop_bound else "Bearer",
        expires_in=issued.expires_in(),
        scope=issued.scope,
        authorization_details=[d.as_json() for d in task.details],
        txn=task.id,
    )


@post("/oauth2/token", status_code=200, tags=["oauth"], security=[], include_in_schema=True)
async def token(data: Form, remit: NamedDependency[Remit], request: Request[Any, Any, Any]) -> Response[Any]:
    """RFC 8693 token exchange: workload evidence (+ optional delegation actor token) → a task credential."""
    status, body = await exchange_token(remit, data, dpop=request.headers.get("dpop"), path=request.url.path)
    return Response(body, status_code=status, headers=NO_STORE)


@post("/oauth2/introspect", status_code=200, sync_to_thread=True, tags=["oauth"])
def introspect(
    data: Form, remit: NamedDependency[Remit], request: Request[Any, Any, Any]
) -> Response[IntrospectionOut]:
    """RFC 7662: is this credential active right now? Callers authenticate with the operator token."""
    remit.operator.authenticate(bearer_token(request.headers.get("authorization")))
    return Response(introspection_of(remit, data.get("token") or ""), headers=NO_STORE)


def introspection_of(remit: Remit, presented: str) -> IntrospectionOut:
    """The RFC 7662 answer for `presented`, whichever door asked; verified in memory, reading no row.

    Anything but a live credential of Remit's is `{"active": false}` and nothing else.
    """
    # The resource server checks the DPoP proof itself, against the `cnf.jkt` returned here (RFC 9449 §6.2).
    credential = _live_credential(remit, presented)
    if credential is None:
        return IntrospectionOut(active=False)
    claims = {name: value for name, value in credential.claims.items() if name != "remit_lineage"}
    return IntrospectionOut.model_validate(
        {**claims, "active": True, "token_type": "DPoP" if credential.cnf_jkt else "Bearer"}
    )


@post("/oauth2/revoke", status_code=200, sync_to_thread=True, tags=["oauth"], security=[])
def revoke(data: Form, remit: NamedDependency[Remit], request: Request[Any, Any, Any]) -> Response[None]:
    """RFC 7009: revoke one credential. Its holder may (possession is the authority), and so may the operator.

    Answers 200 whether or not the token was valid (RFC 7009 §2.2), so it reveals nothing.
    """
    presented = data.get("token") or ""
    header = request.headers.get("authorization")
    actor: AuditActor | None = None
    if header:
        actor = AuditActor(ActorKind.OPERATOR, remit.operator.authenticate(bearer_token(header)))
    credential = _live_credential(remit, presented)
    if credential is not None:
        remit.revocation.revoke_credential(
            credential.jti,
            reason="revoked_by_holder" if actor is None else "revoked_by_operator",
            actor=actor or AuditActor(ActorKind.AGENT, credential.agent_id),
        )
    return Response(None, status_code=200, headers=NO_STORE)


async def revoke_presented(remit: Remit, presented: str) -> None:
    """A holder's RFC 7009 revocation on the event loop (`http.fast`): verified in memory, the write awaited."""
    credential = _live_credential(remit, presented)
    if credential is not None:
        await remit.revocation.revoke_credential_async(
            credential.jti, reason="revoked_by_holder", actor=AuditActor(ActorKind.AGENT, credential.agent_id)
        )


def _live_credential(remit: Remit, presented: str) -> VerifiedCredential | None:
    """The live credential of Remit's that `presented` is, verified in memory without its DPoP proof; else None.

    Without the proof: revoking only reduces access, and an introspecting resource server checks the proof
    itself. None when unknown, invalid, expired or revoked.
    """
    if len(presented) > _MAX_FIELD:
        return None
    try:
        return remit.verify_own_credential(presented, check_binding=False)
    except (Unauthenticated, InvalidRequest):
        return None


@get("/.well-known/jwks.json", sync_to_thread=False, tags=["discovery"], security=[])
def jwks(remit: NamedDependency[Remit]) -> Response[dict[str, Any]]:
    """The public keys that sign credentials: active, next and retired (during overlap)."""
    return Response(remit.signer.jwks(), headers={"Cache-Control": "public, max-age=300"})


@get("/.well-known/oauth-authorization-server", sync_to_thread=False, tags=["discovery"], security=[])
def metadata(remit: NamedDependency[Remit]) -> dict[str, Any]:
    """RFC 8414 authorization server metadata."""
    issuer = remit.settings.issuer_url
    base = remit.settings.public_url.rstrip("/")
    return {
        "issuer": issuer,
        "token_endpoint": f"{base}/oauth2/token",
        "introspection_endpoint": f"{base}/oauth2/introspect",
        "revocation_endpoint": f"{base}/oauth2/revoke",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "grant_types_supported": [TOKEN_EXCHANGE],
        "response_types_supported": [],
        # No client secrets anywhere (C06): agents authenticate with workload evidence in the request.
        "token_endpoint_auth_methods_supported": ["none"],
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["none", "bearer"],
        "dpop_signing_alg_values_supported": list(remit.proofs.algorithms),
        "authorization_details_types_supported": ["remit_tool", TASK_DETAIL],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "EdDSA"],
    }
