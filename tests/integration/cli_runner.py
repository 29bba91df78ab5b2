"""Run the `remit` CLI in-process (typer's CliRunner) against a live server, as a test helper."""

from __future__ import annotations

import json

from dataclasses import dataclass
from typing import Any

from typer.testing import CliRunner

from remit.cli.main import app

__all__ = ["Cli", "Run"]


@dataclass(frozen=True, slots=True)
class Run:
    """One CLI invocation's exit code and streams."""

    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Cli:
    """`remit --server URL [--token TOKEN] --output FORMAT ...` as a function."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self._runner = CliRunner()

    def __call__(self, *args: str, output: str = "table") -> Run:
        base = ["--server", self.url, "--output", output]
        if self.token is not None:
            base += ["--token", self.token]
        # No ambient token or server: what a test passes is all the CLI sees.
        env = {"REMIT_TOKEN": None, "REMIT_SERVER": None, "REMIT_TOKEN_FILE": "/nonexistent/remit-token"}
        result = self._runner.invoke(app, [*base, *args], env=env)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Run(exit_code=result.exit_code, stdout=result.stdout, stderr=result.stderr)

    def ok(self, *args: str, output: str = "table") -> Run:
        """Run and insist on exit 0."""
        run = self(*args, output=output)
        assert run.exit_code == 0, (args, run.stdout, run.stderr)
        return run

    def json(self, *args: str) -> Any:
        """Run with `--output json` and parse the one document on stdout."""
        return self.ok(*args, output="json").json()
