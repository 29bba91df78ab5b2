"""Domain events and a synchronous in-process bus: reactions that would point up the layers travel here."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

__all__ = ["DomainEvent", "EventBus", "InProcessEventBus"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DomainEvent:
    """Something that happened in the domain; subclasses carry its facts."""


E = TypeVar("E", bound=DomainEvent)


class EventBus(Protocol):
    """Publishes domain events to the handlers subscribed to their type."""

    def publish(self, event: DomainEvent) -> None: ...


class InProcessEventBus:
    """Calls each handler synchronously, in subscription order; use cases publish after their commit (ADR 0005)."""

    def __init__(self) -> None:
        self._handlers: dict[type[DomainEvent], list[Callable[[Any], None]]] = defaultdict(list)

    def subscribe(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: DomainEvent) -> None:
        for event_type in type(event).__mro__:
            for handler in self._handlers.get(event_type, ()):
                handler(event)
