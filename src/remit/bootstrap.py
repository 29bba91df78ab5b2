"""Composition root: Settings → adapters → services → the `Remit` object every entrypoint uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import logging
import os
import secrets
import threading

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from remit.adapters.audit_keys import Ed25519CheckpointSigner
from remit.adapters.cedar import CedarPolicyEngine, CedarPolicyValidator
from remit.adapters.jose import AccessTokenSigner, AccessTokenVerifier, DpopVerifier, parse_compact
from remit.adapters.keys import KeyRing, SigningAlgorithm, generate_kek_file, parse_kek, read_kek_file
from remit.adapters.oidc import OidcAttestor, OidcIssuer
from remit.adapters.spiffe import BundleSource, JwtSvidAttestor
from remit.adapters.sql.audit import SqlAuditLedger
from remit.adapters.sql.audit_writer import AuditWriter
from remit.adapters.sql.credentials import SqlEvidenceUses
from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import current_revision, head_revision
from remit.adapters.sql.migrate import upgrade as upgrade_schema
from remit.adapters.sql.notify import POLICIES, REVOCATIONS, ChangeListener
from remit.adapters.sql.revocation_feed import RevocationFeed
from remit.adapters.webhooks import Webhook, WebhookNotifier, sql_recorder
from remit.adapters.x509_svid import X509SvidAttestor
from remit.core.approvals.models import OperatorAccount, OperatorRole
from remit.core.approvals.ports import NoNotifier, Notifier
from remit.core.approvals.rules import ApprovalRule, ApprovalRules, Window
from remit.core.approvals.service import ApprovalService, ElevationBook, OperatorService
from remit.core.attestation.ports import Attestor
from remit.core.attestation.service import AttestationService
from remit.core.audit.models import AuditActor, AuditEvent, SealedRecord
from remit.core.audit.service import AuditLog
from remit.core.authorization.facts import CachedFacts
from remit.core.authorization.policies import PolicyService, PolicySetChanged
from remit.core.authorization.service import DecisionService
from remit.core.authorization.strikes import AuditObjectiveStrikes
from remit.core.clock import Clock, SystemClock
from remit.core.credentials.issuance import IssuanceService
from remit.core.credentials.models import Limits, VerifiedCredential
from remit.core.credentials.revocation import RevocationService, subscribe_revocation_handlers
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.credentials.verification import DpopCheck, Verifier
from remit.core.events import InProcessEventBus
from remit.core.ids import IdFactory, RandomIdFactory
from remit.core.registry.models import RiskClass
from remit.core.registry.service import RegistryService
from remit.core.tasks.service import TaskService
from remit.errors import CredentialInvalid, Forbidden, RemitError, Unauthenticated, Unavailable
from remit.settings import Settings

_log = logging.getLogger(__name__)

# How often the server copies the SQLite WAL into the database file, off the request path.
_WAL_CHECKPOINT_SECONDS = 0.25

__all__ = [
    "ACCOUNT_TOKEN_PREFIX",
    "Operator",
    "OperatorAuth",
    "Remit",
    "build",
    "ensure_operator_token",
    "upgrade_database",
]

# Every operator token starts so: the bootstrap token and the accounts' tokens alike.
ACCOUNT_TOKEN_PREFIX = "remit_op_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class Operator:
    """An authenticated person: the bootstrap operator (an admin) or an operator account with its roles."""

    name: str
    roles: frozenset[OperatorRole]
    account: OperatorAccount | None = None

    def has(self, role: OperatorRole) -> bool:
        return role in self.roles


@dataclass(frozen=True, slots=True)
class OperatorAuth:
    """Checks operator bearer tokens: the bootstrap token and operator accounts' tokens.

    The bootstrap token is an admin, compared in constant time and kept only as its SHA-256 digest.
    Accounts' tokens are looked up by digest on every request, so a disabled account stops at once.
    Task credentials are never operator tokens.
    """

    name: str
    _digest: bytes = field(repr=False)
    _accounts: Callable[[str], OperatorAccount | None] | None = field(default=None, repr=False)

    @classmethod
    def from_token(
        cls, name: str, token: str, accounts: Callable[[str], OperatorAccount | None] | None = None
    ) -> OperatorAuth:
        return cls(name=name, _digest=hashlib.sha256(token.encode()).digest(), _accounts=accounts)

    def is_bootstrap(self, presented: str | None) -> bool:
        """Whether `presented` is the bootstrap (admin) token: compared in constant time, in memory only."""
        candidate = hashlib.sha256((presented or "").encode()).digest()
        return bool(presented) and hmac.compare_digest(candidate, self._digest)

    def identify(self, presented: str | None) -> Operator:
        """Who holds this token, or raise Unauthenticated."""
        if self.is_bootstrap(presented):
            return Operator(self.name, frozenset({OperatorRole.ADMIN}))
        if presented and presented.startswith(ACCOUNT_TOKEN_PREFIX) and self._accounts is not None:
            account = self._accounts(presented)
            if account is not None:
                return Operator(account.name, account.roles, account)
        msg = "a valid operator token is required"
        raise Unauthenticated(msg)

    def authenticate(self, presented: str | None, *, roles: Collection[OperatorRole] = (OperatorRole.ADMIN,)) -> str:
        """Return the operator name if the token's holder has one of `roles` (admin by default)."""
        operator = self.identify(presented)
        if not any(operator.has(role) for role in roles):
            wanted = " or ".join(r.value for r in roles)
            msg = f"this needs the {wanted} role"
            raise Forbidden(msg)
        return operator.name


@dataclass(slots=True)
class Remit:
    """The wired application: services plus what health checks and background work need."""

    settings: Settings
    database: SqlDatabase
    clock: Clock
    ids: IdFactory
    bus: InProcessEventBus
    registry: RegistryService
    operator: OperatorAuth
    key_ring: KeyRing
    signer: AccessTokenSigner
    tokens: AccessTokenVerifier
    proofs: DpopVerifier
    attestation: AttestationService
    tasks: TaskService
    issuance: IssuanceService
    revocation: RevocationService
    index: RevocationIndex
    feed: RevocationFeed
    listener: ChangeListener
    verifier: Verifier
    evidence_uses: SqlEvidenceUses
    audit: AuditLog
    audit_writer: AuditWriter
    facts: CachedFacts
    policies: PolicyService
    policy_engine: CedarPolicyEngine
    decisions: DecisionService
    approvals: ApprovalService
    operators: OperatorService
    elevations: ElevationBook
    notifier: Notifier
    _stop: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None
    _checkpointer: threading.Thread | None = None

    def record_soon(self, event: AuditEvent) -> asyncio.Future[SealedRecord] | None:
        """Queue an audit record for group commit without blocking, from the running event loop (its routes).

        None when the caller must `audit.append` from a worker thread instead: the writer is not
        running (one-shot commands) or its queue is full (back-pressure is a wait, never a drop).
        """
        if not self.audit_writer.is_running:
            return None
        return self.audit_writer.submit(event)

    def verify_own_credential(
        self, token: str, *, dpop: DpopCheck | None = None, check_binding: bool = True
    ) -> VerifiedCredential:
        """Verify a task credential presented to Remit itself, whatever tool it is for.

        Used only where the holder acts on its own task in ways that reduce access (finish it,
        change its objective), so accepting any of our audiences is safe; the signature still
        covers the audience, and revocation and DPoP binding are checked as everywhere else.
        """
        audience = parse_compact(token).payload.get("aud")
        if not isinstance(audience, str):
            raise CredentialInvalid(details={"reason": "wrong_aud"})
        return self.verifier.verify(token, audience=audience, dpop=dpop, check_binding=check_binding)

    def check_ready(self) -> None:
        """Raise Unavailable unless the store answers, its schema is current and revocations flow."""
        self.database.check()
        if current_revision(self.database.engine) != head_revision():
            msg = "the database schema is not current; run `remit db upgrade`"
            raise Unavailable(msg)
        if not self.feed.is_current():
            msg = "the revocation feed is not keeping up"
            raise Unavailable(msg)

    def start(self) -> None:
        """Catch up on revocations, end what a crash left running, then start the background work.

        A store that is down does not stop the server: readiness reports it, verification refuses
        (the index is not current), and the feed keeps trying.
        """
        self.audit_writer.start()  # from now on `audit.append` is group-committed
        try:
            self.feed.refresh()
            self.tasks.reconcile()
            self.policy_engine.refresh()
        except RemitError as error:
            _log.warning("start-up catch-up failed (%s); serving not-ready until the store answers", error.code)
        self.feed.start(interval_seconds=self.settings.credentials.revocation_poll_seconds)
        self.listener.start()  # PostgreSQL: other replicas' revocations and policy changes arrive at once
        self.policy_engine.start(interval_seconds=self.settings.policy.reload_poll_seconds)
        if self._sweeper is None:
            self._stop.clear()
            self._sweeper = threading.Thread(target=self._sweep, name="remit-sweeper", daemon=True)
            self._sweeper.start()
        if self._checkpointer is None and self.database.backend == "sqlite":
            self._checkpointer = threading.Thread(target=self._checkpoint, name="remit-wal-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint(self) -> None:
        while not self._stop.wait(_WAL_CHECKPOINT_SECONDS):
            try:
                self.database.checkpoint()
            except RemitError:
                _log.warning("WAL checkpoint: store unavailable; will retry")

    def sweep_once(self) -> None:
        """Record expired tasks, close the registry-reaction crash window, and forget what can no longer matter."""
        now = self.clock.now()
        self.key_ring.reload()  # a `remit keys rotate` elsewhere: sign with the new active key
        self.tasks.expire_overdue()
        self.tasks.reconcile()
        self.evidence_uses.purge(now)
        self.approvals.expire_overdue()
        longest = dt.timedelta(seconds=self.settings.credentials.max_task_duration_seconds)
        self.index.prune(now - longest)

    def _sweep(self) -> None:
        while not self._stop.wait(30):
            try:
                self.sweep_once()
            except RemitError:
                _log.warning("sweeper: store unavailable; will retry")

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
            self._sweeper = None
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=5)
            self._checkpointer = None
        self.listener.stop()
        self.feed.stop()
        self.policy_engine.stop()
        self.audit_writer.stop()  # commits what is queued; later appends take one transaction each
        if isinstance(self.notifier, WebhookNotifier):
            self.notifier.close()
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
    token = ACCOUNT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    _write_private(path, token + "\n")
    return token, True


def _write_private(path: Path, content: str) -> None:
    # Create with 0600 from the start: no window in which another user could read it.
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


def _kek(settings: Settings) -> bytes:
    """The key-encryption key: from settings, else the KEK file, generated (0600) on the embedded default."""
    if settings.keys.kek is not None:
        return parse_kek(settings.keys.kek.get_secret_value())
    path = settings.kek_path
    if not path.exists():
        if settings.keys.kek_file is not None:
            msg = f"the key-encryption key file {path} does not exist"
            raise Unavailable(msg, details={"reason": "kek_missing"})
        generate_kek_file(path)
    return read_kek_file(path)


def _audit_key(settings: Settings) -> bytes:
    path = settings.audit_hmac_key_path
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(path, secrets.token_hex(32) + "\n")
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def _audit_signer(settings: Settings) -> Ed25519CheckpointSigner:
    """The Ed25519 checkpoint key under the home directory, created (0600) on first start like the KEK."""
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    return Ed25519CheckpointSigner.load_or_create(settings.home / "audit-signing-key")


@dataclass(frozen=True, slots=True)
class _DurableAppender:
    """Durable once `append` returns: group-committed while the writer runs (the server), else one transaction.

    One-shot commands never start the writer, so their appends take a transaction each.
    """

    writer: AuditWriter
    database: SqlDatabase

    def append(self, event: AuditEvent) -> SealedRecord:
        if self.writer.is_running:
            return self.writer.append(event)
        with self.database.transaction() as tx:
            return tx.audit.append(event)


def _limits(settings: Settings) -> Limits:
    c = settings.credentials
    return Limits(
        class_maximum={
            RiskClass.READ: dt.timedelta(seconds=c.read_max_seconds),
            RiskClass.WRITE: dt.timedelta(seconds=c.write_max_seconds),
            RiskClass.DEPLOY: dt.timedelta(seconds=c.deploy_max_seconds),
            RiskClass.PAYMENT: dt.timedelta(seconds=c.payment_max_seconds),
            RiskClass.EXPORT: dt.timedelta(seconds=c.export_max_seconds),
            RiskClass.ADMIN: dt.timedelta(seconds=c.admin_max_seconds),
        },
        max_delegation_depth=c.max_delegation_depth,
        max_task_duration=dt.timedelta(seconds=c.max_task_duration_seconds),
    )


def _attestors(settings: Settings, clock: Clock) -> list[Attestor]:
    attestation = settings.attestation
    attestors: list[Attestor] = []
    if attestation.spiffe_bundles:
        jwt_svids = JwtSvidAttestor(
            [BundleSource(trust_domain=b.trust_domain, location=b.bundle) for b in attestation.spiffe_bundles],
            audience=settings.evidence_audience,
            clock=clock,
        )
        # X.509-SVID assertions chain to the same bundles' `x509-svid` authorities: one cache, one refresh.
        attestors += [jwt_svids, X509SvidAttestor(jwt_svids.bundles, audience=settings.evidence_audience)]
    if attestation.oidc_issuers:
        attestors.append(
            OidcAttestor(
                [
                    OidcIssuer(
                        issuer=i.issuer,
                        jwks=i.jwks,
                        audience=i.audience,
                        bound_claims=i.bound_claims,
                        algorithms=tuple(i.algorithms),
                    )
                    for i in attestation.oidc_issuers
                ],
                clock=clock,
                allow_http_loopback=attestation.allow_http_loopback,
            )
        )
    return attestors


def _approval_rules(settings: Settings) -> ApprovalRules:
    a = settings.approvals
    required = {c: 2 if c.value in a.two_approver_classes else 1 for c in RiskClass}
    rules = tuple(
        ApprovalRule(function=r.function, risk_class=r.risk_class, approvers=tuple(r.approvers), required=r.required)
        for r in a.rules
    )
    return ApprovalRules(rules=rules, required=required, default_approvers=tuple(a.default_approvers))


def _approvals(
    settings: Settings, database: SqlDatabase, clock: Clock, ids: IdFactory
) -> tuple[Notifier, ApprovalService, OperatorService, ElevationBook]:
    a = settings.approvals
    notifier: Notifier = NoNotifier()
    if a.webhooks:
        notifier = WebhookNotifier(
            [Webhook(w.group, w.url, w.secret.get_secret_value().encode()) for w in a.webhooks],
            clock=clock,
            ids=ids,
            record=sql_recorder(database, clock=clock, ids=ids),
            attempts=a.webhook_attempts,
            backoff_seconds=a.webhook_backoff_seconds,
            timeout_seconds=a.webhook_timeout_seconds,
        )
    approvals = ApprovalService(
        database.transaction,
        reads=database.reading,  # polls and lists never queue behind writers
        clock=clock,
        ids=ids,
        rules=_approval_rules(settings),
        notifier=notifier,
        request_timeout=dt.timedelta(seconds=a.request_timeout_seconds),
        window=Window(uses=a.elevation_uses or None, ttl=dt.timedelta(seconds=a.elevation_ttl_seconds)),
        breakglass_ttl=dt.timedelta(seconds=a.breakglass_ttl_seconds),
        breakglass_alert_groups=a.breakglass_alert_groups,
    )
    operators = OperatorService(
        database.transaction,
        reads=database.reading,  # a token is looked up per request: never behind the writer lock
        clock=clock,
        ids=ids,
        new_token=lambda: ACCOUNT_TOKEN_PREFIX + secrets.token_urlsafe(32),
        reserved_names=[settings.operator_name],
    )
    # Found without the writer lock (a read on the decision path); used in a write transaction.
    elevations = ElevationBook(database.transaction, database.reading, clock=clock, ids=ids)
    return notifier, approvals, operators, elevations


def build(settings: Settings, *, clock: Clock | None = None, ids: IdFactory | None = None) -> Remit:
    """Wire Remit from settings; the only place adapters are constructed. Call `start()` to run background work."""
    _prepare_home(settings)
    clock = clock or SystemClock()
    ids = ids or RandomIdFactory(lambda: int(clock.now().timestamp() * 1000))
    database = SqlDatabase.connect(settings.store_url, sqlite_synchronous=settings.store.sqlite_synchronous)
    bus = InProcessEventBus()
    token, _ = ensure_operator_token(settings)
    # One HMAC of sensitive values (credential jtis) for every audit record: the audit log's.
    audit_signer = _audit_signer(settings)
    audit_writer = AuditWriter(database, clock=clock, signer=audit_signer)
    audit = AuditLog(
        appender=_DurableAppender(audit_writer, database),
        ledger=SqlAuditLedger(database.engine),
        clock=clock,
        hmac_key=_audit_key(settings),
        signer=audit_signer,
    )
    registry = RegistryService(database.transaction, clock=clock, ids=ids, bus=bus)
    key_ring = KeyRing.open(
        settings.keys_directory, _kek(settings), now=clock.now(), algorithm=SigningAlgorithm(settings.keys.algorithm)
    )
    issuer = settings.issuer_url
    signer = AccessTokenSigner(key_ring)
    tokens = AccessTokenVerifier(key_ring, issuer=issuer, clock=clock)
    evidence_uses = SqlEvidenceUses(database)
    proofs = DpopVerifier(clock=clock, replay_guard=evidence_uses)
    attestation = AttestationService(
        _attestors(settings, clock),
        replay_guard=evidence_uses,
        clock=clock,
        max_evidence_lifetime=dt.timedelta(seconds=settings.attestation.max_evidence_lifetime_seconds),
    )
    index = RevocationIndex()
    feed = RevocationFeed(database, index, clock=clock)
    tasks = TaskService(database.transaction, clock=clock, ids=ids, on_revocations=feed.refresh, reads=database.reading)
    subscribe_revocation_handlers(bus, tasks)
    issuance = IssuanceService(
        database.transaction,
        clock=clock,
        ids=ids,
        signer=signer,
        verifier=tokens,
        index=index,
        issuer=issuer,
        limits=_limits(settings),
        fingerprint=audit.hmac_of,
        gateway_audiences=frozenset(settings.credentials.gateway_audiences),
        reads=database.reading,
    )
    revocation = RevocationService(
        database.transaction, clock=clock, ids=ids, fingerprint=audit.hmac_of, on_revocations=feed.refresh, index=index
    )
    verifier = Verifier(tokens, index, proofs=proofs, index_is_current=feed.is_current)
    # Read without the writer lock: a cache miss on the decision path never queues behind writers.
    facts = CachedFacts(database.reading, ttl=dt.timedelta(seconds=settings.decisions.facts_ttl_seconds))
    facts.subscribe(bus)
    policies = PolicyService(database.transaction, validator=CedarPolicyValidator(), clock=clock, ids=ids, bus=bus)
    # Compiled once per policy-set generation; swapped at once here after an activation, polled for others'.
    policy_engine = CedarPolicyEngine(policies, entity_cache_size=settings.policy.entity_cache_size)
    bus.subscribe(PolicySetChanged, policy_engine.on_policy_set_changed)

    notifier, approvals, operators, elevations = _approvals(settings, database, clock, ids)

    def end_task(task_id: str, *, reason: str) -> None:
        tasks.revoke(task_id, reason=reason, actor=AuditActor.system())

    decisions = DecisionService(
        verifier=verifier,
        facts=facts,
        policies=policy_engine,
        elevations=elevations,
        audit=audit,
        strikes=AuditObjectiveStrikes(audit),
        end_task=end_task,
        clock=clock,
        ids=ids,
        gateway_audiences=settings.credentials.gateway_audiences,
        strike_threshold=settings.decisions.out_of_objective_threshold,
        approvals=approvals,
    )
    listener = ChangeListener(database, {REVOCATIONS: feed.refresh, POLICIES: policy_engine.refresh})
    return Remit(
        settings=settings,
        database=database,
        clock=clock,
        ids=ids,
        bus=bus,
        registry=registry,
        operator=OperatorAuth.from_token(settings.operator_name, token, accounts=operators.identify),
        key_ring=key_ring,
        signer=signer,
        tokens=tokens,
        proofs=proofs,
        attestation=attestation,
        tasks=tasks,
        issuance=issuance,
        revocation=revocation,
        index=index,
        feed=feed,
        listener=listener,
        verifier=verifier,
        evidence_uses=evidence_uses,
        audit=audit,
        audit_writer=audit_writer,
        facts=facts,
        policies=policies,
        policy_engine=policy_engine,
        decisions=decisions,
        approvals=approvals,
        operators=operators,
        elevations=elevations,
        notifier=notifier,
    )
