"""A full credential stack on the test database: real key ring, real signatures, real revocation feed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.factories import make_agent, make_function, make_owner, make_tool, make_workflow

from remit.adapters.jose import AccessTokenSigner, AccessTokenVerifier, DpopVerifier, MemoryReplayGuard
from remit.adapters.keys import KeyRing
from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.revocation_feed import RevocationFeed
from remit.core.attestation.models import WorkloadIdentity
from remit.core.credentials.issuance import IssuanceService, TaskDeclaration
from remit.core.credentials.models import Limits
from remit.core.credentials.revocation import RevocationService, subscribe_revocation_handlers
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.credentials.verification import Verifier
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import SpiffeId, WorkflowStep
from remit.core.registry.service import RegistryService
from remit.core.tasks.models import parse_authorization_details
from remit.core.tasks.service import TaskService
from remit.testing import FrozenClock

ISSUER = "https://remit.test"
HMAC_KEY = b"test-audit-hmac-key"


@dataclass
class Stack:
    clock: FrozenClock
    registry: RegistryService
    tasks: TaskService
    issuance: IssuanceService
    revocation: RevocationService
    verifier: Verifier
    signer: AccessTokenSigner
    tokens: AccessTokenVerifier
    index: RevocationIndex
    feed: RevocationFeed
    database: SqlDatabase
    ring: KeyRing


def fingerprint(value: str) -> str:
    return hmac.new(HMAC_KEY, value.encode(), hashlib.sha256).hexdigest()


def workload(path: str = "agents/invoice-bot", *, jti: str | None = None) -> WorkloadIdentity:
    return WorkloadIdentity.for_spiffe(
        SpiffeId.parse(f"spiffe://acme.example/{path}"),
        claims={},
        jti=jti,
        issued_at=None,
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )


def declaration(**overrides: object) -> TaskDeclaration:
    values: dict[str, object] = {
        "workflow": "release-docs@1",
        "objective": "publish the Q1 docs",
        "details": parse_authorization_details(
            [{"type": "remit_tool", "tool": "github", "actions": ["read_file"], "resources": ["repo:acme/docs"]}]
        ),
        "expected_duration": dt.timedelta(minutes=20),
        "environment": "prod",
        "audience": "tool:github",
    }
    values.update(overrides)
    return TaskDeclaration(**values)  # type: ignore[arg-type]


def make_stack(
    database: SqlDatabase,
    clock: FrozenClock,
    ids: SequentialIdFactory,
    bus: InProcessEventBus,
    registry: RegistryService,
    keys: Path,
) -> Stack:
    """The whole credential stack plus a small organisation: three agents of one function, one approved workflow."""
    ring = KeyRing.open(keys, os.urandom(32), now=clock.now())
    signer = AccessTokenSigner(ring)
    tokens = AccessTokenVerifier(ring, issuer=ISSUER, clock=clock)
    index = RevocationIndex()
    feed = RevocationFeed(database, index, clock=clock)
    tasks = TaskService(database.transaction, clock=clock, ids=ids, on_revocations=feed.refresh)
    subscribe_revocation_handlers(bus, tasks)
    issuance = IssuanceService(
        database.transaction,
        clock=clock,
        ids=ids,
        signer=signer,
        verifier=tokens,
        index=index,
        issuer=ISSUER,
        limits=Limits(),
        fingerprint=fingerprint,
        reads=database.reading,
    )
    revocation = RevocationService(
        database.transaction, clock=clock, ids=ids, fingerprint=fingerprint, on_revocations=feed.refresh
    )
    proofs = DpopVerifier(clock=clock, replay_guard=MemoryReplayGuard(clock=clock))
    verifier = Verifier(tokens, index, proofs=proofs)
    # The organisation: an owner, a function, github, an approved workflow with read and merge, two agents.
    owner = make_owner(registry)
    function = make_function(registry, owner)
    make_tool(registry)
    steps = (
        WorkflowStep("github", "read_file", "repo:acme/*"),
        WorkflowStep("github", "merge_pr", "repo:acme/docs*"),
    )
    registry.approve_workflow(make_workflow(registry, function, steps=steps).id, actor="alice")
    make_agent(registry, owner=owner, function=function, name="invoice-bot", environments=("prod", "dev"))
    make_agent(registry, owner=owner, function=function, name="helper-bot")
    make_agent(registry, owner=owner, function=function, name="third-bot")
    return Stack(
        clock=clock,
        registry=registry,
        tasks=tasks,
        issuance=issuance,
        revocation=revocation,
        verifier=verifier,
        signer=signer,
        tokens=tokens,
        index=index,
        feed=feed,
        database=database,
        ring=ring,
    )


@pytest.fixture
def stack(
    database: SqlDatabase,
    clock: FrozenClock,
    ids: SequentialIdFactory,
    bus: InProcessEventBus,
    registry: RegistryService,
    tmp_path: Path,
) -> Stack:
    return make_stack(database, clock, ids, bus, registry, tmp_path / "keys")
