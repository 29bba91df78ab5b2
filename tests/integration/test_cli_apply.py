"""`remit apply` against a live server: plan first, idempotent, --dry-run changes nothing, bad files apply nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme.yaml"


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    return Cli(live_server.url, live_server.token)


def _counts(cli: Cli) -> dict[str, int]:
    return {
        noun: len(cli.json(noun, "list")["items"])
        for noun in ("owner", "function", "tool", "workflow", "agent", "grant")
    }


def test_example_applies_cleanly_and_a_second_apply_changes_nothing(cli: Cli) -> None:
    """examples/acme.yaml applies on an empty server; applying it again plans and changes nothing, and says so."""
    first = cli.ok("apply", "-f", str(EXAMPLE))
    assert "13 to create, 0 to change, 0 unchanged." in first.stdout
    assert "Applied: 13 created, 0 changed." in first.stdout
    assert _counts(cli) == {"owner": 2, "function": 2, "tool": 3, "workflow": 2, "agent": 3, "grant": 1}
    assert {w["state"] for w in cli.json("workflow", "list")["items"]} == {"approved"}
    assert cli.json("agent", "untraceable") == []
    before = cli.json("agent", "show", "invoice-bot")

    second = cli.ok("apply", "-f", str(EXAMPLE))
    assert "0 to create, 0 to change, 13 unchanged." in second.stdout
    assert "Nothing to change: the server already matches" in second.stdout
    assert cli.json("agent", "show", "invoice-bot")["revision"] == before["revision"]


def test_dry_run_changes_nothing(cli: Cli) -> None:
    """--dry-run prints the full plan and leaves the server exactly as it was."""
    run = cli.ok("apply", "-f", str(EXAMPLE), "--dry-run")
    assert "+ owner ada@acme.example" in run.stdout
    assert "+ workflow ship-release: version 1 and approve" in run.stdout
    assert "Dry run: nothing was applied." in run.stdout
    assert _counts(cli) == dict.fromkeys(("owner", "function", "tool", "workflow", "agent", "grant"), 0)


def test_changed_file_plans_only_the_difference(cli: Cli, tmp_path: Path) -> None:
    """Editing the file changes exactly the edited objects: an agent in place, an approved workflow as version 2."""
    cli.ok("apply", "-f", str(EXAMPLE))
    edited = tmp_path / "acme.yaml"
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace("review_by: 2027-06-30", "review_by: 2027-09-30").replace(
        "max_duration: 1h", "max_duration: 2h"
    )
    edited.write_text(text, encoding="utf-8")

    plan = cli.json("apply", "-f", str(edited), "--dry-run")
    changed = {(s["kind"], s["key"]): s["changes"] for s in plan["plan"] if s["action"] == "change"}
    assert changed == {
        ("workflow", "ship-release"): ["max_duration: 1h → 2h", "version 2 and approve"],
        ("agent", "invoice-bot"): ["review_by: 2027-06-30 → 2027-09-30"],
    }
    assert plan["applied"] is False

    result = cli.json("apply", "-f", str(edited))
    assert (result["applied"], result["summary"]) == (True, {"create": 0, "change": 2, "unchanged": 11})
    assert cli.json("agent", "show", "invoice-bot")["review_by"] == "2027-09-30"
    versions = cli.json("workflow", "versions", "ship-release")
    assert [(v["version"], v["state"]) for v in versions] == [(1, "superseded"), (2, "approved")]
    assert cli.json("apply", "-f", str(edited))["applied"] is False


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("owners: [\n", "error[invalid_request]: {file}:2:1: "),
        ("owners:\n  - {name: Ada, email: ada@acme.example, colour: blue}\n", "error[invalid_request]: {file}: owners[0].colour: "),
        ("owners:\n  - {name: Ada, email: ada@acme.example}\nagents:\n  - {name: bot, review_by: tomorrow}\n", "error[invalid_request]: {file}: agents[0].identity: "),
    ],
)  # fmt: skip
def test_invalid_file_is_one_line_exit_2_and_applies_nothing(
    cli: Cli, tmp_path: Path, content: str, message: str
) -> None:
    """Invalid YAML or a schema error is one line naming the path in the file, exit 2, and nothing is applied."""
    org = tmp_path / "org.yaml"
    org.write_text(content, encoding="utf-8")
    run = cli("apply", "-f", str(org))
    assert run.exit_code == 2
    assert run.stdout == ""
    assert run.stderr.startswith(message.format(file=org)), run.stderr
    assert run.stderr.count("\n") == 1
    assert _counts(cli)["owner"] == 0


def test_partial_failure_names_the_object(cli: Cli, tmp_path: Path) -> None:
    """When the server refuses an object mid-apply, the error names it and the earlier objects stay applied."""
    org = tmp_path / "org.yaml"
    org.write_text(
        "owners:\n  - {name: Ada, email: ada@acme.example}\n"
        "functions:\n  - {name: billing, description: Bill., owner: nobody@acme.example}\n",
        encoding="utf-8",
    )
    run = cli("apply", "-f", str(org))
    assert run.exit_code == 5
    assert run.stderr.startswith("error[not_found]: function billing: ")
    assert _counts(cli)["owner"] == 1


def test_missing_file_is_invalid_request(cli: Cli, tmp_path: Path) -> None:
    """A file that cannot be read is exit 2."""
    run = cli("apply", "-f", str(tmp_path / "absent.yaml"))
    assert run.exit_code == 2
    assert "cannot read" in run.stderr
