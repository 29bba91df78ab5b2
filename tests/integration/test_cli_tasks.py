"""`remit task` and `remit credential` against a live server: listing, showing, ending, introspecting, revoking."""

from __future__ import annotations

from tests.integration import test_http_tasks
from tests.integration.cli_runner import Cli, Run
from tests.integration.conftest import LiveServer
from tests.unit.core.credentials.conftest import declaration, workload
from typer.testing import CliRunner

from remit.cli.main import app

# The live server that trusts a test trust domain and has an organisation, shared with the HTTP task tests.
agent_server = test_http_tasks.agent_server
workloads = test_http_tasks.workloads

MISSING_TASK = "tsk_" + "0" * 26


def _start(live: LiveServer) -> tuple[str, str, str]:
    """A running task with one credential, started in process: (task id, agent id, token)."""
    task, issued = live.remit.issuance.start_task(workload(), declaration())
    return task.id, task.agent_id, issued.token


def _with_stdin(live: LiveServer, stdin: str, *args: str, token: str | None = None) -> Run:
    """Run the CLI with `stdin` as standard input (the way a token is piped in)."""
    base = ["--server", live.url, "--output", "json", "--token", token or live.token]
    env = {"REMIT_TOKEN": None, "REMIT_SERVER": None, "REMIT_TOKEN_FILE": "/nonexistent/remit-token"}
    result = CliRunner().invoke(app, [*base, *args], input=stdin, env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def test_task_list_show_and_end(agent_server: LiveServer) -> None:
    """An operator lists (filtered by state and agent), shows and ends a task; ending it kills its credential."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, agent_id, token = _start(agent_server)
    assert [t["id"] for t in cli.json("task", "list")["items"]] == [task_id]
    assert [t["id"] for t in cli.json("task", "list", "--state", "running", "--agent", agent_id)["items"]] == [task_id]
    assert cli.json("task", "list", "--state", "completed")["items"] == []
    assert cli.json("task", "list", "--agent", "agt_" + "0" * 26)["items"] == []
    page = cli.json("task", "list", "--limit", "1")
    assert (len(page["items"]), page["next_cursor"]) == (1, None)
    assert task_id in cli.ok("task", "list").stdout
    assert cli.json("task", "show", task_id)["state"] == "running"
    assert "publish the Q1 docs" in cli.ok("task", "show", task_id).stdout
    ended = cli.json("task", "end", task_id, "--outcome", "cancelled", "--reason", "operator stop")
    assert (ended["state"], ended["end_reason"]) == ("cancelled", "operator stop")
    assert cli.json("credential", "introspect", token) == {"active": False}


def test_task_command_exit_codes(agent_server: LiveServer) -> None:
    """Unknown task → 5, an outcome that is not an end state → 2, ending an ended task → 6, no token → 3."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, _, _ = _start(agent_server)
    assert cli("task", "show", MISSING_TASK).exit_code == 5
    assert cli("task", "end", MISSING_TASK, "--outcome", "failed").exit_code == 5
    assert cli("task", "show", "not-a-task-id").exit_code == 2
    assert cli("task", "end", task_id, "--outcome", "running").exit_code == 2
    assert cli("task", "end", task_id, "--outcome", "done").exit_code == 2
    assert cli("task", "list", "--state", "sleeping").exit_code == 2
    assert cli.json("task", "show", task_id)["state"] == "running"  # the refused ends changed nothing
    cli.ok("task", "end", task_id, "--outcome", "completed")
    again = cli("task", "end", task_id, "--outcome", "failed")
    assert (again.exit_code, again.stdout) == (6, "")
    anonymous = Cli(agent_server.url, None)
    assert anonymous("task", "list").exit_code == 3
    assert anonymous("task", "end", task_id, "--outcome", "failed").exit_code == 3


def test_credential_introspect_shows_claims_and_never_the_token(agent_server: LiveServer) -> None:
    """Introspection of a live credential is active with its claims; the token itself is printed nowhere."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, _, token = _start(agent_server)
    answer = cli.json("credential", "introspect", token)
    assert (answer["active"], answer["txn"], answer["aud"]) == (True, task_id, "tool:github")
    assert (answer["token_type"], "client_id" in answer, "remit_lineage" in answer) == ("Bearer", True, False)
    table = cli.ok("credential", "introspect", token)
    assert "active" in table.stdout
    assert task_id in table.stdout
    piped = _with_stdin(agent_server, token + "\n", "credential", "introspect", "-")
    assert (piped.exit_code, piped.json()["txn"]) == (0, task_id)
    for run in (table, piped):
        assert token not in run.stdout + run.stderr


def test_credential_introspect_of_junk_is_inactive(agent_server: LiveServer) -> None:
    """Junk, a forged-looking JWS and an empty stdin never read as active; an empty token is a usage error."""
    cli = Cli(agent_server.url, agent_server.token)
    for junk in ("junk", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a.b.c"):
        assert cli.json("credential", "introspect", junk) == {"active": False}
    empty = _with_stdin(agent_server, "", "credential", "introspect", "-")
    assert empty.exit_code == 2
    spaced = _with_stdin(agent_server, "two tokens\n", "credential", "introspect", "-")
    assert spaced.exit_code == 2
    assert "two tokens" not in spaced.stderr
    assert Cli(agent_server.url, None)("credential", "introspect", "junk").exit_code == 3


def test_credential_revoke(agent_server: LiveServer) -> None:
    """Revoking a credential from stdin kills it but not its task; revoking junk succeeds and reveals nothing."""
    cli = Cli(agent_server.url, agent_server.token)
    task_id, _, token = _start(agent_server)
    revoked = _with_stdin(agent_server, token, "credential", "revoke", "-")
    assert (revoked.exit_code, revoked.json()) == (0, {"revocation_requested": True})
    assert token not in revoked.stdout + revoked.stderr
    assert cli.json("credential", "introspect", token) == {"active": False}
    assert cli.json("task", "show", task_id)["state"] == "running"
    assert "revocation requested" in cli.ok("credential", "revoke", "junk").stdout
