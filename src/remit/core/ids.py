"""Typed, prefixed, time-sortable identifiers (`agt_…`, `tsk_…`) and the injectable id factory."""

from __future__ import annotations

import re
import secrets

from collections.abc import Callable
from typing import Final, NewType, Protocol

from remit.errors import InvalidRequest

__all__ = [
    "PREFIXES",
    "AgentId",
    "FunctionId",
    "GrantId",
    "IdFactory",
    "OwnerId",
    "RandomIdFactory",
    "SequentialIdFactory",
    "ToolId",
    "WorkflowId",
    "parse_id",
]

OwnerId = NewType("OwnerId", str)
FunctionId = NewType("FunctionId", str)
AgentId = NewType("AgentId", str)
ToolId = NewType("ToolId", str)
WorkflowId = NewType("WorkflowId", str)
GrantId = NewType("GrantId", str)

# Prefix per kind: a human reading a log line knows what an id names.
PREFIXES: Final[dict[str, str]] = {
    "owner": "own",
    "function": "fn",
    "agent": "agt",
    "tool": "tool",
    "workflow": "wf",
    "grant": "grt",
    "task": "tsk",
    "credential": "crd",
    "decision": "dec",
    "approval": "apr",
    "elevation": "elv",
    "operator": "opr",
    "delivery": "dlv",
    "event": "evt",
    "policy": "pol",
}

_CROCKFORD: Final = "0123456789abcdefghjkmnpqrstvwxyz"
_BODY = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$")


def _encode(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, rest = divmod(number, 32)
        chars.append(_CROCKFORD[rest])
    return "".join(reversed(chars))


class IdFactory(Protocol):
    """Makes new ids of a kind; injected so tests are deterministic."""

    def new(self, kind: str) -> str: ...


class RandomIdFactory:
    """ULID-shaped ids: 48-bit milliseconds then 80 random bits, so ids sort by creation time."""

    def __init__(self, milliseconds: Callable[[], int]) -> None:
        self._milliseconds = milliseconds

    def new(self, kind: str) -> str:
        body = _encode(self._milliseconds() & ((1 << 48) - 1), 10) + _encode(secrets.randbits(80), 16)
        return f"{PREFIXES[kind]}_{body}"


class SequentialIdFactory:
    """Deterministic ids for tests: `agt_000…001`, `agt_000…002`, and so on."""

    def __init__(self) -> None:
        self._next = 0

    def new(self, kind: str) -> str:
        self._next += 1
        return f"{PREFIXES[kind]}_{_encode(self._next, 26)}"


def parse_id(kind: str, raw: str, *, field: str = "id") -> str:
    """Check that `raw` is a well-formed id of `kind`; anything else is InvalidRequest."""
    prefix, sep, body = raw.partition("_")
    if sep != "_" or prefix != PREFIXES[kind] or not _BODY.match(body):
        msg = f"not a valid {kind} id"
        raise InvalidRequest(msg, field=field)
    return raw
