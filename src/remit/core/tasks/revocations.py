"""The revocation log's facts: sequenced, append-only records that end credentials.

Tasks own these facts because ending a task and recording that its credentials are dead must be one
transaction. Three kinds make every revocation O(1) to record and O(depth) to check:

* `task_ended`   a task ended (completed, failed, cancelled, expired, revoked): its credentials die and,
                 because credentials carry their task's lineage, so do every descendant task's;
* `task_epoch`   a task's context changed (objective): credentials of earlier epochs die, the task lives;
* `credential`   one credential revoked by its `jti` (RFC 7009).
"""

from __future__ import annotations

import datetime as dt

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["RevocationEntry", "RevocationKind"]


class RevocationKind(StrEnum):
    """What a revocation entry revokes."""

    TASK_ENDED = "task_ended"
    TASK_EPOCH = "task_epoch"
    CREDENTIAL = "credential"


@dataclass(frozen=True, slots=True)
class RevocationEntry:
    """One sequenced revocation fact; `seq` is assigned by the store and strictly increases."""

    seq: int
    kind: RevocationKind
    subject: str  # task id, or credential jti
    reason: str
    at: dt.datetime
    epoch: int = 0  # for task_epoch: the new, current epoch
