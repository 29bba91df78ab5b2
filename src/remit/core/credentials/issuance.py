"""Start tasks and issue their credentials: one set of checks, whatever door the request came through.

`IssuanceService.start_task` (native `POST /v1/tasks`, RFC 8693 token exchange) and
`IssuanceService.reissue` both run `_admit`, the single function that decides whether an attested
workload may hold a credential at all (C01, C04), before anything is written. Nothing is signed
unless the task, the credential record, their audit events and the evidence's single use are
committed first.

Throughput (ADR 0010): every check runs first, on registry rows kept in a `RegistryCache`, and yields
an `IssuanceUnit` of inserts. Units of concurrent callers are written together by `GroupCommit`, one
transaction and one commit per batch; inside it, `_write` re-reads the revision of every row each unit
was decided on (a changed one sends that unit back, to be decided again and written in one transaction
on the store's rows), spends the evidence's single use (a replay is refused there, exactly once, across
replicas), then inserts.

Evidence checked later (ADR 0015): `start_task_async` may take an identity whose signature check is
still to run (a `DeferredCheck`). It decides on it in memory, then the unit carries the check and the
batch's leading thread runs it before the transaction opens: a unit whose evidence fails is refused
alone, having written and spent nothing. A refusal is recorded only for an identity whose check has
passed (it runs first, in a worker thread, when deciding refused), so forged evidence can never write
a refusal in another workload's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from remit.core.attestation.models import DeferredCheck, EvidenceUse
from remit.core.attestation.waiting import WouldWait, without_waiting
from remit.core.audit.chain import PreparedRecord, prepare
from remit.core.audit.models import ActorKind, AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.credentials.group_commit import GroupCommit
from remit.core.credentials.models import IssuedCredential, Limits, build_claims
from remit.core.credentials.ports import Signer, TokenVerifier
from remit.core.credentials.registry_cache import IssuanceReads, RegistryCache
from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.credentials.tokens import (
    AttestedWorkload,
    CredentialRecord,
    CredentialsTransaction,
    CredentialsUnitOfWork,
    IssuanceStore,
)
from remit.core.ids import IdFactory
from remit.core.registry.models import Agent, AgentStatus, RiskClass, WorkflowState, WorkflowVersion
from remit.core.tasks.models import (
    AuthorizationDetail,
    Task,
    TaskState,
    details_within,
    parse_objective,
    within_workflow,
)
from remit.errors import (
    AgentUntraceable,
    AttestationFailed,
    Conflict,
    CredentialInvalid,
    Forbidden,
    InvalidRequest,
    NotFound,
    RemitError,
    TaskNotActive,
)

__all__ = ["IssuanceService", "IssuanceUnit", "TaskDeclaration"]

MAX_AUDIENCE = 512
MAX_PRINCIPAL = 512


@dataclass(frozen=True, slots=True)
class TaskDeclaration:
    """What an agent declares to start a task (C07): workflow, objective, scope, duration, where and for whom."""

    workflow: str  # "name@version"
    objective: str
    details: tuple[AuthorizationDetail, ...]
    expected_duration: dt.timedelta
    environment: str
    audience: str
    parent_token: str | None = None  # a delegation credential of the parent task (aud = this issuer)
    principal: str | None = None  # the person the task acts for (on-behalf-of)
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Admitted:
    agent: Agent
    owner_id: str
    function_id: str


@dataclass(slots=True)
class SignedToken:
    """The token of a unit, signed once its batch has committed (by the thread that led the batch)."""

    value: str | None = None


@dataclass(frozen=True, slots=True)
class IssuanceUnit:
    """What one issuance writes, every check already passed: the batch only re-validates and inserts."""

    task: Task | None  # a new task (start_task); None when re-issuing for an existing one
    credential: CredentialRecord
    # The existing task with the DPoP binding this credential gives it (its first bound one, ADR 0016).
    binds: Task | None
    # Canonicalised by the caller, so the batch (which holds the write lock) only chains and writes them.
    records: tuple[PreparedRecord, ...]
    evidence: EvidenceUse | None
    depends_on: Mapping[tuple[str, str], int]  # (kind, id) → the revision the checks read
    claims: Mapping[str, Any]  # what is signed once the unit is durable
    signed: SignedToken = field(default_factory=SignedToken)
    # The evidence's signature check when it was left to the batch (ADR 0015): run before the write.
    evidence_check: DeferredCheck | None = None


class _Stale(Exception):  # internal signal, never leaves the service
    """A row the unit was decided on changed before its write: decide again on fresh rows."""


@dataclass(frozen=True, slots=True)
class _Prepared:
    unit: IssuanceUnit
    task: Task
    issued: IssuedCredential


class IssuanceService:
    """Attested workload + declaration → recorded task + signed, short-lived, narrow credential."""

    def __init__(  # noqa: PLR0913 - the composition root passes each collaborator explicitly
        self,
        uow: CredentialsUnitOfWork,
        *,
        clock: Clock,
        ids: IdFactory,
        signer: Signer,
        verifier: TokenVerifier,
        index: RevocationIndex,
        issuer: str,
        limits: Limits,
        fingerprint: Callable[[str], str],
        gateway_audiences: frozenset[str] = frozenset(),
        reads: CredentialsUnitOfWork | None = None,
        cache: RegistryCache | None = None,
        max_batch: int = 256,
    ) -> None:
        self._uow = uow
        # Reads on a cache miss: a read-only transaction where the store has one (no writer lock).
        self._reads = reads or uow
        self.cache = cache or RegistryCache()
        # Tokens are signed after their batch commits, by the thread that led it: on the event-loop
        # path that is the writer thread, so the signature's release of the GIL never stalls the loop.
        self.commits: GroupCommit[CredentialsTransaction, IssuanceUnit] = GroupCommit(
            uow, self._write, max_batch=max_batch, before=_check_evidence, finish=self._sign_unit
        )
        self._clock = clock
        self._ids = ids
        self._signer = signer
        self._verifier = verifier
        self._index = index
        self._issuer = issuer
        self._limits = limits
        # HMAC of a jti for the audit trail: correlates records without storing a usable handle.
        self._fingerprint = fingerprint
        self._gateway_audiences = gateway_audiences

    # ------------------------------------------------------------ admission: the one check

    def _admit(self, reads: IssuanceReads, workload: AttestedWorkload, environment: str) -> _Admitted:
        """May this attested workload hold a credential in this environment at all? (C01, C04)."""
        agent = reads.agent_by_binding(workload.binding_key)
        if agent is None:
            msg = "no agent is registered for this workload identity"
            raise AgentUntraceable(msg, details={"reason": "unregistered_identity"})
        if agent.status is not AgentStatus.ACTIVE:
            msg = f"agent {agent.name} is {agent.status.value}"
            raise Forbidden(msg, details={"reason": f"agent_{agent.status.value}", "agent_id": agent.id})
        problems = []
        owner = reads.owner(agent.owner_id) if agent.owner_id else None
        if owner is None:
            problems.append("no_owner")
        elif not owner.is_active:
            problems.append("owner_offboarded")
        function = reads.function(agent.function_id) if agent.function_id else None
        if function is None:
            problems.append("no_business_function")
        if agent.review_overdue(self._clock.now().date()):
            problems.append("review_overdue")
        if problems or owner is None or function is None:
            msg = f"agent {agent.name} is untraceable: " + ", ".join(problems)
            raise AgentUntraceable(msg, details={"reason": problems[0], "problems": problems, "agent_id": agent.id})
        if environment not in agent.environments:
            msg = f"agent {agent.name} is not allowed in environment {environment}"
            raise Forbidden(msg, details={"reason": "environment_not_allowed", "agent_id": agent.id})
        return _Admitted(agent=agent, owner_id=owner.id, function_id=function.id)

    # ------------------------------------------------------------ starting a task

    def start_task(
        self,
        workload: AttestedWorkload,
        declaration: TaskDeclaration,
        *,
        dpop_jkt: str | None = None,
        channel: str = "native",
    ) -> tuple[Task, IssuedCredential]:
        """Admit the workload, check the declaration, record the task and issue its first credential."""
        prepare = self._starting(workload, declaration, dpop_jkt, channel)
        try:
            prepared = self._issue(prepare)
        except RemitError as error:
            self._record_refusal(workload, declaration.workflow, error, channel)
            raise
        return prepared.task, self._signed(prepared)

    async def start_task_async(
        self,
        workload: AttestedWorkload,
        declaration: TaskDeclaration,
        *,
        dpop_jkt: str | None = None,
        channel: str = "native",
        evidence_check: DeferredCheck | None = None,
    ) -> tuple[Task, IssuedCredential]:
        """`start_task` for an event loop: the same checks and writes, without a thread per caller.

        The checks run on the loop, on kept registry rows (a miss decides in a worker thread, which
        reads the store); the write waits on the group commit's future, never blocking the loop; the rare
        decide-again path and a refusal's record run in a worker thread. With `evidence_check`, the
        workload's evidence signature has not been checked yet: it runs before anything is written.
        """
        check = evidence_check or DeferredCheck.done()
        prepare = self._starting(workload, declaration, dpop_jkt, channel)
        try:
            prepared = await self._issue_async(prepare, check)
        except RemitError as error:
            await asyncio.to_thread(self._refuse_checked, check, workload, declaration.workflow, error, channel)
            raise
        return prepared.task, self._signed(prepared)

    def _starting(
        self,
        workload: AttestedWorkload,
        declaration: TaskDeclaration,
        dpop_jkt: str | None,
        channel: str,
    ) -> Callable[[IssuanceReads], _Prepared]:
        """How a new task is decided on given reads: admit, check the declaration, build the writes."""

        def prepare(reads: IssuanceReads) -> _Prepared:
            admitted = self._admit(reads, workload, declaration.environment)
            task = self._new_task(reads, admitted, declaration, dpop_jkt)
            started = self._event(
                "task.started", admitted.agent, task, {"objective": task.objective, "channel": channel}
            )
            return self._prepare(reads, admitted.agent, workload, task, task.audience, dpop_jkt, new_task=started)

        return prepare

    async def _issue_async(self, prepare: Callable[[IssuanceReads], _Prepared], check: DeferredCheck) -> _Prepared:
        """`_issue` awaiting the batch instead of blocking on it; the batch runs the evidence check first.

        The decision runs on the loop when every row it needs is kept; one that must read the store (a
        row or task not kept yet) runs in a worker thread instead.
        """
        try:
            with without_waiting():
                prepared = self._decide_on_kept_rows(prepare)
        except WouldWait:
            prepared = await asyncio.to_thread(self._decide_on_kept_rows, prepare)
        if prepared is not None:
            # The unit carries the evidence check whatever door decided it: the batch runs it before writing.
            prepared = replace(prepared, unit=replace(prepared.unit, evidence_check=check))
            try:
                await self.commits.submit_async(prepared.unit)
            except _Stale:
                pass
            else:
                return self._written(prepared)
        # No cache to drop: deciding again on the store's rows replaces each kept row it reads (see
        # `IssuanceReads`), so one agent's refusals never empty what other issuances decide on.

        def checked_then_in_one_transaction() -> _Prepared:
            check()  # nothing is read under the registry lock for unchecked evidence
            return self._issue_in_one_transaction(prepare)

        return await asyncio.to_thread(checked_then_in_one_transaction)

    def reissue(
        self,
        workload: AttestedWorkload,
        task_id: str,
        *,
        audience: str | None = None,
        dpop_jkt: str | None = None,
    ) -> IssuedCredential:
        """A new credential for a running task (after a context change, or to delegate with aud = issuer)."""
        prepare = self._reissuing(workload, task_id, audience, dpop_jkt)
        try:
            prepared = self._issue(prepare)
        except RemitError as error:
            self._record_refusal(workload, task_id, error, "reissue")
            raise
        return self._signed(prepared)

    async def reissue_async(
        self,
        workload: AttestedWorkload,
        task_id: str,
        *,
        audience: str | None = None,
        dpop_jkt: str | None = None,
        evidence_check: DeferredCheck | None = None,
    ) -> IssuedCredential:
        """`reissue` for an event loop, as `start_task_async` is `start_task`'s: the write awaited, never blocking.

        A task kept in memory (started or read here before, its DPoP binding with it) is decided on the loop;
        one that must be read decides in a worker thread. The batch runs `evidence_check` (when given) before
        anything is written.
        """
        check = evidence_check or DeferredCheck.done()
        prepare = self._reissuing(workload, task_id, audience, dpop_jkt)
        try:
            prepared = await self._issue_async(prepare, check)
        except RemitError as error:
            await asyncio.to_thread(self._refuse_checked, check, workload, task_id, error, "reissue")
            raise
        return self._signed(prepared)

    def _reissuing(
        self, workload: AttestedWorkload, task_id: str, audience: str | None, dpop_jkt: str | None
    ) -> Callable[[IssuanceReads], _Prepared]:
        """How a re-issue is decided on given reads: the agent's own live task, its audience, its binding."""

        def prepare(reads: IssuanceReads) -> _Prepared:
            task = reads.task(task_id)
            admitted = self._admit(reads, workload, task.environment if task else "unknown")
            if task is None or task.agent_id != admitted.agent.id:
                # Another agent's task reads as absent: ids cannot be probed.
                msg = f"no task {task_id!r}"
                raise NotFound(msg)
            self._require_live(reads, task)
            chosen = audience or task.audience
            if chosen not in {task.audience, self._issuer}:
                msg = "a task credential is for the task's audience, or for this issuer (delegation)"
                raise InvalidRequest(msg, field="audience")
            binds = None
            if chosen == task.audience:
                _require_binding(task.dpop_jkt, dpop_jkt)
                if task.dpop_jkt is None and dpop_jkt is not None:
                    binds = replace(task, dpop_jkt=dpop_jkt, revision=task.revision + 1)
            return self._prepare(reads, admitted.agent, workload, task, chosen, dpop_jkt, new_task=None, binds=binds)

        return prepare

    def _issue(self, prepare: Callable[[IssuanceReads], _Prepared]) -> _Prepared:
        """Decide on kept rows and write with the batch; if they refuse or changed, decide and write again at once."""
        prepared = self._decide_on_kept_rows(prepare)
        if prepared is not None:
            try:
                self.commits.submit(prepared.unit)
            except _Stale:
                pass
            else:
                return self._written(prepared)
        # Kept rows refused or went stale: decide again on the store's rows, in the transaction that writes
        # (which replaces the kept rows it reads).
        return self._issue_in_one_transaction(prepare)

    def _decide_on_kept_rows(self, prepare: Callable[[IssuanceReads], _Prepared]) -> _Prepared | None:
        """The decision on kept rows; None when they refused (the store's rows may say otherwise)."""
        reads = IssuanceReads(self.cache, self._reads)
        try:
            with reads:
                return prepare(reads)
        except RemitError:
            if not reads.used_cache:
                raise
            return None

    def _issue_in_one_transaction(self, prepare: Callable[[IssuanceReads], _Prepared]) -> _Prepared:
        """Read, decide and write in one transaction that holds the registry lock first: never stale, not batched."""
        with self._uow() as tx:
            tx.issuance.hold_registry()
            with IssuanceReads(self.cache, lambda: contextlib.nullcontext(tx), use_cache=False) as reads:
                prepared = prepare(reads)
            outcome = self._write(tx, [prepared.unit])[0]
            if isinstance(outcome, _Stale):
                # Only a task can change under the registry lock (ended meanwhile): the caller may retry.
                msg = "the task changed while the credential was being issued; retry"
                raise Conflict(msg)
            if outcome is not None:
                raise outcome
        return self._written(prepared)

    def _written(self, prepared: _Prepared) -> _Prepared:
        """Keep the task the write started or bound: a re-issue, delegation or `act` chain then reads it from memory."""
        unit = prepared.unit
        written = unit.binds or unit.task
        if written is not None:
            self.cache.tasks.keep(written.id, written)
        return prepared

    def _require_live(self, reads: IssuanceReads, task: Task) -> None:
        state = task.effective_state(self._clock.now())
        if state is not TaskState.RUNNING:
            msg = f"task {task.id} is {state.value}"
            raise TaskNotActive(msg, details={"state": state.value})
        if self._index.revoked_reason(jti="", task_id=task.id, lineage=task.lineage, epoch=task.epoch):
            msg = f"task {task.id} has been revoked"
            raise TaskNotActive(msg, details={"state": "revoked"})
        workflow = reads.workflow(task.workflow_id)
        if workflow is None or workflow.state is not WorkflowState.APPROVED:
            msg = f"workflow {task.workflow_ref} is no longer approved"
            raise TaskNotActive(msg, details={"state": "workflow_ended"})

    def _workflow(self, reads: IssuanceReads, ref: str, admitted: _Admitted) -> WorkflowVersion:
        name, at, version = ref.partition("@")
        if not at or not version.isdigit():
            raise InvalidRequest("name the workflow as name@version", field="workflow")
        workflow = reads.workflow_version(name, int(version))
        if workflow is None:
            msg = f"no workflow {ref!r}"
            raise InvalidRequest(msg, field="workflow")
        if workflow.state is not WorkflowState.APPROVED:
            msg = f"workflow {ref} is {workflow.state.value}, not approved"
            raise Forbidden(msg, details={"reason": "workflow_not_approved"})
        if workflow.function_id != admitted.function_id:
            msg = f"workflow {ref} serves another business function"
            raise Forbidden(msg, details={"reason": "workflow_not_for_agent"})
        return workflow

    def _new_task(
        self, reads: IssuanceReads, admitted: _Admitted, declaration: TaskDeclaration, dpop_jkt: str | None
    ) -> Task:
        now = self._clock.now()
        workflow = self._workflow(reads, declaration.workflow, admitted)
        outside = within_workflow(declaration.details, workflow)
        if outside:
            msg = "requested beyond the workflow: " + "; ".join(outside[:5])
            raise InvalidRequest(msg, field="authorization_details", details={"reason": "outside_workflow"})
        self._check_audience(declaration)
        if declaration.expected_duration <= dt.timedelta(0):
            raise InvalidRequest("expected duration must be positive", field="expected_duration_seconds")
        duration = min(declaration.expected_duration, workflow.max_duration, self._limits.max_task_duration)
        deadline = now + duration
        parent: Task | None = None
        if declaration.parent_token is not None:
            parent = self._delegating_parent(reads, declaration.parent_token, dpop_jkt)
            outside = details_within(declaration.details, parent.details)
            if outside:
                msg = "a delegated task cannot widen its parent: " + "; ".join(outside[:5])
                raise InvalidRequest(msg, field="authorization_details", details={"reason": "wider_than_parent"})
            if parent.depth + 1 > self._limits.max_delegation_depth:
                msg = f"delegation deeper than {self._limits.max_delegation_depth} is refused"
                raise Forbidden(msg, details={"reason": "delegation_too_deep"})
            if declaration.environment != parent.environment:
                raise InvalidRequest("a delegated task runs in its parent's environment", field="environment")
            deadline = min(deadline, parent.deadline)
        principal = parent.principal if parent else _principal(declaration.principal)
        return Task(
            id=self._ids.new("task"),
            agent_id=admitted.agent.id,
            owner_id=admitted.owner_id,
            function_id=admitted.function_id,
            workflow_id=workflow.id,
            workflow_ref=workflow.ref,
            objective=parse_objective(declaration.objective),
            details=declaration.details,
            environment=declaration.environment,
            audience=declaration.audience,
            created_at=now,
            deadline=deadline,
            parent_id=parent.id if parent else None,
            lineage=(parent.id, *parent.lineage) if parent else (),
            principal=principal,
            labels=dict(declaration.labels),
            dpop_jkt=dpop_jkt,  # its first credential (for its own audience) is bound with this proof's key
        )

    def _check_audience(self, declaration: TaskDeclaration) -> None:
        audience = declaration.audience
        if not audience or len(audience) > MAX_AUDIENCE or any(c.isspace() for c in audience):
            raise InvalidRequest("audience is one tool (tool:<name>) or a configured gateway", field="audience")
        tools = {d.tool for d in declaration.details}
        if audience.startswith("tool:") and audience.removeprefix("tool:") in tools:
            return
        if audience in self._gateway_audiences:
            return
        msg = "audience must be tool:<name> of a requested tool, or a configured gateway audience"
        raise InvalidRequest(msg, field="audience")

    def _delegating_parent(self, reads: IssuanceReads, parent_token: str, dpop_jkt: str | None) -> Task:
        # Only a credential minted for this issuer may delegate: a token sent to a tool cannot be
        # relayed here by that tool to mint itself a child task (C10, token relay).
        claims = self._verifier.verify(parent_token, audience=self._issuer).claims
        # A DPoP-bound delegation credential delegates only with a proof from its key (RFC 9449 §7.1):
        # the proof sent with this request, already checked against it. Held alone, it is useless.
        cnf = claims.get("cnf")
        _require_binding(cnf.get("jkt") if isinstance(cnf, dict) else None, dpop_jkt)
        task_id = claims.get("txn")
        parent = reads.task(task_id) if isinstance(task_id, str) else None
        if parent is None:
            raise CredentialInvalid(details={"reason": "unknown_parent_task"})
        reason = self._index.revoked_reason(
            jti=str(claims.get("jti", "")),
            task_id=parent.id,
            lineage=parent.lineage,
            epoch=int(claims.get("remit_epoch", -1)),
        )
        if reason is not None:
            raise CredentialInvalid(details={"reason": reason})
        self._require_live(reads, parent)
        return parent

    # ------------------------------------------------------------ the credential

    @staticmethod
    def _classes(reads: IssuanceReads, task: Task) -> set[RiskClass]:
        classes = set()
        for detail in task.details:
            tool = reads.tool_by_name(detail.tool)
            for action in detail.actions:
                found = tool.action(action) if tool else None
                if found is None:
                    msg = f"{detail.tool}:{action} is not a registered action"
                    raise InvalidRequest(msg, field="authorization_details")
                classes.add(found.risk_class)
        return classes

    @staticmethod
    def _subject_and_act(reads: IssuanceReads, agent: Agent, task: Task) -> tuple[str, dict[str, Any] | None]:
        """`sub` and RFC 8693 §4.1 `act`: the current actor outermost, earlier delegating agents nested inside.

        On behalf of a person, the person is the subject and every agent is an actor. Acting for
        itself, the root agent of the delegation chain is the subject.
        """
        chain = [agent.binding.key]
        for ancestor_id in task.lineage:
            ancestor = reads.task(ancestor_id)
            holder = reads.agent(ancestor.agent_id) if ancestor else None
            chain.append(holder.binding.key if holder else ancestor_id)
        if task.principal is not None:
            subject, actors = task.principal, chain
        else:
            subject, actors = chain[-1], chain[:-1]
        act: dict[str, Any] | None = None
        for actor in reversed(actors):
            act = {"sub": actor, "act": act} if act else {"sub": actor}
        return subject, act

    def _prepare(  # noqa: PLR0913 - the pieces of one credential, passed explicitly
        self,
        reads: IssuanceReads,
        agent: Agent,
        workload: AttestedWorkload,
        task: Task,
        audience: str,
        dpop_jkt: str | None,
        *,
        new_task: AuditEvent | None,
        binds: Task | None = None,
    ) -> _Prepared:
        """The credential's claims, record and audit event; with `new_task` (its event), the task is new too.

        With `binds`, the credential is the task's first bound one and the write fixes the task's binding.
        """
        now = self._clock.now()
        ttl = min(task.remaining(now), self._limits.ttl_for(self._classes(reads, task)))
        if ttl <= dt.timedelta(0):
            msg = f"task {task.id} has no time left"
            raise TaskNotActive(msg, details={"state": "expired"})
        expires_at = now + ttl
        jti = self._ids.new("credential")
        scoped = task if audience == task.audience else _with_audience(task, audience)
        subject, act = self._subject_and_act(reads, agent, task)
        claims = build_claims(
            issuer=self._issuer,
            task=scoped,
            subject=subject,
            agent_id=agent.id,
            agent_identity=workload.binding_key,
            jti=jti,
            issued_at=now,
            expires_at=expires_at,
            act=act,
            cnf_jkt=dpop_jkt,
        )
        record = CredentialRecord(
            jti=jti,
            task_id=task.id,
            agent_id=agent.id,
            audience=audience,
            epoch=task.epoch,
            cnf_jkt=dpop_jkt,
            issued_at=now,
            expires_at=expires_at,
        )
        issued_event = self._event(
            "credential.issued",
            agent,
            task,
            {
                "jti_hmac": self._fingerprint(jti),
                "audience": audience,
                "expires_at": expires_at.isoformat(),
                "ttl_seconds": int(ttl.total_seconds()),
                "scope": claims["scope"],
                "authorization_details": claims["authorization_details"],
                "dpop_bound": dpop_jkt is not None,
                **({"binds_task": True} if binds is not None else {}),
                "epoch": task.epoch,
                # How the workload proved itself: which kind of evidence, vouched for by whom.
                "evidence": {"kind": str(workload.kind), "issuer": workload.issuer},
            },
        )
        issued = IssuedCredential(
            token="",
            jti=jti,
            task_id=task.id,
            audience=audience,
            issued_at=now,
            expires_at=expires_at,
            scope=claims["scope"],
            dpop_bound=dpop_jkt is not None,
        )
        unit = IssuanceUnit(
            task=task if new_task is not None else None,
            credential=record,
            binds=binds,
            records=tuple(prepare(e) for e in ((new_task, issued_event) if new_task is not None else (issued_event,))),
            evidence=workload.single_use,
            depends_on=dict(reads.depends_on),
            claims=claims,
        )
        return _Prepared(unit=unit, task=binds or task, issued=issued)

    # ------------------------------------------------------------ the batch write

    @staticmethod
    def _write(tx: CredentialsTransaction, units: Sequence[IssuanceUnit]) -> list[Exception | None]:
        """Write a batch in `tx` (GroupCommit's apply): re-validate each unit, spend its evidence, insert the rest."""
        store = tx.issuance
        store.hold_registry()
        store.hold_tasks({unit.binds.id for unit in units if unit.binds is not None})
        outcomes = _current_outcomes(store, units)
        # Single use: the first of a batch to present a key claims it, then the store refuses a key
        # another commit (this replica's or another's) already holds.
        claimants: dict[tuple[str, str], tuple[int, EvidenceUse]] = {}
        for position, unit in enumerate(units):
            use = unit.evidence
            if use is None or outcomes[position] is not None:
                continue
            if (use.namespace, use.jti) in claimants:
                outcomes[position] = AttestationFailed(details={"reason": "replayed"})
            else:
                claimants[(use.namespace, use.jti)] = (position, use)
        if claimants:
            claimed = store.claim_evidence([use for _, use in claimants.values()])
            for key, (position, _) in claimants.items():
                if key not in claimed:
                    outcomes[position] = AttestationFailed(details={"reason": "replayed"})
        written = [unit for unit, outcome in zip(units, outcomes, strict=True) if outcome is None]
        if written:
            store.add_tasks([unit.task for unit in written if unit.task is not None])
            store.bind_tasks([unit.binds for unit in written if unit.binds is not None])
            store.add_credentials([unit.credential for unit in written])
            store.append_prepared([record for unit in written for record in unit.records])
        return outcomes

    def _sign_unit(self, unit: IssuanceUnit) -> None:
        # After commit: a record exists for every token that can exist, never the other way round.
        unit.signed.value = self._signer.sign(unit.claims)

    def _signed(self, prepared: _Prepared) -> IssuedCredential:
        """The credential with its token: signed after the batch, or now (the one-transaction path)."""
        token = prepared.unit.signed.value or self._signer.sign(prepared.unit.claims)
        issued = prepared.issued
        return IssuedCredential(
            token=token,
            jti=issued.jti,
            task_id=issued.task_id,
            audience=issued.audience,
            issued_at=issued.issued_at,
            expires_at=issued.expires_at,
            scope=issued.scope,
            dpop_bound=issued.dpop_bound,
        )

    # ------------------------------------------------------------ audit

    def _event(self, event_type: str, agent: Agent, task: Task, data: dict[str, Any]) -> AuditEvent:
        return task.audit_event(
            event_id=self._ids.new("event"),
            event_type=event_type,
            occurred_at=self._clock.now(),
            actor=AuditActor(ActorKind.AGENT, agent.id),
            data=data,
        )

    def _refuse_checked(
        self, check: DeferredCheck, workload: AttestedWorkload, subject: str, error: RemitError, channel: str
    ) -> None:
        """Record a refusal only for a workload whose evidence is proven: a failed check is raised instead."""
        check()
        self._record_refusal(workload, subject, error, channel)

    def _record_refusal(self, workload: AttestedWorkload, subject: str, error: RemitError, channel: str) -> None:
        """A refused issuance is recorded too, in its own transaction (the refused one rolled back)."""
        try:
            with self._uow() as tx:
                agent = tx.registry.find_agent_by_binding(workload.binding_key)
                tx.audit.append(
                    AuditEvent(
                        id=self._ids.new("event"),
                        type="credential.refused",
                        occurred_at=self._clock.now(),
                        actor=AuditActor(ActorKind.AGENT, agent.id if agent else workload.binding_key),
                        subject_kind="workload",
                        subject_id=workload.binding_key,
                        data={
                            "code": error.code.value,
                            "reason": str(error.details.get("reason", error.code.value)),
                            "message": error.message,
                            "requested": subject,
                            "channel": channel,
                        },
                        agent_id=agent.id if agent else None,
                        owner_id=agent.owner_id if agent else None,
                        function_id=agent.function_id if agent else None,
                    )
                )
        except RemitError:
            # The refusal stands whether or not its record could be written; the caller sees the
            # original error, and nothing was issued.
            return


def _current_outcomes(store: IssuanceStore, units: Sequence[IssuanceUnit]) -> list[Exception | None]:
    """None for each unit still decided on current rows, else `_Stale` (it is decided again, on fresh rows)."""
    current = store.revisions({key for unit in units for key in unit.depends_on})
    outcomes: list[Exception | None] = [
        None if all(current.get(key) == revision for key, revision in unit.depends_on.items()) else _Stale()
        for unit in units
    ]
    # A unit that binds a task gives it a new revision: a later unit of the batch decided on the task
    # before that (a Bearer re-issue, another key's binding) is decided again, on the bound task. (The
    # binding's checked update would refuse a second binding too, but by breaking the whole batch.)
    bound: set[str] = set()
    for position, unit in enumerate(units):
        if outcomes[position] is not None:
            continue
        if any(kind == "task" and entity_id in bound for kind, entity_id in unit.depends_on):
            outcomes[position] = _Stale()
        elif unit.binds is not None:
            bound.add(unit.binds.id)
    return outcomes


def _check_evidence(unit: IssuanceUnit) -> None:
    """GroupCommit's `before`: a unit whose evidence signature was left to the batch is checked first."""
    if unit.evidence_check is not None:
        unit.evidence_check()


def _require_binding(bound: str | None, dpop_jkt: str | None) -> None:
    """Refuse unless this request's proof (`dpop_jkt`) is from the `bound` key, when there is one.

    Used for a bound delegation credential presented as `parent_token` (RFC 9449 §7.1), and for a re-issue
    for a task once bound (ADR 0016): whoever holds the agent's evidence but not the key could otherwise get a
    Bearer credential for the task, and act under its approvals and elevations.
    """
    if bound is not None and bound != dpop_jkt:
        raise CredentialInvalid(details={"reason": "dpop_proof_missing" if dpop_jkt is None else "dpop_key_mismatch"})


def _principal(raw: str | None) -> str | None:
    if raw is None:
        return None
    principal = raw.strip()
    if not principal or len(principal) > MAX_PRINCIPAL or any(c.isspace() or ord(c) < 32 for c in principal):  # noqa: PLR2004
        raise InvalidRequest("principal is one identifier of the person the task acts for", field="principal")
    return principal


def _with_audience(task: Task, audience: str) -> Task:
    return replace(task, audience=audience)
