"""Shared fixtures: a frozen clock, deterministic ids, a migrated database (SQLite always, PostgreSQL marked)."""

from __future__ import annotations

import os
import secrets
import shutil

from collections.abc import Iterator
from pathlib import Path

import pytest

from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text

from remit.adapters.sql.engine import SqlDatabase
from remit.adapters.sql.migrate import upgrade
from remit.adapters.sql.tables import metadata
from remit.core.events import InProcessEventBus
from remit.core.ids import SequentialIdFactory
from remit.core.registry.service import RegistryService
from remit.testing import FrozenClock

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

POSTGRES_ADMIN_URL = os.environ.get("REMIT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
POSTGRES_REQUIRED = os.environ.get("REMIT_TEST_POSTGRES_REQUIRED") == "1"


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} is not reachable ({type(exc).__name__})"
    return None


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied per test so each starts empty without re-running migrations."""
    path = tmp_path_factory.mktemp("template") / "remit.db"
    database = SqlDatabase.connect(f"sqlite:///{path}")
    upgrade(database.engine)
    database.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A private schema on the PostgreSQL server, migrated once and dropped at the end."""
    problem = _postgres_available()
    if problem is not None:
        if POSTGRES_REQUIRED:
            pytest.fail(problem)
        pytest.skip(problem)
    schema = f"remit_test_{secrets.token_hex(4)}"
    admin = create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    database = SqlDatabase.connect(url)
    upgrade(database.engine)
    database.dispose()
    yield url
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[SqlDatabase]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "remit.db"
        shutil.copyfile(sqlite_template, path)
        database = SqlDatabase.connect(f"sqlite:///{path}")
    else:
        database = SqlDatabase.connect(request.getfixturevalue("postgres_url"))
        tables = ", ".join(t.name for t in metadata.sorted_tables)
        with database.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield database
    database.dispose()


@pytest.fixture
def sqlite_database(tmp_path: Path, sqlite_template: Path) -> Iterator[SqlDatabase]:
    path = tmp_path / "remit.db"
    shutil.copyfile(sqlite_template, path)
    database = SqlDatabase.connect(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def bus() -> InProcessEventBus:
    return InProcessEventBus()


@pytest.fixture
def ids() -> SequentialIdFactory:
    """One id factory per test, shared by every service so ids never collide."""
    return SequentialIdFactory()


@pytest.fixture
def registry(
    database: SqlDatabase, clock: FrozenClock, ids: SequentialIdFactory, bus: InProcessEventBus
) -> RegistryService:
    return RegistryService(database.transaction, clock=clock, ids=ids, bus=bus)
