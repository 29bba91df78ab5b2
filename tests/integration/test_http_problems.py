"""Every error as RFC 9457 `application/problem+json`: the status table, real refusals and the handler mapping."""

from __future__ import annotations

import logging
import shutil

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from litestar import Litestar, get
from litestar.params import FromPath
from litestar.testing import TestClient
from pydantic import SecretStr
from tests.integration.conftest import LiveServer, running

from remit.errors import ERROR_CLASS_BY_CODE, ErrorCode, FieldError, RemitError
from remit.http.boundary import Boundary
from remit.http.metrics import HttpMetrics
from remit.http.problems import STATUS_BY_CODE, exception_handlers
from remit.settings import ServerSettings, Settings, StoreSettings
from remit.wire.problem import DOCS_BASE, Problem, error_from_problem

PROBLEM = "application/problem+json"
SECRET = "s3cr3t-internal-detail"


def assert_problem(response: httpx.Response, code: ErrorCode, *, path: str) -> dict[str, Any]:
    """The response is a complete RFC 9457 document for `code`, with the status the table gives it."""
    status = STATUS_BY_CODE[code]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == DOCS_BASE + code.value
    assert body["title"] == ERROR_CLASS_BY_CODE[code].title
    assert body["status"] == status
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["instance"] == path
    assert body["code"] == code.value
    assert isinstance(body["errors"], list)
    assert type(error_from_problem(Problem.model_validate(body))) is ERROR_CLASS_BY_CODE[code]
    return body


# ------------------------------------------------------------------ the table


def test_status_table_covers_every_error_code() -> None:
    """STATUS_BY_CODE has an HTTP status for every ErrorCode, and only error statuses."""
    assert set(STATUS_BY_CODE) == set(ErrorCode)
    assert all(400 <= status <= 599 for status in STATUS_BY_CODE.values())


def test_status_follows_the_error_class_tree() -> None:
    """A code's status is its family's: every Unauthenticated is 401, every Forbidden 403, every Unavailable 503."""
    families = {
        ErrorCode.UNAUTHENTICATED: 401,
        ErrorCode.FORBIDDEN: 403,
        ErrorCode.CONFLICT: 409,
        ErrorCode.UNAVAILABLE: 503,
    }
    for base, status in families.items():
        for code, cls in ERROR_CLASS_BY_CODE.items():
            if issubclass(cls, ERROR_CLASS_BY_CODE[base]):
                assert STATUS_BY_CODE[code] == status, code


# ------------------------------------------------------------------ the handler mapping, code by code


@get("/raise/{code:str}", sync_to_thread=False)
def _raise(code: FromPath[str]) -> None:
    cls = ERROR_CLASS_BY_CODE[ErrorCode(code)]
    raise cls(f"{code} happened", details={"decision_id": "dec_1"}, errors=[FieldError(("f",), "value_error", "bad")])


@get("/boom", sync_to_thread=False)
def _boom() -> None:
    raise RuntimeError(SECRET)


@pytest.fixture
def bare_client() -> Iterator[TestClient[Litestar]]:
    """The production error handling and boundary around two routes that raise on purpose."""
    app = Litestar([_raise, _boom], exception_handlers=exception_handlers(), logging_config=None)
    app.asgi_handler = Boundary(app.asgi_handler, HttpMetrics())
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_every_error_code_becomes_its_problem_document(bare_client: TestClient[Litestar], code: ErrorCode) -> None:
    """Raising any RemitError yields its problem+json: status from the table, details as members, field errors."""
    path = f"/raise/{code.value}"

    body = assert_problem(bare_client.get(path), code, path=path)

    assert body["detail"] == f"{code.value} happened"
    # Details become members, except on 401s, which never reveal which check failed.
    assert body.get("decision_id") == (None if STATUS_BY_CODE[code] == 401 else "dec_1")
    assert body["errors"] == [{"loc": ["f"], "type": "value_error", "msg": "bad"}]


@pytest.mark.parametrize("code", [c for c in ErrorCode if STATUS_BY_CODE[c] == 401], ids=str)
def test_every_401_carries_a_bearer_challenge(bare_client: TestClient[Litestar], code: ErrorCode) -> None:
    """RFC 6750 §3: each 401 answer carries `WWW-Authenticate: Bearer`."""
    response = bare_client.get(f"/raise/{code.value}")

    assert response.headers["www-authenticate"].startswith("Bearer")


def test_an_unexpected_exception_is_internal_and_leaks_nothing(
    bare_client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers a bare `internal` problem with a correlation id; the message and traceback only reach the log."""
    caplog.set_level(logging.INFO, logger="remit.http")

    response = bare_client.get("/boom")

    body = assert_problem(response, ErrorCode.INTERNAL, path="/boom")
    assert SECRET not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert body["correlation_id"] == response.headers["x-request-id"]
    logged = [r for r in caplog.records if r.exc_info and body["correlation_id"] in r.getMessage()]
    assert logged, "the failure is logged with its correlation id"
    assert logged[0].levelno == logging.ERROR


# ------------------------------------------------------------------ real refusals from the live server


def test_unknown_route_is_a_not_found_problem(live_server: LiveServer) -> None:
    """A path no route serves is a 404 `not_found` problem."""
    with live_server.client() as client:
        assert_problem(client.get("/v1/nothing"), ErrorCode.NOT_FOUND, path="/v1/nothing")
        assert_problem(client.get("/"), ErrorCode.NOT_FOUND, path="/")


def test_wrong_method_is_a_method_not_allowed_problem_listing_allowed_methods(live_server: LiveServer) -> None:
    """A method the path does not serve is a 405 `method_not_allowed` problem with an `Allow` header."""
    with live_server.client() as client:
        response = client.put("/v1/owners", json={})

    assert_problem(response, ErrorCode.METHOD_NOT_ALLOWED, path="/v1/owners")
    assert set(response.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_unknown_body_field_is_a_field_error(live_server: LiveServer) -> None:
    """An unknown body member is a 400 whose `errors[]` names it with `loc`, `type` and `msg`."""
    with live_server.client() as client:
        response = client.post("/v1/owners", json={"name": "A", "email": "a@acme.example", "colour": "red"})

    body = assert_problem(response, ErrorCode.INVALID_REQUEST, path="/v1/owners")
    assert body["errors"] == [{"loc": ["colour"], "type": "extra_forbidden", "msg": "Extra inputs are not permitted"}]


def test_every_invalid_field_is_listed(live_server: LiveServer) -> None:
    """Several bad fields give one 400 listing each, nested locations included."""
    body = {"name": "", "actions": [{"name": "read", "risk_class": "nope"}], "resources": []}
    with live_server.client() as client:
        response = client.post("/v1/tools", json=body)

    problem = assert_problem(response, ErrorCode.INVALID_REQUEST, path="/v1/tools")
    assert {tuple(e["loc"]) for e in problem["errors"]} == {("name",), ("actions", 0, "risk_class"), ("resources",)}
    assert all(e["type"] and e["msg"] for e in problem["errors"])


@pytest.mark.parametrize("content", [b"{not json", b"[]", b"null", b'"text"', b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_invalid(live_server: LiveServer, content: bytes) -> None:
    """Malformed JSON, or JSON that is not an object, is a 400 `invalid_request`."""
    with live_server.client() as client:
        response = client.post("/v1/owners", content=content, headers={"content-type": "application/json"})

    assert_problem(response, ErrorCode.INVALID_REQUEST, path="/v1/owners")


@pytest.fixture
def small_body_server(tmp_path: Path, sqlite_template: Path) -> Iterator[LiveServer]:
    """A live server whose request body limit is 1 KiB."""
    (tmp_path / "remit.db").write_bytes(sqlite_template.read_bytes())
    settings = Settings(
        home=tmp_path,
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'remit.db'}"),
        server=ServerSettings(max_body_bytes=1024),
        operator_token=SecretStr("small-body-token"),
    )
    with running(settings, "small-body-token") as live:
        yield live


def test_a_body_over_the_limit_is_payload_too_large(small_body_server: LiveServer) -> None:
    """A body larger than server.max_body_bytes is a 413 `payload_too_large`, declared or streamed."""
    big = {"name": "A", "email": "a@acme.example", "human_identities": [], "pad": "x" * 2000}

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(40):
            yield b"x" * 100
        yield b'"}'

    with small_body_server.client() as client:
        declared = client.post("/v1/owners", json=big)
        streamed = client.post("/v1/owners", content=chunks(), headers={"content-type": "application/json"})
        small = client.post("/v1/owners", json={"name": "A", "email": "a@acme.example"})

    assert_problem(declared, ErrorCode.PAYLOAD_TOO_LARGE, path="/v1/owners")
    assert_problem(streamed, ErrorCode.PAYLOAD_TOO_LARGE, path="/v1/owners")
    assert small.status_code == 201


def test_an_unauthenticated_oversized_body_is_refused_as_unauthenticated(small_body_server: LiveServer) -> None:
    """Authentication comes before the body is read: an anonymous large body is a 401, not a 413."""
    response = httpx.post(f"{small_body_server.url}/v1/owners", json={"pad": "x" * 5000})

    assert_problem(response, ErrorCode.UNAUTHENTICATED, path="/v1/owners")


def test_a_store_that_cannot_be_opened_is_unavailable(tmp_path: Path, sqlite_template: Path) -> None:
    """When the store can no longer be opened, a registry call is a 503 `unavailable` problem, not a 500."""
    store = tmp_path / "store"
    store.mkdir()
    shutil.copyfile(sqlite_template, store / "remit.db")
    settings = Settings(
        home=tmp_path, store=StoreSettings(url=f"sqlite:///{store / 'remit.db'}"), operator_token=SecretStr("t")
    )
    with running(settings, "t") as live, live.client() as client:
        assert client.get("/v1/owners").status_code == 200
        live.remit.database.engine.dispose()
        shutil.rmtree(store)  # SQLite cannot create a file in a directory that is gone

        response = client.get("/v1/owners")
        ready = client.get("/readyz")

    assert_problem(response, ErrorCode.UNAVAILABLE, path="/v1/owners")
    assert_problem(ready, ErrorCode.UNAVAILABLE, path="/readyz")
    assert str(tmp_path) not in response.text + ready.text


def test_remit_errors_are_all_reachable_by_code() -> None:
    """Each ErrorCode names a RemitError class (the mapping the SDK uses to rebuild errors)."""
    assert all(issubclass(ERROR_CLASS_BY_CODE[code], RemitError) for code in ErrorCode)
