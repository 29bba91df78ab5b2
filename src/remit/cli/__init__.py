"""The `remit` command line; `run()` is the console-script shim that needs the `cli` extra."""

from __future__ import annotations

import sys

__all__ = ["run"]


def run() -> None:
    """Run the CLI, or explain how to install it when typer/rich are missing (as httpx does for its CLI)."""
    try:
        from remit.cli.main import app  # noqa: PLC0415 - typer is optional: import it only when the CLI runs
    except ImportError as exc:
        missing = exc.name or "a CLI dependency"
        if missing.split(".")[0] not in {"typer", "rich", "click", "yaml"}:
            raise
        sys.stderr.write(f"The remit command line needs {missing}: install remit[cli]\n")
        raise SystemExit(1) from None
    app()
