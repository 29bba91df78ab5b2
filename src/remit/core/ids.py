"""Typed, prefixed, time-sortable identifiers (`agt_…`, `tsk_…`) and the injectable id factory."""

from __future__ import annotations

import os
import re
import threading

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
    "random_bits",
    "random_hex",
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


# Every 10-bit value as its two Crockford characters: an id body takes 13 lookups instead of 26 divisions.
_PAIRS: Final = tuple(_CROCKFORD[high] + _CROCKFORD[low] for high in range(32) for low in range(32))


def _encode(number: int, length: int) -> str:
    """`number` (below 32**length) in `length` Crockford base-32 characters, most significant first."""
    pairs = []
    for _ in range((length + 1) // 2):
        pairs.append(_PAIRS[number & 0x3FF])
        number >>= 10
    return "".join(reversed(pairs))[-length:]


class _KernelRandom:
    """Bytes from the kernel's CSPRNG (`os.urandom`), read 4 KiB at a time; each byte is handed out once.

    Why not one `os.urandom` per id: each call releases the GIL around its system call, and on a
    busy event loop every release lets a writer thread take the interpreter for up to a switch
    interval, which the request then waits out. Reading ahead keeps the bytes' quality and makes
    that one release per ~400 ids. A forked child starts with an empty buffer, so parent and child
    never share bytes.
    """

    _CHUNK: Final = 4096

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._offset = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._offset = b"", 0

    def take(self, size: int) -> bytes:
        with self._lock:
            if self._offset + size > len(self._buffer):
                self._buffer, self._offset = os.urandom(max(self._CHUNK, size)), 0
            start = self._offset
            self._offset += size
            return self._buffer[start : self._offset]


_RANDOM: Final = _KernelRandom()


def random_bits(bits: int) -> int:
    """A non-negative integer of `bits` random bits from the kernel's CSPRNG."""
    return int.from_bytes(_RANDOM.take((bits + 7) // 8), "big") >> (-bits % 8)


def random_hex(size: int) -> str:
    """`size` random bytes from the kernel's CSPRNG as lowercase hex (like `secrets.token_hex`)."""
    return _RANDOM.take(size).hex()


class IdFactory(Protocol):
    """Makes new ids of a kind; injected so tests are deterministic."""

    def new(self, kind: str) -> str: ...


class RandomIdFactory:
    """ULID-shaped ids: 48-bit milliseconds then 80 random bits, so ids sort by creation time."""

    def __init__(self, milliseconds: Callable[[], int]) -> None:
        self._milliseconds = milliseconds

    def new(self, kind: str) -> str:
        body = _encode((self._milliseconds() & ((1 << 48) - 1)) << 80 | random_bits(80), 26)
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
