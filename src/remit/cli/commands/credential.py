"""`remit credential introspect|revoke`: RFC 7662 introspection and RFC 7009 revocation with the operator token.

The token comes from the argument or, with `-`, from stdin (arguments are visible to other users of the
machine); it is sent only in the request body and never printed.
"""

from __future__ import annotations

import sys

from typing import Annotated, Final

import typer

from pydantic import BaseModel, ConfigDict

from remit.cli.context import state
from remit.errors import InvalidRequest

__all__ = ["read_token", "register"]

_MAX_TOKEN_CHARS: Final = 65_536

credentials = typer.Typer(help="Task credentials: introspect or revoke one.", no_args_is_help=True)

TokenArgument = Annotated[
    str,
    typer.Argument(
        help="The credential, or - to read it from stdin (preferred: arguments are visible to other users).",
        show_default=False,
    ),
]


class _Introspection(BaseModel):
    """The RFC 7662 answer: `active` first, then whatever claims the server returned."""

    model_config = ConfigDict(extra="allow")

    active: bool


def register(app: typer.Typer) -> None:
    app.add_typer(credentials, name="credential")


def read_token(value: str) -> str:
    """The token from the argument, or from stdin when the argument is `-`; never echoed in an error."""
    token = sys.stdin.read(_MAX_TOKEN_CHARS + 1) if value == "-" else value
    token = token.strip()
    if not token:
        msg = "no token given (pass it as the argument, or - and the token on stdin)"
        raise InvalidRequest(msg, field="token")
    if len(token) > _MAX_TOKEN_CHARS or any(c.isspace() for c in token):
        msg = "that is not a single credential (too long, or it contains whitespace)"
        raise InvalidRequest(msg, field="token")
    return token


@credentials.command("introspect")
def introspect(ctx: typer.Context, token: TokenArgument) -> None:
    """Whether a credential is active now and, if so, its claims (exit 0 either way)."""
    presented = read_token(token)
    cli = state(ctx)
    with cli.client() as client:
        answer = client.introspect(presented)
    if cli.printer.is_json:
        cli.printer.json(answer)
        return
    cli.printer.record(_Introspection.model_validate(answer))


@credentials.command("revoke")
def revoke(ctx: typer.Context, token: TokenArgument) -> None:
    """Revoke one credential now (RFC 7009: the server answers the same whether or not it was valid)."""
    presented = read_token(token)
    cli = state(ctx)
    with cli.client() as client:
        client.revoke_token(presented)
    if cli.printer.is_json:
        cli.printer.json({"revocation_requested": True})
    else:
        cli.printer.note("revocation requested: if the credential was valid, it is revoked now")
