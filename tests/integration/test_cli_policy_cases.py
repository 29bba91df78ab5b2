"""`remit policy test` (offline cases for CI of policy repositories) and `remit policy explain` (live)."""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import shutil

from pathlib import Path

from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    Workloads,
    _declaration,
    agent_server,
    workloads,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _offline() -> Cli:
    return Cli("http://127.0.0.1:9", None)  # never contacted: the cases run offline


def test_the_example_cases_pass_against_the_default_pack() -> None:
    run = _offline()("policy", "test", str(EXAMPLES / "policy-tests.yaml"), output="json")

    assert run.exit_code == 0, run.stderr
    body = run.json()
    assert body["failed"] == 0
    assert body["passed"] == len(body["cases"]) >= 10


def test_a_case_the_policies_contradict_fails_with_exit_6(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLES / "policies", tmp_path / "policies")
    cases = (EXAMPLES / "policy-tests.yaml").read_text(encoding="utf-8")
    # Loosen the restricted-data policy: the case that expects a step-up must now fail.
    (tmp_path / "policies" / "restricted-data.cedar").write_text('@id("none")\npermit (principal, action, resource);\n')
    (tmp_path / "cases.yaml").write_text(cases, encoding="utf-8")

    run = _offline()("policy", "test", str(tmp_path / "cases.yaml"), output="json")

    assert run.exit_code == 6
    failed = [c for c in run.json()["cases"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["restricted data needs an approval even to read"]
    assert failed[0]["effect"] == "allow"


def test_a_malformed_cases_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "cases.yaml").write_text(
        "policies: missing\ntools: {}\ncases: [{name: x, request: {tool: t}, expect: maybe}]\n", encoding="utf-8"
    )

    run = _offline()("policy", "test", str(tmp_path / "cases.yaml"))

    assert run.exit_code == 2
    assert "error[invalid_request]" in run.stderr
    assert "expect" in run.stderr


def test_explain_names_the_deciding_guardrail_and_the_inputs(agent_server: LiveServer, workloads: Workloads) -> None:
    with agent_server.client(authenticated=False) as client:
        token = client.post("/v1/tasks", json=_declaration(workloads.svid())).json()["credential"]["access_token"]
    cli = Cli(agent_server.url, agent_server.token)

    run = cli(
        "policy", "explain", "--credential", token, "--tool", "github", "--action", "read_file",
        "--resource", "repo:acme/app", output="json",
    )  # fmt: skip

    assert run.exit_code == 0, run.stderr
    body = run.json()
    assert body["effect"] == "deny"
    assert body["reasons"][0]["id"] == "within_objective"
    assert body["inputs"]["objective"] == "publish the Q1 docs"
    table = cli(
        "policy", "explain", "--credential", token, "--tool", "github", "--action", "read_file",
        "--resource", "repo:acme/docs",
    )  # fmt: skip
    assert "policy_set_loaded" in table.stdout
    assert token not in table.stdout
