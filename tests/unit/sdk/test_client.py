"""RemitClient on real loopback HTTP: problem documents become RemitError subclasses; transport failures Unavailable."""

from __future__ import annotations

import json
import socket
import threading

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from remit.errors import Conflict, CredentialRevoked, InternalError, NotFound, RemitError, Unauthenticated, Unavailable
from remit.sdk import RemitClient, paginate
from remit.wire.registry import OwnerIn, Page

TOKEN = "remit_op_secret_for_tests"


class _Canned(BaseHTTPRequestHandler):
    """Answers from a table of canned responses keyed by path, and remembers what it was asked."""

    replies: dict[str, tuple[int, str, bytes]] = {}  # noqa: RUF012 - a per-test table set by the fixture
    seen: list[tuple[str, str, str | None]] = []  # noqa: RUF012

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append((self.command, self.path, self.headers.get("Authorization")))
        status, content_type, body = self.replies.get(self.path.split("?")[0], (404, "text/plain", b"nope"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _answer  # noqa: N815 - the stdlib's handler names

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002, ARG002 - the stdlib's signature
        return


def _problem(status: int, code: str, detail: str, **extra: object) -> tuple[int, str, bytes]:
    body = {"type": f"/docs/errors#{code}", "title": code, "status": status, "detail": detail, "code": code, **extra}
    return status, "application/problem+json", json.dumps(body).encode()


@pytest.fixture
def canned() -> Iterator[tuple[str, type[_Canned]]]:
    """A real HTTP server on 127.0.0.1 answering from `_Canned.replies`."""
    _Canned.replies = {}
    _Canned.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", _Canned
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_problem_document_becomes_the_matching_error(canned: tuple[str, type[_Canned]]) -> None:
    """A 409 problem with code conflict raises Conflict carrying the detail and extension members."""
    url, handler = canned
    handler.replies["/v1/owners"] = _problem(409, "conflict", "an owner with that email exists", revision=3)
    with RemitClient(url, token=TOKEN) as client, pytest.raises(Conflict) as caught:
        client.create_owner(OwnerIn(name="Ada", email="ada@acme.example"))
    assert caught.value.message == "an owner with that email exists"
    assert caught.value.details["revision"] == 3
    assert handler.seen == [("POST", "/v1/owners", f"Bearer {TOKEN}")]


def test_subclass_codes_are_rebuilt_exactly(canned: tuple[str, type[_Canned]]) -> None:
    """A credential_revoked problem is CredentialRevoked, which callers can also catch as Unauthenticated."""
    url, handler = canned
    handler.replies["/v1/agents/bot"] = _problem(401, "credential_revoked", "revoked")
    with RemitClient(url) as client, pytest.raises(Unauthenticated) as caught:
        client.get_agent("bot")
    assert isinstance(caught.value, CredentialRevoked)


def test_reply_without_problem_document_maps_by_status(canned: tuple[str, type[_Canned]]) -> None:
    """A non-problem error reply (a proxy's HTML page) still maps by status: 404 NotFound, 502 Unavailable."""
    url, handler = canned
    handler.replies["/v1/tools/x"] = (404, "text/html", b"<h1>no</h1>")
    handler.replies["/v1/tools/y"] = (502, "text/html", b"<h1>bad gateway</h1>")
    with RemitClient(url) as client:
        with pytest.raises(NotFound):
            client.get_tool("x")
        with pytest.raises(Unavailable):
            client.get_tool("y")


def test_malformed_success_body_is_internal_error(canned: tuple[str, type[_Canned]]) -> None:
    """A 200 whose body is not the wire model is InternalError, never a half-built object."""
    url, handler = canned
    handler.replies["/v1/owners/ada"] = (200, "application/json", b'{"id": 1}')
    with RemitClient(url) as client, pytest.raises(InternalError):
        client.get_owner("ada")


def test_unreachable_server_is_unavailable_without_the_token() -> None:
    """A refused connection is Unavailable, and the message never contains the operator token."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but never listening: connections are refused
        with (
            RemitClient(f"http://127.0.0.1:{port}", token=TOKEN, timeout=5) as client,
            pytest.raises(Unavailable) as caught,
        ):
            client.list_owners()
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(caught.value)


def test_references_cannot_leave_their_path_segment(canned: tuple[str, type[_Canned]]) -> None:
    """Slashes and query characters in a reference are percent-encoded into one path segment."""
    url, handler = canned
    with RemitClient(url) as client, pytest.raises(RemitError):
        client.get_owner("../grants?x=1")
    assert handler.seen[0][1] == "/v1/owners/..%2Fgrants%3Fx%3D1"


def test_paginate_follows_cursors_until_the_last_page() -> None:
    """Paginate yields every item across pages and stops when next_cursor is null."""
    pages = {None: Page[int](items=[1, 2], next_cursor="a"), "a": Page[int](items=[3], next_cursor=None)}
    assert list(paginate(lambda after: pages[after])) == [1, 2, 3]


def test_paginate_stops_on_a_repeated_cursor() -> None:
    """A server that returns the same cursor again cannot trap paginate in a loop."""
    assert list(paginate(lambda _after: Page[int](items=[1], next_cursor="same"))) == [1, 1]
