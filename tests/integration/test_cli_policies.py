"""`remit policy` against a live server: add, list, show, activate, deactivate, active and schema; exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.cli_runner import Cli
from tests.integration.conftest import LiveServer

PERMIT = '@id("all")\npermit (principal, action, resource);\n'
BAD = '@id("typo")\nforbid (principal, action == Action::"github:nope", resource);\n'


@pytest.fixture
def cli(live_server: LiveServer) -> Cli:
    return Cli(live_server.url, live_server.token)


@pytest.fixture
def base_file(tmp_path: Path) -> Path:
    path = tmp_path / "base.cedar"
    path.write_text(PERMIT, encoding="utf-8")
    return path


def test_add_activate_show_and_deactivate(cli: Cli, base_file: Path, live_server: LiveServer) -> None:
    """The whole life of a policy through the CLI, in tables and JSON."""
    added = cli.ok("policy", "add", str(base_file), "--name", "base", "--description", "task scope")
    assert "base@1" in added.stdout
    assert "remit policy activate base@1" in added.stdout

    activated = cli.json("policy", "activate", "base@1")
    assert activated["generation"] == 1
    assert live_server.remit.policy_engine.version == 1

    listed = cli.ok("policy", "list").stdout
    assert "base@1" in listed
    shown = cli.ok("policy", "show", "base").stdout
    assert "base@1" in shown
    assert "yes" in shown
    text = cli.ok("policy", "show", "base@1").stdout
    assert "permit (principal, action, resource);" in text
    assert cli.json("policy", "show", "base@1")["text"] == PERMIT
    assert [p["ref"] for p in cli.json("policy", "active")["policies"]] == ["base@1"]
    assert "generation 1" in cli.ok("policy", "active").stdout

    deactivated = cli.ok("policy", "deactivate", "base")
    assert "policy set generation 2" in deactivated.stdout
    assert "deny all" in cli.ok("policy", "active").stdout


def test_an_invalid_policy_exits_2_with_cedars_message(cli: Cli, tmp_path: Path) -> None:
    """A policy that does not validate prints Cedar's diagnostic under the @id and exits 2."""
    path = tmp_path / "bad.cedar"
    path.write_text(BAD, encoding="utf-8")

    run = cli("policy", "add", str(path), "--name", "bad")

    assert run.exit_code == 2
    assert "error[invalid_request]" in run.stderr
    assert 'text.typo: for policy `typo`, unrecognized action `Action::"github:nope"`' in run.stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("policy", "activate", "base"), 2),
        (("policy", "activate", "base@x"), 2),
        (("policy", "activate", "missing@1"), 5),
        (("policy", "show", "missing"), 5),
        (("policy", "deactivate", "base"), 6),
        (("policy", "add", "/nonexistent/policy.cedar", "--name", "x"), 2),
    ],
)
def test_refusals_exit_with_their_codes(cli: Cli, base_file: Path, args: tuple[str, ...], code: int) -> None:
    """Malformed refs and unreadable files are 2, unknown policies 5, nothing to deactivate 6."""
    cli.ok("policy", "add", str(base_file), "--name", "base")

    run = cli(*args)

    assert run.exit_code == code, (run.stdout, run.stderr)
    assert run.stderr.startswith("error[")


def test_schema_prints_cedar_syntax(cli: Cli) -> None:
    """`remit policy schema` prints the Cedar schema; with JSON output both forms."""
    assert "entity Agent in [BusinessFunction]" in cli.ok("policy", "schema").stdout
    assert "Agent" in cli.json("policy", "schema")["cedar_json"][""]["entityTypes"]


def test_the_default_pack_adds_and_activates_cleanly(cli: Cli) -> None:
    """Every file of examples/policies/ is accepted and activated through the CLI."""
    pack = sorted((Path(__file__).resolve().parents[2] / "examples" / "policies").glob("*.cedar"))
    for path in pack:
        cli.ok("policy", "add", str(path), "--name", path.stem)
        cli.ok("policy", "activate", f"{path.stem}@1")

    active = cli.json("policy", "active")

    assert active["generation"] == len(pack)
    assert sorted(p["name"] for p in active["policies"]) == sorted(p.stem for p in pack)
