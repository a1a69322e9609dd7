"""One domain database's outbox stream: WAL inserts of ``event_store`` → Kafka records.

Delivery contract (per database): every committed event row is handed to the sink at least once,
in commit order (so per aggregate in version order); the slot's flush LSN is confirmed only up to
the end of the last transaction whose events — and all earlier ones' — Kafka acknowledged (with a
replay window, acknowledged at least that long ago: :mod:`cdc.relay.acks`). On any
failure (PostgreSQL restart, dropped connection, failed delivery) the stream is dropped with its
unconfirmed state and restarted from the slot's confirmed LSN, so the unacked suffix is sent again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg2

from cdc.outbox import EVENT_COLUMNS, OutboxRecord, RowLayout, dead_letter, record_from_values
from cdc.relay import pgoutput, slots
from cdc.relay.acks import AckTracker, PendingTransaction
from cdc.relay.walstream import StreamError, WalStream, replication_connection
from eco2.events import EventRegistry
from eco2.telemetry import get_logger

log = get_logger(__name__)

FEEDBACK_INTERVAL_S = 0.05
"""How often an advanced flush LSN is reported (more often costs syscalls, less means more
duplicates after a crash)."""
STATUS_INTERVAL_S = 1.0
"""Status updates are sent at least this often, well within ``wal_sender_timeout``."""
RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0
SNAPSHOT_ACK_TIMEOUT_S = 300.0

DeliveryCallback = Callable[[Any, Any], None]


class Sink(Protocol):
    def produce(self, record: OutboxRecord, on_delivery: DeliveryCallback) -> None: ...

    def flush(self, timeout: float) -> int: ...


@dataclass
class StreamStats:
    events: int = 0
    dead_lettered: int = 0
    last_ack_at: float | None = None
    reconnects: int = 0
    server_wal_end: int = 0
    last_error: str | None = None
    connected_since: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class DatabaseStream:
    """Drives one slot; called from the relay's single thread (callbacks included)."""

    def __init__(
        self,
        database: str,
        dsn: str,
        registries: Mapping[str, EventRegistry],
        sink: Sink,
        *,
        snapshot: bool = True,
        hold_s: float = 0.0,
        on_ack: Callable[[str], None] | None = None,
        on_fatal: Callable[[Any], None] | None = None,
    ) -> None:
        self.database, self.dsn, self.slot = database, dsn, slots.slot_name(database)
        self.registries, self.sink, self.snapshot = registries, sink, snapshot
        self.hold_s = hold_s
        self.on_ack, self.on_fatal = on_ack, on_fatal
        self.stats = StreamStats()
        self.tracker = AckTracker(hold_s=hold_s)
        self.wal: WalStream | None = None
        self.generation = 0
        self._layouts: dict[int, RowLayout | None] = {}
        self._tx: PendingTransaction | None = None
        self._retry_at = 0.0
        self._backoff = RETRY_MIN_S
        self._sent_flush = 0
        self._last_status = 0.0

    # --- connection lifecycle -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.wal is not None

    def due(self, now: float) -> bool:
        return self.wal is None and now >= self._retry_at

    def connect(self) -> None:
        """Ensure publication and slot (publishing the initial snapshot of a new slot), start."""
        try:
            self._connect()
        except (psycopg2.Error, StreamError, OSError) as exc:
            self.fail(f"connect: {exc}")
        else:
            self._backoff = RETRY_MIN_S
            self.stats.connected_since = time.time()
            log.info(
                "cdc stream started",
                database=self.database,
                slot=self.slot,
                confirmed=pgoutput.format_lsn(self.tracker.confirmed),
            )

    def _connect(self) -> None:
        admin = psycopg2.connect(self.dsn, connect_timeout=10)
        admin.autocommit = True
        try:
            slots.ensure_publication(admin)
            exists, confirmed = slots.slot_state(admin, self.slot)
            conn = replication_connection(self.dsn)
            try:
                cursor = conn.cursor()
                self.tracker = AckTracker(confirmed, hold_s=self.hold_s)
                if not exists or (self.snapshot and not slots.snapshot_done(admin, self.slot)):
                    if exists:
                        slots.drop_slot(admin, self.slot)
                    slots.mark_snapshot(admin, None)
                    consistent, snapshot = slots.create_slot(cursor, self.slot)
                    if self.snapshot:
                        self._publish_snapshot(snapshot)
                        slots.mark_snapshot(admin, self.slot)
                    self.tracker = AckTracker(consistent, hold_s=self.hold_s)
                self.wal = WalStream.start(conn, cursor, self.slot, slots.PUBLICATION)
            except BaseException:
                conn.close()
                raise
        finally:
            admin.close()
        self._sent_flush = self.tracker.releasable()

    def _publish_snapshot(self, snapshot: str) -> None:
        layout = RowLayout(EVENT_COLUMNS)
        tx = self.tracker.begin()
        count = 0
        for rows in slots.snapshot_rows(self.dsn, snapshot):
            for values in rows:
                self._produce(record_from_values(layout, values, self.registries), tx)
            count += len(rows)
        generation, deadline = self.generation, time.monotonic() + SNAPSHOT_ACK_TIMEOUT_S
        while tx.pending and generation == self.generation and time.monotonic() < deadline:
            self.sink.flush(0.5)
        if tx.pending or generation != self.generation:
            raise StreamError(f"initial snapshot of {self.database} not acknowledged by Kafka")
        log.info("cdc initial snapshot published", database=self.database, events=count)

    def fail(self, reason: str) -> None:
        """Drop the connection and everything unconfirmed; reconnect after a backoff."""
        if self.wal is not None:
            self.wal.close()
        self.wal = None
        self.generation += 1
        self.tracker = AckTracker(self.tracker.releasable(), hold_s=self.hold_s)
        self._tx = None
        self._layouts.clear()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RETRY_MAX_S)
        self.stats.reconnects += 1
        self.stats.last_error = reason
        log.warning("cdc stream restarting", database=self.database, reason=reason)

    def close(self) -> None:
        if self.wal is not None:
            with contextlib.suppress(StreamError):
                self.wal.send_status(self.tracker.releasable())
            self.wal.close()
        self.wal = None

    # --- streaming ----------------------------------------------------------------------------

    def pump(self, budget: int) -> int:
        """Handle up to ``budget`` buffered messages without blocking; return how many."""
        if self.wal is None:
            return 0
        try:
            frames = self.wal.frames(budget)
            for frame in frames:
                if isinstance(frame, bytes):
                    self._handle(frame)
                else:
                    self._keepalive(*frame)
        except (StreamError, pgoutput.DecodeError, ValueError) as exc:
            self.fail(str(exc))
            return 0
        return len(frames)

    def _handle(self, data: bytes) -> None:
        kind = data[0]
        if kind == 0x49:  # Insert
            relation_id, values = pgoutput.insert_values(data)
            layout = self._layouts.get(relation_id)
            if layout is not None and self._tx is not None:
                self._produce(record_from_values(layout, values, self.registries), self._tx)
        elif kind == 0x42:  # Begin
            self._tx = self.tracker.begin()
        elif kind == 0x43:  # Commit
            commit = pgoutput.decode_commit(data)
            if self._tx is not None:
                self.tracker.commit(self._tx, commit.end_lsn, commit.commit_time_us)
            self._tx = None
        elif kind == 0x52:  # Relation
            rel = pgoutput.decode_relation(data)
            is_outbox = rel.name == "event_store"
            self._layouts[rel.relation_id] = RowLayout(rel.columns) if is_outbox else None

    def _keepalive(self, wal_end: int, reply: bool) -> None:
        self.stats.server_wal_end = max(self.stats.server_wal_end, wal_end)
        # A keepalive's WAL end is where the server has decoded up to; with nothing received
        # still unacked, everything before it is published or irrelevant to us: confirm it, so
        # an idle database does not hold WAL back.
        if self.tracker.idle and self._tx is None and wal_end > self.tracker.confirmed:
            self.tracker.confirm(wal_end)
        if not reply or self.wal is None:
            return
        if self.hold_s:
            # Everything received is in Kafka (write), nothing new may be forgotten (flush 0):
            # a server shutting down asks exactly this, and would otherwise wait the whole
            # window for the held position to reach what it sent.
            self._status(0, write_lsn=self.tracker.confirmed)
        else:
            self._send_status(time.monotonic())

    def _produce(self, record: OutboxRecord, tx: PendingTransaction) -> None:
        self.tracker.produced(tx)
        generation = self.generation

        def delivered(err: Any, _msg: Any) -> None:
            self._delivered(err, tx, generation, record)

        self.sink.produce(record, delivered)

    def _delivered(
        self, err: Any, tx: PendingTransaction, generation: int, record: OutboxRecord
    ) -> None:
        if generation != self.generation:
            return  # a message of a stream we already restarted: its events are being re-sent
        if err is None:
            self.tracker.acked(tx)
            self.stats.events += 1
            if record.topic.endswith(".dlq"):
                self.stats.dead_lettered += 1
            self.stats.last_ack_at = time.time()
            if self.on_ack is not None:
                self.on_ack(record.event_id)
        elif err.fatal():
            if self.on_fatal is not None:
                self.on_fatal(err)
        elif _record_rejected(err) and not record.topic.endswith(".dlq"):
            # Kafka refuses this one record (e.g. too large): park its headers on the DLQ.
            parked = OutboxRecord(record.topic, record.key, b"", record.headers, record.event_id)
            self._produce(
                dead_letter(parked, reason="unpublishable", error=str(err), source="relay"), tx
            )
            self.tracker.acked(tx)
        else:
            self.fail(f"kafka delivery failed: {err}")

    # --- confirmation -------------------------------------------------------------------------

    def feedback(self, now: float) -> None:
        """Report the releasable LSN when it advanced (throttled) or when a status update is due."""
        if self.wal is None:
            return
        releasable = self.tracker.releasable()
        if (releasable > self._sent_flush and now - self._last_status >= FEEDBACK_INTERVAL_S) or (
            now - self._last_status >= STATUS_INTERVAL_S
        ):
            self._send_status(now)

    def _send_status(self, now: float) -> None:
        releasable = self.tracker.releasable()
        if self._status(releasable):
            self._sent_flush = releasable
            self._last_status = now

    def _status(self, flush_lsn: int, *, write_lsn: int | None = None) -> bool:
        """Send a status update; a failed one restarts the stream (False)."""
        assert self.wal is not None
        try:
            self.wal.send_status(flush_lsn, write_lsn=write_lsn)
        except StreamError as exc:
            self.fail(str(exc))
            return False
        return True

    def oldest_pending_age_s(self) -> float:
        commit_us = self.tracker.oldest_pending_commit_us()
        return 0.0 if commit_us is None else max(0.0, time.time() - commit_us / 1e6)


def _record_rejected(err: Any) -> bool:
    from confluent_kafka import KafkaError

    return bool(
        err.code() in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD)
        and not err.retriable()
    )
