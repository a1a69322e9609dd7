"""The consumer runtime against real PostgreSQL and Kafka: kills mid-batch, duplicates, poison
events through the DLQ and back, the inbox contract on PostgreSQL, and rebuilds from event stores.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import asyncpg
import psycopg2
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from cdc.consumers.apply import Handler, batch_handler
from cdc.consumers.dlq import list_dlq, replay_dlq
from cdc.consumers.inbox import PostgresStore, Store
from cdc.consumers.rebuild import rebuild
from cdc.consumers.runtime import ConsumerRuntime, ConsumerSpec, RetryPolicy
from cdc.outbox import EVENT_COLUMNS, RowLayout, record_from_values
from eco2.events import EventEnvelope
from eco2.migrations import database_dsn
from tests.conftest import REPO, StackUrls
from tests.integration.test_cdc_relay import (
    create_database,
    drop_database,
    insert_event,
    new_id,
    settings_for,
)
from tests.unit.cdc.inbox_contract import InboxContract

pytestmark = pytest.mark.integration

EFFECTS_SQL = """
CREATE TABLE IF NOT EXISTS cdc_effects (
    seq bigserial PRIMARY KEY, event_id uuid NOT NULL, aggregate_id text NOT NULL, version int
);
CREATE TABLE IF NOT EXISTS cdc_fixes (fixed boolean)
"""


@pytest.fixture
def database(stack: StackUrls) -> Iterator[str]:
    name = f"cdct_{new_id()}_c"
    dsn = create_database(stack.db_url, name)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(EFFECTS_SQL)
    conn.close()
    yield name
    drop_database(stack.db_url, name)


async def record_effect(envelope: EventEnvelope, conn: Any) -> None:
    """The test handler: one effect row per application; poison fails until fixed."""
    if envelope.payload.get("poison") and not await conn.fetchval("SELECT count(*) FROM cdc_fixes"):
        raise RuntimeError("poisoned payload")
    if envelope.payload.get("slow"):
        await asyncio.sleep(0.002)
    await conn.execute(
        "INSERT INTO cdc_effects (event_id, aggregate_id, version) VALUES ($1, $2, $3)",
        envelope.event_id,
        envelope.aggregate_id,
        envelope.aggregate_version,
    )


@batch_handler
async def record_effects(conn: Any, envelopes: Sequence[EventEnvelope]) -> None:
    """``record_effect`` as a batch projector: all effect rows of a batch in one statement."""
    poisoned = any(e.payload.get("poison") for e in envelopes)
    if poisoned and not await conn.fetchval("SELECT count(*) FROM cdc_fixes"):
        raise RuntimeError("poisoned payload")
    await conn.execute(
        """
        INSERT INTO cdc_effects (event_id, aggregate_id, version)
        SELECT e, a, v
        FROM unnest($1::uuid[], $2::text[], $3::int[]) WITH ORDINALITY AS t(e, a, v, o)
        ORDER BY o
        """,
        [e.event_id for e in envelopes],
        [e.aggregate_id for e in envelopes],
        [e.aggregate_version for e in envelopes],
    )


HANDLERS = pytest.mark.parametrize(
    "handler", [record_effect, record_effects], ids=["per_event", "batch"]
)


def env_spec() -> ConsumerSpec:
    """The spec a consumer subprocess runs (``python -m cdc.cli consume <this>``)."""
    return ConsumerSpec(
        name=os.environ["CDC_TEST_GROUP"],
        topics=(os.environ["CDC_TEST_TOPIC"],),
        database=os.environ["CDC_TEST_DB"],
        handler=record_effect,
    )


def publish(
    bootstrap: str, topic: str, events: list[EventEnvelope], *, twice: bool = False
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    layout = RowLayout(EVENT_COLUMNS)
    for e in events:
        values = [
            str(e.event_id),
            e.aggregate_type,
            e.aggregate_id,
            str(e.aggregate_version),
            e.event_type,
            str(e.schema_version),
            json.dumps(e.payload),
            "{}",
            e.occurred_at.isoformat(),
        ]
        record = record_from_values(layout, [v.encode() for v in values], {})
        for _ in range(2 if twice else 1):
            producer.produce(topic, record.value, record.key, headers=cast(Any, record.headers))
    assert producer.flush(30) == 0


def events(
    aggregate_type: str, count: int, aggregates: int = 20, **payload: Any
) -> list[EventEnvelope]:
    versions: dict[str, int] = {}
    out = []
    for n in range(count):
        aggregate = f"a{n % aggregates}"
        versions[aggregate] = versions.get(aggregate, 0) + 1
        out.append(
            EventEnvelope(
                event_type="Tested",
                aggregate_type=aggregate_type,
                aggregate_id=aggregate,
                aggregate_version=versions[aggregate],
                payload={"n": n, **payload},
            )
        )
    return out


async def effects(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch("SELECT * FROM cdc_effects ORDER BY seq"))
    finally:
        await conn.close()


def assert_exactly_once_in_order(rows: list[asyncpg.Record], sent: list[EventEnvelope]) -> None:
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)) == len(sent)
    by_aggregate: dict[str, list[int]] = {}
    for r in rows:
        by_aggregate.setdefault(r["aggregate_id"], []).append(r["version"])
    assert all(v == sorted(v) for v in by_aggregate.values())


async def wait_for(predicate: Any, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_consumer_killed_mid_batch_applies_each_effect_once(
    stack: StackUrls, database: str, tmp_path: Path
) -> None:
    topic, group = f"cdct.kill.{new_id()}", f"cdct-kill-{new_id()}"
    sent = events("kill", 2000, slow=True)
    publish(stack.kafka_bootstrap, topic, sent)
    env = {
        **os.environ,
        **stack.env,
        "ECO2_RUN_DIR": str(tmp_path),
        "CDC_TEST_TOPIC": topic,
        "CDC_TEST_GROUP": group,
        "CDC_TEST_DB": database,
    }
    argv = [
        sys.executable,
        "-m",
        "cdc.cli",
        "consume",
        "tests.integration.test_cdc_consumer:env_spec",
    ]
    dsn = database_dsn(stack.db_url, database)
    rng = random.Random(11)
    log = open(tmp_path / "consumer.log", "ab")  # noqa: SIM115
    for _ in range(3):
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=log)
        before = len(asyncio.run(effects(dsn)))
        deadline = time.monotonic() + 60
        while len(asyncio.run(effects(dsn))) == before and time.monotonic() < deadline:
            time.sleep(0.1)  # killed while applying, not while joining the group
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=log)
    try:

        async def all_applied() -> bool:
            return len(await effects(dsn)) >= len(sent)

        asyncio.run(wait_for(all_applied, 120))
        time.sleep(1.0)  # anything applied twice would show up now
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert_exactly_once_in_order(asyncio.run(effects(dsn)), sent)


@pytest.fixture
async def runtime_factory(stack: StackUrls, database: str) -> AsyncIterator[Any]:
    dsn = database_dsn(stack.db_url, database)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    tasks: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(
        topic: str,
        group: str,
        handler: Handler = record_effect,
        event_types: frozenset[str] | None = None,
        timeout_s: float | None = None,
    ) -> ConsumerRuntime:
        spec = ConsumerSpec(
            name=group,
            topics=(topic,),
            database=database,
            handler=handler,
            retry=RetryPolicy(max_attempts=3, backoff_s=0.01),
            event_types=event_types,
            timeout_s=timeout_s,
        )
        halt = asyncio.Event()
        runtime = ConsumerRuntime([(spec, PostgresStore(pool))], settings)
        tasks.append((halt, asyncio.create_task(runtime.run(halt))))
        return runtime

    yield start
    for halt, task in tasks:
        halt.set()
        await task
    await pool.close()


async def test_event_types_a_consumer_does_not_handle_are_skipped_without_an_inbox_row(
    stack: StackUrls, database: str, runtime_factory: Any
) -> None:
    topic, dsn = f"cdct.types.{new_id()}", database_dsn(stack.db_url, database)
    group = f"cdct-types-{new_id()}"
    sent = events("types", 40)
    wanted = [e for i, e in enumerate(sent) if i % 4 == 0]
    mixed = [
        e if i % 4 == 0 else e.model_copy(update={"event_type": "Other"})
        for i, e in enumerate(sent)
    ]
    publish(stack.kafka_bootstrap, topic, mixed)
    runtime_factory(topic, group, record_effect, frozenset({"Tested"}))

    async def settled() -> bool:
        return len(await effects(dsn)) >= len(wanted)

    await wait_for(settled)
    await asyncio.sleep(1)
    assert_exactly_once_in_order(await effects(dsn), wanted)
    conn = await asyncpg.connect(dsn)
    try:
        inbox = await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", group)
    finally:
        await conn.close()
    assert inbox == len(wanted)


async def test_lag_counts_what_arrived_while_a_batch_is_held_then_falls_to_zero(
    stack: StackUrls, database: str, runtime_factory: Any
) -> None:
    topic, dsn = f"cdct.lag.{new_id()}", database_dsn(stack.db_url, database)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold_first(envelope: EventEnvelope, conn: Any) -> None:
        if not held.is_set():
            held.set()
            await release.wait()
        await record_effect(envelope, conn)

    first, later = events("lag", 1), events("lag-later", 20)
    publish(stack.kafka_bootstrap, topic, first)
    runtime = runtime_factory(topic, f"cdct-lag-{new_id()}", hold_first, timeout_s=60)
    await asyncio.wait_for(held.wait(), 60)
    assert runtime.partitions  # kept from the rebalance callback
    publish(stack.kafka_bootstrap, topic, later)  # fetched in the background, not consumed

    async def counted() -> bool:
        return bool(runtime.lag() == len(later))

    await wait_for(counted)
    release.set()

    async def settled() -> bool:
        return len(await effects(dsn)) == len(first) + len(later) and runtime.lag() == 0

    await wait_for(settled)


class AskedOf:
    """The group consumer, recording what another thread asked it while it waited in
    ``consume`` (such a call blocks until ``consume`` returns)."""

    ASKS = frozenset({"position", "get_watermark_offsets", "assignment", "committed"})

    def __init__(self, consumer: Any) -> None:
        self._consumer, self.blocked = consumer, list[str]()
        self._consuming: int | None = None

    def consume(self, *args: Any) -> Any:
        self._consuming = threading.get_ident()
        try:
            return self._consumer.consume(*args)
        finally:
            self._consuming = None

    def __getattr__(self, name: str) -> Any:
        consuming = self._consuming
        if name in self.ASKS and consuming not in (None, threading.get_ident()):
            self.blocked.append(name)
        return getattr(self._consumer, name)


async def test_the_lag_is_read_without_waiting_on_a_consumer_in_consume(
    stack: StackUrls, database: str, runtime_factory: Any
) -> None:
    """Asking an idle consumer's client for its watermarks from another thread waits until
    its ``consume`` returns (one scrape of the domain host took ~6 s): the gauge reads what
    the consuming thread noted after its last ``consume`` instead."""
    topic = f"cdct.lagread.{new_id()}"
    publish(stack.kafka_bootstrap, topic, events("lagread", 3))
    runtime = runtime_factory(topic, f"cdct-lagread-{new_id()}")
    spy = AskedOf(runtime.consumer)
    runtime.consumer = spy

    async def caught_up() -> bool:
        return (
            runtime.members[0].stats.applied == 3 and int(await asyncio.to_thread(runtime.lag)) == 0
        )

    await wait_for(caught_up)
    for _ in range(20):  # the gauge's scrapes while the consumer idles in consume
        assert await asyncio.to_thread(runtime.lag) == 0
        await asyncio.sleep(0.05)
    assert spy.blocked == []
    assert sum(runtime.positions.values()) == 3  # the next offsets of the partitions read


@HANDLERS
async def test_duplicate_delivery_reaches_the_same_end_state(
    stack: StackUrls, database: str, runtime_factory: Any, handler: Handler
) -> None:
    topic, dsn = f"cdct.dup.{new_id()}", database_dsn(stack.db_url, database)
    sent = events("dup", 50)
    publish(stack.kafka_bootstrap, topic, sent, twice=True)
    runtime_factory(topic, f"cdct-dup-{new_id()}", handler)

    async def settled() -> bool:
        return len(await effects(dsn)) >= len(sent)

    await wait_for(settled)
    first = [(r["event_id"], r["version"]) for r in await effects(dsn)]
    publish(stack.kafka_bootstrap, topic, sent)  # the whole stream once more
    await asyncio.sleep(3)
    assert [(r["event_id"], r["version"]) for r in await effects(dsn)] == first
    assert_exactly_once_in_order(await effects(dsn), sent)


@HANDLERS
async def test_poison_event_goes_to_dlq_and_replay_delivers_it_after_the_fix(
    stack: StackUrls, database: str, runtime_factory: Any, handler: Handler
) -> None:
    """A poison event fails its batch; applied one by one, it alone is dead-lettered."""
    topic, dsn = f"cdct.poison.{new_id()}", database_dsn(stack.db_url, database)
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    before, after = events("p", 3), events("p", 1, poison=True)
    poison = after[0].model_copy(update={"aggregate_id": "poisoned"})
    later = events("q", 3)
    publish(stack.kafka_bootstrap, topic, [*before, poison, *later])
    runtime_factory(topic, f"cdct-poison-{new_id()}", handler)

    async def others_applied() -> bool:
        return len(await effects(dsn)) >= 6

    await wait_for(others_applied)  # processing went on past the poison event

    async def dead_lettered() -> bool:  # its dead letter is acknowledged asynchronously
        return bool(await asyncio.to_thread(list_dlq, settings, topic))

    await wait_for(dead_lettered)
    letters = await asyncio.to_thread(list_dlq, settings, topic)
    assert [(e.event_id, e.reason, e.attempts) for e in letters] == [
        (str(poison.event_id), "handler_retriable", 3)
    ]
    assert "poisoned payload" in letters[0].error
    conn = await asyncpg.connect(dsn)
    await conn.execute("INSERT INTO cdc_fixes VALUES (true)")  # the fix
    await conn.close()
    assert await asyncio.to_thread(replay_dlq, settings, topic) == 1

    async def poison_applied() -> bool:
        return any(r["event_id"] == poison.event_id for r in await effects(dsn))

    await wait_for(poison_applied)
    assert await asyncio.to_thread(replay_dlq, settings, topic) == 0  # nothing left to replay


async def test_a_step_that_overruns_its_deadline_is_rolled_back_retried_and_dead_lettered(
    stack: StackUrls, database: str, runtime_factory: Any
) -> None:
    topic, dsn = f"cdct.slow.{new_id()}", database_dsn(stack.db_url, database)
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    slow, quick = events("slow", 1, slow=True)[0], events("quick", 2)

    async def sometimes_slow(envelope: EventEnvelope, conn: Any) -> None:
        await record_effect(envelope, conn)  # written, then rolled back when the deadline hits
        if envelope.payload.get("slow"):
            await asyncio.sleep(5)

    publish(stack.kafka_bootstrap, topic, [slow, *quick])
    runtime_factory(topic, f"cdct-slow-{new_id()}", sometimes_slow, None, 0.3)

    async def dead_lettered() -> bool:
        return bool(await asyncio.to_thread(list_dlq, settings, topic))

    await wait_for(dead_lettered)
    letters = await asyncio.to_thread(list_dlq, settings, topic)
    assert [(e.event_id, e.reason, e.attempts) for e in letters] == [
        (str(slow.event_id), "handler_retriable", 3)
    ]
    assert "not applied within 0.3 s" in letters[0].error
    applied = {r["event_id"] for r in await effects(dsn)}
    assert applied == {e.event_id for e in quick}  # the slow one's effect was rolled back


def committed(bootstrap: str, group: str, topics: Sequence[str]) -> dict[tuple[str, int], int]:
    """The offsets ``group`` committed on the partitions of ``topics`` where it committed any."""
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = [
            TopicPartition(topic, n)
            for topic in topics
            for n in probe.list_topics(topic, timeout=10).topics[topic].partitions
        ]
        offsets = probe.committed(partitions, timeout=10)
    finally:
        probe.close()
    return {(tp.topic, tp.partition): tp.offset for tp in offsets if tp.offset >= 0}


def tagged(tag: str) -> Handler:
    """One consumer of a feed: its effect rows' aggregate ids start with ``tag``; an event whose
    payload says ``poison_for: <tag>`` fails for this consumer alone."""

    async def handler(envelope: EventEnvelope, conn: Any) -> None:
        if envelope.payload.get("poison_for") == tag:
            raise RuntimeError(f"poisoned for {tag}")
        aggregate = f"{tag}:{envelope.aggregate_id}"
        await record_effect(envelope.model_copy(update={"aggregate_id": aggregate}), conn)

    return handler


async def test_consumers_sharing_a_feed_apply_their_own_share_once_and_commit_it_together(
    stack: StackUrls, database: str
) -> None:
    """Consumers that ran alone, each its own group, move into one feed: it starts where their
    groups left off (nothing applied or dead-lettered again), each applies only its topics and
    event types, an event poisonous to one is dead-lettered by that one alone, and the feed
    commits past everything while it runs; a feed of other members is another group, which
    reads the history a new member needs while the others' inboxes skip it."""
    first, second = f"cdct.feed1.{new_id()}", f"cdct.feed2.{new_id()}"
    dsn = database_dsn(stack.db_url, database)
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    other = events("one", 4)[0].model_copy(update={"event_type": "Other", "aggregate_id": "o"})
    poison = events("one", 1, poison_for="b")[0].model_copy(update={"aggregate_id": "p"})
    before, after, twos = events("one", 8), events("one", 5, aggregates=3), events("two", 6)
    publish(stack.kafka_bootstrap, first, [*before, other, poison])
    publish(stack.kafka_bootstrap, second, twos)

    def spec(tag: str, topics: tuple[str, ...], types: set[str] | None = None) -> ConsumerSpec:
        return ConsumerSpec(
            name=f"cdct-feed-{tag}-{new_id()}",
            topics=topics,
            database=database,
            handler=tagged(tag),
            retry=RetryPolicy(max_attempts=2, backoff_s=0.01),
            event_types=frozenset(types) if types else None,
        )

    a, b = spec("a", (first,), {"Tested"}), spec("b", (first, second))
    c = spec("c", (second,))
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    store = PostgresStore(pool)

    async def tags() -> dict[str, int]:
        counted: dict[str, int] = {}
        for row in await effects(dsn):
            tag = row["aggregate_id"].split(":")[0]
            counted[tag] = counted.get(tag, 0) + 1
        return counted

    async def letters() -> list[str]:
        found = await asyncio.to_thread(list_dlq, settings, first)
        return [e.source for e in found]

    async def run_until(runtime: ConsumerRuntime, expected: dict[str, int]) -> None:
        halt = asyncio.Event()
        task = asyncio.create_task(runtime.run(halt))

        seen: list[Any] = []

        async def settled() -> bool:
            done = await asyncio.to_thread(
                committed, stack.kafka_bootstrap, runtime.group, [first, second]
            )
            taken = dict(runtime.positions)  # the next offset of each partition it read
            seen[:] = [await tags(), bool(taken) and done == taken]
            return seen == [expected, True]  # all it took is committed while it runs

        try:
            try:
                await wait_for(settled)
            except AssertionError as exc:
                raise AssertionError(f"{runtime.group}: {seen} != {[expected, True]}") from exc
            await asyncio.sleep(1.0)  # anything applied twice would show up now
        finally:
            halt.set()
            await task
        assert await tags() == expected

    try:
        # a and b alone, each its own group; the poison is dead-lettered by b
        await run_until(ConsumerRuntime([(a, store)], settings), {"a": 9})  # not "other"
        await run_until(ConsumerRuntime([(b, store)], settings), {"a": 9, "b": 15})
        assert await letters() == [b.name]

        publish(stack.kafka_bootstrap, first, after)
        feed = ConsumerRuntime([(a, store), (b, store)], settings)
        assert feed.group not in (a.name, b.name)
        assert feed.topics == sorted([first, second])
        await run_until(feed, {"a": 9 + 5, "b": 15 + 5})  # only what came after
        assert await letters() == [b.name]  # the poison was not tried again
        assert [m.stats.applied for m in feed.members] == [5, 5]

        wider = ConsumerRuntime([(a, store), (b, store), (c, store)], settings)
        assert wider.group != feed.group
        await run_until(wider, {"a": 14, "b": 20, "c": 6})  # c reads second anew
        assert [m.stats.applied for m in wider.members] == [0, 0, 6]
    finally:
        await pool.close()


async def test_a_feed_commits_what_it_applied_in_the_background_and_when_it_stops(
    stack: StackUrls, database: str
) -> None:
    """No commit per batch: the offsets past each applied batch are stored and committed by
    the client every interval (here longer than the test) and when the feed stops, so a feed
    that stops right after applying has committed all of it; what its next run is given again
    is only what came after."""
    topic = f"cdct.commit.{new_id()}"
    dsn = database_dsn(stack.db_url, database)
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    spec = ConsumerSpec(
        name=f"cdct-commit-{new_id()}", topics=(topic,), database=database, handler=tagged("k")
    )
    publish(stack.kafka_bootstrap, topic, events("one", 12))
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)

    async def applied() -> int:
        return sum(1 for row in await effects(dsn) if row["aggregate_id"].startswith("k:"))

    async def settled(expected: int) -> bool:
        return await applied() == expected

    async def run_until_applied(expected: int) -> ConsumerRuntime:
        runtime = ConsumerRuntime(
            [(spec, PostgresStore(pool))], settings, kafka={"auto.commit.interval.ms": 600_000}
        )
        halt = asyncio.Event()
        task = asyncio.create_task(runtime.run(halt))
        try:
            await wait_for(lambda: settled(expected))
            taken = dict(runtime.positions)  # the next offset of each partition it read
            uncommitted = await asyncio.to_thread(
                committed, stack.kafka_bootstrap, runtime.group, [topic]
            )
        finally:
            halt.set()
            await task

        def at(offsets: dict[tuple[str, int], int]) -> dict[tuple[str, int], int | None]:
            return {tp: offsets.get(tp) for tp in taken}  # the partitions this run read

        assert taken
        assert at(uncommitted) != taken  # nothing committed per batch
        closed = await asyncio.to_thread(committed, stack.kafka_bootstrap, runtime.group, [topic])
        assert at(closed) == taken  # all of it, on stop
        return runtime

    try:
        first = await run_until_applied(12)
        assert first.members[0].stats.applied == 12
        publish(stack.kafka_bootstrap, topic, events("one", 3, aggregates=2))
        second = await run_until_applied(15)
        assert second.members[0].stats.messages == 3  # given only what came after
    finally:
        await pool.close()


class TestPostgresInbox(InboxContract):
    @pytest.fixture
    async def store(self, stack: StackUrls, database: str) -> AsyncIterator[Store]:
        pool = await asyncpg.create_pool(
            database_dsn(stack.db_url, database), min_size=1, max_size=2
        )
        yield PostgresStore(pool)
        await pool.close()


async def test_rebuild_replays_event_stores_without_kafka(stack: StackUrls, database: str) -> None:
    source = f"cdct_{new_id()}_src"
    create_database(stack.db_url, source)
    try:
        conn = psycopg2.connect(database_dsn(stack.db_url, source))
        with conn.cursor() as cur:
            for n in range(120):
                insert_event(cur, "rb", f"r{n % 7}", n // 7 + 1)
                insert_event(cur, "other", f"o{n}", 1)
        conn.commit()
        conn.close()

        async def reset(c: Any) -> None:
            await c.execute("TRUNCATE cdc_effects")

        spec = ConsumerSpec(
            name="rebuilder",
            topics=("outbox.event.rb",),
            database=database,
            handler=record_effect,
            reset=reset,
            sources=(source,),
        )
        settings = settings_for(stack.db_url, stack.kafka_bootstrap)
        dsn = database_dsn(stack.db_url, database)
        assert await rebuild(spec, settings) == 120
        assert await rebuild(spec, settings) == 120  # reset + inbox cleared: same end state
        rows = await effects(dsn)
        assert len(rows) == 120
        assert {r["aggregate_id"] for r in rows} == {f"r{n}" for n in range(7)}
        by_aggregate: dict[str, list[int]] = {}
        for r in rows:
            by_aggregate.setdefault(r["aggregate_id"], []).append(r["version"])
        assert all(v == sorted(v) for v in by_aggregate.values())
    finally:
        drop_database(stack.db_url, source)
