"""The idempotent consumer runtime: Kafka outbox topics → a handler inside a database transaction.

Delivery guarantees:

* **effects exactly once** — ``handler(envelope, conn)`` runs inside an asyncpg transaction on
  the consumer's own database together with the inbox row ``(consumer, event_id)``; an event the
  inbox already holds is skipped, so redelivery (after a crash, a rebalance, a relay duplicate or a
  DLQ replay of an event that did get applied) changes nothing. The inbox rows of a batch are
  one statement; a handler with ``apply_batch(conn, envelopes)``
  (:func:`cdc.consumers.apply.batch_handler`) gets the batch's new events in one call, so it
  can write their effects in one statement too;
* **offsets after the database** — a batch's offsets are stored only after its transaction
  committed and its dead letters were acknowledged, and the client commits what is stored every
  ``COMMIT_EVERY_MS`` and on close (librdkafka's auto-commit of stored offsets); a crash
  redelivers what was applied since the last commit, which the inbox skips;
* **order per partition** — messages are applied in partition order, one batch at a time;
* **failures** — infrastructure errors (database/network) are retried without limit; handler
  errors are retried with exponential backoff up to ``RetryPolicy.max_attempts`` (permanent ones,
  e.g. ``retriable=False``, at once) and then published to ``<topic>.dlq`` with the error in
  headers; processing continues with the next message. Each application has a deadline
  (``ConsumerSpec.timeout_s``): one that overruns is rolled back and counts as a failed
  attempt. When a batch fails, its events are applied again one per transaction (a batch
  handler gets a batch of one), so a poison event is dead-lettered alone. A dead-lettered
  event gets no inbox row, so ``eco2 cdc dlq replay`` can deliver it again after the fix.

Several consumers of one process share one Kafka consumer (a *feed*, :func:`feeds`): each fetch
of the embedded broker costs it work for every stored batch of each partition fetched, so twelve
consumers each fetching every 50 ms cost the broker twice what three feeds do. The guarantees
above hold per consumer within a feed: each applies the messages of its topics and event types
through its own inbox, retries and dead-letters on its own, and the feed stores a batch's offsets
once every consumer is done with it. What they share is progress: a consumer that waits (on its
database, or retrying) holds its feed-mates back, so a feed only joins consumers of one store kind.
A feed of several consumers is its own Kafka group (:func:`group_of`); when its members change it
is a new group, which starts each partition where its members' own groups left it (so consumers
moving into a feed skip nothing and redo nothing), or from the start when one of them is new
there; the inboxes skip what was applied, but an event dead-lettered since its members' own
groups last committed is tried again (and dead-lettered again if it still fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import time
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import asyncpg
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError

from cdc.consumers.apply import Failure, Handler, apply_batch, classify
from cdc.consumers.inbox import PostgresStore, Store
from cdc.outbox import (
    H_EVENT_TYPE,
    OutboxRecord,
    dead_letter,
    envelope_from_message,
    header_map,
    normalize_headers,
)
from eco2 import telemetry
from eco2.db import domain_dsn
from eco2.errors import Eco2Error
from eco2.events import EventEnvelope
from eco2.kafka import consumer_config, ensure_topics, producer_config
from eco2.migrations import database_dsn
from eco2.settings import DOMAIN_DATABASES, Settings
from eco2.telemetry import get_logger

log = get_logger(__name__)
_tracer = telemetry.tracer(__name__)
_running: set[ConsumerRuntime] = set()


def _observe_lag(_options: CallbackOptions) -> Iterable[Observation]:
    for runtime in list(_running):
        for member in runtime.members:
            try:
                yield Observation(runtime.lag(member.spec.topics), {"group": member.spec.name})
            except (KafkaException, RuntimeError):  # closing, or not assigned yet
                continue


telemetry.meter(__name__).create_observable_gauge(
    "eco2.consumer.lag",
    callbacks=[_observe_lag],
    description="Messages a consumer's process has not consumed yet, by consumer (its inbox "
    "name, which is its Kafka group unless it shares a feed).",
)
_events_handled = telemetry.meter(__name__).create_counter(
    "eco2.consumer.events",
    description="Events a consumer group handled, by event type and outcome: applied, "
    "duplicate (the inbox had it), dead_lettered.",
)

POLL_S = 0.5
COMMIT_EVERY_MS = 1000
"""How often a feed's client commits the offsets stored after each batch. A synchronous commit
per batch was a request to the broker and a thread hop per batch (docs/benchmarks.md)."""
DLQ_ACK_TIMEOUT_S = 30.0
WHOLE_CHECK_S = 5.0
"""How often a consumer that rebuilds lost state asks its store whether the state is whole."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    backoff_s: float = 0.1
    max_backoff_s: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer: its group/inbox name, input topics, own database and handler.

    ``reset`` clears the consumer's read model before a rebuild; ``sources`` are the databases
    (domain or database names) whose event stores a rebuild reads.
    """

    name: str
    topics: tuple[str, ...]
    database: str
    handler: Handler
    reset: Callable[[Any], Awaitable[None]] | None = None
    sources: tuple[str, ...] = DOMAIN_DATABASES
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float | None = None
    """Deadline of one application (a batch, or one event); ``None``: the settings'
    ``services.reaction_timeout_s``. Past it the transaction is rolled back and the step
    counts as a failed attempt (retried with backoff, then dead-lettered)."""
    event_types: frozenset[str] | None = None
    """The event types the handler reacts to (``None``: all). Others are skipped before they
    are decoded or recorded in the inbox; their offsets are committed all the same."""
    fetch_wait_ms: int | None = None
    """Longest wait of one fetch (``None``: ``settings.kafka.fetch_wait_max_ms``). The embedded
    broker answers each fetch only when its wait is over and lists every stored batch of a
    partition it has news for, so a consumer off the latency-critical path asks less often."""
    target: Literal["postgres", "valkey"] = "postgres"
    """Where the effects and the inbox live: the consumer's own ``database``, or the read-model
    Valkey (``settings.cache.url``; ``database`` is then unused)."""
    rebuild_when_lost: bool = False
    """Rebuild the state from the event stores when the store lost it (a Valkey that restarted
    without its data, see :meth:`Store.whole`) before consuming on: the live read models."""


def database_of(settings: Settings, name: str) -> str:
    return settings.database_name(name) if name in DOMAIN_DATABASES else name


def event_type_of(message: Message) -> str | None:
    """The ``eventType`` header of an outbox message, without decoding the rest."""
    headers = cast(list[tuple[str, bytes | str | None]], message.headers() or [])
    for key, value in headers:
        if key == H_EVENT_TYPE:
            return value.decode() if isinstance(value, bytes) else value
    return None


def dsn_of(settings: Settings, name: str) -> str:
    """DSN of a domain's database as its own role, or of another database (tests, benchmarks)."""
    if name in DOMAIN_DATABASES:
        return domain_dsn(settings, name)
    if settings.db.url is None:
        raise ValueError("no database configured: set ECO2_DB__URL or run `eco2 up`")
    return database_dsn(settings.db.url, name)


class StepTimedOut(Eco2Error):
    """A reaction overran its deadline: rolled back, retried with backoff, then dead-lettered
    (unlike a database or network error, which is retried without limit)."""

    code = "step_timed_out"
    retriable = True


class _Stopping(Exception):
    """Raised out of an endless infrastructure retry when the runtime is asked to stop."""


@dataclass
class ConsumerStats:
    applied: int = 0
    messages: int = 0
    dead_lettered: int = 0
    batches: int = 0
    skipped: int = 0
    """Messages of event types the consumer does not handle (not decoded, no inbox row)."""


def group_of(specs: Sequence[ConsumerSpec]) -> str:
    """The Kafka group of a feed: a lone consumer's own name (as before feeds shared), else a
    name derived from its members, so another set of members is another group."""
    if len(specs) == 1:
        return specs[0].name
    names = ",".join(sorted(spec.name for spec in specs))
    return f"feed.{hashlib.blake2s(names.encode(), digest_size=6).hexdigest()}"


def feeds(specs: Iterable[ConsumerSpec]) -> list[list[ConsumerSpec]]:
    """``specs`` in the groups that share one Kafka consumer: those of one store kind (a stalled
    PostgreSQL or Valkey then holds back only its own consumers) and one fetch wait."""
    shared: dict[tuple[str, int | None], list[ConsumerSpec]] = {}
    for spec in specs:
        shared.setdefault((spec.target, spec.fetch_wait_ms), []).append(spec)
    return list(shared.values())


class Delivered:
    """A consumed message as a feed's members read it: its topic and event type read once, its
    envelope decoded once (immutable, so members share it), by the first member that wants it."""

    __slots__ = ("_envelope", "event_type", "message", "topic")

    def __init__(self, message: Message) -> None:
        self.message = message
        self.topic = cast(str, message.topic())
        self.event_type = event_type_of(message)
        self._envelope: EventEnvelope | ValueError | None = None

    def envelope(self) -> EventEnvelope:
        """The event, or ``ValueError`` if the message is not an outbox event."""
        if self._envelope is None:
            message = self.message
            try:
                self._envelope = envelope_from_message(
                    message.key(), message.value(), message.headers()
                )
            except ValueError as exc:
                self._envelope = exc
        if isinstance(self._envelope, ValueError):
            raise self._envelope
        return self._envelope


class Member:
    """One consumer in a feed: it applies the messages of its topics and event types in each
    batch the feed took, through its own store, and dead-letters what fails. It commits nothing:
    the feed stores the batch's offsets once every member is done with it."""

    def __init__(
        self, spec: ConsumerSpec, settings: Settings, store: Store, producer: Producer
    ) -> None:
        self.spec, self.settings, self.store, self.producer = spec, settings, store, producer
        self.timeout_s = spec.timeout_s or settings.services.reaction_timeout_s
        self.stats = ConsumerStats()
        self._whole_until = 0.0
        self._tracing = telemetry.records_spans()
        """Settled at start (:func:`eco2.telemetry.configure`): a process that records no
        spans, or an event whose trace is not sampled, costs no span here."""

    async def whole(self) -> bool:
        """Whether the consumer's state is whole, rebuilding it first when its store lost it
        (asked every :data:`WHOLE_CHECK_S`). Nothing is consumed meanwhile: an event applied
        during the rebuild's reset could be recorded in the inbox and its effect wiped."""
        if not self.spec.rebuild_when_lost or time.monotonic() < self._whole_until:
            return True
        from cdc.consumers.rebuild import rebuild  # the rebuild reads specs of this module

        try:
            if not await self.store.whole(self.spec.name):
                log.warning("consumer state lost: rebuilding it", consumer=self.spec.name)
                await rebuild(self.spec, self.settings, self.store)
        except (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("consumer state not checked", consumer=self.spec.name, error=str(exc))
            return False
        self._whole_until = time.monotonic() + WHOLE_CHECK_S
        return True

    async def process(self, batch: Sequence[Delivered], stop: asyncio.Event) -> None:
        """Apply this consumer's share of one consumed batch; dead-letter what fails (the
        letters are produced, not yet acknowledged: the feed waits for them)."""
        items: list[tuple[Message, EventEnvelope | None, Exception | None]] = []
        topics, wanted, skipped = self.spec.topics, self.spec.event_types, 0
        for delivered in batch:
            if delivered.topic not in topics:
                continue
            if wanted is not None and delivered.event_type not in wanted:
                skipped += 1
                continue
            try:
                items.append((delivered.message, delivered.envelope(), None))
            except ValueError as exc:
                items.append((delivered.message, None, exc))
        self.stats.skipped += skipped
        if not items:
            return
        self.stats.messages += len(items)
        self.stats.batches += 1
        envelopes = [env for _m, env, _e in items if env is not None]
        if len(envelopes) == len(items):
            try:
                self.stats.applied += await self._apply(envelopes)
                return
            except Exception as exc:  # fall back to one message per transaction
                log.info(
                    "batch failed; applying one by one", consumer=self.spec.name, error=str(exc)
                )
        for message, maybe, error in items:
            if maybe is None:
                self._dead_letter(message, "undecodable", error or ValueError("?"), 1)
            else:
                await self._apply_one(message, maybe, stop)

    async def _apply(self, envelopes: list[EventEnvelope]) -> int:
        """Apply ``envelopes`` in one transaction, within the step's deadline; each event that
        carries a trace gets this consumer's span in it (the batch's time, inbox hit or miss)."""
        started, applied = time.time_ns(), set[str]()
        try:
            count = await asyncio.wait_for(
                apply_batch(self.store, self.spec.name, envelopes, self.spec.handler, applied),
                self.timeout_s,
            )
        except TimeoutError as exc:
            raise StepTimedOut(
                f"{self.spec.name}: {len(envelopes)} event(s) not applied within "
                f"{self.timeout_s:g} s; rolled back"
            ) from exc
        self._trace(envelopes, applied, started)
        return count

    def _trace(self, envelopes: list[EventEnvelope], applied: set[str], started: int) -> None:
        ended, counted = time.time_ns(), Counter[tuple[str, str]]()
        for envelope in envelopes:
            outcome = "applied" if str(envelope.event_id) in applied else "duplicate"
            counted[(envelope.event_type, outcome)] += 1
            parent = envelope.metadata.traceparent
            if not self._tracing or parent is None or not telemetry.sampled(parent):
                continue
            span = _tracer.start_span(
                f"consume {self.spec.name}",
                context=telemetry.extract(parent),
                kind=SpanKind.CONSUMER,
                start_time=started,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "process",
                    "messaging.consumer.group.name": self.spec.name,
                    "messaging.message.id": str(envelope.event_id),
                    "eco2.event_type": envelope.event_type,
                    "eco2.aggregate_id": envelope.aggregate_id,
                    "eco2.inbox": "miss" if outcome == "applied" else "hit",
                    "eco2.batch_size": len(envelopes),
                },
            )
            span.end(end_time=ended)
        for (event_type, outcome), count in counted.items():
            _events_handled.add(
                count, {"group": self.spec.name, "event_type": event_type, "outcome": outcome}
            )

    async def _apply_one(
        self, message: Message, envelope: EventEnvelope, stop: asyncio.Event
    ) -> None:
        """Apply one event until it is applied or dead-lettered. The two counters stay
        hand-written (not tenacity): an infrastructure failure retries without limit and does
        not count against the handler's attempts that lead to the dead-letter topic."""
        attempt, infra_attempt = 0, 0
        while True:
            try:
                self.stats.applied += await self._apply([envelope])
                return
            except Exception as exc:
                kind = classify(exc)
                if kind is Failure.INFRASTRUCTURE:
                    infra_attempt += 1
                    if stop.is_set():
                        raise _Stopping from exc
                    await asyncio.sleep(self.spec.retry.delay(infra_attempt))
                    continue
                attempt += 1
                if kind is Failure.PERMANENT or attempt >= self.spec.retry.max_attempts:
                    self._dead_letter(message, f"handler_{kind.value}", exc, attempt)
                    return
                await asyncio.sleep(self.spec.retry.delay(attempt))

    def _dead_letter(
        self, message: Message, reason: str, exc: BaseException, attempts: int
    ) -> None:
        headers = normalize_headers(message.headers())
        record = OutboxRecord(
            cast(str, message.topic()),
            message.key() or b"",
            message.value() or b"",
            headers,
            header_map(headers).get("id", ""),
        )
        error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        letter = dead_letter(
            record, reason=reason, error=error, source=self.spec.name, attempts=attempts
        )
        self.producer.produce(
            letter.topic, letter.value, letter.key, headers=cast(Any, letter.headers)
        )
        self.stats.dead_lettered += 1
        event_type = header_map(headers).get("eventType", "unknown")
        _events_handled.add(
            1, {"group": self.spec.name, "event_type": event_type, "outcome": "dead_lettered"}
        )
        log.warning(
            "event dead-lettered",
            consumer=self.spec.name,
            topic=letter.topic,
            event_id=letter.event_id,
            reason=reason,
            attempts=attempts,
        )


class ConsumerRuntime:
    """A feed: one Kafka consumer, in group :func:`group_of` its members, takes batches of
    their topics; each member applies its share through its own store, then the batch's
    offsets are stored, for the client to commit (``COMMIT_EVERY_MS``)."""

    def __init__(
        self,
        members: Sequence[tuple[ConsumerSpec, Store]],
        settings: Settings,
        *,
        batch_size: int = 500,
        kafka: dict[str, Any] | None = None,
    ) -> None:
        specs = [spec for spec, _store in members]
        waits = {spec.fetch_wait_ms for spec in specs}
        if not specs or len(waits) > 1:
            raise ValueError(
                f"a feed needs consumers of one fetch wait, got {sorted(map(str, waits))}"
            )
        self.group, self.batch_size, self.settings = group_of(specs), batch_size, settings
        self.topics = sorted({topic for spec in specs for topic in spec.topics})
        wait = waits.pop()
        tuning: dict[str, Any] = {
            "enable.auto.commit": True,
            "enable.auto.offset.store": False,  # stored by _store_offsets, after the database
            "auto.commit.interval.ms": COMMIT_EVERY_MS,
        }
        if wait is not None:
            tuning["fetch.wait.max.ms"] = wait
        self.consumer = Consumer(
            consumer_config(settings, self.group, **{**tuning, **(kafka or {})})
        )
        self.producer = Producer(producer_config(settings))
        """The dead-letter producer, one for the feed's members."""
        self.members = [Member(spec, settings, store, self.producer) for spec, store in members]
        self._stop = asyncio.Event()
        self.partitions: frozenset[tuple[str, int]] = frozenset()
        """What the group gave this consumer, kept from the rebalance callbacks (which run on
        the consuming thread), so the lag gauge does not ask the client (``assignment()``, a
        request to librdkafka's group thread) on every scrape."""
        self.positions: dict[tuple[str, int], int] = {}
        """The next offset to consume per partition (librdkafka's position), kept as batches
        are taken, for the same reason."""
        self._marks: dict[tuple[str, int], tuple[int, int]] = {}
        self._in_consume = False
        """While the consuming thread waits in ``consume``, any other call on the client
        blocks until that returns (and the next ``consume`` may win again): the lag gauge then
        reads the watermarks noted after the last ``consume`` instead (at most
        ``POLL_S`` old); while a batch is applied, it asks the client, which answers at once."""

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set; the batch in progress finishes first."""
        self._stop = stop or self._stop
        missing = await asyncio.to_thread(ensure_topics, self.settings, self.topics)
        if missing:
            log.warning("topics not created; waiting for them to appear", topics=missing)
        self.consumer.subscribe(
            self.topics, on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._revoked
        )
        log.info(
            "consumer feed starting",
            group=self.group,
            consumers=[member.spec.name for member in self.members],
        )
        _running.add(self)
        try:
            while not self._stop.is_set():
                if not all([await member.whole() for member in self.members]):
                    await asyncio.sleep(WHOLE_CHECK_S)
                    continue
                messages = await asyncio.to_thread(self._next_batch)
                if messages:
                    await self.process(messages)
        except _Stopping:
            pass
        finally:
            _running.discard(self)
            await asyncio.to_thread(self.consumer.close)
            self.producer.flush(5)

    async def process(self, messages: Sequence[Message]) -> None:
        """Let every member apply its share of one batch, wait for the dead letters, then
        store the batch's offsets for the next commit."""
        batch: list[Delivered] = []
        for message in messages:
            err = message.error()
            if err is None:
                batch.append(Delivered(message))
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("kafka consume error", group=self.group, error=str(err))
        # Every member finishes its share, whatever another's fate (a feed-mate's failure does
        # not cancel a transaction or a retry in progress); one failure leaves the batch
        # unstored, to be delivered again, and ends the feed as it ended a lone consumer.
        outcomes = await asyncio.gather(
            *(member.process(batch, self._stop) for member in self.members),
            return_exceptions=True,
        )
        failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if failures:
            raise next((f for f in failures if not isinstance(f, _Stopping)), failures[0])
        if len(self.producer) and self.producer.flush(DLQ_ACK_TIMEOUT_S):  # letters waiting
            raise RuntimeError("dead letters not acknowledged by Kafka; not committing offsets")
        self._store_offsets(messages)

    def lag(self, topics: Iterable[str] | None = None) -> int:
        """Messages of the assigned partitions (of ``topics``, default all) not consumed yet:
        the client's cached high watermarks (no broker round trip) less the positions kept as
        batches are taken (the low watermark for a partition nothing was taken from yet)."""
        wanted = None if topics is None else set(topics)
        partitions = [tp for tp in self.partitions if wanted is None or tp[0] in wanted]
        positions = dict(self.positions)
        marks = dict(self._marks) if self._in_consume else self._watermarks(partitions)
        behind = 0
        for tp in partitions:
            low, high = marks.get(tp, (0, 0))
            behind += max(0, high - positions.get(tp, low))
        return behind

    def _watermarks(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        marks: dict[tuple[str, int], tuple[int, int]] = {}
        for topic, number in partitions:
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(topic, number), cached=True
            )
            marks[(topic, number)] = (max(low, 0), max(high, 0))
        return marks

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.partitions |= {(p.topic, p.partition) for p in partitions}
        if len(self.members) > 1:
            try:
                starts = self._members_offsets(consumer, partitions)
            except KafkaException as exc:  # from the start, then: the inboxes skip what was applied
                log.warning("members' offsets not read", group=self.group, error=str(exc))
                return
            if starts:
                consumer.assign(
                    [
                        TopicPartition(
                            p.topic, p.partition, starts.get((p.topic, p.partition), p.offset)
                        )
                        for p in partitions
                    ]
                )

    def _members_offsets(
        self, consumer: Consumer, partitions: list[TopicPartition]
    ) -> dict[tuple[str, int], int]:
        """Where a feed whose group has not committed a partition yet starts it: where its
        members' own groups (the lone consumers they were) left it, the earliest of those, so
        moving consumers into a feed neither replays their history nor runs their dead-lettered
        events again. A partition one of them never committed on is read from its start (that
        consumer is new, it needs the history)."""
        fresh = [
            (p.topic, p.partition)
            for p in consumer.committed(partitions, timeout=10)
            if p.offset < 0
        ]
        seen: dict[tuple[str, int], list[int]] = {}
        for member in self.members:
            mine = [TopicPartition(t, n) for t, n in fresh if t in member.spec.topics]
            if not mine:
                continue
            probe = Consumer(consumer_config(self.settings, member.spec.name))  # never joins
            try:
                for tp in probe.committed(mine, timeout=10):
                    seen.setdefault((tp.topic, tp.partition), []).append(tp.offset)
            finally:
                probe.close()
        # A negative offset: that member never committed there, so the partition starts over.
        return {key: min(offsets) for key, offsets in seen.items() if min(offsets) >= 0}

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        gone = {(p.topic, p.partition) for p in partitions}
        self.partitions -= gone
        for tp in gone:
            self.positions.pop(tp, None)

    def _next_batch(self) -> list[Message]:
        """Wait up to ``POLL_S`` for one message, then take what is already fetched, up to
        ``batch_size``. (``consume(n, timeout)`` alone waits the whole timeout for ``n``
        messages, adding up to ``POLL_S`` of latency to every hop of a saga at light load.)"""
        self._in_consume = True
        try:
            first = self.consumer.consume(1, POLL_S)
            batch = (
                [*first, *self.consumer.consume(self.batch_size - 1, 0)]
                if first and self.batch_size > 1
                else first
            )
        finally:
            self._in_consume = False
        for message in batch:
            if message.error() is None:
                key = (cast(str, message.topic()), cast(int, message.partition()))
                self.positions[key] = cast(int, message.offset()) + 1
        # A client that cannot answer for a partition yet leaves the gauge its last marks.
        with contextlib.suppress(KafkaException, RuntimeError):
            self._marks = self._watermarks(self.partitions)
        return batch

    def _store_offsets(self, messages: Sequence[Message]) -> None:
        """Offsets past the batch, for the client's next commit: a local call, made between
        two ``consume`` calls (so it does not wait on one)."""
        last: dict[tuple[str, int], int] = {}
        for message in messages:
            if message.error() is None:
                key = (cast(str, message.topic()), cast(int, message.partition()))
                last[key] = max(last.get(key, -1), cast(int, message.offset()))
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        if not offsets:  # only partition ends or errors
            return
        try:
            self.consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:  # revoked meanwhile: redelivery is harmless (inbox)
            log.warning("offsets not stored", group=self.group, error=str(exc))


@asynccontextmanager
async def open_store(spec: ConsumerSpec, settings: Settings) -> AsyncIterator[Store]:
    """The inbox store ``spec`` writes to (its own database, or Valkey for read models)."""
    if spec.target == "valkey":
        from cdc.consumers.valkey_inbox import ValkeyStore
        from eco2.cache import connect

        client = connect(settings.cache.require(spec.name), decode_responses=True)
        try:
            yield ValkeyStore(client)
        finally:
            await client.aclose()
        return
    pool = await asyncpg.create_pool(dsn_of(settings, spec.database), min_size=1, max_size=2)
    try:
        yield PostgresStore(pool)
    finally:
        await pool.close()


async def run_consumers_async(
    specs: Sequence[ConsumerSpec], settings: Settings, stop: asyncio.Event | None = None
) -> None:
    """Run ``specs`` as one feed (see :func:`feeds` for which may share one) until ``stop``."""
    async with contextlib.AsyncExitStack() as stores:
        members = [
            (spec, await stores.enter_async_context(open_store(spec, settings))) for spec in specs
        ]
        await ConsumerRuntime(members, settings).run(stop)


def run_consumer(spec: ConsumerSpec, settings: Settings) -> None:
    """Run ``spec`` until SIGTERM/SIGINT (blocking)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_consumers_async([spec], settings, stop)

    asyncio.run(main())
