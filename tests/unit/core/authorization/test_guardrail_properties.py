"""Properties of the decision path: no policy loosens a guardrail; the common case reads no database row."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event
from tests.unit.core.authorization.conftest import DecisionStack, wide_declaration
from tests.unit.core.credentials.conftest import workload

from remit.core.authorization.models import Effect

TOOLS = ("github", "jira")
ACTIONS = ("read_file", "merge_pr", "deploy", "delete_repo")
RESOURCES = ("repo:acme/docs", "repo:acme/docs-site", "repo:acme/app", "repo:acme/payroll", "repo:other/x")
ENVIRONMENTS = (None, "prod", "dev")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tool=st.sampled_from(TOOLS),
    action=st.sampled_from(ACTIONS),
    resource=st.sampled_from(RESOURCES),
    environment=st.sampled_from(ENVIRONMENTS),
    tamper=st.booleans(),
)
def test_a_permit_everything_policy_never_allows_what_a_guardrail_denies(
    decisions: DecisionStack, tool: str, action: str, resource: str, environment: str | None, tamper: bool
) -> None:
    """The most permissive policy set possible (permit every request) allows only what every guardrail allows.

    The oracle is written from the task declaration alone: a valid credential, the task's tool, a
    `read` inside its authorization_details, on a registered resource, in its environment.
    """
    decisions.policies.rule = lambda _request: True
    # A fresh task per example, so earlier examples' out-of-objective strikes do not end it.
    token = decisions.stack.issuance.start_task(workload(), wide_declaration())[1].token
    if tamper:
        token = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")

    decision = decisions.service.decide(
        decisions.request(
            token, tool=tool, audience=f"tool:{tool}", action=action, resource=resource, environment=environment
        )
    )

    guardrails_allow = (
        not tamper
        and tool == "github"
        and action == "read_file"
        and resource.startswith("repo:acme/docs")
        and environment in {None, "prod"}
    )
    if not guardrails_allow:
        assert decision.effect is not Effect.ALLOW, decision
    else:
        assert decision.effect is Effect.ALLOW, decision


@contextmanager
def counting_statements(stack: DecisionStack) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = stack.stack.database.engine

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_the_common_case_reads_no_database_row(decisions: DecisionStack) -> None:
    """After the first decision of a task, deciding touches the store only to write its audit record."""
    _, issued = decisions.start()
    decisions.service.decide(decisions.request(issued.token))  # warms the facts and the signature cache

    before = len(decisions.records())
    with counting_statements(decisions) as statements:
        for _ in range(5):
            assert decisions.service.decide(decisions.request(issued.token)).effect is Effect.ALLOW

    # What the audit append itself runs: its table, the chain lock (PostgreSQL), the transaction around it.
    audit_write = ("audit", "pg_advisory_xact_lock", "begin", "commit")
    reads = [s for s in statements if not any(marker in s.lower() for marker in audit_write)]
    assert reads == []
    assert len(decisions.records()) == before + 5, "each decision's audit record must still be written"
