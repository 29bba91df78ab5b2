"""Property-based checks of the published OpenAPI document against the live server (schemathesis).

Every operation is exercised with generated valid and invalid input; no response may be a 5xx,
and every response must match its documented status, media type, headers and schema.
"""

from __future__ import annotations

import secrets
import shutil

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.integration.conftest import LiveServer, running

from remit.bootstrap import upgrade_database
from remit.settings import Settings, StoreSettings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[LiveServer]:
    """One live server for the whole module: generated input accumulates in its store, as it would in use."""
    home = tmp_path_factory.mktemp("schema")
    shutil.copyfile(sqlite_template, home / "remit.db")
    token = secrets.token_urlsafe(24)
    settings = Settings(
        home=home, store=StoreSettings(url=f"sqlite:///{home / 'remit.db'}"), operator_token=SecretStr(token)
    )
    upgrade_database(settings)
    with running(settings, token) as live:
        yield live


MAX_EXAMPLES = 10
# The registry, policy and health operations. The task, OAuth and discovery endpoints are checked
# by their own suite once their error bodies are documented in the schema.
COVERED_PREFIXES = (
    "/v1/owners",
    "/v1/functions",
    "/v1/agents",
    "/v1/reports",
    "/v1/tools",
    "/v1/workflows",
    "/v1/grants",
    "/v1/policies",
    "/healthz",
    "/readyz",
    "/metrics",
)


def _operations(url: str) -> list[Any]:
    loaded = schemathesis.openapi.from_url(f"{url}/schema/openapi.json", timeout=30)
    operations = []
    for result in loaded.get_all_operations():
        assert isinstance(result, Ok), f"the published schema has an invalid operation: {result}"
        operation = result.ok()
        if operation.path.startswith(COVERED_PREFIXES):
            operations.append(operation)
    return operations


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_api_conforms_to_its_schema(schema_server: LiveServer, mode: GenerationMode) -> None:
    """Generated valid and invalid requests to every operation never get a 5xx or a response the schema does not describe."""
    operations = _operations(schema_server.url)
    assert len(operations) > 30, "the schema publishes every registry operation"

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def exercise(case: Any) -> None:
            case.call_and_validate(base_url=schema_server.url, headers=schema_server.auth, checks=CHECKS, timeout=30)

        try:
            exercise()
        except Unsatisfiable:
            # Nothing about this operation can be made invalid (no parameters, no body).
            assert mode is GenerationMode.NEGATIVE, operation.label
