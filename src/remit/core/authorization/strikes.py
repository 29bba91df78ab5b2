"""Out-of-objective strikes, counted from the audit trail itself: durable, shared by every replica, no extra table."""

from __future__ import annotations

from typing import Final

from remit.core.audit.models import SealedRecord
from remit.core.audit.service import AuditLog

__all__ = ["DECISION_EVENT", "AuditObjectiveStrikes"]

DECISION_EVENT: Final = "decision.made"


class AuditObjectiveStrikes:
    """Counts a task's recorded decisions that were refused as outside its objective.

    Called only on that (rare) refusal path, after the refusal's own record is durable, so the
    count includes it; two concurrent strikes may both see the threshold, and ending a task twice
    is harmless.
    """

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    def count(self, task_id: str) -> int:
        strikes = 0
        after = 0
        while True:
            page = self._log.page(after=after, limit=1000, task_id=task_id, types=(DECISION_EVENT,))
            strikes += sum(
                1 for r in page.records if isinstance(r, SealedRecord) and r.event.data.get("out_of_objective") is True
            )
            if page.next_after is None:
                return strikes
            after = page.next_after
