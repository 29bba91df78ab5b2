"""Per-invocation CLI state: the server URL, the operator token (flag, environment or file) and the printer."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer

from pydantic import ValidationError

from remit.cli.output import Printer
from remit.errors import FieldError, InvalidRequest, Unauthenticated
from remit.sdk.client import DEFAULT_SERVER, RemitClient

__all__ = ["DEFAULT_TOKEN_FILE", "CliState", "invalid_from_validation", "state"]

DEFAULT_TOKEN_FILE = Path(".remit/operator-token")


def invalid_from_validation(exc: ValidationError, *, where: str = "") -> InvalidRequest:
    """A pydantic ValidationError as InvalidRequest with one FieldError per failure."""
    errors = [FieldError(loc=tuple(str(p) for p in e["loc"]), type=e["type"], msg=e["msg"]) for e in exc.errors()]
    count = exc.error_count()
    return InvalidRequest(f"{where}{count} invalid field{'s' if count > 1 else ''}", errors=errors)


@dataclass(slots=True)
class CliState:
    """What every command needs: where the server is, how to authenticate, how to print."""

    server: str = DEFAULT_SERVER
    token: str | None = None
    token_file: Path = DEFAULT_TOKEN_FILE
    printer: Printer = field(default_factory=Printer)

    def resolve_token(self) -> str | None:
        """The token from --token / REMIT_TOKEN, else the first line of the token file, else None."""
        if self.token and self.token.strip():
            return self.token.strip()
        try:
            return self.token_file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def client(self) -> RemitClient:
        token = self.resolve_token()
        if token is None:
            return _TokenlessClient(self.server)
        return RemitClient(self.server, token=token)


class _TokenlessClient(RemitClient):
    """A client without a token: a 401 says where the CLI looked for one."""

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        try:
            return super()._request(method, path, json=json, params=params, headers=headers, timeout=timeout)
        except Unauthenticated as exc:
            msg = f"{exc.message} (no operator token found: set REMIT_TOKEN, or --token-file / REMIT_TOKEN_FILE)"
            raise Unauthenticated(msg) from exc


def state(ctx: typer.Context) -> CliState:
    """The CliState the root callback stored on the context."""
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    found: CliState = root.obj
    return found
