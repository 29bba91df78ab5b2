"""`remit keys list|rotate` on the key ring of a real server home: overlap, pruning, refusals."""

from __future__ import annotations

import base64
import datetime as dt
import os

from pathlib import Path

import httpx

from tests.integration.cli_runner import Run
from tests.integration.conftest import LiveServer, running, sqlite_settings
from typer.testing import CliRunner

from remit.adapters.keys import KeyRing, read_kek_file
from remit.cli.main import app
from remit.core.clock import SystemClock


def _keys(home: Path, *args: str, output: str = "json", env: dict[str, str | None] | None = None) -> Run:
    """`remit keys ...` with the server's settings taken from the environment, as on a server host."""
    base_env: dict[str, str | None] = {
        "REMIT_HOME": str(home),
        "REMIT_SERVER": None,
        "REMIT_TOKEN": None,
        "REMIT_CONFIG": None,
        "REMIT_KEYS__KEK": None,
        "REMIT_KEYS__KEK_FILE": None,
        "REMIT_KEYS__DIRECTORY": None,
    }
    result = CliRunner().invoke(app, ["--output", output, "keys", *args], env={**base_env, **(env or {})})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def _states(home: Path) -> dict[str, str]:
    run = _keys(home, "list")
    assert run.exit_code == 0, run.stderr
    return {k["kid"]: k["state"] for k in run.json()["items"]}


def test_keys_list_shows_public_facts_only(live_server: LiveServer, tmp_path: Path) -> None:
    """`keys list` shows the server's active and next key with their times and nothing secret."""
    run = _keys(tmp_path, "list")
    assert run.exit_code == 0, run.stderr
    items = run.json()["items"]
    assert [k["state"] for k in items] == ["active", "next"]
    assert {frozenset(k) for k in items} == {
        frozenset({"kid", "algorithm", "state", "created_at", "activated_at", "retired_at"})
    }
    assert items[0]["kid"] == live_server.remit.key_ring.active().kid
    sealed = (tmp_path / "keys" / "signing-keys.json").read_text(encoding="utf-8")
    assert "ciphertext" in sealed
    assert "ciphertext" not in run.stdout
    table = _keys(tmp_path, "list", output="table")
    assert items[1]["kid"] in table.stdout
    assert "ES256" in table.stdout


def test_keys_rotate_and_a_server_on_the_same_home_publishes_both(live_server: LiveServer, tmp_path: Path) -> None:
    """Rotation makes next active and retires the old key; a server built on the same home publishes all three."""
    before = _states(tmp_path)
    old_active = next(kid for kid, state in before.items() if state == "active")
    old_next = next(kid for kid, state in before.items() if state == "next")
    run = _keys(tmp_path, "rotate")
    assert run.exit_code == 0, run.stderr
    rotated = run.json()
    assert (rotated["active"], rotated["retired"], rotated["pruned"]) == (old_next, old_active, [])
    assert rotated["active"] != old_active
    assert rotated["next"] not in before
    assert _states(tmp_path) == {old_next: "active", rotated["next"]: "next", old_active: "retired"}
    with running(sqlite_settings(tmp_path, live_server.token), live_server.token) as fresh:
        published = httpx.get(f"{fresh.url}/.well-known/jwks.json", timeout=30.0).json()["keys"]
        assert fresh.remit.key_ring.active().kid == old_next
    assert {k["kid"] for k in published} == {old_active, old_next, rotated["next"]}
    assert all("d" not in k for k in published)
    table = _keys(tmp_path, "rotate", output="table")
    assert rotated["next"] in table.stdout  # the second rotation activates the key the first one made


def test_keys_rotate_prune_drops_only_keys_past_every_credential(live_server: LiveServer, tmp_path: Path) -> None:
    """--prune drops a key retired longer ago than the longest credential lifetime and keeps a fresh retiree."""
    assert live_server.remit.key_ring.path.exists()  # the server created the ring
    long_ago = SystemClock().now() - dt.timedelta(days=8)
    ring = KeyRing.open(tmp_path / "keys", read_kek_file(tmp_path / "kek"), now=long_ago)
    ancient = ring.active().kid
    ring.rotate(long_ago)  # `ancient` retired eight days ago: past the 7-day ceiling of any credential
    run = _keys(tmp_path, "rotate", "--prune")
    assert run.exit_code == 0, run.stderr
    result = run.json()
    assert result["pruned"] == [ancient]
    assert _states(tmp_path) == {result["active"]: "active", result["next"]: "next", result["retired"]: "retired"}


def test_keys_commands_refuse_without_the_ring_or_with_the_wrong_kek(live_server: LiveServer, tmp_path: Path) -> None:
    """No ring → 5 (nothing created), a wrong KEK → 7 without the KEK in the message, a missing KEK file → 7."""
    empty = tmp_path / "elsewhere"
    missing = _keys(empty, "list")
    assert (missing.exit_code, missing.stdout) == (5, "")
    assert not (empty / "keys").exists()
    assert _keys(empty, "rotate").exit_code == 5
    assert live_server.remit.key_ring.path.exists()
    wrong = base64.b64encode(os.urandom(32)).decode()
    refused = _keys(tmp_path, "rotate", env={"REMIT_KEYS__KEK": wrong})
    assert refused.exit_code == 7
    assert wrong not in refused.stderr
    assert "error[unavailable]" in refused.stderr
    lost = _keys(tmp_path, "list", env={"REMIT_KEYS__KEK_FILE": str(tmp_path / "no-such-kek")})
    assert lost.exit_code == 7
    assert not (tmp_path / "no-such-kek").exists()
    assert list(_states(tmp_path).values()) == ["active", "next"]  # the refused rotation changed nothing
