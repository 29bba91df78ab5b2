"""The whole schema in one file (SQLAlchemy Core). Alembic revisions create it; tests compare the two."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

__all__ = ["metadata", "naive_utc"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """An aware datetime as stored: naive UTC. A naive one is refused: its zone is unknown."""
    if value.tzinfo is not dt.UTC:  # the clock's own zone needs no conversion
        if value.tzinfo is None:
            msg = "naive datetime reached the store"
            raise ValueError(msg)
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so we store naive UTC and re-attach it)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:  # noqa: ARG002
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: object, dialect: Dialect) -> dt.datetime | None:  # noqa: ARG002
        if value is None:
            return None
        assert isinstance(value, dt.datetime)  # noqa: S101 - the column type guarantees it
        return value.replace(tzinfo=dt.UTC)


ID = 40

owners = Table(
    "owners",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("offboarded_at", UtcDateTime(), nullable=True),
    Column("revision", Integer, nullable=False),
)

# A human's sign-in identities, kept apart so uniqueness and "never an agent" are enforced by key.
owner_identities = Table(
    "owner_identities",
    metadata,
    Column("identity_key", String(2200), primary_key=True),
    Column("owner_id", String(ID), ForeignKey("owners.id"), nullable=False, index=True),
    Column("issuer", String(1024), nullable=False),
    Column("subject", String(1024), nullable=False),
)

business_functions = Table(
    "business_functions",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("owner_id", String(ID), ForeignKey("owners.id"), nullable=False, index=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("revision", Integer, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("identity_key", String(2200), nullable=False, unique=True),
    Column("identity", JSON, nullable=False),
    Column("owner_id", String(ID), ForeignKey("owners.id"), nullable=True, index=True),
    Column("function_id", String(ID), ForeignKey("business_functions.id"), nullable=True, index=True),
    Column("environments", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("review_by", Date, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("revision", Integer, nullable=False),
)

tools = Table(
    "tools",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("actions", JSON, nullable=False),
    Column("resources", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("revision", Integer, nullable=False),
)

workflows = Table(
    "workflows",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("function_id", String(ID), ForeignKey("business_functions.id"), nullable=False, index=True),
    Column("description", Text, nullable=False),
    Column("steps", JSON, nullable=False),
    Column("max_duration_seconds", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("approved_by", String(200), nullable=True),
    Column("approved_at", UtcDateTime(), nullable=True),
    Column("content_hash", String(80), nullable=True),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("revision", Integer, nullable=False),
    UniqueConstraint("name", "version", name="uq_workflows_name_version"),
)

grants = Table(
    "grants",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("agent_id", String(ID), ForeignKey("agents.id"), nullable=False, index=True),
    Column("tool", String(63), nullable=False),
    Column("action", String(63), nullable=False),
    Column("resource", String(512), nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# The hash chain (ADR 0007, stored as in ADR 0009). `seq` is the chain sequence, assigned without gaps
# under the chain lock; `record` is the JCS document exactly as sealed, `hash` = SHA-256(prev_hash ||
# record), see remit.core.audit.chain. `id`, `type`, `task_id` and `agent_id` are copies of document
# members for lookups; verification checks them against `record`.
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("id", String(ID), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("task_id", String(ID), nullable=True),
    Column("agent_id", String(ID), nullable=True),
    Column("record", Text, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_events_task_id", "task_id"),
    Index("ix_audit_events_agent_id", "agent_id"),
    Index("ix_audit_events_type", "type"),
)

# Signed statements "the chain had head_hash at seq", made every N records or T seconds.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("head_hash", String(64), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("key_id", String(128), nullable=False),
    Column("algorithm", String(16), nullable=False),
    Column("signature", String(256), nullable=False),
)

# ------------------------------------------------------------------ tasks and credentials

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("agent_id", String(ID), ForeignKey("agents.id"), nullable=False),
    Column("owner_id", String(ID), nullable=False),
    Column("function_id", String(ID), nullable=False),
    Column("workflow_id", String(ID), ForeignKey("workflows.id"), nullable=False),
    Column("workflow_ref", String(80), nullable=False),
    Column("objective", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("environment", String(63), nullable=False),
    Column("audience", String(512), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("deadline", UtcDateTime(), nullable=False),
    Column("state", String(16), nullable=False),
    Column("parent_id", String(ID), ForeignKey("tasks.id"), nullable=True),
    Column("root_id", String(ID), nullable=False),
    # Ancestors nearest first, space-separated: ids are fixed-format, so a LIKE on one id is exact.
    Column("lineage", String(512), nullable=False),
    Column("principal", String(512), nullable=True),
    Column("epoch", Integer, nullable=False),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("end_reason", Text, nullable=True),
    Column("labels", JSON, nullable=False),
    # The key its own-audience credentials are bound to (ADR 0016): set by the first bound one, never changed.
    Column("dpop_jkt", String(128), nullable=True),
    Column("revision", Integer, nullable=False),
    Index("ix_tasks_agent_state", "agent_id", "state"),
    Index("ix_tasks_workflow_state", "workflow_id", "state"),
    Index("ix_tasks_state_deadline", "state", "deadline"),
    Index("ix_tasks_root_id", "root_id"),
)

# The revocation log every replica's in-memory index follows (see core/tasks/revocations.py).
revocations = Table(
    "revocations",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

credentials = Table(
    "credentials",
    metadata,
    Column("jti", String(ID), primary_key=True),
    Column("task_id", String(ID), ForeignKey("tasks.id"), nullable=False, index=True),
    Column("agent_id", String(ID), nullable=False),
    Column("audience", String(512), nullable=False),
    Column("kid", String(128), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("cnf_jkt", String(128), nullable=True),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
    Column("revoke_reason", Text, nullable=True),
)

# One row per accepted evidence or DPoP proof `jti` until it expires: single use across replicas.
evidence_uses = Table(
    "evidence_uses",
    metadata,
    Column("namespace", String(64), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)

# ------------------------------------------------------------------ policies (migration 0004)

# One row per policy name: its newest version and the one active version (at most one, by construction).
policies = Table(
    "policies",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("latest_version", Integer, nullable=False),
    Column("active_version", Integer, nullable=True),
    Column("activated_by", String(200), nullable=True),
    Column("activated_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# Immutable versions: the Cedar text exactly as added, pinned by its SHA-256.
policy_versions = Table(
    "policy_versions",
    metadata,
    Column("id", String(ID), nullable=False, unique=True),
    Column("name", String(63), ForeignKey("policies.name"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("text", Text, nullable=False),
    Column("sha256", String(80), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# One row (id 1): the active set's generation, bumped on every activation and deactivation. Replicas
# poll it; on PostgreSQL its row lock also serialises concurrent activations.
policy_state = Table(
    "policy_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
    Column("changed_at", UtcDateTime(), nullable=False),
)

# ------------------------------------------------------------------ approvals (migration 0006)

# People with control-plane access: roles, approver groups, and only the SHA-256 of their token.
operator_accounts = Table(
    "operator_accounts",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("name", String(63), nullable=False, unique=True),
    Column("roles", JSON, nullable=False),
    Column("groups", JSON, nullable=False),
    Column("email", String(320), nullable=True),
    Column("owner_id", String(ID), nullable=True),
    Column("token_sha256", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    Column("disabled_by", String(200), nullable=True),
    Column("disable_reason", Text, nullable=True),
    # One person holds at most one active account: by email and by linked owner (NULLs never collide).
    Index(
        "uq_operator_accounts_active_email",
        "email",
        unique=True,
        sqlite_where=text("disabled_at IS NULL"),
        postgresql_where=text("disabled_at IS NULL"),
    ),
    Index(
        "uq_operator_accounts_active_owner",
        "owner_id",
        unique=True,
        sqlite_where=text("disabled_at IS NULL"),
        postgresql_where=text("disabled_at IS NULL"),
    ),
)

# Approval requests and break-glass grants. `pending_key` is set only while a request is pending:
# unique, so two replicas cannot open the same request twice (NULLs never collide).
approvals = Table(
    "approvals",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("task_id", String(ID), ForeignKey("tasks.id"), nullable=False, index=True),
    Column("agent_id", String(ID), nullable=False),
    Column("owner_id", String(ID), nullable=False),
    Column("function_id", String(ID), nullable=False),
    Column("principal", String(512), nullable=True),
    Column("objective", Text, nullable=False),
    Column("tool", String(63), nullable=False),
    Column("action", String(63), nullable=False),
    Column("resource", String(512), nullable=False),
    Column("risk_class", String(16), nullable=False),
    Column("sensitivity", String(16), nullable=True),
    Column("environment", String(63), nullable=True),
    Column("context", JSON, nullable=False),
    Column("context_sha256", String(64), nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("uses", Integer, nullable=True),
    Column("ttl_seconds", Integer, nullable=False),
    Column("approvers", JSON, nullable=False),
    Column("required", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("pending_key", String(64), nullable=True, unique=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("decision_id", String(ID), nullable=True),
    Column("votes", JSON, nullable=False),
    Column("decided_at", UtcDateTime(), nullable=True),
    Column("reason", Text, nullable=True),
    Column("elevation_id", String(ID), nullable=True),
    Column("justification", Text, nullable=True),
    Column("review_state", String(16), nullable=True),
    Column("reviewed_by", String(200), nullable=True),
    Column("reviewed_at", UtcDateTime(), nullable=True),
    Column("review_notes", Text, nullable=True),
    Index("ix_approvals_state_expires", "state", "expires_at"),
    Index("ix_approvals_kind_review", "kind", "review_state"),
)

# Live and spent elevations: one exact call (task, tool, action, resource), a use count, a deadline.
elevations = Table(
    "elevations",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("approval_id", String(ID), ForeignKey("approvals.id"), nullable=False),
    Column("task_id", String(ID), ForeignKey("tasks.id"), nullable=False),
    Column("agent_id", String(ID), nullable=False),
    Column("owner_id", String(ID), nullable=False),
    Column("function_id", String(ID), nullable=False),
    Column("tool", String(63), nullable=False),
    Column("action", String(63), nullable=False),
    Column("resource", String(512), nullable=False),
    Column("uses_left", Integer, nullable=True),
    Column("used", Integer, nullable=False),
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("granted_by", JSON, nullable=False),
    Column("break_glass", Integer, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("context_sha256", String(64), nullable=False),
    Index("ix_elevations_call", "task_id", "tool", "action", "resource"),
)

# Every webhook delivery attempt, successful or not.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery", String(ID), primary_key=True),
    Column("attempt", Integer, primary_key=True, autoincrement=False),
    Column("group_name", String(63), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("event", String(63), nullable=False),
    Column("task_id", String(ID), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("delivered", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)
