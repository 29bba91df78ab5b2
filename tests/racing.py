"""A call that must wait on what another transaction holds: run in a thread, its outcome read afterwards."""

from __future__ import annotations

import threading

from collections.abc import Callable


class Waiting:
    """`call` started in a thread at once; `still_waiting()` while it is blocked, `outcome()` once it is done."""

    def __init__(self, call: Callable[[], object]) -> None:
        self._outcomes: list[BaseException | None] = []
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], object]) -> None:
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - handed to the test's thread
            self._outcomes.append(error)
        else:
            self._outcomes.append(None)

    def still_waiting(self, seconds: float = 0.3) -> bool:
        self._thread.join(seconds)
        return self._thread.is_alive()

    def outcome(self, timeout: float = 15) -> BaseException | None:
        """None if the call returned, else what it raised; fails the test if it is still running."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call is still waiting"
        return self._outcomes[0]
