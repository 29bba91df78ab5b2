"""Settle event-loop futures from a writer thread: one call into each loop per batch, not one per future."""

from __future__ import annotations

import asyncio
import contextlib

from collections.abc import Iterable, Sequence
from typing import TypeVar

__all__ = ["settle_from_thread"]

T = TypeVar("T")


def _settle(items: Sequence[tuple[asyncio.Future[T], T | BaseException]]) -> None:
    for future, outcome in items:
        if future.done():  # the caller gave up (timeout, disconnect); its work was done all the same
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def settle_from_thread(outcomes: Iterable[tuple[asyncio.Future[T], T | BaseException]]) -> None:
    """Give each future its result or exception, on its own loop, with one wake-up of each loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[T], T | BaseException]]] = {}
    for future, outcome in outcomes:
        by_loop.setdefault(future.get_loop(), []).append((future, outcome))
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop has nobody left waiting
            loop.call_soon_threadsafe(_settle, items)
