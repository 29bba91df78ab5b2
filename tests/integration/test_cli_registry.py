"""Every `remit` registry command group, run for real against a live server: output, JSON and exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer

SPIFFE = "spiffe://acme.example/agents/invoice-bot"


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    return Cli(live_server.url, live_server.token)


def _seed_basics(cli: Cli) -> None:
    cli.ok("owner", "add", "Ada Lovelace", "ada@acme.example", "--human-identity", "https://login.acme.example#ada")
    cli.ok("function", "add", "billing", "--owner", "ada@acme.example", "--description", "Bill customers.")
    cli.ok(
        "tool", "add", "stripe",
        "--action", "list_payouts:read", "--action", "refund:payment",
        "--resource", "account:acme/*:internal", "--resource", "vault:acme/*:restricted:prod",
    )  # fmt: skip


def test_owner_commands(cli: Cli) -> None:
    """Owners: add, list, show, change and offboard, in tables and JSON."""
    added = cli.json("owner", "add", "Ada Lovelace", "ada@acme.example", "--human-identity", "https://idp.example#ada")
    assert added["email"] == "ada@acme.example"
    assert added["human_identities"] == [{"issuer": "https://idp.example", "subject": "ada"}]
    assert "ada@acme.example" in cli.ok("owner", "list").stdout
    assert cli.json("owner", "show", added["id"])["name"] == "Ada Lovelace"
    changed = cli.json("owner", "change", "ada@acme.example", "--name", "Ada King", "--expected-revision", "1")
    assert (changed["name"], changed["revision"]) == ("Ada King", 2)
    offboarded = cli.json("owner", "offboard", "ada@acme.example", "--reason", "left the company")
    assert offboarded["owner"]["status"] == "offboarded"
    assert offboarded["suspended_agents"] == []


def test_function_commands(cli: Cli) -> None:
    """Business functions: add, list, show and change."""
    cli.ok("owner", "add", "Ada Lovelace", "ada@acme.example")
    cli.ok("owner", "add", "Grace Hopper", "grace@acme.example")
    cli.ok("function", "add", "billing", "--owner", "ada@acme.example", "--description", "Bill customers.")
    assert "billing" in cli.ok("function", "list").stdout
    assert cli.json("function", "show", "billing")["description"] == "Bill customers."
    grace = cli.json("owner", "show", "grace@acme.example")
    changed = cli.json("function", "change", "billing", "--owner", "grace@acme.example", "--description", "Bill.")
    assert (changed["owner_id"], changed["description"]) == (grace["id"], "Bill.")


def test_tool_commands(cli: Cli) -> None:
    """Tools: add with NAME:RISK actions and PATTERN:SENSITIVITY[:ENV] resources, list, show, change."""
    _seed_basics(cli)
    tool = cli.json("tool", "show", "stripe")
    assert {a["name"]: a["risk_class"] for a in tool["actions"]} == {"list_payouts": "read", "refund": "payment"}
    assert {"pattern": "vault:acme/*", "sensitivity": "restricted", "environment": "prod", "description": ""} in (
        tool["resources"]
    )
    assert "refund:payment" in cli.ok("tool", "list").stdout
    changed = cli.json("tool", "change", "stripe", "--description", "Payments.")
    assert (changed["description"], len(changed["actions"])) == ("Payments.", 2)


def test_workflow_commands(cli: Cli) -> None:
    """Workflows: draft, change the draft, approve with the reviewed hash, versions, new version, retire."""
    _seed_basics(cli)
    draft = cli.ok(
        "workflow", "add", "refunds", "--function", "billing",
        "--step", "stripe:refund:account:acme/*", "--max-duration", "30m",
    )  # fmt: skip
    assert "remit workflow approve refunds@1 --expected-hash" in draft.stdout
    changed = cli.json("workflow", "change", "refunds@1", "--max-duration", "1h", "--description", "Refund twice.")
    assert changed["max_duration_seconds"] == 3600
    stale = cli("workflow", "approve", "refunds@1", "--expected-hash", "sha256:not-what-you-reviewed")
    assert stale.exit_code == 6
    approved = cli.json("workflow", "approve", "refunds@1", "--expected-hash", changed["content_hash"])
    assert approved["state"] == "approved"
    immutable = cli("workflow", "change", "refunds@1", "--max-duration", "2h")
    assert immutable.exit_code == 6
    assert immutable.stderr.startswith("error[conflict]: ")
    cli.ok("workflow", "add", "refunds", "--function", "billing", "--step", "stripe:list_payouts:account:acme/*",
           "--max-duration", "10m")  # fmt: skip
    versions = cli.json("workflow", "versions", "refunds")
    assert [(v["ref"], v["state"]) for v in versions] == [("refunds@1", "approved"), ("refunds@2", "draft")]
    assert "refunds@2" in cli.ok("workflow", "list").stdout
    assert cli.json("workflow", "show", "refunds@2")["steps"][0]["action"] == "list_payouts"
    assert cli.json("workflow", "retire", "refunds@1", "--reason", "replaced")["state"] == "retired"


def test_agent_commands(cli: Cli) -> None:
    """Agents: add (SPIFFE and OIDC), list, show, change, suspend, reactivate, retire, traceability, untraceable."""
    _seed_basics(cli)
    agent = cli.json(
        "agent", "add", "invoice-bot", "--spiffe-id", SPIFFE, "--owner", "ada@acme.example", "--function", "billing",
        "--env", "prod", "--review-by", "2027-06-30", "--description", "Reconciles invoices.",
    )  # fmt: skip
    assert (agent["identity"]["spiffe_id"], agent["status"]) == (SPIFFE, "active")
    orphan = cli.ok(
        "agent", "add", "ci-bot", "--oidc-issuer", "https://ci.example", "--oidc-subject", "repo:acme/app",
        "--env", "ci", "--review-by", "2027-01-01",
    )  # fmt: skip
    assert "untraceable" in orphan.stdout
    assert "invoice-bot" in cli.ok("agent", "list").stdout
    assert cli.json("agent", "show", "invoice-bot")["id"] == agent["id"]
    changed = cli.json(
        "agent", "change", "invoice-bot", "--env", "prod", "--env", "staging", "--review-by", "2027-07-31"
    )
    assert (sorted(changed["environments"]), changed["review_by"]) == (["prod", "staging"], "2027-07-31")
    assert cli.json("agent", "suspend", "invoice-bot", "--reason", "incident 42")["status"] == "suspended"
    assert cli.json("agent", "reactivate", "invoice-bot", "--reason", "resolved")["status"] == "active"
    assert cli.json("agent", "traceability", "invoice-bot")["traceable"] is True
    trace = cli.json("agent", "traceability", "ci-bot")
    assert trace["traceable"] is False
    assert "no_owner" in trace["problems"]
    assert "untraceable" in cli.ok("agent", "traceability", "ci-bot").stdout
    untraceable = cli.json("agent", "untraceable")
    assert [u["agent"]["name"] for u in untraceable] == ["ci-bot"]
    assert cli.json("agent", "retire", "ci-bot", "--reason", "never used")["status"] == "retired"
    assert cli("agent", "reactivate", "ci-bot", "--reason", "oops").exit_code == 6


def test_grant_commands(cli: Cli) -> None:
    """Standing grants: a read is created, listed and deleted; a payment action is refused with exit 2."""
    _seed_basics(cli)
    cli.ok("agent", "add", "bot", "--spiffe-id", SPIFFE, "--owner", "ada@acme.example", "--function", "billing",
           "--env", "prod", "--review-by", "2027-06-30")  # fmt: skip
    grant = cli.json("grant", "add", "--agent", "bot", "--tool", "stripe", "--action", "list_payouts",
                     "--resource", "account:acme/*", "--reason", "daily report")  # fmt: skip
    assert grant["action"] == "list_payouts"
    assert grant["id"] in cli.ok("grant", "list").stdout
    refused = cli("grant", "add", "--agent", "bot", "--tool", "stripe", "--action", "refund",
                  "--resource", "account:acme/*", "--reason", "convenience")  # fmt: skip
    assert refused.exit_code == 2
    assert refused.stderr.startswith("error[invalid_request]: stripe:refund is a payment action")
    assert cli.json("grant", "delete", grant["id"]) == {"deleted": grant["id"]}
    assert cli.json("grant", "list")["items"] == []
    assert cli("grant", "delete", grant["id"]).exit_code == 5


def test_list_follows_cursors_and_limit_shows_one_page(cli: Cli) -> None:
    """`list` fetches every page; `--limit` shows one page and its cursor; `--after` continues from it."""
    for i in range(5):
        cli.ok("owner", "add", f"Owner {i}", f"owner{i}@acme.example")
    assert len(cli.json("owner", "list")["items"]) == 5
    first = cli.json("owner", "list", "--limit", "2")
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    second = cli.json("owner", "list", "--limit", "2", "--after", first["next_cursor"])
    assert {o["id"] for o in second["items"]}.isdisjoint({o["id"] for o in first["items"]})
    assert "more: --after" in cli.ok("owner", "list", "--limit", "2").stdout


def test_not_found_exits_5_with_one_line(cli: Cli) -> None:
    """A missing object is one `error[not_found]` line on stderr and exit 5; stdout stays empty."""
    run = cli("agent", "show", "nobody")
    assert (run.exit_code, run.stdout) == (5, "")
    assert run.stderr == "error[not_found]: no agent 'nobody'\n"


def test_conflict_exits_6(cli: Cli) -> None:
    """Registering the same owner twice is a conflict: exit 6."""
    cli.ok("owner", "add", "Ada", "ada@acme.example")
    run = cli("owner", "add", "Ada", "ada@acme.example")
    assert run.exit_code == 6
    assert run.stderr.startswith("error[conflict]: ")


@pytest.mark.parametrize(
    "args",
    [
        ("owner", "add", "Ada", "not-an-email"),
        ("agent", "add", "bot", "--env", "prod", "--review-by", "2027-01-01"),
        ("agent", "add", "bot", "--spiffe-id", SPIFFE, "--env", "prod", "--review-by", "next year"),
        ("tool", "add", "t", "--action", "read_it", "--resource", "x:public"),
        ("workflow", "add", "w", "--function", "f", "--step", "t:a:r", "--max-duration", "forever"),
        ("owner", "change", "ada@acme.example"),
    ],
)
def test_invalid_input_exits_2(cli: Cli, args: tuple[str, ...]) -> None:
    """Bad input, caught locally or by the server, is one `error[invalid_request]` line and exit 2."""
    run = cli(*args)
    assert run.exit_code == 2, run.stderr
    assert run.stderr.startswith("error[invalid_request]: ")
    assert run.stderr.count("\n") == 1


def test_wrong_or_missing_token_exits_3(live_server: LiveServer) -> None:
    """A wrong token is exit 3; with no token at all the message says where the CLI looked, never a token."""
    wrong = Cli(live_server.url, "remit_op_wrong")("owner", "list")
    assert wrong.exit_code == 3
    assert wrong.stderr.startswith("error[unauthenticated]: ")
    assert "remit_op_wrong" not in wrong.stderr
    missing = Cli(live_server.url, None)("owner", "list")
    assert missing.exit_code == 3
    assert "REMIT_TOKEN" in missing.stderr


def test_unreachable_server_exits_7() -> None:
    """No server at the address: error[unavailable], exit 7."""
    run = Cli("http://127.0.0.1:9", "remit_op_x")("owner", "list")
    assert run.exit_code == 7
    assert run.stderr.startswith("error[unavailable]: could not reach the Remit server")


def test_token_file_is_read(live_server: LiveServer, tmp_path: Path) -> None:
    """Without --token, the CLI authenticates with the token file named by --token-file."""
    token_file = tmp_path / "operator-token"
    token_file.write_text(live_server.token + "\n", encoding="utf-8")
    run = Cli(live_server.url, None)("--token-file", str(token_file), "owner", "list")
    assert run.exit_code == 0, run.stderr
