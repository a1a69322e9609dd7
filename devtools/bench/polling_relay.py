"""A naive polling outbox relay — the benchmark baseline, not for production.

Every ``interval_s`` it runs ``SELECT ... WHERE position > $last ORDER BY position`` per database
and publishes what it finds. It has the classic gap: ``position`` is taken from a sequence at
insert time but rows become visible at commit, so a transaction that commits after a later-numbered
one is skipped for good once ``$last`` moved past it. The WAL relay (:mod:`cdc.relay`) reads in
commit order and cannot skip it (see ``tests/integration/test_cdc_relay.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg2

from cdc.outbox import EVENT_COLUMNS, RowLayout, record_from_values
from cdc.relay import KafkaSink
from eco2.events import EventRegistry
from eco2.migrations import database_dsn
from eco2.settings import Settings

BATCH = 5000
_CASTS = ", ".join(f"{c}::text" for c in EVENT_COLUMNS)
_SELECT = (
    f"SELECT position, {_CASTS} FROM event_store WHERE position > %s ORDER BY position LIMIT %s"
)


class PollingRelay:
    """Polls each database's ``event_store`` by position and publishes through one producer."""

    def __init__(
        self,
        settings: Settings,
        databases: list[str],
        registries: Mapping[str, EventRegistry] | None = None,
        *,
        interval_s: float = 0.1,
        on_ack: Callable[[str], None] | None = None,
        from_start: bool = True,
    ) -> None:
        assert settings.db.url is not None
        self.interval_s, self.on_ack = interval_s, on_ack
        self.registries = dict(registries or {})
        # The same sink (producer settings, topic creation, back-pressure) as the WAL relay, so
        # the benchmark compares only how each finds its events.
        self.sink = KafkaSink(settings)
        self.producer = self.sink.producer
        self.layout = RowLayout(EVENT_COLUMNS)
        self.conns: dict[str, Any] = {}
        self.last: dict[str, int] = {}
        for db in databases:
            conn = psycopg2.connect(database_dsn(settings.db.url, db), options="-c TimeZone=UTC")
            conn.autocommit = True
            self.conns[db] = conn
            with conn.cursor() as cur:
                cur.execute("SELECT coalesce(max(position), 0) FROM event_store")
                row = cur.fetchone()
            self.last[db] = 0 if from_start else int(row[0])

    def _on_delivery(self, event_id: str) -> Callable[[Any, Any], None]:
        def delivered(err: Any, _msg: Any) -> None:
            if err is None and self.on_ack is not None:
                self.on_ack(event_id)

        return delivered

    def poll_once(self) -> int:
        """One polling round over every database; returns the rows published."""
        published = 0
        for db, conn in self.conns.items():
            with conn.cursor() as cur:
                cur.execute(_SELECT, (self.last[db], BATCH))
                rows = cur.fetchall()
            for position, *values in rows:
                encoded = [None if v is None else v.encode() for v in values]
                record = record_from_values(self.layout, encoded, self.registries)
                self.sink.produce(record, self._on_delivery(record.event_id))
                self.last[db] = int(position)
            published += len(rows)
            self.producer.poll(0)
        return published

    def run(self, stop: threading.Event) -> None:
        """Poll every ``interval_s`` (immediately again after a full batch) until ``stop``."""
        try:
            while not stop.is_set():
                started = time.monotonic()
                if self.poll_once() >= BATCH:
                    continue
                while time.monotonic() - started < self.interval_s and not stop.is_set():
                    self.producer.poll(0.001)
        finally:
            self.producer.flush(10)
            for conn in self.conns.values():
                conn.close()
