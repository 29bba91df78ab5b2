"""Attesting on an event loop: from what is already loaded, or not at all.

Verifying evidence may need to fetch a trust bundle or a JWKS (a network call), or wait for another
thread that is fetching one. On an event loop either would stall every request the loop serves. Code
on a loop verifies `without_waiting()`: the key sources then answer from what they hold, and where
that is not enough they raise `WouldWait` instead, and the caller runs the verification in a worker
thread, where waiting is allowed.
"""

from __future__ import annotations

import contextlib

from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["WouldWait", "waiting_allowed", "without_waiting"]

_NO_WAITING: ContextVar[bool] = ContextVar("remit_attestation_no_waiting", default=False)


class WouldWait(Exception):
    """Verifying needs a fetch, or a lock another thread holds: do it where waiting is allowed."""


@contextlib.contextmanager
def without_waiting() -> Iterator[None]:
    """Within the block, key sources raise `WouldWait` rather than fetch or wait."""
    token = _NO_WAITING.set(True)
    try:
        yield
    finally:
        _NO_WAITING.reset(token)


def waiting_allowed() -> bool:
    return not _NO_WAITING.get()
