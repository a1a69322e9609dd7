"""``eco2 bench cdc --json``: the WAL relay against the naive polling relay, on the same data.

Measures, in one run against the embedded stack (started here unless ``ECO2_DB__URL`` and
``ECO2_KAFKA__BOOTSTRAP`` point at one):

1. relay throughput — events/s for one relay draining 3 pre-loaded databases (transactions of
   ``tx_size`` events), for the WAL relay and then the polling relay on the same rows;
2. commit→Kafka-ack latency p50/p99 at a steady ``rate`` events/s (one event per transaction,
   spread over the 3 databases), each relay in its own process (clock: ``time.time()``);
3. consumer throughput — events/s applied with the inbox (one effect row per event, written by a
   batch projector in one statement per batch), and with a no-op handler (inbox only).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import asyncpg
import psutil
import psycopg2
import typer

from devtools.bench.cdc_consumer import consumer_throughput
from eco2.migrations import database_dsn, migrations_for
from eco2.settings import DbSettings, KafkaSettings, Settings, load_settings

COMMAND = "eco2 bench cdc --json"
KERNEL_SQL = "\n".join(m.sql for m in migrations_for("cdc_bench_no_domain"))
_LOAD = """
DO $$ BEGIN FOR t IN 1..{txs} LOOP
  INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
                           payload, metadata)
  SELECT gen_random_uuid(), '{agg}', 'a' || ((t * {size} + i) % 100), t * {size} + i, 'Benched',
         jsonb_build_object('n', t * {size} + i, 'label', 'plastic bottle, label removed'),
         '{{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}'
  FROM generate_series(1, {size}) AS i;
  COMMIT;
END LOOP; END $$
"""


_STEADY_INSERT = """
INSERT INTO event_store (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
                         payload)
VALUES ($1, $2, $3, $4, 'Benched', '{"n": 1}')
"""


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by rank; NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _create_db(server: str, name: str) -> None:
    conn = psycopg2.connect(server)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    conn = psycopg2.connect(database_dsn(server, name))
    conn.autocommit = True
    conn.cursor().execute(KERNEL_SQL)
    conn.close()


def _drop_db(server: str, name: str) -> None:
    from cdc.relay.slots import slot_name

    conn = psycopg2.connect(server)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
        "WHERE slot_name = %s AND NOT active",
        (slot_name(name),),
    )
    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def _drain(step: Callable[[], int], acked: Callable[[], int], target: int, limit_s: float) -> float:
    started = time.perf_counter()
    while acked() < target and time.perf_counter() - started < limit_s:
        step()
    return time.perf_counter() - started


def _throughput(
    settings: Settings, dbs: list[str], agg: str, per_db: int, size: int
) -> dict[str, Any]:
    from cdc.relay import Relay
    from devtools.bench.polling_relay import PollingRelay

    assert settings.db.url is not None
    creator = Relay(settings, dbs, {})
    creator.step()  # create the slots now, so the rows below are streamed
    creator.shutdown()
    for db in dbs:
        conn = psycopg2.connect(database_dsn(settings.db.url, db))
        conn.autocommit = True
        conn.cursor().execute(_LOAD.format(txs=per_db // size, size=size, agg=agg))
        conn.close()
    total = len(dbs) * (per_db // size) * size
    acks = [0]

    def count(_event_id: str) -> None:
        acks[0] += 1

    relay = Relay(settings, dbs, {}, on_ack=count)
    for stream in relay.streams:
        stream.connect()

    def wal_step() -> int:
        if not relay.step():
            relay.wait()
        return 0

    wal_s = _drain(wal_step, lambda: acks[0], total, 300)
    relay.shutdown()
    polled = [0]
    polling = PollingRelay(settings, dbs, on_ack=lambda _e: polled.__setitem__(0, polled[0] + 1))

    def poll_step() -> int:
        polling.poll_once()
        polling.producer.poll(0.001)
        return 0

    poll_s = _drain(poll_step, lambda: polled[0], total, 300)
    polling.producer.flush(10)
    return {
        "events": total,
        "transaction_size": size,
        "databases": len(dbs),
        "wal_events_per_s": round(acks[0] / wal_s),
        "polling_events_per_s": round(polled[0] / poll_s),
    }


def _relay_child(kind: str, settings_json: str, dbs: list[str], out: Any, stop: Any) -> None:
    sys.stdout = sys.stderr  # the relay's logs must not mix into the parent's --json output
    settings = Settings.model_validate_json(settings_json)
    acks: dict[str, float] = {}

    def on_ack(event_id: str) -> None:
        acks[event_id] = time.time()

    halt = threading.Event()
    if kind == "wal":
        from cdc.relay import Relay

        runner: Any = Relay(settings, dbs, {}, on_ack=on_ack, snapshot=False)
    else:
        from devtools.bench.polling_relay import PollingRelay

        runner = PollingRelay(settings, dbs, on_ack=on_ack, from_start=False)
    thread = threading.Thread(target=runner.run, args=(halt,))
    thread.start()
    out.send("ready")
    stop.wait()
    time.sleep(1.0)
    halt.set()
    thread.join()
    out.send(acks)


async def _steady_writer(
    settings: Settings, dbs: list[str], agg: str, rate: int, seconds: float
) -> dict[str, float]:
    assert settings.db.url is not None
    conns = [await asyncpg.connect(database_dsn(settings.db.url, db)) for db in dbs]
    committed: dict[str, float] = {}
    interval, started, n = 1.0 / rate, time.perf_counter(), 0
    try:
        while (elapsed := time.perf_counter() - started) < seconds:
            if n * interval > elapsed:
                await asyncio.sleep(n * interval - elapsed)
            event_id = uuid.uuid4()
            await conns[n % len(conns)].execute(
                _STEADY_INSERT,
                event_id,
                agg,
                f"{agg}-{n % 100}",
                n + 1,
            )
            committed[str(event_id)] = time.time()
            n += 1
    finally:
        for conn in conns:
            await conn.close()
    return committed


def _latency(
    kind: str, settings: Settings, dbs: list[str], rate: int, seconds: float
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    stop = ctx.Event()
    args = (kind, settings.model_dump_json(), dbs, child, stop)
    proc = ctx.Process(target=_relay_child, args=args, daemon=True)
    proc.start()
    try:
        assert parent.recv() == "ready"
        time.sleep(2.0)  # the relay connects (slots exist already)
        agg = f"lat{kind}{uuid.uuid4().hex[:6]}"
        relay = psutil.Process(proc.pid)
        cpu_before, wall_before = sum(relay.cpu_times()[:2]), time.perf_counter()
        committed = asyncio.run(_steady_writer(settings, dbs, agg, rate, seconds))
        cpu = (sum(relay.cpu_times()[:2]) - cpu_before) / (time.perf_counter() - wall_before)
    finally:
        stop.set()
    acks: dict[str, float] = parent.recv()
    proc.join(30)
    latencies = [(acks[e] - t) * 1000 for e, t in committed.items() if e in acks]
    return {
        "events": len(committed),
        "acked": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "max_ms": round(max(latencies, default=float("nan")), 2),
        "relay_cpu_percent": round(cpu * 100, 1),
    }


def _progress(message: str) -> None:
    print(f"[bench cdc] {message}", file=sys.stderr, flush=True)


def run_bench(
    settings: Settings,
    *,
    per_db: int = 20_000,
    tx_size: int = 5,
    rate: int = 1000,
    seconds: float = 10.0,
    consumer_events: int = 20_000,
) -> dict[str, Any]:
    assert settings.db.url is not None
    prefix = f"cdcbench_{uuid.uuid4().hex[:6]}"
    dbs = [f"{prefix}_{n}" for n in range(3)]
    for db in dbs:
        _create_db(settings.db.url, db)
    try:
        _progress("relay throughput")
        throughput = _throughput(settings, dbs, f"bench{uuid.uuid4().hex[:6]}", per_db, tx_size)
        _progress(f"throughput {throughput}; latency at {rate}/s")
        latency = {k: _latency(k, settings, dbs, rate, seconds) for k in ("wal", "polling")}
        _progress(f"latency {latency}; consumer")
        consumer = asyncio.run(consumer_throughput(settings, dbs[0], consumer_events, noop=False))
        noop = asyncio.run(consumer_throughput(settings, dbs[0], consumer_events, noop=True))
    finally:
        for db in dbs:
            _drop_db(settings.db.url, db)
    return {
        "command": COMMAND,
        "cpus": os.cpu_count(),
        "relay_throughput": throughput,
        "latency_at_rate": {"rate_per_s": rate, "seconds": seconds, **latency},
        "consumer": {
            "events": consumer_events,
            "with_inbox_and_effect_per_s": round(consumer),
            "with_inbox_noop_handler_per_s": round(noop),
        },
        "targets": {
            "relay_events_per_s": 20_000,
            "p50_ms": 10,
            "p99_ms": 50,
            "consumer_events_per_s": 10_000,
        },
    }


def _with_stack(run: Callable[[Settings], dict[str, Any]]) -> dict[str, Any]:
    settings = load_settings()
    if settings.db.url and settings.kafka.bootstrap:
        return run(settings)
    run_dir = Path(tempfile.mkdtemp(prefix="cdcb-", dir="/tmp"))
    env = {**os.environ, "ECO2_RUN_DIR": str(run_dir)}
    cluster = [sys.executable, "-m", "cluster"]
    subprocess.run([*cluster, "up", "--detach"], env=env, check=True, capture_output=True)
    try:
        state = json.loads((run_dir / "stack.json").read_text())["env"]
        return run(
            Settings(
                db=DbSettings(url=state["ECO2_DB__URL"]),
                kafka=KafkaSettings(bootstrap=state["ECO2_KAFKA__BOOTSTRAP"]),
                run_dir=run_dir,
            )
        )
    finally:
        subprocess.run([*cluster, "down"], env=env, check=False, capture_output=True)
        shutil.rmtree(run_dir, ignore_errors=True)


def bench_cdc(
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    seconds: Annotated[float, typer.Option(help="duration of each latency run")] = 10.0,
) -> None:
    """Relay throughput and latency vs. a polling relay, and consumer throughput with the inbox."""
    result = _with_stack(lambda s: run_bench(s, seconds=seconds))
    typer.echo(json.dumps(result, indent=None if as_json else 2))


if __name__ == "__main__":
    typer.run(bench_cdc)
