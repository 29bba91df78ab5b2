"""Stateful property: a credential verifies exactly when its whole lineage runs, its epoch is current, and it is unexpired.

Any sequence of issue, delegate, finish, objective change, suspension, reactivation and time is driven through
the real stack and a small model side by side.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from tests.factories import OPERATOR
from tests.unit.core.credentials.conftest import ISSUER, Stack, declaration, make_stack, workload

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import upgrade
from remit.core.audit.models import AuditActor
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import AgentStatus
from remit.core.registry.service import RegistryService
from remit.core.tasks.models import TaskState, parse_authorization_details
from remit.errors import CredentialExpired, CredentialRevoked, RemitError, TaskNotActive
from remit.testing import FrozenClock

AGENTS = ("invoice-bot", "helper-bot", "third-bot")
SYSTEM = AuditActor.system()


@cache
def _template() -> Path:
    path = Path(tempfile.mkdtemp(prefix="remit-cascade-")) / "template.db"
    database = SqlDatabase.connect(f"sqlite:///{path}")
    upgrade(database.engine)
    database.dispose()
    return path


@dataclass
class ModelTask:
    id: str
    agent: str
    parent: str | None
    epoch: int = 0
    ended: bool = False


@dataclass
class ModelToken:
    token: str
    task: str
    epoch: int
    expires_at: dt.datetime


@dataclass
class Model:
    tasks: dict[str, ModelTask] = field(default_factory=dict)
    tokens: list[ModelToken] = field(default_factory=list)

    def lineage(self, task_id: str) -> list[ModelTask]:
        chain = []
        current: str | None = task_id
        while current is not None:
            chain.append(self.tasks[current])
            current = self.tasks[current].parent
        return chain

    def running(self, task_id: str) -> bool:
        return not any(t.ended for t in self.lineage(task_id))


class RevocationCascade(RuleBasedStateMachine):
    """Drives the real stack (SQLite, key ring, signatures, index) and a tiny model side by side."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="remit-cascade-run-"))
        shutil.copyfile(_template(), self.directory / "remit.db")
        self.database = SqlDatabase.connect(f"sqlite:///{self.directory / 'remit.db'}")
        self.clock = FrozenClock()
        ids = SequentialIdFactory()
        bus = InProcessEventBus()
        registry = RegistryService(self.database.transaction, clock=self.clock, ids=ids, bus=bus)
        self.stack: Stack = make_stack(self.database, self.clock, ids, bus, registry, self.directory / "keys")
        self.model = Model()
        self.suspended: set[str] = set()

    def teardown(self) -> None:
        self.database.dispose()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _deadline_alive(self, task_id: str) -> bool:
        return self.stack.tasks.get(task_id).deadline > self.clock.now()

    @initialize()
    def first_task(self) -> None:
        self.start(agent="invoice-bot")

    @rule(agent=st.sampled_from(AGENTS))
    def start(self, agent: str) -> None:
        try:
            task, issued = self.stack.issuance.start_task(workload(f"agents/{agent}"), declaration())
        except RemitError:
            assert agent in self.suspended
            return
        assert agent not in self.suspended
        self.model.tasks[task.id] = ModelTask(task.id, agent, None)
        self.model.tokens.append(ModelToken(issued.token, task.id, 0, issued.expires_at))

    @precondition(lambda self: bool(self.model.tasks))
    @rule(data=st.data(), child_agent=st.sampled_from(AGENTS))
    def delegate(self, data: st.DataObject, child_agent: str) -> None:
        parent = data.draw(st.sampled_from(sorted(self.model.tasks)))
        model_parent = self.model.tasks[parent]
        try:
            delegation = self.stack.issuance.reissue(workload(f"agents/{model_parent.agent}"), parent, audience=ISSUER)
            child, issued = self.stack.issuance.start_task(
                workload(f"agents/{child_agent}"),
                declaration(
                    details=parse_authorization_details(
                        [
                            {
                                "type": "remit_tool",
                                "tool": "github",
                                "actions": ["read_file"],
                                "resources": ["repo:acme/docs"],
                            }
                        ]
                    ),
                    parent_token=delegation.token,
                ),
            )
        except RemitError:
            depth = len(self.model.lineage(parent))
            assert (
                not self.model.running(parent)
                or not self._deadline_alive(parent)
                or model_parent.agent in self.suspended
                or child_agent in self.suspended
                or depth > 2
            )
            return
        self.model.tasks[child.id] = ModelTask(child.id, child_agent, parent)
        self.model.tokens.append(ModelToken(issued.token, child.id, 0, issued.expires_at))

    @precondition(lambda self: bool(self.model.tasks))
    @rule(data=st.data(), outcome=st.sampled_from([TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED]))
    def finish(self, data: st.DataObject, outcome: TaskState) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.model.tasks)))
        try:
            self.stack.tasks.finish(task_id, outcome, reason="", actor=SYSTEM)
        except TaskNotActive:
            assert not (self.model.running(task_id) and self._deadline_alive(task_id))
            return
        assert self.model.running(task_id)
        self.model.tasks[task_id].ended = True

    @precondition(lambda self: bool(self.model.tasks))
    @rule(data=st.data())
    def change_objective(self, data: st.DataObject) -> None:
        task_id = data.draw(st.sampled_from(sorted(self.model.tasks)))
        task = self.model.tasks[task_id]
        try:
            changed = self.stack.tasks.change_objective(task_id, f"objective {task.epoch + 1}", actor=SYSTEM)
        except TaskNotActive:
            assert not (self.model.running(task_id) and self._deadline_alive(task_id))
            return
        assert self.model.running(task_id)
        task.epoch = changed.epoch

    @rule(agent=st.sampled_from(AGENTS))
    def suspend(self, agent: str) -> None:
        if agent in self.suspended:
            return
        self.stack.registry.set_agent_status(agent, AgentStatus.SUSPENDED, reason="incident", actor=OPERATOR)
        self.suspended.add(agent)
        for task in self.model.tasks.values():
            if task.agent == agent:
                task.ended = True

    @rule(agent=st.sampled_from(AGENTS))
    def reactivate(self, agent: str) -> None:
        if agent not in self.suspended:
            return
        self.stack.registry.set_agent_status(agent, AgentStatus.ACTIVE, reason="cleared", actor=OPERATOR)
        self.suspended.discard(agent)

    @rule(minutes=st.integers(min_value=1, max_value=4))
    def advance(self, minutes: int) -> None:
        self.clock.advance(dt.timedelta(minutes=minutes))

    @invariant()
    def a_credential_verifies_exactly_when_its_whole_lineage_lives(self) -> None:
        """Nothing descended from a revoked or ended task verifies; everything else still does."""
        for held in self.model.tokens:
            alive = (
                self.model.running(held.task)
                and held.epoch == self.model.tasks[held.task].epoch
                and self.clock.now() < held.expires_at
            )
            try:
                self.stack.verifier.verify(held.token, audience="tool:github")
                verified = True
            except (CredentialRevoked, CredentialExpired):
                verified = False
            assert verified == alive, (held.task, alive)


RevocationCascade.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestRevocationCascade = pytest.mark.slow(RevocationCascade.TestCase)
