"""``eco2 bench cdc --json``: the WAL relay against the naive polling relay, on the same data.

Measures, against an embedded PostgreSQL and broker started here (or the servers
``ECO2_DB__URL`` and ``ECO2_KAFKA__BOOTSTRAP`` point at), ``--repeat`` times on fresh databases:

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
import math
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, cast

import asyncpg
import psutil
import psycopg2
import typer
from confluent_kafka.admin import AdminClient

from cdc.outbox import topic_for
from cluster.topology import KAFKA, POSTGRES
from devtools.bench.cdc_consumer import consumer_throughput
from devtools.bench.machine import machine, reference_loop_ms
from devtools.bench.own_stack import own_stack
from eco2.kafka import bootstrap
from eco2.migrations import database_dsn, migrations_for
from eco2.settings import Settings, load_settings

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

    cpu = _CpuBySide()
    wal_s = _drain(wal_step, lambda: acks[0], total, 300)
    wal_cpu = cpu.per_event(acks[0])
    relay.shutdown()
    # The polling relay publishes the same rows to the same topic: on a topic already holding
    # the WAL relay's copies it would pay for them (the embedded broker's cost per message grows
    # with what the topic stores, docs/benchmarks.md), so each relay starts on an empty one.
    _empty_topic(settings, topic_for(agg))
    polled = [0]
    polling = PollingRelay(settings, dbs, on_ack=lambda _e: polled.__setitem__(0, polled[0] + 1))

    def poll_step() -> int:
        polling.poll_once()
        polling.producer.poll(0.001)
        return 0

    cpu = _CpuBySide()
    poll_s = _drain(poll_step, lambda: polled[0], total, 300)
    polling_cpu = cpu.per_event(polled[0])
    polling.producer.flush(10)
    return {
        "events": total,
        "transaction_size": size,
        "databases": len(dbs),
        "wal_events_per_s": round(acks[0] / wal_s),
        "polling_events_per_s": round(polled[0] / poll_s),
        "cpu_us_per_event": {"wal": wal_cpu, "polling": polling_cpu},
    }


class _CpuBySide:
    """CPU time per event while one relay drains, by who spent it: the relay (this process,
    its producer's threads included), PostgreSQL's walsenders, PostgreSQL's other processes
    (the polling relay's queries) and the broker. Processes of a server this bench did not
    start are counted the same way when they run on this machine."""

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> dict[str, float]:
        spent = dict.fromkeys(("relay", "walsenders", "postgres", "broker"), 0.0)
        for proc in psutil.process_iter(["cmdline"]):
            try:
                command = " ".join(proc.info["cmdline"] or ())
                side = _side_of(proc.pid, command)
                if side is not None:
                    times = proc.cpu_times()
                    spent[side] += times.user + times.system
            except psutil.Error:
                continue
        return spent

    def per_event(self, events: int) -> dict[str, float]:
        now = self._sample()
        return {
            side: round((now[side] - self._start[side]) * 1e6 / max(events, 1), 2) for side in now
        }


def _side_of(pid: int, command: str) -> str | None:
    if pid == os.getpid():
        return "relay"
    if command.startswith("postgres:"):
        return "walsenders" if "walsender" in command else "postgres"
    if "tansu" in command:
        return "broker"
    return None


def _empty_topic(settings: Settings, topic: str) -> None:
    """Delete ``topic`` (the next producer creates it again, empty)."""
    admin = AdminClient({"bootstrap.servers": bootstrap(settings)})
    for future in admin.delete_topics([topic], operation_timeout=10).values():
        future.result(15)


ACK_WAIT_S = 15.0
"""How long a latency run's relay may keep acknowledging after the writer stopped."""


def _ms(value: float) -> float | None:
    return round(value, 2) if math.isfinite(value) else None


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
    # Until the acknowledgements stop coming (a stalled relay would otherwise have its late
    # events cut off and its tail look shorter than it was).
    deadline, seen = time.monotonic() + ACK_WAIT_S, -1
    while len(acks) != seen and time.monotonic() < deadline:
        seen = len(acks)
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
    probe_out, probe_in = ctx.Pipe()
    probe = ctx.Process(target=_stall_probe, args=(probe_in, stop), daemon=True)
    try:
        assert parent.recv() == "ready"
        time.sleep(2.0)  # the relay connects (slots exist already)
        probe.start()
        agg = f"lat{kind}{uuid.uuid4().hex[:6]}"
        relay = psutil.Process(proc.pid)
        steal_before = getattr(psutil.cpu_times(), "steal", 0.0)
        cpu_before, wall_before = sum(relay.cpu_times()[:2]), time.perf_counter()
        committed = asyncio.run(_steady_writer(settings, dbs, agg, rate, seconds))
        wall = time.perf_counter() - wall_before
        cpu = (sum(relay.cpu_times()[:2]) - cpu_before) / wall
        steal = (getattr(psutil.cpu_times(), "steal", 0.0) - steal_before) / wall
    finally:
        stop.set()
    acks: dict[str, float] = parent.recv()
    stalls: list[tuple[float, float]] = probe_out.recv()
    proc.join(30)
    probe.join(10)
    # An event never acknowledged counts as infinitely late (null in the figures), not as absent.
    latencies = [(acks[e] - t) * 1000 if e in acks else math.inf for e, t in committed.items()]
    worst_at = max(committed.items(), key=lambda c: acks.get(c[0], math.inf) - c[1])[1]
    return {
        "events": len(committed),
        "acked": sum(1 for e in committed if e in acks),
        "p50_ms": _ms(percentile(latencies, 0.50)),
        "p99_ms": _ms(percentile(latencies, 0.99)),
        "max_ms": _ms(max(latencies, default=math.nan)),
        "relay_cpu_percent": round(cpu * 100, 1),
        # The machine's own noise meanwhile: the longest a process that only sleeps 2 ms at a
        # time overslept (any time, and within half a second of the latest event), and the
        # CPU time the hypervisor took (steal, in % of one CPU).
        "probe_stall_max_ms": round(max((ms for _, ms in stalls), default=0.0), 1),
        "probe_stall_at_worst_ms": round(
            max((ms for at, ms in stalls if abs(at - worst_at) < 0.5), default=0.0), 1
        ),
        "steal_percent": round(steal * 100, 1),
    }


STALL_SLEEP_S, STALL_REPORT_MS = 0.002, 5.0


def _stall_probe(out: Any, stop: Any) -> None:
    """Sleep 2 ms at a time until ``stop``; send every oversleep above 5 ms as (when, ms)."""
    stalls: list[tuple[float, float]] = []
    while not stop.is_set():
        before = time.perf_counter()
        time.sleep(STALL_SLEEP_S)
        late_ms = (time.perf_counter() - before - STALL_SLEEP_S) * 1000
        if late_ms > STALL_REPORT_MS:
            stalls.append((time.time(), late_ms))
    out.send(stalls)


def _progress(message: str) -> None:
    print(f"[bench cdc] {message}", file=sys.stderr, flush=True)


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """min / median / max of one figure over the repetitions, with every sample; a missing
    sample (``None``: a latency that never ended) ranks above every number."""
    ranked = sorted(values, key=lambda v: math.inf if v is None else v)
    middle = ranked[(len(ranked) - 1) // 2 : len(ranked) // 2 + 1]
    median = None if None in middle else round(statistics.median(cast(list[float], middle)), 2)
    return {"min": ranked[0], "median": median, "max": ranked[-1], "runs": list(values)}


def _at_most(values: Sequence[float | None], target: float) -> bool:
    return all(v is not None and v <= target for v in values)


def _once(
    settings: Settings,
    *,
    per_db: int,
    tx_size: int,
    rate: int,
    seconds: float,
    consumer_events: int,
) -> dict[str, Any]:
    """One repetition on three fresh databases."""
    assert settings.db.url is not None
    prefix = f"cdcbench_{uuid.uuid4().hex[:6]}"
    dbs = [f"{prefix}_{n}" for n in range(3)]
    for db in dbs:
        _create_db(settings.db.url, db)
    try:
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
        "throughput": throughput,
        "latency": latency,
        "consumer": {
            "with_inbox_and_effect_per_s": round(consumer),
            "with_inbox_noop_handler_per_s": round(noop),
        },
    }


TARGETS = {
    "wal_events_per_s": 40_000,
    "wal_over_polling": 1.5,
    "p50_ms": 10,
    "p99_ms": 50,
    "consumer_events_per_s": 10_000,
}


def run_bench(
    settings: Settings,
    *,
    repeat: int = 3,
    per_db: int = 20_000,
    tx_size: int = 5,
    rate: int = 1000,
    seconds: float = 10.0,
    consumer_events: int = 20_000,
) -> dict[str, Any]:
    """``repeat`` repetitions; every figure as its spread, and each target judged on its worst
    repetition (a tail that holds in two runs of three does not hold)."""
    reference = reference_loop_ms()
    runs = []
    for n in range(repeat):
        _progress(f"repetition {n + 1} of {repeat}")
        runs.append(
            _once(
                settings,
                per_db=per_db,
                tx_size=tx_size,
                rate=rate,
                seconds=seconds,
                consumer_events=consumer_events,
            )
        )

    def each(*path: str) -> list[float]:
        values = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value[key]
            values.append(value)
        return values

    wal, polling = (
        each("throughput", "wal_events_per_s"),
        each("throughput", "polling_events_per_s"),
    )
    ratio = [round(w / p, 2) for w, p in zip(wal, polling, strict=True)]
    latency: dict[str, Any] = {"rate_per_s": rate, "seconds": seconds}
    for kind in ("wal", "polling"):
        latency[kind] = {
            figure: spread(each("latency", kind, figure))
            for figure in (
                "p50_ms",
                "p99_ms",
                "max_ms",
                "relay_cpu_percent",
                "probe_stall_max_ms",
                "probe_stall_at_worst_ms",
                "steal_percent",
            )
        }
        latency[kind]["lost"] = sum(
            e - a
            for e, a in zip(
                each("latency", kind, "events"), each("latency", kind, "acked"), strict=True
            )
        )
    consumer = {
        name: spread(each("consumer", name))
        for name in ("with_inbox_and_effect_per_s", "with_inbox_noop_handler_per_s")
    }
    return {
        "command": COMMAND,
        "repetitions": repeat,
        "relay_throughput": {
            "events": runs[0]["throughput"]["events"],
            "transaction_size": tx_size,
            "databases": 3,
            "topic_partitions": settings.kafka.topic_partitions,
            "wal_events_per_s": spread(wal),
            "polling_events_per_s": spread(polling),
            "wal_over_polling": spread(ratio),
            "cpu_us_per_event": {
                kind: {
                    side: spread(each("throughput", "cpu_us_per_event", kind, side))
                    for side in ("relay", "walsenders", "postgres", "broker")
                }
                for kind in ("wal", "polling")
            },
        },
        "latency_at_rate": latency,
        "consumer": {"events": consumer_events, **consumer},
        "targets": TARGETS,
        "met": {
            "wal_events_per_s": min(wal) >= TARGETS["wal_events_per_s"],
            "wal_over_polling": min(ratio) >= TARGETS["wal_over_polling"],
            "p50_ms": _at_most(each("latency", "wal", "p50_ms"), TARGETS["p50_ms"]),
            "p99_ms": _at_most(each("latency", "wal", "p99_ms"), TARGETS["p99_ms"]),
            "consumer_events_per_s": min(each("consumer", "with_inbox_and_effect_per_s"))
            >= TARGETS["consumer_events_per_s"],
        },
        "machine": {**machine(), "reference_loop_ms_before": reference},
    }


BENCH_COMPONENTS = (POSTGRES, KAFKA)
"""What the relays need, and nothing else: the rest of the stack idles at a third of a core here,
which is noise for a benchmark of the relay alone."""


def _with_stack(run: Callable[[Settings], dict[str, Any]]) -> dict[str, Any]:
    """Run against the PostgreSQL and Kafka of ``ECO2_DB__URL``/``ECO2_KAFKA__BOOTSTRAP`` when
    both are set, else against an embedded PostgreSQL and broker started here (with the
    settings the launcher gives every relay of the local stack, e.g. its topic partitions)."""
    settings = load_settings()
    if settings.db.url and settings.kafka.bootstrap:
        return run(settings)
    with own_stack(settings, BENCH_COMPONENTS, "cdcb-") as state:
        kafka = {
            key.removeprefix("ECO2_KAFKA__").lower(): value
            for key, value in state.env.items()
            if key.startswith("ECO2_KAFKA__")
        }
        db = {"url": state.env["ECO2_DB__URL"]}
        return run(load_settings(db=db, kafka=kafka, run_dir=Path(state.run_dir)))


def bench_cdc(
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    seconds: Annotated[float, typer.Option(help="duration of each latency run")] = 10.0,
    repeat: Annotated[int, typer.Option(min=1, help="repetitions (figures as min/median/max)")] = 3,
) -> None:
    """Relay throughput and latency vs. a polling relay, and consumer throughput with the inbox."""
    result = _with_stack(lambda s: run_bench(s, seconds=seconds, repeat=repeat))
    typer.echo(json.dumps(result, indent=None if as_json else 2))


if __name__ == "__main__":
    typer.run(bench_cdc)
