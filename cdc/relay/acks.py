"""Which LSN a replication slot may confirm: the end of the last transaction whose events (and
those of every earlier transaction) Kafka has acknowledged.

Transactions arrive from the WAL in commit order and their events are produced as they arrive;
acknowledgements come back in any order across partitions. Confirming a transaction's end LSN
tells PostgreSQL never to send it again, so an LSN is confirmed only when the whole prefix of the
stream up to it is acked: a crash at any moment then re-sends at least every unacked event
(at-least-once; the re-sent suffix may repeat events Kafka already has).

With a hold (``KafkaSettings.replay_window_s``) the slot is told less than that: only what was
acknowledged at least ``hold_s`` ago (:meth:`AckTracker.releasable`), so a relay started against
a broker that lost its log sends the last window again from the slot.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


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
    acked with every transaction before it (or to a keepalive's WAL end while nothing is open).
    ``releasable()`` trails it by ``hold_s`` seconds.
    """

    HOLD_STEP_S = 0.1
    """Acknowledgements within this long share one entry of the hold (≤ hold_s / step entries);
    an entry is released once its last possible acknowledgement is ``hold_s`` old."""

    def __init__(
        self,
        confirmed: int = 0,
        *,
        hold_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.confirmed = confirmed
        self.hold_s, self._clock = hold_s, clock
        self._released = confirmed
        self._held: deque[list[float | int]] = deque()  # [step end, confirmed LSN by then]
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
                self.confirm(head.end_lsn)
            open_.popleft()

    def confirm(self, lsn: int) -> None:
        """Everything up to ``lsn`` is in Kafka (or was nothing to publish)."""
        self.confirmed = lsn
        if not self.hold_s:
            self._released = lsn
            return
        now = self._clock()
        if self._held and now <= self._held[-1][0]:
            self._held[-1][1] = lsn
        else:
            self._held.append([now + self.HOLD_STEP_S, lsn])

    @property
    def released(self) -> int:
        """What :meth:`releasable` last returned (read-only: safe from another thread)."""
        return self._released

    def releasable(self) -> int:
        """The LSN the slot may forget: confirmed at least ``hold_s`` seconds ago."""
        cutoff = self._clock() - self.hold_s
        held = self._held
        while held and held[0][0] <= cutoff:
            self._released = int(held.popleft()[1])
        return self._released

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
