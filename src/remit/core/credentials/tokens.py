"""Ports of issuance beyond signing (see ports.py): credential records, their transaction, attested identities."""

from __future__ import annotations

import datetime as dt

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from remit.core.tasks.ports import TaskTransaction

__all__ = [
    "AttestedWorkload",
    "CredentialRecord",
    "CredentialStore",
    "CredentialsTransaction",
    "CredentialsUnitOfWork",
]


class AttestedWorkload(Protocol):
    """A workload identity proven by verified evidence (see remit.core.attestation)."""

    @property
    def binding_key(self) -> str:
        """The binding key: `spiffe://…` or `oidc:<issuer>#<subject>`."""
        ...


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """What is kept about an issued credential: never the token itself."""

    jti: str
    task_id: str
    agent_id: str
    audience: str
    epoch: int
    cnf_jkt: str | None
    issued_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None


class CredentialStore(Protocol):
    """Issued-credential records."""

    def add_credential(self, record: CredentialRecord) -> None: ...
    def get_credential(self, jti: str) -> CredentialRecord | None: ...
    def mark_revoked(self, jti: str, *, at: dt.datetime, reason: str) -> bool: ...


class CredentialsTransaction(TaskTransaction, Protocol):
    """A task transaction that also holds credential records."""

    @property
    def credentials(self) -> CredentialStore: ...


class CredentialsUnitOfWork(Protocol):
    """Opens a credentials transaction."""

    def __call__(self) -> AbstractContextManager[CredentialsTransaction]: ...
