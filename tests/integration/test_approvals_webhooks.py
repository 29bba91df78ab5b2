"""The webhook queue is bounded, and break-glass alerts jump it (a real local HTTP receiver)."""

from __future__ import annotations

import json
import threading

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from remit.adapters.webhooks import DeliveryAttempt, Webhook, WebhookNotifier
from remit.core.ids import SequentialIdFactory
from remit.testing import FrozenClock


class _Gate:
    """A receiver that holds every request until `release` and records the events in arrival order."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.open = threading.Event()
        self.first = threading.Event()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gate.first.set()
                gate.open.wait(timeout=30)
                gate.events.append(f"{body['event']}:{body['data']['n']}")
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                return

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()


@pytest.fixture
def gate() -> Iterator[_Gate]:
    receiver = _Gate()
    yield receiver
    receiver.open.set()
    receiver.server.shutdown()
    receiver.server.server_close()


def test_the_queue_is_bounded_and_break_glass_alerts_jump_it(
    gate: _Gate, clock: FrozenClock, ids: SequentialIdFactory
) -> None:
    attempts: list[DeliveryAttempt] = []
    notifier = WebhookNotifier(
        [Webhook("approvers", gate.url, b"s3cret")],
        clock=clock,
        ids=ids,
        record=attempts.append,
        attempts=1,
        max_queue=2,
    )
    try:
        notifier.notify(groups=["approvers"], event="approval.requested", payload={"n": 0})
        assert gate.first.wait(timeout=10)  # the worker holds delivery 0: the queue is empty again
        for n in (1, 2, 3):  # 3 does not fit
            notifier.notify(groups=["approvers"], event="approval.requested", payload={"n": n})
        assert notifier.dropped == 1
        notifier.notify(groups=["approvers"], event="breakglass.used", payload={"n": 4})  # evicts 2
        assert notifier.dropped == 2
        gate.open.set()
        assert notifier.wait_idle(timeout=30)
    finally:
        notifier.close()
    assert gate.events == ["approval.requested:0", "breakglass.used:4", "approval.requested:1"]
    assert [a.delivered for a in attempts] == [True, True, True]
