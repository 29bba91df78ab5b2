"""`remit keys list|rotate`: the signing key ring on the server host (read through Settings, never over HTTP).

Rotation follows the ring's overlap rule (see `remit.adapters.keys`): next → active, active → retired, a new
next key; `--prune` then drops retired keys whose every credential has expired. Only public facts are printed.
"""

from __future__ import annotations

import datetime as dt

from typing import TYPE_CHECKING, Annotated

import typer

from pydantic import BaseModel

from remit.cli.commands.server import load_settings
from remit.cli.context import state
from remit.cli.output import Column
from remit.errors import NotFound, Unavailable

if TYPE_CHECKING:
    from remit.adapters.keys import KeyRing, SigningKey
    from remit.settings import Settings

__all__ = ["KeyOut", "longest_credential_lifetime", "open_key_ring", "register"]

keys = typer.Typer(
    help="The signing key ring (run on the server host, with the server's settings).", no_args_is_help=True
)


class KeyOut(BaseModel):
    """One signing key as the CLI shows it: public facts only, never key material."""

    kid: str
    algorithm: str
    state: str
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retired_at: dt.datetime | None


COLUMNS: list[Column] = [
    ("kid", lambda k: k.kid),
    ("algorithm", lambda k: k.algorithm),
    ("state", lambda k: k.state),
    ("created", lambda k: k.created_at),
    ("activated", lambda k: k.activated_at),
    ("retired", lambda k: k.retired_at),
]


def register(app: typer.Typer) -> None:
    app.add_typer(keys, name="keys")


def _key_out(key: SigningKey) -> KeyOut:
    return KeyOut(
        kid=key.kid,
        algorithm=key.algorithm.value,
        state=key.state.value,
        created_at=key.created_at,
        activated_at=key.activated_at,
        retired_at=key.retired_at,
    )


def _kek(settings: Settings) -> bytes:
    """The KEK as the server reads it; unlike the server, never generate one (that would orphan the ring)."""
    from remit.adapters.keys import parse_kek, read_kek_file  # noqa: PLC0415 - server-side dependency

    if settings.keys.kek is not None:
        return parse_kek(settings.keys.kek.get_secret_value())
    path = settings.kek_path
    if not path.exists():
        msg = f"the key-encryption key file {path} does not exist (set REMIT_KEYS__KEK or REMIT_KEYS__KEK_FILE)"
        raise Unavailable(msg, details={"reason": "kek_missing"})
    return read_kek_file(path)


def open_key_ring(settings: Settings, now: dt.datetime) -> KeyRing:
    """The ring the server at `settings` uses; NotFound if the server has never created one."""
    from remit.adapters.keys import KEY_FILE_NAME, KeyRing, SigningAlgorithm  # noqa: PLC0415 - server-side

    directory = settings.keys_directory
    if not (directory / KEY_FILE_NAME).exists():
        msg = f"no signing key ring in {directory}: the server creates it on its first start"
        raise NotFound(msg)
    return KeyRing.open(directory, _kek(settings), now=now, algorithm=SigningAlgorithm(settings.keys.algorithm))


def longest_credential_lifetime(settings: Settings) -> dt.timedelta:
    """No credential outlives this, so a key retired longer ago than this signed nothing still valid."""
    c = settings.credentials
    longest = max(
        c.max_task_duration_seconds,
        c.read_max_seconds,
        c.write_max_seconds,
        c.deploy_max_seconds,
        c.payment_max_seconds,
        c.export_max_seconds,
        c.admin_max_seconds,
    )
    return dt.timedelta(seconds=longest)


def _now() -> dt.datetime:
    from remit.core.clock import SystemClock  # noqa: PLC0415 - server-side dependency

    return SystemClock().now()


@keys.command("list")
def list_(ctx: typer.Context) -> None:
    """List the signing keys: active, next, then retired (newest first)."""
    ring = open_key_ring(load_settings(), _now())
    state(ctx).printer.rows([_key_out(k) for k in ring.published()], COLUMNS)


@keys.command("rotate")
def rotate(
    ctx: typer.Context,
    prune: Annotated[
        bool,
        typer.Option("--prune", help="Also drop retired keys older than the longest credential lifetime."),
    ] = False,
) -> None:
    """Rotate: next becomes active, active becomes retired (still verifies), a new next key is published."""
    settings = load_settings()
    now = _now()
    ring = open_key_ring(settings, now)
    previous = ring.active().kid
    active = ring.rotate(now)
    pruned = ring.prune(now, longest_credential_lifetime(settings)) if prune else ()
    printer = state(ctx).printer
    if printer.is_json:
        printer.json({"active": active.kid, "retired": previous, "next": ring.next_key().kid, "pruned": list(pruned)})
        return
    printer.note(f"active key: {active.kid} (was {previous}, now retired)")
    printer.note(f"next key: {ring.next_key().kid}")
    if prune:
        printer.note(f"pruned: {', '.join(pruned) or 'none'}")
    printer.note("a running server signs with the new key once it reloads the ring; restart it to switch now")
