"""Ports of the audit trail."""

from __future__ import annotations

from typing import Protocol

from remit.core.audit.models import AuditEvent

__all__ = ["AuditStore"]


class AuditStore(Protocol):
    """Appends audit events inside the caller's transaction: durable when that transaction commits.

    Raises `AuditUnavailable` when the record cannot be written; the caller's action then fails too.
    """

    def append(self, event: AuditEvent) -> None: ...
