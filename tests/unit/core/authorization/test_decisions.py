"""Per-call decisions: each guardrail, the order they run in, policies under them, recording (C14-C16, C20)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.unit.core.authorization.conftest import DecisionStack, wide_declaration
from tests.unit.core.credentials.conftest import declaration, workload

from remit.core.audit.models import AuditActor
from remit.core.authorization import guardrails as g
from remit.core.authorization.models import Effect, Elevation, PolicyRequest, ReasonKind
from remit.core.registry.models import AgentStatus, RiskClass, Sensitivity
from remit.core.tasks.models import TaskState
from remit.errors import AuditUnavailable


def _ids(decision: object) -> list[str]:
    return [r.id for r in decision.reasons]  # type: ignore[attr-defined]


def test_a_call_inside_the_task_is_allowed_and_recorded(decisions: DecisionStack) -> None:
    """Allow: the policy that permitted is named, and the audit record carries inputs and the jti HMAC only."""
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.ALLOW
    assert _ids(decision) == ["test@1"]
    assert decision.policy_version == 1
    (record,) = decisions.records()
    assert record.event.subject_id == decision.id
    assert record.event.task_id == issued.task_id
    assert record.event.data["effect"] == "allow"
    assert record.event.data["inputs"]["credential_jti_hmac"] == decisions.audit.hmac_of(issued.jti)
    assert record.event.data["inputs"]["sensitivity"] == "public"
    assert issued.token not in repr(record)


# ---------------------------------------------------------------- C14: each input flips the decision


@pytest.mark.parametrize(
    ("change", "guardrail"),
    [
        ({"token": "not-a-token"}, g.CREDENTIAL_VERIFIES),  # 1. workload identity
        ({"subject": "spiffe://acme.example/agents/helper-bot"}, g.CREDENTIAL_VERIFIES),  # 1. another identity
        ({"action": "merge_pr"}, g.ELEVATION_REQUIRED),  # 2. action: a write needs an elevation
        ({"action": "deploy"}, g.WITHIN_OBJECTIVE),  # 2. action outside the task
        ({"tool": "jira", "audience": "tool:jira"}, g.CREDENTIAL_VERIFIES),  # 2. tool the credential is not for
        ({"resource": "repo:acme/app"}, g.WITHIN_OBJECTIVE),  # 3. resource outside the task
        ({"resource": "repo:other/x"}, g.KNOWN_RESOURCE),  # 3. unregistered resource
        ({"environment": "dev"}, g.ENVIRONMENT_MATCHES),  # 4. environment
    ],
)
def test_each_input_independently_changes_the_decision(
    decisions: DecisionStack, change: dict[str, object], guardrail: str
) -> None:
    """C14: from an allowed baseline, changing one input alone changes the answer, and the reason says which."""
    _, issued = decisions.stack.issuance.start_task(workload(), wide_declaration())
    assert decisions.service.decide(decisions.request(issued.token)).effect is Effect.ALLOW

    rest = dict(change)
    token = str(rest.pop("token", issued.token))
    decision = decisions.service.decide(decisions.request(token, **rest))

    assert decision.effect is not Effect.ALLOW
    assert decision.reasons[0].id == guardrail


def test_sensitivity_feeds_the_policies_and_may_only_be_raised(decisions: DecisionStack) -> None:
    """C14 (5): the registry's sensitivity is used; a stated one may raise it, never lower it."""
    decisions.policies.rule = lambda request: request.sensitivity < Sensitivity.CONFIDENTIAL
    _, issued = decisions.start()

    raised = decisions.service.decide(decisions.request(issued.token, sensitivity=Sensitivity.RESTRICTED))
    lowered = decisions.service.decide(decisions.request(issued.token, sensitivity=Sensitivity.PUBLIC))

    assert raised.effect is Effect.DENY
    assert raised.reasons[0].kind is ReasonKind.POLICY
    assert decisions.policies.seen[0].sensitivity is Sensitivity.RESTRICTED
    assert lowered.effect is Effect.ALLOW
    assert decisions.policies.seen[-1].sensitivity is Sensitivity.PUBLIC


def test_objective_reaches_the_policies(decisions: DecisionStack) -> None:
    """C14 (6): the declared objective is an input policies can use."""
    decisions.policies.rule = lambda request: "docs" in request.task.objective
    _, fits = decisions.start(objective="publish the Q1 docs")
    _, other = decisions.stack.issuance.start_task(
        workload(),
        declaration(objective="rotate the release keys"),
    )

    assert decisions.service.decide(decisions.request(fits.token)).effect is Effect.ALLOW
    assert decisions.service.decide(decisions.request(other.token)).effect is Effect.DENY


def test_rbac_is_a_ceiling_not_a_grant(decisions: DecisionStack) -> None:
    """C15: the workflow (the role's ceiling) allows merge_pr, but a task that declared only reads cannot write."""
    _, issued = decisions.start()  # declares read_file only; the workflow also has merge_pr

    decision = decisions.service.decide(decisions.request(issued.token, action="merge_pr"))

    assert decision.effect is Effect.DENY
    assert decision.reasons[0].id == g.WITHIN_OBJECTIVE


def test_a_standing_grant_serves_only_low_risk_reads(decisions: DecisionStack) -> None:
    """C16: a standing read grant on internal data answers outside the task; nothing riskier ever does."""
    registry = decisions.stack.registry
    registry.create_grant(
        agent="invoice-bot", tool="github", action="read_file", resource="repo:acme/app*", reason="triage", actor="op"
    )
    _, issued = decisions.start()  # task declares only repo:acme/docs

    read = decisions.service.decide(decisions.request(issued.token, resource="repo:acme/app"))
    restricted = decisions.service.decide(
        decisions.request(issued.token, resource="repo:acme/app", sensitivity=Sensitivity.CONFIDENTIAL)
    )

    assert read.effect is Effect.ALLOW
    assert read.reasons[0].id == g.STANDING_GRANT
    assert restricted.effect is Effect.DENY
    assert restricted.reasons[0].id == g.WITHIN_OBJECTIVE


def test_high_risk_actions_step_up_and_an_elevation_works_once(decisions: DecisionStack) -> None:
    """C16/C17: a write inside the task needs an elevation; one bound to task, action and resource works once."""
    task, issued = decisions.stack.issuance.start_task(workload(), wide_declaration())
    request = decisions.request(issued.token, action="merge_pr", resource="repo:acme/docs")

    first = decisions.service.decide(request)
    decisions.elevations.live.append(
        Elevation(
            id="elv_1",
            task_id=task.id,
            tool="github",
            action="merge_pr",
            resource="repo:acme/docs",
            expires_at=decisions.clock.now() + dt.timedelta(minutes=5),
        )
    )
    elevated = decisions.service.decide(request)
    again = decisions.service.decide(request)
    other_resource = decisions.service.decide(
        decisions.request(issued.token, action="merge_pr", resource="repo:acme/docs-2")
    )

    assert first.effect is Effect.STEP_UP
    assert first.reasons[0].id == g.ELEVATION_REQUIRED
    assert elevated.effect is Effect.ALLOW
    assert elevated.elevation_id == "elv_1"
    assert again.effect is Effect.STEP_UP
    assert other_resource.effect is Effect.STEP_UP


def test_a_step_up_is_a_deny_when_policies_would_refuse_anyway(decisions: DecisionStack) -> None:
    """No approval is asked for what policy forbids even with one."""
    decisions.policies.rule = lambda request: request.action.risk_class is RiskClass.READ
    _, issued = decisions.stack.issuance.start_task(workload(), wide_declaration())

    decision = decisions.service.decide(decisions.request(issued.token, action="merge_pr"))

    assert decision.effect is Effect.DENY


def test_a_policy_may_ask_for_a_step_up(decisions: DecisionStack) -> None:
    """A read a policy allows only when elevated is answered step_up, not deny."""
    decisions.policies.rule = lambda request: request.elevated
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.STEP_UP
    assert decision.reasons[0].kind is ReasonKind.POLICY


# ---------------------------------------------------------------- default deny and failures


def test_no_policy_set_loaded_denies_everything(decisions: DecisionStack) -> None:
    decisions.policies.version = None
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.DENY
    assert decision.reasons[0].id == g.POLICY_SET_LOADED


def test_no_permit_is_a_default_deny(decisions: DecisionStack) -> None:
    decisions.policies.rule = lambda _request: False
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.DENY
    assert _ids(decision) == ["default_deny"]


def test_policy_errors_deny_with_their_messages(decisions: DecisionStack) -> None:
    decisions.policies.errors = ("attribute `amount` missing",)
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.DENY
    assert decision.reasons[0].kind is ReasonKind.ERROR


def test_a_bug_while_deciding_denies(decisions: DecisionStack) -> None:
    """Nothing unknown ever allows: an exception inside the policy engine becomes a recorded deny."""

    def broken(_request: PolicyRequest) -> bool:
        raise ZeroDivisionError

    decisions.policies.rule = broken
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.DENY
    assert _ids(decision) == ["internal"]
    assert len(decisions.records()) == 1


def test_no_durable_record_no_answer(decisions: DecisionStack) -> None:
    """Record before you act: when the audit log cannot take the record, decide raises instead of answering."""
    _, issued = decisions.start()

    class Down:
        def append(self, _event: object) -> object:
            raise AuditUnavailable

        def hmac_of(self, value: str) -> str:
            return value

    decisions.service._audit = Down()

    with pytest.raises(AuditUnavailable):
        decisions.service.decide(decisions.request(issued.token))


# ---------------------------------------------------------------- the credential and the task


def test_forged_expired_and_revoked_credentials_read_alike_outside(decisions: DecisionStack) -> None:
    """The caller learns credential_invalid/expired/revoked; the precise reason is only in the audit record."""
    task, issued = decisions.start()
    tampered = issued.token[:-4] + ("AAAA" if not issued.token.endswith("AAAA") else "BBBB")

    forged = decisions.service.decide(decisions.request(tampered))
    decisions.stack.tasks.finish(task.id, TaskState.COMPLETED, reason="", actor=AuditActor.system())
    revoked = decisions.service.decide(decisions.request(issued.token))

    assert forged.reasons[0].as_json() == {
        "kind": "guardrail",
        "id": g.CREDENTIAL_VERIFIES,
        "detail": "credential_invalid",
    }
    assert revoked.reasons[0].detail == "credential_revoked"
    internal = [r.event.data["reasons"][0].get("internal") for r in decisions.records()]
    assert internal[0]  # e.g. bad_signature
    assert internal[1]


def test_a_changed_objective_refuses_older_credentials(decisions: DecisionStack) -> None:
    task, issued = decisions.start()
    decisions.stack.tasks.change_objective(task.id, "something else", actor=AuditActor.system())

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.DENY
    assert decision.reasons[0].id == g.CREDENTIAL_VERIFIES


def test_an_agent_suspended_after_issuance_is_refused_at_once(decisions: DecisionStack) -> None:
    _, issued = decisions.start()
    assert decisions.service.decide(decisions.request(issued.token)).effect is Effect.ALLOW

    decisions.stack.registry.set_agent_status("invoice-bot", AgentStatus.SUSPENDED, reason="incident", actor="op")

    assert decisions.service.decide(decisions.request(issued.token)).effect is Effect.DENY


def test_an_unknown_action_is_refused(decisions: DecisionStack) -> None:
    _, issued = decisions.start()

    decision = decisions.service.decide(decisions.request(issued.token, action="delete_repo"))

    assert decision.reasons[0].id == g.KNOWN_ACTION


# ---------------------------------------------------------------- C20: out-of-objective strikes


def test_three_out_of_objective_requests_revoke_the_task(decisions: DecisionStack) -> None:
    """C20: each out-of-scope call is denied and counted; the third revokes the task and flags the agent."""
    task, issued = decisions.start()
    outside = decisions.request(issued.token, resource="repo:acme/app")

    answers = [decisions.service.decide(outside) for _ in range(3)]
    after = decisions.service.decide(decisions.request(issued.token))

    assert [a.effect for a in answers] == [Effect.DENY] * 3
    assert all(a.reasons[0].id == g.WITHIN_OBJECTIVE for a in answers)
    assert decisions.stack.tasks.get(task.id).state.value == "revoked"
    assert after.effect is Effect.DENY
    assert after.reasons[0].detail == "credential_revoked"
    (flag,) = decisions.records("agent.flagged_for_review")
    assert flag.event.data["strikes"] == 3


def test_explain_counts_no_strike(decisions: DecisionStack) -> None:
    task, issued = decisions.start()
    outside = decisions.request(issued.token, resource="repo:acme/app")

    for _ in range(4):
        decisions.service.decide(outside, dry_run=True)

    assert decisions.stack.tasks.get(task.id).state.value == "running"
    assert all(r.event.data.get("dry_run") for r in decisions.records())


def _elevation(task_id: str, **overrides: str) -> Elevation:
    values = {"tool": "github", "action": "merge_pr", "resource": "repo:acme/docs"} | overrides
    return Elevation(
        id=f"elv_{len(values)}_{values['action']}",
        task_id=task_id,
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        **values,
    )


def test_an_elevation_covers_only_the_facts_and_the_objective_it_was_approved_for(decisions: DecisionStack) -> None:
    """Approved for a 500 payment under this objective: a bigger amount, or the call after an objective change, is not."""
    task, issued = decisions.stack.issuance.start_task(workload(), wide_declaration())
    elevation = _elevation(task.id)
    decisions.elevations.live.append(elevation)
    decisions.elevations.approved_for[elevation.id] = (0, {"amount": 500, "currency": "EUR"})

    bigger = decisions.service.decide(
        decisions.request(issued.token, action="merge_pr", context={"amount": 999_999, "currency": "EUR"})
    )
    approved = decisions.service.decide(
        decisions.request(issued.token, action="merge_pr", context={"amount": 500, "currency": "EUR"})
    )

    assert bigger.effect is Effect.STEP_UP
    assert approved.effect is Effect.ALLOW


def test_an_approval_a_policy_asked_for_lifts_that_policys_step_up(decisions: DecisionStack) -> None:
    """A read a policy allows only when elevated is step_up; once an elevation for it exists, it is allowed once."""
    decisions.policies.rule = lambda request: request.elevated
    task, issued = decisions.start()
    asked = decisions.service.decide(decisions.request(issued.token))
    elevation = _elevation(task.id, action="read_file")
    decisions.elevations.live.append(elevation)
    decisions.elevations.approved_for[elevation.id] = (0, {})

    allowed = decisions.service.decide(decisions.request(issued.token))
    again = decisions.service.decide(decisions.request(issued.token))

    assert asked.effect is Effect.STEP_UP
    assert allowed.effect is Effect.ALLOW
    assert allowed.elevation_id == elevation.id
    assert again.effect is Effect.STEP_UP


def test_authzen_subject_must_be_the_agent_not_the_principal_it_declared(decisions: DecisionStack) -> None:
    """An on-behalf-of credential's `sub` is the declared principal: naming it as the subject does not pass."""
    principal = "spiffe://acme.example/agents/helper-bot"
    _, issued = decisions.stack.issuance.start_task(workload(), declaration(principal=principal))

    as_principal = decisions.service.decide(decisions.request(issued.token, subject=principal))
    as_agent = decisions.service.decide(
        decisions.request(issued.token, subject="spiffe://acme.example/agents/invoice-bot")
    )

    assert as_principal.reasons[0].id == g.CREDENTIAL_VERIFIES
    assert as_agent.effect is Effect.ALLOW


def test_an_expired_credential_is_refused_and_reads_expired(decisions: DecisionStack) -> None:
    """Past its `exp` a credential decides nothing, even with its task still running."""
    _, issued = decisions.start()
    decisions.clock.advance(issued.expires_at - decisions.clock.now() + dt.timedelta(seconds=1))

    decision = decisions.service.decide(decisions.request(issued.token))

    assert decision.effect is Effect.DENY
    assert decision.reasons[0].as_json() == {
        "kind": "guardrail",
        "id": g.CREDENTIAL_VERIFIES,
        "detail": "credential_expired",
    }


def test_a_credential_for_another_task_cannot_reach_that_tasks_scope(decisions: DecisionStack) -> None:
    """Cross-task: task A's credential asking for what only task B declared is outside A's objective."""
    _, reader = decisions.start()  # reads repo:acme/docs only
    decisions.stack.issuance.start_task(workload(), wide_declaration())  # may merge into the docs repos

    decision = decisions.service.decide(decisions.request(reader.token, action="merge_pr"))

    assert decision.effect is Effect.DENY
    assert decision.reasons[0].id == g.WITHIN_OBJECTIVE
