"""The outbox relay: every domain database's ``event_store`` inserts, read from the WAL through a
logical replication slot, published to Kafka (architecture.md §5).

Delivery guarantees:

* **at least once** — a slot's flush LSN is confirmed only after Kafka acknowledged every event of
  every transaction up to it (:mod:`cdc.relay.acks`); a relay killed at any point, a PostgreSQL
  restart or a lost broker connection makes the unacknowledged suffix be sent again (duplicates are
  possible, consumers dedupe by event id through their inbox);
* **a broker that loses its log loses nothing recent** — with ``KafkaSettings.replay_window_s``
  the slot keeps what Kafka acknowledged within the window, and a relay (re)started against the
  emptied broker sends it again (the launcher's memory-only broker; a durable Kafka needs none);
* **per-aggregate order** — events are produced in commit order, keyed by aggregate id, through an
  idempotent producer with the gapless guarantee and no message timeout; a delivery failure
  restarts the stream from the last confirmed LSN, so the first copy of each event in Kafka comes
  after the first copy of its predecessor;
* **bad rows do not stop the relay** — an unknown event type or an invalid payload (checked against
  the given :class:`~eco2.events.EventRegistry` of its aggregate type) goes to
  ``outbox.event.<aggregate_type>.dlq`` with the reason in headers.

Run with ``python -m cdc.relay [--events AGGREGATE=MODULE:REGISTRY ...] [database ...]``
(default: every domain database) or :func:`run_relay`; SIGTERM/SIGINT stop it after flushing what
is in flight. Each event owner hands the relay its registry by name (``--events``), so the relay
imports no pipeline or domain.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import select
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from confluent_kafka import Producer
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from cdc.outbox import H_TRACEPARENT, OutboxRecord
from cdc.relay import metrics
from cdc.relay.stream import DatabaseStream, DeliveryCallback
from eco2 import telemetry
from eco2.events import EventRegistry
from eco2.kafka import ensure_topics, producer_config
from eco2.migrations import database_dsn
from eco2.settings import DOMAIN_DATABASES, Settings, load_settings
from eco2.telemetry import configure, get_logger

log = get_logger(__name__)
_tracer = telemetry.tracer(__name__)

MAX_IN_FLIGHT = 50_000
PUMP_BUDGET = 2_000
IDLE_WAIT_S = 0.05
BUSY_WAIT_S = 0.0005
SHUTDOWN_FLUSH_S = 10.0
RELAY_PRODUCER: dict[str, Any] = {
    # No local timeout: while the broker is away, records wait (and the slot holds the WAL)
    # instead of failing and leaving a gap.
    "message.timeout.ms": 0,
    "enable.gapless.guarantee": True,
    # Short: a longer linger fills the broker's batches but every hop of the saga waits for it,
    # for no scan throughput (docs/benchmarks.md).
    "linger.ms": 1,
    "batch.num.messages": 10_000,
    "queue.buffering.max.messages": MAX_IN_FLIGHT * 2,
    "socket.keepalive.enable": True,
}


def load_registries(specs: Iterable[str]) -> dict[str, EventRegistry]:
    """``aggregate=module:attribute`` → the :class:`EventRegistry` each owner hands the relay
    (``scan=pipelines.scan.events:registry``); the relay imports no owner by name."""
    registries: dict[str, EventRegistry] = {}
    for spec in specs:
        aggregate, sep, ref = spec.partition("=")
        module_name, colon, attribute = ref.partition(":")
        if not (sep and colon and aggregate and module_name and attribute):
            raise SystemExit(f"--events {spec!r}: expected aggregate=module:attribute")
        registry = getattr(importlib.import_module(module_name), attribute)
        if not isinstance(registry, EventRegistry):
            raise SystemExit(f"--events {spec!r}: {ref} is not an EventRegistry")
        registries[aggregate] = registry
    return registries


def resolve_databases(settings: Settings, databases: Iterable[str]) -> list[str]:
    """Domain names (``scan``) become database names (``eco2_scan``); others are taken as-is."""
    return [settings.database_name(d) if d in DOMAIN_DATABASES else d for d in databases]


class KafkaSink:
    """The relay's idempotent producer; creates each topic the first time it is used."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = Producer(producer_config(settings, **RELAY_PRODUCER))
        self._topics: set[str] = set()
        self._tracing = telemetry.records_spans()

    def ensure_topic(self, topic: str) -> None:
        if ensure_topics(self.settings, [topic]):
            log.warning("cdc topic not created; relying on auto-creation", topic=topic)
        self._topics.add(topic)

    def produce(self, record: OutboxRecord, on_delivery: DeliveryCallback) -> None:
        if record.topic not in self._topics:
            self.ensure_topic(record.topic)
        if self._tracing:
            record, on_delivery = _traced(record, on_delivery)
        while True:
            try:
                self.producer.produce(
                    record.topic,
                    record.value,
                    record.key,
                    headers=cast(Any, record.headers),
                    on_delivery=on_delivery,
                )
                return
            except BufferError:
                self.producer.poll(0.05)  # local queue full: wait for acknowledgements

    def flush(self, timeout: float) -> int:
        remaining: int = self.producer.flush(timeout)
        return remaining

    def in_flight(self) -> int:
        return len(self.producer)


def _traced(
    record: OutboxRecord, on_delivery: DeliveryCallback
) -> tuple[OutboxRecord, DeliveryCallback]:
    """An event that carries a trace gets a publish span under it, from the hand-over to the
    producer to Kafka's acknowledgement; its message carries that span's traceparent, so the
    consumers' spans hang under the publish. Events without a sampled trace cost nothing here
    (nor does any event in a process that records no spans: :class:`KafkaSink`)."""
    parent = next((v for k, v in record.headers if k == H_TRACEPARENT), None)
    if parent is None or not telemetry.sampled(parent):
        return record, on_delivery
    span = _tracer.start_span(
        f"publish {record.topic}",
        context=telemetry.extract(parent.decode()),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": record.topic,
            "messaging.message.id": record.event_id,
            "messaging.kafka.message.key": record.key.decode(errors="replace"),
        },
    )
    if not span.is_recording():
        span.end()
        return record, on_delivery
    with trace.use_span(span, end_on_exit=False):
        traceparent = telemetry.inject()
    headers = [(k, v) for k, v in record.headers if k != H_TRACEPARENT]
    if traceparent:
        headers.append((H_TRACEPARENT, traceparent.encode()))

    def delivered(err: Any, message: Any) -> None:
        if err is not None:
            span.set_status(Status(StatusCode.ERROR, str(err)))
        span.end()
        on_delivery(err, message)

    return dataclasses.replace(record, headers=headers), delivered


class Relay:
    """One producer, one :class:`DatabaseStream` per database, one thread (this one)."""

    def __init__(
        self,
        settings: Settings,
        databases: list[str],
        registries: Mapping[str, EventRegistry] | None = None,
        *,
        snapshot: bool = True,
        on_ack: Callable[[str], None] | None = None,
    ) -> None:
        if settings.db.url is None:
            raise ValueError("no database configured: set ECO2_DB__URL or run `eco2 up`")
        self.settings = settings
        self.registries = dict(registries or {})
        self.sink = KafkaSink(settings)
        self._fatal: Any = None
        self.streams = [
            DatabaseStream(
                db,
                database_dsn(settings.db.url, db),
                self.registries,
                self.sink,
                snapshot=snapshot,
                hold_s=settings.kafka.replay_window_s,
                on_ack=on_ack,
                on_fatal=self._on_fatal,
            )
            for db in databases
        ]
        self._status_at = 0.0

    def _on_fatal(self, err: Any) -> None:
        self._fatal = err

    def _restart_producer(self) -> None:
        log.error("cdc producer failed; restarting every stream", error=str(self._fatal))
        self._fatal = None
        for stream in self.streams:
            stream.fail("kafka producer fatal error")
        self.sink.producer.purge()
        self.sink = KafkaSink(self.settings)
        for stream in self.streams:
            stream.sink = self.sink

    def step(self) -> int:
        """One round: (re)connect due streams, read, deliver callbacks, confirm. Non-blocking."""
        now = time.monotonic()
        for stream in self.streams:
            if stream.due(now):
                stream.connect()
        if self._fatal is not None:
            self._restart_producer()
        worked = 0
        if self.sink.in_flight() < MAX_IN_FLIGHT:
            for stream in self.streams:
                worked += stream.pump(PUMP_BUDGET)
        self.sink.producer.poll(0)
        for stream in self.streams:
            stream.feedback(now)
        if now - self._status_at >= metrics.STATUS_EVERY_S:
            self._status_at = now
            metrics.write_status(self.settings, self.streams)
        return worked

    def wait(self) -> None:
        """Block until a socket is readable or it is time to poll for acknowledgements."""
        timeout = BUSY_WAIT_S if self.sink.in_flight() else IDLE_WAIT_S
        fds = [s.wal.fileno() for s in self.streams if s.wal is not None]
        if fds:
            select.select(fds, [], [], timeout)
        else:
            time.sleep(timeout)

    def run(self, stop: threading.Event) -> None:
        metrics.register(self)
        try:
            while not stop.is_set():
                if not self.step():
                    self.wait()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Deliver what is in flight, confirm what was acknowledged, disconnect."""
        deadline = time.monotonic() + SHUTDOWN_FLUSH_S
        while self.sink.in_flight() and time.monotonic() < deadline:
            self.sink.producer.poll(0.05)
        for stream in self.streams:
            stream.close()
        metrics.write_status(self.settings, self.streams)
        metrics.unregister(self)
        log.info("cdc relay stopped")


def run_relay(
    settings: Settings,
    databases: list[str],
    registries: Mapping[str, EventRegistry] | None = None,
    *,
    snapshot: bool = True,
) -> None:
    """Relay ``databases`` (database or domain names) until SIGTERM/SIGINT. Blocking."""
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    relay = Relay(settings, resolve_databases(settings, databases), registries, snapshot=snapshot)
    log.info("cdc relay starting", databases=[s.database for s in relay.streams])
    relay.run(stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cdc.relay", description=__doc__.split("\n")[0])
    parser.add_argument("databases", nargs="*", help="database or domain names (default: all)")
    parser.add_argument(
        "--events",
        action="append",
        default=[],
        metavar="AGGREGATE=MODULE:REGISTRY",
        help="validate this aggregate type's events against the owner's registry (repeatable); "
        "others are relayed unchecked",
    )
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="do not publish existing rows when creating a slot",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    configure("cdc-relay", settings.telemetry)
    run_relay(
        settings,
        args.databases or list(DOMAIN_DATABASES),
        load_registries(args.events),
        snapshot=not args.no_snapshot,
    )


if __name__ == "__main__":
    main()
