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
