"""The launcher's whole life cycle on its own stack: up → every part answers → up again → down.

The tests in this module run in file order against one stack (module fixture ``launched``);
the last one stops it and checks that nothing is left running.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg2
import pytest
import redis
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from cluster import process, topology
from cluster.component import Component
from cluster.process import Launch
from cluster.stack import Stack, StackStartError
from cluster.state import read_state
from eco2.migrations import database_dsn
from eco2.settings import DOMAIN_DATABASES, Settings, load_settings
from tests.conftest import StackUrls, cluster_cli, short_run_dir, start_stack

pytestmark = pytest.mark.integration

GROUP_JOIN_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def launched() -> Iterator[StackUrls]:
    run_dir = short_run_dir("e2l-")
    try:
        yield start_stack(run_dir)
    finally:
        cluster_cli(run_dir, "down")
        shutil.rmtree(run_dir, ignore_errors=True)


def test_status_reports_every_component_healthy(launched: StackUrls) -> None:
    result = cluster_cli(launched.run_dir, "status", "--json", timeout=60)

    report = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    assert set(report["components"]) == {c.name for c in topology.default_components()}
    for name, component in report["components"].items():
        assert component["healthy"] is True, (name, component)
        assert isinstance(component["url"], str), name
    assert report["api_url"] == launched.api_url
    assert report["dashboard_url"] == launched.dashboard_url


def test_postgres_is_logical_and_has_every_domain_database(launched: StackUrls) -> None:
    settings = load_settings()
    conn = psycopg2.connect(launched.db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            assert cur.fetchone() == ("logical",)
            cur.execute("SELECT datname FROM pg_database")
            names = {row[0] for row in cur.fetchall()}
    finally:
        conn.close()
    for domain in DOMAIN_DATABASES:
        database = settings.database_name(domain)
        assert database in names
        psycopg2.connect(database_dsn(launched.db_url, database)).close()


def test_valkey_answers_ping(launched: StackUrls) -> None:
    client = redis.Redis.from_url(launched.cache_url)
    try:
        assert client.ping() is True
    finally:
        client.close()


def test_kafka_round_trip_through_a_consumer_group(launched: StackUrls) -> None:
    settings = load_settings()
    topic, group = f"launcher-{uuid.uuid4().hex[:8]}", f"launcher-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": launched.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(10)
    producer = Producer({"bootstrap.servers": launched.kafka_bootstrap, "enable.idempotence": True})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(10) == 0
    consumer = Consumer(
        {
            "bootstrap.servers": launched.kafka_bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": settings.kafka.heartbeat_interval_ms,
        }
    )
    assigned: list[float] = []
    started = time.monotonic()
    consumer.subscribe([topic], on_assign=lambda *_: assigned.append(time.monotonic()))
    try:
        message = None
        while message is None and time.monotonic() - started < GROUP_JOIN_LIMIT_S + 5:
            candidate = consumer.poll(0.5)
            if candidate is not None and candidate.error() is None:
                message = candidate
        assert message is not None
        assert message.value() == b"hello"
        assert assigned, "the consumer group never assigned a partition"
        assert assigned[0] - started < GROUP_JOIN_LIMIT_S
        consumer.commit(message=message, asynchronous=False)
    finally:
        consumer.close()


def test_ray_head_advertises_ai_worker(launched: StackUrls) -> None:
    script = (
        "import json, sys, ray\n"
        "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
        "print(json.dumps(ray.available_resources()))\n"
        "ray.shutdown()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, launched.ray_address],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    resources = json.loads(result.stdout.strip().splitlines()[-1])
    assert resources.get("ai_worker", 0) > 0


def test_serve_proxy_and_model_sim_answer(launched: StackUrls) -> None:
    assert launched.api_url is not None
    health = httpx.get(f"{launched.api_url}/-/healthz", timeout=5)
    assert health.status_code == 200 or "Route table is not populated" in health.text
    sim_root = launched.model_base_url.removesuffix("/v1")
    assert httpx.get(f"{sim_root}/healthz", timeout=5).status_code == 200


def test_up_again_says_already_up(launched: StackUrls) -> None:
    result = cluster_cli(launched.run_dir, "up", timeout=60)

    assert result.returncode == 0
    assert "already up" in result.stdout


def test_down_leaves_no_process(launched: StackUrls) -> None:
    state = read_state(launched.run_dir)
    assert state is not None

    result = cluster_cli(launched.run_dir, "down", timeout=180)

    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert read_state(launched.run_dir) is None
    assert process.same_process(state.supervisor_pid, state.supervisor_create_time) is None
    for name, component in state.components.items():
        assert process.same_process(component.pid, component.create_time) is None, name
    assert _processes_of(launched.run_dir, state.components["ray"].watch_paths) == []
    assert cluster_cli(launched.run_dir, "status").returncode != 0


def _processes_of(run_dir: Path, extra: list[str]) -> list[str]:
    found = process.processes_mentioning([str(run_dir), *extra])
    return [" ".join(p.cmdline()) for p in found if p.is_running()]


def test_failing_component_is_named_and_nothing_stays_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_dir = short_run_dir("e2f-")
    settings = Settings(run_dir=run_dir)

    def broken_kafka(ctx: object) -> Launch:
        launch = topology.KAFKA.launch(ctx)  # type: ignore[misc, arg-type]
        return Launch([*launch.argv, "--storage-engine", "bogus://nowhere/"])

    components = [topology.POSTGRES, topology.VALKEY, replace(topology.KAFKA, launch=broken_kafka)]
    stack = Stack(settings, components)
    try:
        with pytest.raises(StackStartError) as failure:
            stack.start()

        error = failure.value
        assert error.component == "kafka"
        assert error.log_path == run_dir / "logs" / "kafka.log"
        assert str(error.log_path) in error.describe()
        assert "bogus" in error.log_tail
        state = read_state(run_dir)
        assert state is not None
        assert state.phase == "failed"
        for name in ("postgres", "valkey", "kafka"):
            recorded = state.components[name]
            assert process.same_process(recorded.pid, recorded.create_time) is None, name
        assert _processes_of(run_dir, []) == []
    finally:
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.mark.skipif(
    not Path("/proc/self/autogroup").exists(), reason="this kernel has no autogroups"
)
def test_a_components_session_weight_reaches_its_process() -> None:
    run_dir = short_run_dir("e2n-")
    weighted = Component(
        name="weighted",
        launch=lambda ctx: Launch(
            [sys.executable, "-c", "import time; time.sleep(60)"], session_nice=7
        ),
        url=lambda ctx: "-",
        health=lambda ctx: None,
    )
    stack = Stack(Settings(run_dir=run_dir), [weighted])
    try:
        stack.start()
        state = read_state(run_dir)
        assert state is not None
        pid = state.components["weighted"].pid
        assert Path(f"/proc/{pid}/autogroup").read_text().split()[-1] == "7"
    finally:
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
