"""RFC 9457 problem documents ⇄ RemitError: one shape for every error on the wire."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remit.errors import ErrorCode, FieldError, RemitError, error_class_for

__all__ = ["DOCS_BASE", "FieldErrorOut", "Problem", "error_from_problem", "problem_from_error"]

# `type` points at the error's anchor in docs/errors.md (relative reference, RFC 9457 §3.1.1).
DOCS_BASE = "/docs/errors#"
PROBLEM_MEDIA_TYPE = "application/problem+json"


class FieldErrorOut(BaseModel):
    """One failed field."""

    loc: list[str | int]
    type: str
    msg: str


class Problem(BaseModel):
    """An `application/problem+json` body with Remit's extension members `code` and `errors`."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI reference to the error's documentation")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str = ""
    instance: str | None = None
    code: ErrorCode
    errors: list[FieldErrorOut] = Field(default_factory=list)


def problem_from_error(error: RemitError, *, status: int, instance: str | None = None) -> Problem:
    """Build the problem document for an error; `details` become extension members."""
    # A failed authentication says only which family it failed in: the precise check (bad signature,
    # unknown kid, wrong audience, replay...) goes to the audit record, never to the caller.
    hidden = status == 401  # noqa: PLR2004 - RFC 9110 §15.5.2
    extras: dict[str, Any] = {} if hidden else {k: v for k, v in error.details.items() if k not in Problem.model_fields}
    return Problem(
        type=DOCS_BASE + error.code.value,
        title=error.title,
        status=status,
        detail=error.message,
        instance=instance,
        code=error.code,
        errors=[FieldErrorOut(loc=list(e.loc), type=e.type, msg=e.msg) for e in error.errors],
        **extras,
    )


def error_from_problem(problem: Problem) -> RemitError:
    """Rebuild the matching RemitError subclass from a problem document (used by the SDK and CLI)."""
    cls = error_class_for(problem.code)
    details = dict(problem.model_extra or {})
    errors = [FieldError(loc=tuple(e.loc), type=e.type, msg=e.msg) for e in problem.errors]
    error = cls.__new__(cls)
    RemitError.__init__(error, problem.detail or problem.title, details=details, errors=errors)
    return error
