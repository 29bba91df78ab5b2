"""Webhooks to approver groups: JSON bodies, HMAC-SHA256 signed, retried with backoff, every attempt recorded.

Signature: `X-Remit-Signature: sha256=<hex>` over `<timestamp>.<body>` with the group's secret, where
`X-Remit-Timestamp` is the Unix time of the attempt; a receiver recomputes it and refuses a stale
timestamp (replay). Deliveries run on one background thread, so `notify` never blocks the caller;
a failed attempt (transport error or non-2xx) is retried after `backoff * 2**(attempt-1)` seconds
up to `attempts` times. Each attempt is written to `webhook_deliveries` and the audit log.

The queue is bounded (`max_queue` deliveries, retries included): beyond it a new delivery is
dropped with a warning, so a flood of requests cannot grow memory without bound. Break-glass
alerts (`breakglass.*`) jump the queue: they are sent before any other due delivery, and when the
queue is full one ordinary delivery is dropped to make room for them.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import threading
import time

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx

from remit.adapters.sql.approvals import record_delivery_attempt
from remit.adapters.sql.engine import SqlDatabase
from remit.core.audit.models import AuditActor, AuditEvent
from remit.core.clock import Clock
from remit.core.ids import IdFactory
from remit.errors import RemitError

__all__ = ["DeliveryAttempt", "Webhook", "WebhookNotifier", "sign", "sql_recorder"]

_log = logging.getLogger("remit.webhooks")

SIGNATURE_HEADER: Final = "X-Remit-Signature"
TIMESTAMP_HEADER: Final = "X-Remit-Timestamp"
_MAX_ERROR: Final = 500
MAX_QUEUE: Final = 1000
_URGENT_PREFIX: Final = "breakglass."


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>." + body)."""
    return "sha256=" + hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Webhook:
    """One approver group's endpoint and signing secret."""

    group: str
    url: str
    secret: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """What happened on one attempt to deliver one event to one webhook."""

    delivery: str
    attempt: int
    group: str
    url: str
    event: str
    task_id: str | None
    status_code: int | None
    error: str | None
    delivered: bool
    final: bool


@dataclass(frozen=True, slots=True)
class _Delivery:
    id: str
    hook: Webhook
    event: str
    body: bytes
    task_id: str | None


class WebhookNotifier:
    """Implements the approvals `Notifier` port over HTTP (httpx), on a background thread."""

    def __init__(  # noqa: PLR0913 - one setting each
        self,
        hooks: Sequence[Webhook],
        *,
        clock: Clock,
        ids: IdFactory,
        record: Callable[[DeliveryAttempt], None],
        attempts: int = 5,
        backoff_seconds: float = 1.0,
        timeout_seconds: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self._hooks = tuple(hooks)
        self._clock = clock
        self._ids = ids
        self._record = record
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._timeout = timeout_seconds
        self._transport = transport
        # Two heaps by due time: break-glass alerts first, then every other delivery.
        self._urgent: list[tuple[float, int, int, _Delivery]] = []
        self._queue: list[tuple[float, int, int, _Delivery]] = []
        self._max_queue = max_queue
        self.dropped = 0
        self._order = itertools.count()
        self._busy = 0
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def notify(
        self, *, groups: Sequence[str], event: str, payload: Mapping[str, Any], task_id: str | None = None
    ) -> None:
        hooks = [h for h in self._hooks if h.group in groups]
        if not hooks:
            return
        for hook in hooks:
            delivery_id = self._ids.new("delivery")
            body = json.dumps(
                {
                    "id": delivery_id,
                    "event": event,
                    "group": hook.group,
                    "occurred_at": self._clock.now().isoformat(),
                    "data": dict(payload),
                },
                separators=(",", ":"),
                sort_keys=True,
            ).encode()
            self._schedule(_Delivery(delivery_id, hook, event, body, task_id), attempt=1, delay=0.0)

    def _schedule(self, delivery: _Delivery, *, attempt: int, delay: float) -> None:
        urgent = delivery.event.startswith(_URGENT_PREFIX)
        with self._cond:
            if len(self._urgent) + len(self._queue) >= self._max_queue:
                if not urgent or not self._queue:
                    self.dropped += 1
                    _log.warning(
                        "webhook queue full: dropped %s (%s) to group %s",
                        delivery.id,
                        delivery.event,
                        delivery.hook.group,
                    )
                    return
                # Make room for the alert: drop the ordinary delivery due last.
                latest = max(range(len(self._queue)), key=lambda i: self._queue[i][:2])
                dropped = self._queue.pop(latest)[3]
                heapq.heapify(self._queue)
                self.dropped += 1
                _log.warning("webhook queue full: dropped %s (%s) for a break-glass alert", dropped.id, dropped.event)
            entry = (time.monotonic() + delay, next(self._order), attempt, delivery)
            heapq.heappush(self._urgent if urgent else self._queue, entry)
            self._ensure_thread()
            self._cond.notify_all()

    def _next_due(self) -> float | None:
        tops = [q[0][0] for q in (self._urgent, self._queue) if q]
        return min(tops) if tops else None

    def _pop_due(self, now: float) -> tuple[int, _Delivery] | None:
        for queue in (self._urgent, self._queue):
            if queue and queue[0][0] <= now:
                _, _, attempt, delivery = heapq.heappop(queue)
                return attempt, delivery
        return None

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="remit-webhooks", daemon=True)
            self._thread.start()

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued attempt (and its retries) is done; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._urgent or self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout, transport=self._transport, follow_redirects=False) as client:
            while True:
                with self._cond:
                    due = self._pop_due(time.monotonic())
                    while not self._stop and due is None:
                        next_due = self._next_due()
                        self._cond.wait(None if next_due is None else max(0.0, next_due - time.monotonic()))
                        due = self._pop_due(time.monotonic())
                    if self._stop:
                        return
                    assert due is not None  # noqa: S101 - the loop above ends with one, or on stop
                    attempt, delivery = due
                    self._busy += 1
                try:
                    self._attempt(client, delivery, attempt)
                finally:
                    with self._cond:
                        self._busy -= 1
                        self._cond.notify_all()

    def _attempt(self, client: httpx.Client, delivery: _Delivery, attempt: int) -> None:
        timestamp = int(self._clock.now().timestamp())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "remit-webhooks",
            "X-Remit-Event": delivery.event,
            "X-Remit-Delivery": delivery.id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery.hook.secret, timestamp, delivery.body),
        }
        status: int | None = None
        error: str | None = None
        try:
            response = client.post(delivery.hook.url, content=delivery.body, headers=headers)
            status = response.status_code
            if not response.is_success:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}"[:_MAX_ERROR]
        delivered = error is None
        final = delivered or attempt >= self._attempts
        outcome = DeliveryAttempt(
            delivery=delivery.id,
            attempt=attempt,
            group=delivery.hook.group,
            url=delivery.hook.url,
            event=delivery.event,
            task_id=delivery.task_id,
            status_code=status,
            error=error,
            delivered=delivered,
            final=final,
        )
        try:
            self._record(outcome)
        except (RemitError, OSError):
            _log.warning("could not record webhook attempt %s#%d", delivery.id, attempt)
        if not final:
            self._schedule(delivery, attempt=attempt + 1, delay=self._backoff * 2 ** (attempt - 1))
        elif not delivered:
            _log.warning("webhook %s to group %s failed after %d attempts", delivery.id, delivery.hook.group, attempt)


def sql_recorder(database: SqlDatabase, *, clock: Clock, ids: IdFactory) -> Callable[[DeliveryAttempt], None]:
    """Record each attempt in `webhook_deliveries` and the audit log, in one transaction."""

    def record(attempt: DeliveryAttempt) -> None:
        now = clock.now()
        with database.transaction() as tx:
            record_delivery_attempt(
                tx.connection,
                delivery=attempt.delivery,
                attempt=attempt.attempt,
                group=attempt.group,
                url=attempt.url,
                event=attempt.event,
                task_id=attempt.task_id,
                status_code=attempt.status_code,
                error=attempt.error,
                delivered=attempt.delivered,
                at=now,
            )
            tx.audit.append(
                AuditEvent(
                    id=ids.new("event"),
                    type="webhook.delivered" if attempt.delivered else "webhook.failed",
                    occurred_at=now,
                    actor=AuditActor.system(),
                    subject_kind="webhook",
                    subject_id=attempt.delivery,
                    data={
                        "group": attempt.group,
                        "event": attempt.event,
                        "attempt": attempt.attempt,
                        "status_code": attempt.status_code,
                        "error": attempt.error,
                        "final": attempt.final,
                    },
                    task_id=attempt.task_id,
                    correlation_id=attempt.task_id,
                )
            )

    return record
