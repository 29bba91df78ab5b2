"""RemitError → `application/problem+json` (RFC 9457): the HTTP status table and the exception handlers.

Every error leaving the API goes through `problem_response`, so each one carries the same shape:
`type`, `title`, `status`, `detail`, `instance`, plus Remit's `code` and `errors[]`. Unexpected
exceptions become `internal` with a correlation id; their text and traceback go to the log only,
never to the caller (RFC 9457 §5: a problem must not leak implementation details).
"""

from __future__ import annotations

import logging

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ExceptionHandlersMap

from remit.errors import (
    ErrorCode,
    FieldError,
    Forbidden,
    InternalError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RemitError,
    Unauthenticated,
    Unavailable,
)
from remit.wire.problem import PROBLEM_MEDIA_TYPE, Problem, problem_from_error

__all__ = [
    "CORRELATION_STATE_KEY",
    "ERROR_CODE_STATE_KEY",
    "PROBLEM_MEDIA_TYPE",
    "STATUS_BY_CODE",
    "exception_handlers",
    "problem_parts",
    "problem_response",
    "problem_responses",
]

_log = logging.getLogger("remit.http")

STATUS_BY_CODE: Final[Mapping[ErrorCode, int]] = MappingProxyType(
    {
        ErrorCode.INVALID_REQUEST: 400,
        ErrorCode.UNAUTHENTICATED: 401,
        ErrorCode.CREDENTIAL_EXPIRED: 401,
        ErrorCode.CREDENTIAL_REVOKED: 401,
        ErrorCode.CREDENTIAL_INVALID: 401,
        ErrorCode.ATTESTATION_FAILED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.AGENT_UNTRACEABLE: 403,
        ErrorCode.DENIED: 403,
        ErrorCode.APPROVAL_REQUIRED: 403,
        ErrorCode.APPROVAL_DENIED: 403,
        ErrorCode.APPROVAL_EXPIRED: 403,
        ErrorCode.NOT_FOUND: 404,
        ErrorCode.METHOD_NOT_ALLOWED: 405,
        ErrorCode.CONFLICT: 409,
        ErrorCode.TASK_NOT_ACTIVE: 409,
        ErrorCode.PAYLOAD_TOO_LARGE: 413,
        ErrorCode.RATE_LIMITED: 429,
        ErrorCode.INTERNAL: 500,
        ErrorCode.UNAVAILABLE: 503,
        ErrorCode.AUDIT_UNAVAILABLE: 503,
    }
)

# Framework exceptions carry only a status: map it to the error of our vocabulary that means the same.
_ERROR_BY_STATUS: Final[Mapping[int, type[RemitError]]] = MappingProxyType(
    {
        400: InvalidRequest,
        401: Unauthenticated,
        403: Forbidden,
        404: NotFound,
        405: MethodNotAllowed,
        413: PayloadTooLarge,
        429: RateLimited,
        503: Unavailable,
    }
)

_DESCRIPTIONS: Final[Mapping[int, str]] = MappingProxyType(
    {
        400: "Invalid request: `errors[]` lists each failed field (`invalid_request`)",
        401: "No valid operator token (`unauthenticated`); the response carries `WWW-Authenticate: Bearer`",
        403: "Forbidden",
        404: "No such resource (`not_found`)",
        405: "Method not allowed on this path (`method_not_allowed`)",
        409: "Uniqueness, state or revision conflict (`conflict`)",
        413: "Request body larger than the configured limit (`payload_too_large`)",
        429: "Too many requests (`rate_limited`)",
        500: "A bug on our side (`internal`); quote `correlation_id` when reporting it",
        503: "The store or a dependency is down; nothing was done (`unavailable`)",
    }
)

CORRELATION_STATE_KEY: Final = "remit.correlation_id"
ERROR_CODE_STATE_KEY: Final = "remit.error_code"  # read by the boundary's log line
WWW_AUTHENTICATE: Final = 'Bearer realm="remit"'


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries documenting the problem body for each given error status."""
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type=PROBLEM_MEDIA_TYPE,
            description=_DESCRIPTIONS[status],
            generate_examples=False,
        )
        for status in statuses
    }


def _correlation_id(request: Request[Any, Any, Any]) -> str | None:
    value = request.scope.get("state", {}).get(CORRELATION_STATE_KEY)
    return value if isinstance(value, str) else None


def problem_parts(
    error: RemitError, *, instance: str, correlation_id: str | None
) -> tuple[int, Problem, dict[str, str]]:
    """Status, problem document and headers for a deliberate error, whichever door the request came in by."""
    status = STATUS_BY_CODE[error.code]
    problem = problem_from_error(error, status=status, instance=instance)
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else {}  # noqa: PLR2004 - RFC 6750 §3
    if status >= 500 and correlation_id is not None:  # noqa: PLR2004 - server errors carry the id of their log line
        problem = problem.model_copy(update={"correlation_id": correlation_id})
    return status, problem, headers


def problem_response(error: RemitError, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    """The problem+json response for a deliberate error."""
    request.scope.setdefault("state", {})[ERROR_CODE_STATE_KEY] = error.code.value
    status, problem, headers = problem_parts(error, instance=request.url.path, correlation_id=_correlation_id(request))
    return Response(
        content=problem.model_dump(mode="json"),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def handle_remit_error(request: Request[Any, Any, Any], error: RemitError) -> Response[dict[str, Any]]:
    return problem_response(error, request)


def _field_errors(exc: ValidationException) -> tuple[FieldError, ...]:
    """Each failed field as `loc`/`type`/`msg`; pydantic's own error list is used when the framework kept it."""
    cause = exc.__cause__
    detailed = getattr(cause, "errors", None)
    if isinstance(detailed, list) and detailed and all(isinstance(e, dict) for e in detailed):
        return tuple(
            FieldError(
                loc=tuple(part if isinstance(part, int) else str(part) for part in e.get("loc", ())),
                type=str(e.get("type", "value_error")),
                msg=str(e.get("msg", "invalid value")),
            )
            for e in detailed
        )
    found: list[FieldError] = []
    for entry in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(entry, dict):
            key = str(entry.get("key") or "body")
            found.append(FieldError(loc=tuple(key.split(".")), type="value_error", msg=str(entry.get("message", ""))))
    return tuple(found)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    """Framework refusals (validation, routing, size limit) in our vocabulary."""
    if isinstance(exc, ValidationException):
        error: RemitError = InvalidRequest("the request failed validation", errors=_field_errors(exc))
    elif exc.status_code >= 500:  # noqa: PLR2004 - a framework-side failure is ours, like any other bug
        return handle_unexpected(request, exc)
    else:
        cls = _ERROR_BY_STATUS.get(exc.status_code, InvalidRequest)
        error = cls(_client_message(exc, cls))
    response = problem_response(error, request)
    allow = (exc.headers or {}).get("allow")
    if error.code is ErrorCode.METHOD_NOT_ALLOWED and allow:
        response.headers["Allow"] = allow  # RFC 9110 §15.5.6: a 405 lists the methods the path supports
    return response


def _client_message(exc: HTTPException, cls: type[RemitError]) -> str:
    if cls is InvalidRequest and "JSON is malformed" in str(exc.detail):
        return "the body is not valid JSON"
    messages: Mapping[type[RemitError], str] = {
        NotFound: "no such resource",
        MethodNotAllowed: "this method is not allowed on this path",
        PayloadTooLarge: "the request body is larger than the limit",
    }
    return messages.get(cls, cls.title)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    """A bug: the traceback goes to the log with a correlation id; the caller sees only `internal` and that id."""
    _log.error(
        "unhandled error on %s %s (correlation id %s)",
        request.method,
        request.url.path,
        _correlation_id(request),
        exc_info=exc,
        extra={"correlation_id": _correlation_id(request), "method": request.method, "path": request.url.path},
    )
    return problem_response(InternalError("an internal error occurred; it has been logged"), request)


def handle_too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, Any]]:
    """A body nested past the JSON decoder's depth: the decoder raises RecursionError, not a decode error.

    Anyone can send one, so it is the caller's error (400), not ours; one warning line names it, without
    a traceback a flood of such requests would multiply.
    """
    correlation_id = _correlation_id(request)
    _log.warning(
        "RecursionError on %s %s (a body nested too deeply to decode; correlation id %s): %s",
        request.method,
        request.url.path,
        correlation_id,
        exc,
        extra={"correlation_id": correlation_id, "method": request.method, "path": request.url.path},
    )
    return problem_response(InvalidRequest("the body nests too deeply to read"), request)


def exception_handlers() -> ExceptionHandlersMap:
    """The app-wide handlers: ours first, then the framework's, then anything else."""
    return {
        RemitError: handle_remit_error,
        HTTPException: handle_http_exception,
        RecursionError: handle_too_deep,
        Exception: handle_unexpected,
    }
