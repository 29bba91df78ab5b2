"""Attesting on an event loop: from what is already loaded, or not at all.

Verifying evidence may need to fetch a trust bundle or a JWKS (a network call), or wait for another
thread that is fetching one. On an event loop either would stall every request the loop serves. Code
on a loop verifies `without_waiting()`: the key sources then answer from what they hold, and where
that is not enough they raise `WouldWait` instead, and the caller runs the verification in a worker
thread, where waiting is allowed.

The same rule keeps the store off the loop: issuance's reads (`IssuanceReads`), the decision path's
facts (`CachedFacts`) and elevation lookups, and a DPoP proof's single use (`SqlEvidenceUses`) raise
`WouldWait` under `without_waiting()` before any I/O, with nothing spent, so the caller can simply run
the same step again in a worker thread.
"""

from __future__ import annotations

from contextvars import ContextVar, Token

__all__ = ["WouldWait", "waiting_allowed", "without_waiting"]

_NO_WAITING: ContextVar[bool] = ContextVar("remit_attestation_no_waiting", default=False)


class WouldWait(Exception):
    """Verifying needs a fetch, or a lock another thread holds: do it where waiting is allowed."""


class without_waiting:  # noqa: N801 - used as a function: `with without_waiting():`
    """Within the block, key sources and stores raise `WouldWait` rather than fetch, read or wait.

    A class rather than a generator-based context manager: every decision and issuance on the event loop
    enters one, and this costs a third as much (~0.3 µs).
    """

    __slots__ = ("_token",)

    _token: Token[bool]

    def __enter__(self) -> None:
        self._token = _NO_WAITING.set(True)

    def __exit__(self, *_exc: object) -> None:
        _NO_WAITING.reset(self._token)


def waiting_allowed() -> bool:
    return not _NO_WAITING.get()
