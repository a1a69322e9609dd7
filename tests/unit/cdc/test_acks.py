"""Only the end LSN of a fully acknowledged, contiguous prefix of transactions is confirmed."""

from __future__ import annotations

import random

from cdc.relay.acks import AckTracker


def test_confirms_only_contiguous_acked_prefix() -> None:
    tracker = AckTracker(confirmed=100)
    t1, t2, t3 = tracker.begin(), tracker.begin(), tracker.begin()
    for tx in (t1, t1, t2, t3):
        tracker.produced(tx)
    tracker.commit(t1, 200)
    tracker.commit(t2, 300)
    tracker.commit(t3, 400)
    tracker.acked(t2)
    tracker.acked(t3)
    assert tracker.confirmed == 100  # t1 still has two events in flight
    tracker.acked(t1)
    assert tracker.confirmed == 100
    tracker.acked(t1)
    assert tracker.confirmed == 400
    assert tracker.idle
    assert tracker.in_flight == 0


def test_uncommitted_transaction_blocks_later_ones() -> None:
    tracker = AckTracker()
    open_tx, later = tracker.begin(), tracker.begin()
    tracker.produced(open_tx)
    tracker.acked(open_tx)  # all its events acked, but its Commit has not arrived
    tracker.commit(later, 500)
    assert tracker.confirmed == 0
    tracker.commit(open_tx, 450)
    assert tracker.confirmed == 500


def test_empty_transaction_confirms_at_commit() -> None:
    tracker = AckTracker()
    tracker.commit(tracker.begin(), 77)
    assert tracker.confirmed == 77


def test_random_ack_order_never_confirms_an_unacked_transaction() -> None:
    rng = random.Random(3)
    tracker = AckTracker()
    txs = []
    for n in range(200):
        tx = tracker.begin()
        for _ in range(rng.randint(0, 3)):
            tracker.produced(tx)
        tracker.commit(tx, (n + 1) * 10)
        txs.append(tx)
    pending = [tx for tx in txs for _ in range(tx.pending)]
    rng.shuffle(pending)
    for tx in pending:
        tracker.acked(tx)
        first_unacked = next((i for i, t in enumerate(txs) if t.pending), None)
        limit = (first_unacked * 10) if first_unacked is not None else 2000
        assert tracker.confirmed <= limit
    assert tracker.confirmed == 2000
    assert tracker.oldest_pending_commit_us() is None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _acked(tracker: AckTracker, end_lsn: int) -> None:
    tx = tracker.begin()
    tracker.produced(tx)
    tracker.commit(tx, end_lsn)
    tracker.acked(tx)


def test_without_a_hold_what_is_acknowledged_is_releasable_at_once() -> None:
    tracker = AckTracker(confirmed=100)
    _acked(tracker, 200)
    assert tracker.releasable() == tracker.released == 200


def test_a_hold_releases_an_lsn_only_once_it_was_acknowledged_that_long_ago() -> None:
    clock = _Clock()
    tracker = AckTracker(confirmed=100, hold_s=60.0, clock=clock)
    _acked(tracker, 200)
    clock.now += 30
    _acked(tracker, 300)
    tracker.confirm(350)  # a keepalive's WAL end while idle is held the same way
    assert tracker.confirmed == 350
    assert tracker.releasable() == 100
    clock.now += 30.05  # 200 was acknowledged 60.05 s ago, within its 0.1 s step: not yet
    assert tracker.releasable() == 100
    clock.now += 0.1
    assert tracker.releasable() == tracker.released == 200
    clock.now += 30.1
    assert tracker.releasable() == 350
    clock.now += 1000
    assert tracker.releasable() == 350  # never past what Kafka acknowledged


def test_a_hold_keeps_one_entry_per_step_however_many_acknowledgements() -> None:
    clock = _Clock()
    tracker = AckTracker(hold_s=60.0, clock=clock)
    for n in range(1, 10_001):
        _acked(tracker, n)
        clock.now += 0.001  # 10,000 acknowledgements over 10 s
    assert len(tracker._held) <= 10 / AckTracker.HOLD_STEP_S + 1
    clock.now += 60 + AckTracker.HOLD_STEP_S
    assert tracker.releasable() == 10_000
