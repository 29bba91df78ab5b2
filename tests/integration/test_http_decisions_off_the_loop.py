"""Decisions never touch the database on the event loop.

A fact not kept, a DPoP proof's single use and an elevation lookup all run in a worker thread, and a DPoP
proof is spent once however the decision ran.
"""

# ruff: noqa: F811 - the shared fixtures are imported by name and then requested as arguments

from __future__ import annotations

import asyncio
import threading

from collections.abc import Iterator
from typing import Any

import pytest

from sqlalchemy import event
from tests.integration.conftest import LiveServer
from tests.integration.test_http_decisions_policies import _credential, _decide, governed  # noqa: F401
from tests.integration.test_http_tasks import (  # noqa: F401 - pytest fixtures, requested by name
    Workloads,
    _dpop_proof,
    _start_bound,
    agent_server,
    workloads,
)
from tests.unit.core.attestation.minting import ec_key


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def statements_on_the_loop(governed: LiveServer) -> Iterator[list[str]]:
    """Every SQL statement the server runs from a thread with a running event loop, while the test runs."""
    seen: list[str] = []
    lock = threading.Lock()

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if _on_a_loop():
            with lock:
                seen.append(" ".join(statement.split())[:80])

    engine = governed.remit.database.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_a_decision_reads_and_writes_nothing_on_the_loop(
    governed: LiveServer, workloads: Workloads, statements_on_the_loop: list[str]
) -> None:
    token = _credential(governed, workloads, ["repo:acme/docs"], ["read_file", "merge_pr"])
    read = {"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/docs"}

    first, again = _decide(governed, read), _decide(governed, read)
    write = _decide(governed, {**read, "action": "merge_pr"})  # needs an elevation: it looks one up

    assert first["effect"] == again["effect"] == "allow"
    assert write["effect"] == "step_up"
    assert statements_on_the_loop == []


def test_a_dpop_proof_is_spent_off_the_loop_and_once(
    governed: LiveServer, workloads: Workloads, statements_on_the_loop: list[str]
) -> None:
    holder = ec_key()
    with governed.client(authenticated=False) as client:
        started = _start_bound(client, workloads, holder)
    token = started["credential"]["access_token"]
    url = "https://tools.example/github/read"
    call: dict[str, Any] = {"credential": token, "tool": "github", "action": "read_file", "resource": "repo:acme/docs"}
    proof = {"proof": _dpop_proof(holder, "GET", url, token), "method": "GET", "url": url}

    allowed = _decide(governed, {**call, "dpop": proof})
    replayed = _decide(governed, {**call, "dpop": proof})

    assert allowed["effect"] == "allow"  # decided in a thread after the loop said it would wait: spent once
    assert replayed["reasons"] == [{"kind": "guardrail", "id": "credential_verifies", "detail": "credential_invalid"}]
    assert statements_on_the_loop == []
