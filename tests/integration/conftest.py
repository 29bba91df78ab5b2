"""Integration fixtures: the real server (uvicorn in a background thread) on a free loopback port.

`live_server` gives every test a fresh, migrated SQLite store; `pg_live_server` does the same on
the PostgreSQL server (marked `postgres`). Both yield a `LiveServer` with `.url`, `.token` and
`.remit`, and stop the server, its socket and its database before the test ends.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import threading
import time

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from pydantic import SecretStr
from sqlalchemy import create_engine, text
from tests.conftest import POSTGRES_ADMIN_URL

from remit.adapters.sql.tables import metadata
from remit.bootstrap import Remit, build, upgrade_database
from remit.http.server import uvicorn_config
from remit.settings import Settings, StoreSettings

__all__ = ["POSTGRES_ADMIN_URL", "LiveServer", "loopback_socket", "running", "serve_in_thread", "sqlite_settings"]

STARTUP_TIMEOUT_SECONDS = 15.0
SHUTDOWN_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A running Remit API: where it listens, the operator token, and the wired application behind it."""

    url: str
    token: str
    remit: Remit

    @property
    def auth(self) -> dict[str, str]:
        """The operator's `Authorization` header."""
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, *, authenticated: bool = True) -> httpx.Client:
        """An HTTP client for this server (with the operator token unless told otherwise)."""
        return httpx.Client(base_url=self.url, headers=self.auth if authenticated else {}, timeout=30.0)


def loopback_socket() -> socket.socket:
    """A TCP socket bound to a free 127.0.0.1 port, so a server's settings can name its URL before it starts."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every small response waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serve_in_thread(remit: Remit, token: str, *, sock: socket.socket | None = None) -> Iterator[LiveServer]:
    """Run uvicorn for `remit` on `sock` (default: a free 127.0.0.1 port) until the block ends; closes the socket."""
    config = uvicorn_config(remit, host="127.0.0.1", port=0, configure_logging=False)
    server = uvicorn.Server(config)
    sock = sock or loopback_socket()
    try:
        port = sock.getsockname()[1]
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"remit-http-{port}")
        thread.start()
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    pytest.fail("the test server did not start")
                time.sleep(0.005)
            yield LiveServer(url=f"http://127.0.0.1:{port}", token=token, remit=remit)
        finally:
            server.should_exit = True
            thread.join(SHUTDOWN_TIMEOUT_SECONDS)
            if thread.is_alive():  # pragma: no cover - a hung server is a failure, not a leak to ignore
                server.force_exit = True
                thread.join(SHUTDOWN_TIMEOUT_SECONDS)
    finally:
        sock.close()


def sqlite_settings(home: Path, token: str) -> Settings:
    """Settings for a throwaway Remit on a SQLite file under `home`."""
    return Settings(
        home=home, store=StoreSettings(url=f"sqlite:///{home / 'remit.db'}"), operator_token=SecretStr(token)
    )


@contextlib.contextmanager
def running(settings: Settings, token: str, *, sock: socket.socket | None = None) -> Iterator[LiveServer]:
    remit = build(settings)
    try:
        with serve_in_thread(remit, token, sock=sock) as live:
            yield live
    finally:
        remit.close()


@pytest.fixture
def live_server(tmp_path: Path, sqlite_template: Path) -> Iterator[LiveServer]:
    """A real server on loopback with a fresh, migrated SQLite store and a random operator token."""
    token = "remit_op_test_" + secrets.token_urlsafe(24)
    settings = sqlite_settings(tmp_path, token)
    shutil.copyfile(sqlite_template, tmp_path / "remit.db")  # already migrated: the upgrade below is a check
    upgrade_database(settings)
    with running(settings, token) as live:
        yield live


@pytest.fixture
def pg_live_server(postgres_url: str) -> Iterator[LiveServer]:
    """A real server on loopback backed by the (emptied) PostgreSQL test schema."""
    engine = create_engine(postgres_url)
    try:
        with engine.begin() as connection:
            tables = ", ".join(t.name for t in metadata.sorted_tables)
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        engine.dispose()
    token = "remit_op_test_" + secrets.token_urlsafe(24)
    settings = Settings(store=StoreSettings(url=postgres_url), operator_token=SecretStr(token))
    with running(settings, token) as live:
        yield live
