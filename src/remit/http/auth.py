"""Who is calling: the operator bearer token (RFC 6750 §2.1) on every /v1 route and /metrics.

The token is compared in constant time by `OperatorAuth.authenticate` and never logged, echoed or
kept on the request: only the operator *name* is stored in the request state, and that is what
services receive as `actor=`.
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from remit.bootstrap import OperatorAuth
from remit.core.approvals.models import OperatorRole
from remit.errors import Unauthenticated

__all__ = ["ACTOR_STATE_KEY", "bearer_token", "operator_actor", "operator_guard"]

ACTOR_STATE_KEY: Final = "remit.actor"
# A bearer token is short; anything longer is not ours and is not worth hashing.
MAX_AUTHORIZATION_LENGTH: Final = 4096


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), or None."""
    if not authorization or len(authorization) > MAX_AUTHORIZATION_LENGTH:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def operator_guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """Refuse the request unless it carries the operator token; remember who the operator is."""
    auth: OperatorAuth = connection.app.state["remit"].operator
    actor = auth.authenticate(bearer_token(connection.headers.get("authorization")))
    connection.scope.setdefault("state", {})[ACTOR_STATE_KEY] = actor


# Reading the audit trail is for admins and auditors (an auditor changes nothing but break-glass reviews).
AUDIT_READERS: Final = (OperatorRole.ADMIN, OperatorRole.AUDITOR)


def audit_reader_guard(connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler) -> None:
    """Refuse the request unless an admin or an auditor makes it; remember who."""
    auth: OperatorAuth = connection.app.state["remit"].operator
    actor = auth.authenticate(bearer_token(connection.headers.get("authorization")), roles=AUDIT_READERS)
    connection.scope.setdefault("state", {})[ACTOR_STATE_KEY] = actor


def operator_actor(request: Request[Any, Any, Any]) -> str:
    """The authenticated operator name, as set by the guard; fails closed if the guard did not run."""
    actor = request.scope.get("state", {}).get(ACTOR_STATE_KEY)
    if not isinstance(actor, str):
        msg = "a valid operator token is required"
        raise Unauthenticated(msg)
    return actor
