"""Composition root: Settings → adapters → services → the `Remit` object every entrypoint uses."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from dataclasses import dataclass, field
from pathlib import Path

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import current_revision, head_revision
from remit.adapters.sql.migrate import upgrade as upgrade_schema
from remit.core.clock import Clock, SystemClock
from remit.core.events import InProcessEventBus
from remit.core.ids import IdFactory, RandomIdFactory
from remit.core.registry.service import RegistryService
from remit.errors import Unauthenticated, Unavailable
from remit.settings import Settings

__all__ = ["OperatorAuth", "Remit", "build", "ensure_operator_token", "upgrade_database"]


@dataclass(frozen=True, slots=True)
class OperatorAuth:
    """Checks the operator bearer token in constant time; only its SHA-256 digest is kept in memory."""

    name: str
    _digest: bytes = field(repr=False)

    @classmethod
    def from_token(cls, name: str, token: str) -> OperatorAuth:
        return cls(name=name, _digest=hashlib.sha256(token.encode()).digest())

    def authenticate(self, presented: str | None) -> str:
        """Return the operator name, or raise Unauthenticated."""
        candidate = hashlib.sha256((presented or "").encode()).digest()
        if not presented or not hmac.compare_digest(candidate, self._digest):
            msg = "a valid operator token is required"
            raise Unauthenticated(msg)
        return self.name


@dataclass(slots=True)
class Remit:
    """The wired application: services plus what health checks need."""

    settings: Settings
    database: SqlDatabase
    clock: Clock
    ids: IdFactory
    bus: InProcessEventBus
    registry: RegistryService
    operator: OperatorAuth

    def check_ready(self) -> None:
        """Raise Unavailable unless the store answers and its schema is current."""
        self.database.check()
        if current_revision(self.database.engine) != head_revision():
            msg = "the database schema is not current; run `remit db upgrade`"
            raise Unavailable(msg)

    def close(self) -> None:
        self.database.dispose()


def ensure_operator_token(settings: Settings) -> tuple[str, bool]:
    """Return the operator token, creating it (0600) on first use; the flag says whether it is new."""
    if settings.operator_token is not None:
        return settings.operator_token.get_secret_value(), False
    path = settings.token_file
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, False
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = "remit_op_" + secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token, True


def _write_private(path: Path, content: str) -> None:
    # Create with 0600 from the start: no window in which another user could read it.
    import os  # noqa: PLC0415 - file-mode creation needs os.open

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)


def _prepare_home(settings: Settings) -> None:
    if not settings.store.url:
        settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)


def upgrade_database(settings: Settings) -> str | None:
    """Apply migrations to the configured store; returns the revision reached."""
    _prepare_home(settings)
    database = SqlDatabase.connect(settings.store_url)
    try:
        upgrade_schema(database.engine)
        return current_revision(database.engine)
    finally:
        database.dispose()


def build(settings: Settings, *, clock: Clock | None = None, ids: IdFactory | None = None) -> Remit:
    """Wire Remit from settings; the only place adapters are constructed."""
    _prepare_home(settings)
    clock = clock or SystemClock()
    ids = ids or RandomIdFactory(lambda: int(clock.now().timestamp() * 1000))
    database = SqlDatabase.connect(settings.store_url)
    bus = InProcessEventBus()
    token, _ = ensure_operator_token(settings)
    registry = RegistryService(database.transaction, clock=clock, ids=ids, bus=bus)
    return Remit(
        settings=settings,
        database=database,
        clock=clock,
        ids=ids,
        bus=bus,
        registry=registry,
        operator=OperatorAuth.from_token(settings.operator_name, token),
    )
