"""Issuance: attested agent + declaration → one narrow, short-lived credential that dies with its task."""

from __future__ import annotations

import datetime as dt

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.factories import OPERATOR
from tests.unit.core.credentials.conftest import ISSUER, Stack, declaration, fingerprint, workload

from remit.core.audit.models import AuditActor
from remit.core.credentials.revocation import RevocationService
from remit.core.credentials.verification import Verifier
from remit.core.ids import SequentialIdFactory
from remit.core.registry.models import AgentStatus
from remit.core.tasks.models import AuthorizationDetail, Task, TaskState, parse_authorization_details
from remit.errors import (
    AgentUntraceable,
    CredentialExpired,
    CredentialInvalid,
    CredentialRevoked,
    Forbidden,
    InvalidRequest,
    NotFound,
    TaskNotActive,
    Unavailable,
)

SYSTEM = AuditActor.system()


def _details(*actions: str, resources: tuple[str, ...] = ("repo:acme/docs",)) -> tuple[AuthorizationDetail, ...]:
    return parse_authorization_details(
        [{"type": "remit_tool", "tool": "github", "actions": list(actions), "resources": list(resources)}]
    )


def test_issued_credential_is_an_rfc9068_token_for_the_task(stack: Stack) -> None:
    """The token verifies, names the task in txn, carries the declaration, and has no refresh token (C07, C09)."""
    task, issued = stack.issuance.start_task(workload(), declaration())

    verified = stack.verifier.verify(issued.token, audience="tool:github")
    claims = verified.claims

    assert claims["txn"] == task.id == verified.task_id
    assert claims["aud"] == "tool:github"
    assert claims["sub"] == claims["client_id"] == "spiffe://acme.example/agents/invoice-bot"
    assert claims["scope"] == "github:read_file"
    assert claims["authorization_details"] == [d.as_json() for d in task.details]
    assert claims["exp"] <= int(task.deadline.timestamp())
    assert "act" not in claims
    assert "refresh_token" not in claims
    assert task.deadline == stack.clock.now() + dt.timedelta(minutes=20)


def test_write_credential_is_shorter_than_its_task(stack: Stack) -> None:
    """A credential carrying a write action lives at most 15 minutes even in a 30-minute task (C08)."""
    task, issued = stack.issuance.start_task(
        workload(), declaration(details=_details("read_file", "merge_pr"), expected_duration=dt.timedelta(minutes=30))
    )
    assert issued.expires_at - issued.issued_at == dt.timedelta(minutes=15)
    assert task.deadline - task.created_at == dt.timedelta(minutes=30)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    minutes=st.integers(min_value=1, max_value=600),
    write=st.booleans(),
)
def test_expiry_never_passes_the_deadline_or_the_class_maximum(stack: Stack, minutes: int, write: bool) -> None:
    """For any declared duration and risk mix: exp ≤ task deadline and exp - iat ≤ the class maximum (C08)."""
    actions = ("read_file", "merge_pr") if write else ("read_file",)
    task, issued = stack.issuance.start_task(
        workload(), declaration(details=_details(*actions), expected_duration=dt.timedelta(minutes=minutes))
    )
    claims = stack.tokens.verify(issued.token, audience="tool:github").claims
    maximum = dt.timedelta(minutes=15 if write else 60)
    assert claims["exp"] <= task.deadline.timestamp()
    assert dt.timedelta(seconds=claims["exp"] - claims["iat"]) <= maximum
    assert task.deadline - task.created_at <= dt.timedelta(minutes=30)  # the workflow's maximum


def test_unregistered_identity_gets_nothing(stack: Stack) -> None:
    """A workload no agent is bound to is untraceable (C01)."""
    with pytest.raises(AgentUntraceable) as caught:
        stack.issuance.start_task(workload("agents/stranger"), declaration())
    assert caught.value.details["reason"] == "unregistered_identity"


def test_suspended_agent_gets_nothing(stack: Stack) -> None:
    stack.registry.set_agent_status("invoice-bot", AgentStatus.SUSPENDED, reason="incident", actor=OPERATOR)
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload(), declaration())
    assert caught.value.details["reason"] == "agent_suspended"


def test_agent_of_offboarded_owner_gets_nothing(stack: Stack) -> None:
    stack.registry.offboard_owner("ada@acme.example", reason="left", actor=OPERATOR)
    with pytest.raises(Forbidden):
        stack.issuance.start_task(workload(), declaration())


def test_agent_past_review_gets_nothing(stack: Stack) -> None:
    """Past its review date an agent is untraceable, so no credential (C01)."""
    stack.clock.advance(dt.timedelta(days=91))
    with pytest.raises(AgentUntraceable) as caught:
        stack.issuance.start_task(workload(), declaration())
    assert caught.value.details["reason"] == "review_overdue"


def test_environment_must_be_allowed(stack: Stack) -> None:
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload("agents/helper-bot"), declaration(environment="dev"))
    assert caught.value.details["reason"] == "environment_not_allowed"


@pytest.mark.parametrize(
    ("overrides", "error", "loc"),
    [
        ({"workflow": "release-docs"}, InvalidRequest, "workflow"),
        ({"workflow": "release-docs@9"}, InvalidRequest, "workflow"),
        ({"details": _details("deploy")}, InvalidRequest, "authorization_details"),
        ({"details": _details("read_file", resources=("repo:*",))}, InvalidRequest, "authorization_details"),
        ({"audience": "tool:stripe"}, InvalidRequest, "audience"),
        ({"audience": "https://evil.example"}, InvalidRequest, "audience"),
        ({"expected_duration": dt.timedelta(0)}, InvalidRequest, "expected_duration_seconds"),
        ({"objective": "   "}, InvalidRequest, "objective"),
    ],
)
def test_declarations_beyond_the_workflow_are_refused(
    stack: Stack, overrides: dict[str, object], error: type[Exception], loc: str
) -> None:
    """Requested ⊆ workflow, one audience among the requested tools, a real objective and duration (C07, C10, C12)."""
    with pytest.raises(InvalidRequest) as caught:
        stack.issuance.start_task(workload(), declaration(**overrides))
    assert isinstance(caught.value, error)
    assert caught.value.errors[0].loc[0] == loc


def test_unapproved_workflow_version_is_refused(stack: Stack) -> None:
    """A draft version cannot be used, even by an agent of its function."""
    draft = stack.registry.create_workflow_version(
        name="release-docs",
        function="invoice-reconciliation",
        description="",
        steps=stack.registry.get_workflow("release-docs@1").steps,
        max_duration=dt.timedelta(minutes=30),
        actor=OPERATOR,
    )
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload(), declaration(workflow=draft.ref))
    assert caught.value.details["reason"] == "workflow_not_approved"


def test_refusals_are_audited(stack: Stack) -> None:
    """A refused issuance leaves a credential.refused record with the precise reason."""
    with pytest.raises(AgentUntraceable):
        stack.issuance.start_task(workload("agents/stranger"), declaration())
    with stack.database.transaction() as tx:
        events = tx.audit.recent(limit=5)
    refused = [e for e in events if e.type == "credential.refused"]
    assert refused
    assert refused[0].data["reason"] == "unregistered_identity"


def test_completion_revokes_the_credential(stack: Stack) -> None:
    """Once the task completes, its credential no longer verifies (C21)."""
    task, issued = stack.issuance.start_task(workload(), declaration())
    stack.tasks.finish(task.id, TaskState.COMPLETED, reason="", actor=SYSTEM)

    with pytest.raises(CredentialRevoked) as caught:
        stack.verifier.verify(issued.token, audience="tool:github")
    assert caught.value.details["reason"].startswith("task_ended:completed")


def test_objective_change_revokes_and_reissue_restores(stack: Stack) -> None:
    """A context change kills every earlier credential; a re-issued one carries the new epoch (C23)."""
    task, issued = stack.issuance.start_task(workload(), declaration())
    stack.tasks.change_objective(task.id, "publish and delete old docs", actor=SYSTEM)

    with pytest.raises(CredentialRevoked):
        stack.verifier.verify(issued.token, audience="tool:github")
    fresh = stack.issuance.reissue(workload(), task.id)
    assert stack.verifier.verify(fresh.token, audience="tool:github").epoch == 1


def test_kill_switch_revokes_everything_the_agent_holds(stack: Stack) -> None:
    """Suspending the agent revokes the credentials of all its tasks at once (C25)."""
    _, first = stack.issuance.start_task(workload(), declaration())
    _, second = stack.issuance.start_task(workload(), declaration())

    stack.registry.set_agent_status("invoice-bot", AgentStatus.SUSPENDED, reason="incident", actor=OPERATOR)

    for issued in (first, second):
        with pytest.raises(CredentialRevoked):
            stack.verifier.verify(issued.token, audience="tool:github")


def test_single_credential_revocation(stack: Stack) -> None:
    """RFC 7009: revoking one jti kills that credential only; unknown jtis are not an error."""
    task, first = stack.issuance.start_task(workload(), declaration())
    second = stack.issuance.reissue(workload(), task.id)

    assert stack.revocation.revoke_credential(first.jti, reason="leaked", actor=SYSTEM)
    assert not stack.revocation.revoke_credential("crd_unknown", reason="x", actor=SYSTEM)

    with pytest.raises(CredentialRevoked):
        stack.verifier.verify(first.token, audience="tool:github")
    assert stack.verifier.verify(second.token, audience="tool:github").jti == second.jti


def test_credential_is_bound_to_one_audience(stack: Stack) -> None:
    """A credential for github is refused at any other audience (C10)."""
    _, issued = stack.issuance.start_task(workload(), declaration())
    with pytest.raises(CredentialInvalid):
        stack.verifier.verify(issued.token, audience="tool:stripe")


def test_expired_credential_is_refused(stack: Stack) -> None:
    _, issued = stack.issuance.start_task(workload(), declaration())
    stack.clock.advance(dt.timedelta(minutes=21))
    with pytest.raises(CredentialExpired):
        stack.verifier.verify(issued.token, audience="tool:github")


def test_cross_agent_reissue_is_not_found(stack: Stack) -> None:
    """Another agent cannot obtain a credential for a task it does not own."""
    task, _ = stack.issuance.start_task(workload(), declaration())
    with pytest.raises(NotFound):
        stack.issuance.reissue(workload("agents/helper-bot"), task.id)


def test_reissue_for_an_ended_task_is_refused(stack: Stack) -> None:
    task, _ = stack.issuance.start_task(workload(), declaration())
    stack.tasks.finish(task.id, TaskState.FAILED, reason="crashed", actor=SYSTEM)
    with pytest.raises(TaskNotActive):
        stack.issuance.reissue(workload(), task.id)


def test_dpop_bound_credential_needs_its_proof(stack: Stack) -> None:
    """A credential with cnf.jkt is useless without a proof from that key (C11)."""
    _, issued = stack.issuance.start_task(workload(), declaration(), dpop_jkt="x" * 43)
    with pytest.raises(CredentialInvalid) as caught:
        stack.verifier.verify(issued.token, audience="tool:github")
    assert caught.value.details["reason"] == "dpop_proof_missing"
    assert issued.dpop_bound


# ------------------------------------------------------------------ delegation


def _delegate(stack: Stack) -> tuple[Task, Task, str]:
    parent, _ = stack.issuance.start_task(
        workload(), declaration(details=_details("read_file", "merge_pr", resources=("repo:acme/docs*",)))
    )
    delegation = stack.issuance.reissue(workload(), parent.id, audience=ISSUER)
    child, child_credential = stack.issuance.start_task(
        workload("agents/helper-bot"), declaration(details=_details("read_file"), parent_token=delegation.token)
    )
    return parent, child, child_credential.token


def test_delegation_narrows_and_records_the_actor_chain(stack: Stack) -> None:
    """A child task is within its parent, never outlives it, and its token carries nested `act` (C12, C13)."""
    parent, child, token = _delegate(stack)
    claims = stack.verifier.verify(token, audience="tool:github").claims

    assert child.parent_id == parent.id
    assert child.deadline <= parent.deadline
    assert claims["sub"] == "spiffe://acme.example/agents/invoice-bot"
    assert claims["act"] == {"sub": "spiffe://acme.example/agents/helper-bot"}
    assert claims["remit_lineage"] == [parent.id]


def test_ending_the_parent_revokes_the_child_credential(stack: Stack) -> None:
    """Cascade without a walk: the child's credential names the parent in its lineage."""
    parent, _, token = _delegate(stack)
    stack.tasks.finish(parent.id, TaskState.CANCELLED, reason="", actor=SYSTEM)
    with pytest.raises(CredentialRevoked) as caught:
        stack.verifier.verify(token, audience="tool:github")
    assert "ended" in caught.value.details["reason"]


def test_a_dpop_bound_delegation_credential_delegates_only_with_its_key(stack: Stack) -> None:
    """Held alone (no proof, or another key's) it starts no child; with a proof from its key it does (C11)."""
    holder, other = "h" * 43, "o" * 43
    parent, _ = stack.issuance.start_task(workload(), declaration(), dpop_jkt=holder)
    delegation = stack.issuance.reissue(workload(), parent.id, audience=ISSUER, dpop_jkt=holder)
    child = declaration(details=_details("read_file"), parent_token=delegation.token)

    with pytest.raises(CredentialInvalid) as missing:
        stack.issuance.start_task(workload("agents/helper-bot"), child)
    with pytest.raises(CredentialInvalid) as mismatch:
        stack.issuance.start_task(workload("agents/helper-bot"), child, dpop_jkt=other)
    task, issued = stack.issuance.start_task(workload("agents/helper-bot"), child, dpop_jkt=holder)

    assert missing.value.details["reason"] == "dpop_proof_missing"
    assert mismatch.value.details["reason"] == "dpop_key_mismatch"
    assert task.parent_id == parent.id
    assert issued.dpop_bound


def test_a_task_started_bound_is_reissued_only_with_a_proof_from_its_key(stack: Stack) -> None:
    """ADR 0016: the agent's evidence without the task's key re-issues nothing; the refusal is audited."""
    holder, other = "h" * 43, "o" * 43
    task, _ = stack.issuance.start_task(workload(), declaration(), dpop_jkt=holder)

    with pytest.raises(CredentialInvalid) as missing:
        stack.issuance.reissue(workload(), task.id)
    with pytest.raises(CredentialInvalid) as mismatch:
        stack.issuance.reissue(workload(), task.id, dpop_jkt=other)
    again = stack.issuance.reissue(workload(), task.id, dpop_jkt=holder)

    assert missing.value.details["reason"] == "dpop_proof_missing"
    assert mismatch.value.details["reason"] == "dpop_key_mismatch"
    assert again.dpop_bound
    assert stack.verifier.verify(again.token, audience="tool:github", check_binding=False).claims["cnf"] == {
        "jkt": holder
    }
    with stack.database.transaction() as tx:
        refused = [e.data["reason"] for e in tx.audit.recent(limit=10) if e.type == "credential.refused"]
    assert refused[:2] == ["dpop_key_mismatch", "dpop_proof_missing"]


def test_a_bearer_task_once_reissued_bound_stays_bound(stack: Stack) -> None:
    """The binding only tightens: the first bound credential of the task fixes its key."""
    holder = "h" * 43
    task, first = stack.issuance.start_task(workload(), declaration())
    bearer = stack.issuance.reissue(workload(), task.id)
    bound = stack.issuance.reissue(workload(), task.id, dpop_jkt=holder)

    with pytest.raises(CredentialInvalid) as caught:
        stack.issuance.reissue(workload(), task.id)

    assert (first.dpop_bound, bearer.dpop_bound, bound.dpop_bound) == (False, False, True)
    assert caught.value.details["reason"] == "dpop_proof_missing"


def test_a_bound_task_may_still_delegate_with_a_bearer_credential(stack: Stack) -> None:
    """The delegation exception of ADR 0016: a credential for the issuer needs no proof, and starts a child."""
    parent, _ = stack.issuance.start_task(workload(), declaration(), dpop_jkt="h" * 43)
    delegation = stack.issuance.reissue(workload(), parent.id, audience=ISSUER)
    child, issued = stack.issuance.start_task(
        workload("agents/helper-bot"), declaration(details=_details("read_file"), parent_token=delegation.token)
    )

    assert not delegation.dpop_bound
    assert child.parent_id == parent.id
    assert not issued.dpop_bound


def test_child_cannot_widen_its_parent(stack: Stack) -> None:
    parent, _ = stack.issuance.start_task(workload(), declaration())
    delegation = stack.issuance.reissue(workload(), parent.id, audience=ISSUER)
    with pytest.raises(InvalidRequest) as caught:
        stack.issuance.start_task(
            workload("agents/helper-bot"),
            declaration(details=_details("read_file", "merge_pr"), parent_token=delegation.token),
        )
    assert caught.value.details["reason"] == "wider_than_parent"


def test_tool_credential_cannot_be_relayed_into_a_delegation(stack: Stack) -> None:
    """A token a tool received (aud = the tool) cannot be used by that tool to mint itself a child task."""
    _, issued = stack.issuance.start_task(workload(), declaration())
    with pytest.raises(CredentialInvalid):
        stack.issuance.start_task(workload("agents/helper-bot"), declaration(parent_token=issued.token))


def test_delegation_depth_is_bounded(stack: Stack) -> None:
    """Depth 2 (parent → child → grandchild) is allowed; a third hop is refused (C13)."""
    _, child, _ = _delegate(stack)
    child_delegation = stack.issuance.reissue(workload("agents/helper-bot"), child.id, audience=ISSUER)
    grandchild, token = stack.issuance.start_task(
        workload("agents/third-bot"), declaration(details=_details("read_file"), parent_token=child_delegation.token)
    )
    claims = stack.verifier.verify(token.token, audience="tool:github").claims
    assert claims["act"] == {
        "sub": "spiffe://acme.example/agents/third-bot",
        "act": {"sub": "spiffe://acme.example/agents/helper-bot"},
    }
    deepest = stack.issuance.reissue(workload("agents/third-bot"), grandchild.id, audience=ISSUER)
    with pytest.raises(Forbidden) as caught:
        stack.issuance.start_task(workload(), declaration(details=_details("read_file"), parent_token=deepest.token))
    assert caught.value.details["reason"] == "delegation_too_deep"


def test_on_behalf_of_a_person_makes_the_person_the_subject(stack: Stack) -> None:
    """RFC 8693: acting for a person, `sub` is the person and the agent is the actor."""
    _, issued = stack.issuance.start_task(workload(), declaration(principal="user:ada@acme.example"))
    claims = stack.verifier.verify(issued.token, audience="tool:github").claims
    assert claims["sub"] == "user:ada@acme.example"
    assert claims["act"] == {"sub": "spiffe://acme.example/agents/invoice-bot"}


def test_nothing_verifies_while_revocations_are_not_current(stack: Stack) -> None:
    """Fail closed: if the index may be missing revocations (store unreachable), verification refuses (C24)."""
    _, issued = stack.issuance.start_task(workload(), declaration())
    stale = Verifier(stack.tokens, stack.index, index_is_current=lambda: False)
    with pytest.raises(Unavailable):
        stale.verify(issued.token, audience="tool:github")


def test_a_revocation_applies_its_own_entry_to_the_index_at_once(stack: Stack, ids: SequentialIdFactory) -> None:
    """Given the process's index, a revocation reaches it on commit, without re-reading the log (no feed refresh)."""

    def no_refresh() -> None:
        msg = "the log must not be re-read"
        raise AssertionError(msg)

    revocation = RevocationService(
        stack.database.transaction,
        clock=stack.clock,
        ids=ids,
        fingerprint=fingerprint,
        on_revocations=no_refresh,
        index=stack.index,
    )
    _, credential = stack.issuance.start_task(workload(), declaration())
    before = stack.index.watermark
    assert revocation.revoke_credential(credential.jti, reason="leaked", actor=SYSTEM)
    with pytest.raises(CredentialRevoked):
        stack.verifier.verify(credential.token, audience="tool:github")
    assert stack.index.watermark == before + 1
    assert revocation.revoke_credential(credential.jti, reason="again", actor=SYSTEM)  # idempotent
