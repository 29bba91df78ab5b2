"""`remit serve`, `remit db` and `remit config` for real: the operator token is printed once and stored 0600."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time

from pathlib import Path

import httpx
import pytest

from typer.testing import CliRunner

from remit.cli.main import app
from remit.sdk import RemitClient

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "acme.yaml"
POLICIES = Path(__file__).resolve().parents[2] / "examples" / "policies"
DEADLINE_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _environment(home: Path) -> dict[str, str]:
    # The child needs PATH and friends, but none of the caller's Remit configuration.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("REMIT_")}  # noqa: TID251 - child process
    return {**inherited, "REMIT_HOME": str(home / ".remit"), "PYTHONUNBUFFERED": "1"}


class _Server:
    """One `python -m remit serve` child process."""

    def __init__(self, home: Path, port: int, *args: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "remit", "serve", "--port", str(port), *args]
        self.process = subprocess.Popen(  # the interpreter running the tests, with fixed arguments
            command, cwd=home, env=_environment(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"remit serve exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        pytest.fail("remit serve did not become healthy")

    def stop(self) -> tuple[str, str]:
        if self.process.poll() is None:
            self.process.terminate()
        stdout, stderr = self.process.communicate(timeout=DEADLINE_SECONDS)
        return stdout, stderr


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fresh working directory; REMIT_HOME is its `.remit`."""
    return tmp_path


def _serve_once(home: Path, *args: str) -> tuple[str, str, str]:
    server = _Server(home, _free_port(), *args)
    try:
        server.wait_healthy()
        url = server.url
    finally:
        stdout, stderr = server.stop()
    return url, stdout, stderr


@pytest.mark.slow
def test_serve_init_prints_the_token_only_on_first_run(home: Path) -> None:
    """The first `remit serve` creates a 0600 token file and prints the token with the next command; later runs never print it."""
    _, first, _ = _serve_once(home, "--no-seed")
    token_file = home / ".remit" / "operator-token"
    token = token_file.read_text(encoding="utf-8").strip()
    assert token.startswith("remit_op_")
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert first.count(token) == 2  # the token line and the export line
    assert f"export REMIT_TOKEN={token}" in first
    assert "agent list" in first

    _, second, second_err = _serve_once(home, "--no-seed")
    assert token not in second
    assert token not in second_err
    assert "Operator token" not in second
    assert token_file.read_text(encoding="utf-8").strip() == token


@pytest.mark.slow
def test_serve_seeds_the_example_into_an_empty_registry(home: Path) -> None:
    """With --init (the default), an empty registry is seeded from the example file through the API."""
    server = _Server(home, _free_port(), "--seed-file", str(EXAMPLE))
    try:
        server.wait_healthy()
        token = (home / ".remit" / "operator-token").read_text(encoding="utf-8").strip()
        with RemitClient(server.url, token=token) as client:
            deadline = time.monotonic() + DEADLINE_SECONDS
            while len(client.list_agents().items) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert sorted(a.name for a in client.list_agents().items) == ["docs-helper", "invoice-bot", "release-bot"]
    finally:
        _, stderr = server.stop()
    assert "seeded the example organisation" in stderr


@pytest.mark.slow
def test_serve_init_activates_the_default_policy_pack_once(home: Path) -> None:
    """The first start adds and activates every policy of the pack; a restart adds nothing more."""
    pack = sorted(p.stem for p in POLICIES.glob("*.cedar"))
    _, _, first_err = _serve_once(home, "--policy-dir", str(POLICIES))
    token = (home / ".remit" / "operator-token").read_text(encoding="utf-8").strip()

    server = _Server(home, _free_port(), "--policy-dir", str(POLICIES))
    try:
        server.wait_healthy()
        with RemitClient(server.url, token=token) as client:
            active = client.active_policies()
    finally:
        _, second_err = server.stop()

    assert "activated the default policy pack" in first_err
    assert "default policy pack" not in second_err
    assert sorted(p.name for p in active.policies) == pack
    assert active.generation == len(pack)


@pytest.mark.slow
def test_serve_without_init_refuses_to_start_without_a_token(home: Path) -> None:
    """`remit serve --no-init` on a fresh home exits 2 with one line and creates no token."""
    result = subprocess.run(
        [sys.executable, "-m", "remit", "serve", "--no-init", "--port", str(_free_port())],
        cwd=home, env=_environment(home), capture_output=True, text=True, timeout=DEADLINE_SECONDS, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("error[invalid_request]: no operator token")
    assert not (home / ".remit" / "operator-token").exists()


def _invoke(home: Path, *args: str) -> tuple[int, str, str]:
    env = {"REMIT_HOME": str(home / ".remit"), "REMIT_STORE__URL": None, "REMIT_OPERATOR_TOKEN": None}
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_db_upgrade_and_current(home: Path) -> None:
    """`db current` exits 6 before `db upgrade` and 0 after, and reports the head revision."""
    code, out, _ = _invoke(home, "--output", "json", "db", "current")
    assert code == 6
    assert '"current": null' in out
    code, out, _ = _invoke(home, "db", "upgrade")
    assert code == 0
    assert out.startswith("database at revision ")
    code, out, _ = _invoke(home, "--output", "json", "db", "current")
    assert code == 0
    assert '"up_to_date": true' in out


def test_config_show_redacts_secrets(home: Path) -> None:
    """`config show` prints the resolved settings with the operator token and store password hidden."""
    env = {
        "REMIT_HOME": str(home / ".remit"),
        "REMIT_OPERATOR_TOKEN": "remit_op_do_not_print",
        "REMIT_STORE__URL": "postgresql://remit:hunter2@db.internal/remit",
    }
    result = CliRunner().invoke(app, ["config", "show"], env=env)
    assert result.exit_code == 0, result.stderr
    assert "remit_op_do_not_print" not in result.stdout
    assert "hunter2" not in result.stdout
    assert "store.url = postgresql+psycopg://remit:***@db.internal/remit" in result.stdout


def test_bad_configuration_is_one_line(home: Path) -> None:
    """An invalid REMIT_* value is one invalid_request line naming the setting, exit 2."""
    result = CliRunner().invoke(app, ["config", "show"], env={"REMIT_HOME": str(home), "REMIT_SERVER__PORT": "high"})
    assert result.exit_code == 2
    assert result.stderr.startswith("error[invalid_request]: configuration: ")
    assert "server.port" in result.stderr
