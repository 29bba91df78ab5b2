"""Ports of issuance beyond signing (see ports.py): credential records, their transaction, attested identities."""

from __future__ import annotations

import datetime as dt

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from remit.core.attestation.models import EvidenceUse
from remit.core.audit.chain import PreparedRecord
from remit.core.audit.models import AuditEvent
from remit.core.tasks.models import Task
from remit.core.tasks.ports import TaskTransaction

__all__ = [
    "AttestedWorkload",
    "CredentialRecord",
    "CredentialRevocation",
    "CredentialStore",
    "CredentialsTransaction",
    "CredentialsUnitOfWork",
    "IssuanceStore",
    "RevocableCredential",
    "RevocationStore",
]


class AttestedWorkload(Protocol):
    """A workload identity proven by verified evidence (see remit.core.attestation)."""

    @property
    def binding_key(self) -> str:
        """The binding key: `spiffe://…` or `oidc:<issuer>#<subject>`."""
        ...

    @property
    def single_use(self) -> EvidenceUse | None:
        """The evidence's single-use key, spent in the issuing transaction; None when it carries no `jti`."""
        ...

    @property
    def kind(self) -> str:
        """The kind of evidence it was proven by (`jwt_svid`, `x509_svid`, `oidc`), for the audit record."""
        ...

    @property
    def issuer(self) -> str:
        """Who vouched for it: the SPIFFE trust domain, or the OIDC issuer URL."""
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

    def get_credential(self, jti: str) -> CredentialRecord | None: ...


class IssuanceStore(Protocol):
    """The writes of a batch of issuances (see `remit.core.credentials.group_commit`), in the caller's transaction."""

    def hold_registry(self) -> None:
        """Until commit, keep registry writes from committing (they wait), so revisions read next stay current.

        Registry writes take the same lock exclusively; where the store already admits one writer at a
        time (SQLite) there is nothing to take.
        """
        ...

    def hold_tasks(self, task_ids: Collection[str]) -> None:
        """Until commit, hold the rows of the tasks this batch binds, so the revisions read next are those it updates.

        Without it, a task end committing between that read and the binding's update would fail the update.
        Where the store admits one writer at a time (SQLite) there is nothing to take.
        """
        ...

    def revisions(self, keys: Iterable[tuple[str, str]]) -> Mapping[tuple[str, str], int]:
        """The current revision of each `(kind, id)`: agent, owner, function, workflow, tool or task; absent if gone."""
        ...

    def claim_evidence(self, uses: Sequence[EvidenceUse]) -> set[tuple[str, str]]:
        """Record each use (distinct keys); return the `(namespace, jti)` recorded now, not those recorded before.

        A key recorded by a concurrent transaction that has not committed yet is waited for: it counts as
        recorded before if that transaction commits, and is recorded now if it rolls back.
        """
        ...

    def add_tasks(self, tasks: Sequence[Task]) -> None: ...

    def bind_tasks(self, bound: Sequence[Task]) -> None:
        """Write each task's new DPoP binding and revision over its row, which must still hold the revision before.

        Raises `Conflict` when a row moved on meanwhile (a concurrent end, on a store with several writers).
        """
        ...

    def add_credentials(self, records: Sequence[CredentialRecord]) -> None: ...

    def append_prepared(self, records: Sequence[PreparedRecord]) -> None:
        """Chain events canonicalised beforehand into the audit log in order, in this transaction (one statement)."""
        ...


@dataclass(frozen=True, slots=True)
class CredentialRevocation:
    """One credential to mark revoked, with its revocation log entry."""

    jti: str
    reason: str
    at: dt.datetime


@dataclass(frozen=True, slots=True)
class RevocableCredential:
    """A credential record with the owner and business function of its task (for the audit event)."""

    record: CredentialRecord
    owner_id: str | None
    function_id: str | None


class RevocationStore(Protocol):
    """The writes of a batch of credential revocations (see `remit.core.credentials.revocation`), in one transaction."""

    def credentials_to_revoke(self, jtis: Collection[str]) -> Mapping[str, RevocableCredential]:
        """Those of `jtis` that exist, each held until commit: no other transaction revokes it meanwhile.

        A record another transaction is revoking is waited for, and then read as that transaction left it.
        """
        ...

    def revoke(self, revocations: Sequence[CredentialRevocation]) -> list[int]:
        """Mark each credential revoked and append its `credential` log entry, in order; return the entries' seqs."""
        ...

    def append_audit(self, events: Sequence[AuditEvent]) -> None:
        """Chain `events` into the audit log in order, in this transaction (one statement)."""
        ...


class CredentialsTransaction(TaskTransaction, Protocol):
    """A task transaction that also holds credential records and the batched issuance and revocation writes."""

    @property
    def credentials(self) -> CredentialStore: ...

    @property
    def issuance(self) -> IssuanceStore: ...

    @property
    def revoking(self) -> RevocationStore: ...


class CredentialsUnitOfWork(Protocol):
    """Opens a credentials transaction."""

    def __call__(self) -> AbstractContextManager[CredentialsTransaction]: ...
