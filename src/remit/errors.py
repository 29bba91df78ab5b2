"""Every error Remit raises on purpose: the one vocabulary of server, CLI and SDK.

* RemitError                 code, message, details (safe to show; never secrets)
  x InvalidRequest           400
  x Unauthenticated          401
    + CredentialExpired, CredentialRevoked, CredentialInvalid, AttestationFailed
  x Forbidden                403
    + AgentUntraceable, Denied (+ ApprovalDenied), ApprovalRequired, ApprovalExpired
  x NotFound                 404
  x MethodNotAllowed         405
  x Conflict                 409
    + TaskNotActive
  x PayloadTooLarge          413
  x RateLimited              429
  x Unavailable              503
    + AuditUnavailable
  x InternalError            500

Codes are stable: a code is added, deprecated or documented, never renamed or reused.
Messages never carry tokens, keys or evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final

__all__ = [
    "AgentUntraceable",
    "ApprovalDenied",
    "ApprovalExpired",
    "ApprovalRequired",
    "AttestationFailed",
    "AuditUnavailable",
    "Conflict",
    "CredentialExpired",
    "CredentialInvalid",
    "CredentialRevoked",
    "Denied",
    "ErrorCode",
    "FieldError",
    "Forbidden",
    "InternalError",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "RemitError",
    "TaskNotActive",
    "Unauthenticated",
    "Unavailable",
    "error_class_for",
]


class ErrorCode(StrEnum):
    """Stable, machine-readable error codes (snake_case; never renamed or reused)."""

    INVALID_REQUEST = "invalid_request"
    UNAUTHENTICATED = "unauthenticated"
    CREDENTIAL_EXPIRED = "credential_expired"
    CREDENTIAL_REVOKED = "credential_revoked"
    CREDENTIAL_INVALID = "credential_invalid"
    ATTESTATION_FAILED = "attestation_failed"
    FORBIDDEN = "forbidden"
    AGENT_UNTRACEABLE = "agent_untraceable"
    DENIED = "denied"
    APPROVAL_REQUIRED = "approval_required"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    TASK_NOT_ACTIVE = "task_not_active"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    AUDIT_UNAVAILABLE = "audit_unavailable"
    INTERNAL = "internal"
    METHOD_NOT_ALLOWED = "method_not_allowed"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failed field: where (`loc`), what kind (`type`) and a readable message (`msg`)."""

    loc: tuple[str | int, ...]
    type: str
    msg: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "type": self.type, "msg": self.msg}


class RemitError(Exception):
    """Base of every deliberate error: a stable `code`, a safe `message` and safe `details`."""

    code: ClassVar[ErrorCode] = ErrorCode.INTERNAL
    title: ClassVar[str] = "Internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        errors: Sequence[FieldError] = (),
    ) -> None:
        self.message = message or self.title
        self.details: dict[str, Any] = dict(details or {})
        self.errors: tuple[FieldError, ...] = tuple(errors)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.value!r}, message={self.message!r})"


class InvalidRequest(RemitError):
    """Input failed validation; `errors` lists each failed field."""

    code = ErrorCode.INVALID_REQUEST
    title = "Invalid request"

    def __init__(
        self,
        message: str | None = None,
        *,
        field: str | None = None,
        details: Mapping[str, Any] | None = None,
        errors: Sequence[FieldError] = (),
    ) -> None:
        if field is not None and not errors:
            errors = (FieldError(loc=tuple(field.split(".")), type="value_error", msg=message or self.title),)
        super().__init__(message, details=details, errors=errors)


class Unauthenticated(RemitError):
    """No usable caller credential."""

    code = ErrorCode.UNAUTHENTICATED
    title = "Unauthenticated"


class CredentialExpired(Unauthenticated):
    """The credential is past its `exp`; request a new one for a live task."""

    code = ErrorCode.CREDENTIAL_EXPIRED
    title = "Credential expired"


class CredentialRevoked(Unauthenticated):
    """The credential was revoked; the reason is in the audit record."""

    code = ErrorCode.CREDENTIAL_REVOKED
    title = "Credential revoked"


class CredentialInvalid(Unauthenticated):
    """Signature, algorithm, key id, issuer or audience wrong: one code on purpose."""

    code = ErrorCode.CREDENTIAL_INVALID
    title = "Credential invalid"


class AttestationFailed(Unauthenticated):
    """Workload evidence could not be verified against a trust bundle or issuer."""

    code = ErrorCode.ATTESTATION_FAILED
    title = "Attestation failed"


class Forbidden(RemitError):
    """The caller is known but may not do this."""

    code = ErrorCode.FORBIDDEN
    title = "Forbidden"


class AgentUntraceable(Forbidden):
    """The agent lacks an accountable, active owner or a business function."""

    code = ErrorCode.AGENT_UNTRACEABLE
    title = "Agent untraceable"


class Denied(Forbidden):
    """A decision denied; `details` carry the decision id and reasons."""

    code = ErrorCode.DENIED
    title = "Denied"


class ApprovalRequired(Forbidden):
    """A high-risk action needs a human approval; `details` carry the approval request id."""

    code = ErrorCode.APPROVAL_REQUIRED
    title = "Approval required"


class ApprovalDenied(Denied):
    """An approver denied the approval request; `details` carry its id and the approver's reason."""

    code = ErrorCode.APPROVAL_DENIED
    title = "Approval denied"


class ApprovalExpired(Forbidden):
    """The approval request timed out before enough approvers answered; `details` carry its id."""

    code = ErrorCode.APPROVAL_EXPIRED
    title = "Approval expired"


class NotFound(RemitError):
    """No such resource."""

    code = ErrorCode.NOT_FOUND
    title = "Not found"


class Conflict(RemitError):
    """A uniqueness, state or version conflict."""

    code = ErrorCode.CONFLICT
    title = "Conflict"


class TaskNotActive(Conflict):
    """The task has completed, failed, been cancelled, revoked or expired."""

    code = ErrorCode.TASK_NOT_ACTIVE
    title = "Task not active"


class PayloadTooLarge(RemitError):
    """The request body is larger than the configured limit."""

    code = ErrorCode.PAYLOAD_TOO_LARGE
    title = "Payload too large"


class RateLimited(RemitError):
    """Too many requests; slow down."""

    code = ErrorCode.RATE_LIMITED
    title = "Rate limited"


class Unavailable(RemitError):
    """The store or a dependency is down; nothing was done."""

    code = ErrorCode.UNAVAILABLE
    title = "Unavailable"


class AuditUnavailable(Unavailable):
    """The audit record could not be written, so the action was not taken."""

    code = ErrorCode.AUDIT_UNAVAILABLE
    title = "Audit unavailable"


class InternalError(RemitError):
    """A bug: logged with a correlation id, never with secrets."""

    code = ErrorCode.INTERNAL
    title = "Internal error"


class MethodNotAllowed(RemitError):
    """The resource exists but does not support this HTTP method."""

    code = ErrorCode.METHOD_NOT_ALLOWED
    title = "Method not allowed"


def _all_error_classes() -> dict[ErrorCode, type[RemitError]]:
    found: dict[ErrorCode, type[RemitError]] = {}
    pending: list[type[RemitError]] = [RemitError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.code, cls)
        pending.extend(cls.__subclasses__())
    found[ErrorCode.INTERNAL] = InternalError
    return found


ERROR_CLASS_BY_CODE: Final[Mapping[ErrorCode, type[RemitError]]] = _all_error_classes()


def error_class_for(code: str) -> type[RemitError]:
    """Return the class for a wire `code`; an unknown code (a newer server) maps to its nearest known base."""
    try:
        return ERROR_CLASS_BY_CODE[ErrorCode(code)]
    except ValueError:
        return RemitError
