"""The in-memory revocation index: what every verification consults instead of the database.

It applies the revocation log (`remit.core.tasks.revocations`) in sequence order, so checking a
credential costs a few dictionary look-ups and no query. Entries can be pruned once no credential
that could match them is still unexpired.
"""

from __future__ import annotations

import datetime as dt
import threading

from collections.abc import Iterable, Sequence

from remit.core.tasks.revocations import RevocationEntry, RevocationKind

__all__ = ["RevocationIndex"]


class RevocationIndex:
    """Applies revocation entries and answers "is this credential revoked?" from memory.

    Entries may arrive out of sequence order: on PostgreSQL a transaction can commit after one that
    took a later sequence number. The index therefore follows a *watermark* (every seq at or below it
    has been seen) rather than the highest seq, and readers ask the store for everything above the
    watermark. A gap that stays open longer than `gap_timeout` is a rolled-back transaction and is
    skipped. Applying an entry twice is harmless, so overlapping reads are fine.

    Thread-safe: readers take no lock (dict reads are atomic in CPython and entries only ever add
    revocations), writers serialise on a lock.
    """

    def __init__(self, *, gap_timeout: dt.timedelta = dt.timedelta(seconds=30)) -> None:
        self._ended: dict[str, str] = {}
        self._epochs: dict[str, int] = {}
        self._credentials: dict[str, str] = {}
        self._applied_at: dict[str, dt.datetime] = {}
        self._watermark = 0
        self._seen_above: set[int] = set()
        self._gap_since: dt.datetime | None = None
        self._gap_timeout = gap_timeout
        self._lock = threading.Lock()

    @property
    def watermark(self) -> int:
        """Every entry with a seq at or below this has been applied (or skipped as a dead gap)."""
        return self._watermark

    def apply(self, entries: Iterable[RevocationEntry], *, now: dt.datetime) -> int:
        """Apply entries not yet seen; returns how many were new."""
        applied = 0
        with self._lock:
            for entry in entries:
                if entry.seq <= self._watermark or entry.seq in self._seen_above:
                    continue
                match entry.kind:
                    case RevocationKind.TASK_ENDED:
                        self._ended.setdefault(entry.subject, entry.reason)
                    case RevocationKind.TASK_EPOCH:
                        self._epochs[entry.subject] = max(entry.epoch, self._epochs.get(entry.subject, 0))
                    case RevocationKind.CREDENTIAL:
                        self._credentials.setdefault(entry.subject, entry.reason)
                self._applied_at[f"{entry.kind}:{entry.subject}"] = entry.at
                self._seen_above.add(entry.seq)
                applied += 1
            self._advance(now)
        return applied

    def _advance(self, now: dt.datetime) -> None:
        while self._watermark + 1 in self._seen_above:
            self._watermark += 1
            self._seen_above.discard(self._watermark)
        if not self._seen_above:
            self._gap_since = None
            return
        # A later entry is here but an earlier one is not (yet): wait for it, within reason.
        if self._gap_since is None:
            self._gap_since = now
        elif now - self._gap_since >= self._gap_timeout:
            self._watermark = min(self._seen_above) - 1
            self._gap_since = None
            self._advance(now)

    def revoked_reason(self, *, jti: str, task_id: str, lineage: Sequence[str], epoch: int) -> str | None:
        """Why the credential is revoked, or None when nothing revokes it (as far as this index has seen)."""
        if (reason := self._credentials.get(jti)) is not None:
            return f"credential_revoked:{reason}"
        if (reason := self._ended.get(task_id)) is not None:
            return f"task_ended:{reason}"
        for ancestor in lineage:
            if (reason := self._ended.get(ancestor)) is not None:
                return f"ancestor_task_ended:{reason}"
        if self._epochs.get(task_id, 0) > epoch:
            return "task_context_changed"
        return None

    def task_epoch(self, task_id: str) -> int:
        return self._epochs.get(task_id, 0)

    def prune(self, older_than: dt.datetime) -> int:
        """Forget entries applied before `older_than` (callers pass now minus the longest credential lifetime)."""
        with self._lock:
            stale = [key for key, at in self._applied_at.items() if at < older_than]
            for key in stale:
                kind, _, subject = key.partition(":")
                del self._applied_at[key]
                if kind == RevocationKind.TASK_ENDED:
                    self._ended.pop(subject, None)
                elif kind == RevocationKind.TASK_EPOCH:
                    self._epochs.pop(subject, None)
                else:
                    self._credentials.pop(subject, None)
        return len(stale)

    def __len__(self) -> int:
        return len(self._applied_at)
