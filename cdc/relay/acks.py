"""Which LSN a replication slot may confirm: the end of the last transaction whose events (and
those of every earlier transaction) Kafka has acknowledged.

Transactions arrive from the WAL in commit order and their events are produced as they arrive;
acknowledgements come back in any order across partitions. Confirming a transaction's end LSN
tells PostgreSQL never to send it again, so an LSN is confirmed only when the whole prefix of the
stream up to it is acked: a crash at any moment then re-sends at least every unacked event
(at-least-once; the re-sent suffix may repeat events Kafka already has).
"""

from __future__ import annotations

from collections import deque


class PendingTransaction:
    """One transaction's produced-but-unacked events and, once its Commit arrived, its end LSN."""

    __slots__ = ("commit_time_us", "end_lsn", "pending")

    def __init__(self) -> None:
        self.pending = 0
        self.end_lsn: int | None = None
        self.commit_time_us = 0


class AckTracker:
    """Contiguous-prefix bookkeeping of acknowledged transactions (single-threaded).

    ``confirmed`` only grows, and only to the end LSN of a transaction that is committed and fully
    acked with every transaction before it.
    """

    def __init__(self, confirmed: int = 0) -> None:
        self.confirmed = confirmed
        self._open: deque[PendingTransaction] = deque()
        self.in_flight = 0

    def begin(self) -> PendingTransaction:
        tx = PendingTransaction()
        self._open.append(tx)
        return tx

    def produced(self, tx: PendingTransaction) -> None:
        tx.pending += 1
        self.in_flight += 1

    def commit(self, tx: PendingTransaction, end_lsn: int, commit_time_us: int = 0) -> None:
        tx.end_lsn = end_lsn
        tx.commit_time_us = commit_time_us
        self._advance()

    def acked(self, tx: PendingTransaction) -> None:
        tx.pending -= 1
        self.in_flight -= 1
        if tx.pending == 0 and self._open and self._open[0] is tx:
            self._advance()

    def _advance(self) -> None:
        open_ = self._open
        while open_:
            head = open_[0]
            if head.pending or head.end_lsn is None:
                return
            if head.end_lsn > self.confirmed:
                self.confirmed = head.end_lsn
            open_.popleft()

    @property
    def idle(self) -> bool:
        """True when nothing received is waiting for an acknowledgement."""
        return not self._open

    def oldest_pending_commit_us(self) -> int | None:
        """Commit time of the oldest transaction not yet confirmed (None when idle)."""
        for tx in self._open:
            if tx.end_lsn is not None:
                return tx.commit_time_us
        return None
