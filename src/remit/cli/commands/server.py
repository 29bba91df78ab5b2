"""`remit serve`, `remit db upgrade|current` and `remit config show`: the commands that run on the server host."""

from __future__ import annotations

import contextlib
import threading
import time

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from pydantic import ValidationError

from remit.cli.context import invalid_from_validation, state
from remit.cli.output import Printer
from remit.errors import InvalidRequest, RemitError, Unavailable
from remit.sdk.client import DEFAULT_SERVER, RemitClient

if TYPE_CHECKING:
    from remit.bootstrap import Remit
    from remit.settings import Settings

__all__ = ["register"]

DEFAULT_SEED_FILE = Path("examples/acme.yaml")
DEFAULT_POLICY_DIR = Path("examples/policies")
_SEED_WAIT_SECONDS = 30.0

db = typer.Typer(help="The database schema (Alembic migrations).", no_args_is_help=True)
config = typer.Typer(help="The server configuration.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(db, name="db")
    app.add_typer(config, name="config")


def load_settings() -> Settings:
    """Settings from the environment (REMIT_*); a bad value is one invalid_request line, not a traceback."""
    from pydantic_settings import SettingsError  # noqa: PLC0415 - server-side dependency, loaded on use

    from remit.settings import Settings  # noqa: PLC0415 - server-side dependency, loaded on use

    try:
        return Settings()
    except ValidationError as exc:
        raise invalid_from_validation(exc, where="configuration: ") from None
    except SettingsError as exc:
        raise InvalidRequest(f"configuration: {exc}") from None


@contextlib.contextmanager
def _store_errors(settings: Settings) -> Iterator[None]:
    """The storage library's errors (it is not ours to import here) as one Unavailable line."""
    try:
        yield
    except RemitError:
        raise
    except Exception as exc:  # any storage failure at start-up means "the store is unavailable"
        msg = f"the store at {_redacted_url(settings)} is unavailable ({type(exc).__name__})"
        raise Unavailable(msg) from exc


def _redacted_url(settings: Settings) -> str:
    store = settings.redacted().get("store")
    return str(store.get("url")) if isinstance(store, dict) else "(configured store)"


def serve(  # noqa: PLR0913, PLR0917 - one parameter per command-line option
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option("--host", help="Listen address (default REMIT_SERVER__HOST).")] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=1, max=65535, help="Listen port (default REMIT_SERVER__PORT).")
    ] = None,
    init: Annotated[
        bool,
        typer.Option(
            "--init/--no-init",
            help="First-run setup: apply migrations, create the operator token (printed once). "
            "With --no-init the schema and the token must already exist.",
        ),
    ] = True,
    seed: Annotated[
        bool | None,
        typer.Option(
            "--seed/--no-seed",
            help="Load the example organisation into an empty registry (default: on with --init).",
            show_default=False,
        ),
    ] = None,
    seed_file: Annotated[Path, typer.Option("--seed-file", help="Organisation file to seed.")] = DEFAULT_SEED_FILE,
    policy_dir: Annotated[
        Path,
        typer.Option(
            "--policy-dir",
            help="Default policy pack (*.cedar) added and activated when seeding and no policy exists yet.",
        ),
    ] = DEFAULT_POLICY_DIR,
) -> None:
    """Run the Remit server (blocking) on the configured or given address."""
    from remit.bootstrap import build, ensure_operator_token, upgrade_database  # noqa: PLC0415 - server-only
    from remit.http.server import serve as run_server  # noqa: PLC0415 - server-only

    printer = state(ctx).printer
    settings = load_settings()
    host = host or settings.server.host
    port = port or settings.server.port
    if not init and settings.operator_token is None and not settings.token_file.exists():
        msg = f"no operator token at {settings.token_file}: run `remit serve --init` once, or set REMIT_OPERATOR_TOKEN"
        raise InvalidRequest(msg)
    with _store_errors(settings):
        if init:
            upgrade_database(settings)
        token, created = ensure_operator_token(settings)
        remit = build(settings)
    try:
        with _store_errors(settings):
            seed_wanted = init if seed is None else seed
            seeding = seed_wanted and _registry_is_empty(remit)
            if seed_wanted and not remit.policies.list(limit=1).items:
                _seed_policies(remit, policy_dir, printer)
        if seeding:
            _seed_when_up(f"http://{_client_host(host)}:{port}", token, seed_file, printer)
        if created:
            _announce_token(token, settings.token_file, host, port)
        run_server(remit, host=host, port=port)
    finally:
        remit.close()


def _client_host(host: str) -> str:
    # A wildcard listen address is not an address to connect to.
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - a comparison


def _announce_token(token: str, path: Path, host: str, port: int) -> None:
    """Print the new operator token exactly once (it is in the 0600 token file from now on)."""
    server = f"http://{_client_host(host)}:{port}"
    # --server only when the server is not on the CLI's default address.
    where = "" if server == DEFAULT_SERVER else f"--server {server} "
    lines = [
        "",
        f"Operator token (shown once; kept in {path}, mode 0600):",
        f"  {token}",
        "Next, in another shell:",
        f"  export REMIT_TOKEN={token}",
        f"  remit {where}agent list",
        "",
    ]
    typer.echo("\n".join(lines))


def _registry_is_empty(remit: Remit) -> bool:
    registry = remit.registry
    return not (
        registry.list_owners(limit=1).items
        or registry.list_functions(limit=1).items
        or registry.list_tools(limit=1).items
        or registry.list_workflows(limit=1).items
        or registry.list_agents(limit=1).items
    )


def _seed_policies(remit: Remit, directory: Path, printer: Printer) -> None:
    """Add and activate every `*.cedar` file of the default pack, each as the policy named after its file.

    Without an active policy every decision is a deny; the pack makes a fresh install decide.
    A file that does not validate is reported and skipped; the others still load.
    """
    files = sorted(directory.glob("*.cedar")) if directory.is_dir() else []
    if not files:
        printer.err.print(f"no default policies: {directory} has no *.cedar files")
        return
    actor = remit.settings.operator_name
    activated = []
    for path in files:
        try:
            version = remit.policies.add(
                name=path.stem,
                text=path.read_text(encoding="utf-8"),
                description=f"default pack: {path.name}",
                actor=actor,
            )
            remit.policies.activate(version.name, version.version, actor=actor)
        except RemitError as error:
            printer.err.print(f"default policy {path.name} not loaded:")
            printer.error(error)
            continue
        activated.append(version.ref)
    if activated:
        printer.err.print(f"activated the default policy pack from {directory}: {', '.join(activated)}")


def _seed_when_up(server: str, token: str, seed_file: Path, printer: Printer) -> None:
    """Apply the seed file through the HTTP API, as `remit apply` would, once the server answers."""
    if not seed_file.is_file():
        printer.err.print(f"not seeding: {seed_file} not found")
        return

    def seed() -> None:
        from remit.cli.commands.apply import apply_file  # noqa: PLC0415 - loaded only when seeding

        try:
            with RemitClient(server, token=token) as client:
                if not _wait_healthy(client):
                    printer.err.print("not seeding: the server did not become healthy")
                    return
                apply_file(client, seed_file, printer=printer, dry_run=False, quiet=True)
            printer.err.print(f"seeded the example organisation from {seed_file}")
        except RemitError as error:
            printer.error(error)

    threading.Thread(target=seed, name="remit-seed", daemon=True).start()


def _wait_healthy(client: RemitClient) -> bool:
    deadline = time.monotonic() + _SEED_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            client.health()
        except RemitError:
            time.sleep(0.1)
        else:
            return True
    return False


@db.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Apply every pending migration to the configured store."""
    from remit.bootstrap import upgrade_database  # noqa: PLC0415 - server-only

    settings = load_settings()
    with _store_errors(settings):
        revision = upgrade_database(settings)
    printer = state(ctx).printer
    if printer.is_json:
        printer.json({"revision": revision})
    else:
        printer.note(f"database at revision {revision}")


@db.command("current")
def db_current(ctx: typer.Context) -> None:
    """Show the store's schema revision and the newest one this version knows (exit 6 if behind)."""
    from remit.adapters.sql.engine import SqlDatabase  # noqa: PLC0415 - server-only
    from remit.adapters.sql.migrate import current_revision, head_revision  # noqa: PLC0415 - server-only

    settings = load_settings()
    current: str | None = None
    head = head_revision()
    # The embedded default: no file yet means no schema yet (connecting would create an empty file).
    if settings.store.url or (settings.home / "remit.db").exists():
        with _store_errors(settings):
            database = SqlDatabase.connect(settings.store_url)
            try:
                current = current_revision(database.engine)
            finally:
                database.dispose()
    printer = state(ctx).printer
    if printer.is_json:
        printer.json({"current": current, "head": head, "up_to_date": current == head})
    else:
        printer.note(f"current: {current or 'none'}\nhead:    {head}")
    if current != head:
        raise typer.Exit(6)


@config.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the resolved configuration with secrets redacted."""
    shown = load_settings().redacted()
    printer = state(ctx).printer
    if printer.is_json:
        printer.json(shown)
        return
    for key, value in _flatten(shown):
        printer.out.print(f"{key} = {value}", markup=False)


def _flatten(values: dict[str, object], prefix: str = "") -> list[tuple[str, object]]:
    flat: list[tuple[str, object]] = []
    for key, value in values.items():
        if isinstance(value, dict):
            flat.extend(_flatten(value, f"{prefix}{key}."))
        else:
            flat.append((f"{prefix}{key}", value))
    return flat
