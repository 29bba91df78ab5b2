"""The revocation index: lineage cascades, epochs, out-of-order sequences and pruning."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from remit.core.credentials.revocation_index import RevocationIndex
from remit.core.tasks.revocations import RevocationEntry, RevocationKind

NOW = dt.datetime(2026, 1, 15, 9, tzinfo=dt.UTC)


def _entry(seq: int, kind: RevocationKind, subject: str, epoch: int = 0, at: dt.datetime = NOW) -> RevocationEntry:
    return RevocationEntry(seq=seq, kind=kind, subject=subject, reason="test", at=at, epoch=epoch)


def test_ended_ancestor_revokes_descendant_credentials_without_a_walk() -> None:
    """A credential whose lineage holds an ended task is revoked, whatever its own task's state."""
    index = RevocationIndex()
    index.apply([_entry(1, RevocationKind.TASK_ENDED, "tsk_root")], now=NOW)

    assert (
        index.revoked_reason(jti="j", task_id="tsk_child", lineage=("tsk_root",), epoch=0) == "ancestor_task_ended:test"
    )
    assert index.revoked_reason(jti="j", task_id="tsk_root", lineage=(), epoch=0) == "task_ended:test"
    assert index.revoked_reason(jti="j", task_id="tsk_other", lineage=(), epoch=0) is None


def test_epoch_change_revokes_only_older_credentials() -> None:
    """After an objective change, credentials of the old epoch die and those of the new epoch live."""
    index = RevocationIndex()
    index.apply([_entry(1, RevocationKind.TASK_EPOCH, "tsk_1", epoch=1)], now=NOW)

    assert index.revoked_reason(jti="a", task_id="tsk_1", lineage=(), epoch=0) == "task_context_changed"
    assert index.revoked_reason(jti="b", task_id="tsk_1", lineage=(), epoch=1) is None


def test_single_credential_revocation() -> None:
    index = RevocationIndex()
    index.apply([_entry(1, RevocationKind.CREDENTIAL, "jti-1")], now=NOW)
    assert index.revoked_reason(jti="jti-1", task_id="t", lineage=(), epoch=0) == "credential_revoked:test"
    assert index.revoked_reason(jti="jti-2", task_id="t", lineage=(), epoch=0) is None


def test_out_of_order_entries_hold_the_watermark_until_the_gap_fills() -> None:
    """Seq 2 before seq 1 (a later commit of an earlier transaction) keeps the watermark at 0, then moves to 2."""
    index = RevocationIndex()
    index.apply([_entry(2, RevocationKind.TASK_ENDED, "b")], now=NOW)
    assert index.watermark == 0
    index.apply([_entry(1, RevocationKind.TASK_ENDED, "a"), _entry(2, RevocationKind.TASK_ENDED, "b")], now=NOW)
    assert index.watermark == 2
    assert len(index) == 2


def test_a_gap_that_never_fills_is_skipped_after_the_timeout() -> None:
    """A rolled-back transaction leaves a permanent gap; the watermark passes it after the timeout."""
    index = RevocationIndex(gap_timeout=dt.timedelta(seconds=30))
    index.apply([_entry(3, RevocationKind.TASK_ENDED, "c")], now=NOW)
    index.apply([], now=NOW + dt.timedelta(seconds=29))
    assert index.watermark == 0
    index.apply([], now=NOW + dt.timedelta(seconds=30))
    assert index.watermark == 3


def test_prune_forgets_only_old_entries() -> None:
    index = RevocationIndex()
    index.apply(
        [
            _entry(1, RevocationKind.TASK_ENDED, "old", at=NOW - dt.timedelta(hours=2)),
            _entry(2, RevocationKind.TASK_ENDED, "new", at=NOW),
        ],
        now=NOW,
    )
    assert index.prune(NOW - dt.timedelta(hours=1)) == 1
    assert index.revoked_reason(jti="j", task_id="old", lineage=(), epoch=0) is None
    assert index.revoked_reason(jti="j", task_id="new", lineage=(), epoch=0) is not None


@given(st.permutations(list(range(1, 9))), st.integers(min_value=1, max_value=8))
def test_any_arrival_order_converges(order: list[int], split: int) -> None:
    """Whatever order and batching entries arrive in, the index ends with all of them and watermark 8."""
    index = RevocationIndex()
    entries = [_entry(seq, RevocationKind.TASK_ENDED, f"t{seq}") for seq in order]
    index.apply(entries[:split], now=NOW)
    index.apply(entries[split:], now=NOW)
    assert index.watermark == 8
    assert all(index.revoked_reason(jti="j", task_id=f"t{s}", lineage=(), epoch=0) for s in range(1, 9))
