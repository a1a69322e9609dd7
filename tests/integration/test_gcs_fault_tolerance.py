"""GCS fault tolerance by one setting: the launcher's own Ray head, given
``ray.gcs_redis_address``, keeps its cluster state in that Redis. Proven against the machine's
own Redis on its standard port (a real external server reached by address alone); skipped with
the reason where there is none."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest
import redis

from cluster import process, topology
from cluster.component import Context, RunPaths
from cluster.ports import pick_port_range, pick_ports
from eco2.settings import Settings
from tests.conftest import short_run_dir

pytestmark = pytest.mark.integration

SYSTEM_REDIS = "127.0.0.1:6379"


@pytest.fixture
def system_redis() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(f"redis://{SYSTEM_REDIS}/0")
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"no Redis at {SYSTEM_REDIS} to keep the GCS state in: {exc}")
    yield client
    client.close()


def _keys(client: redis.Redis, namespace: str) -> list[bytes]:
    return list(client.scan_iter(match=f"*{namespace}*"))


def test_a_head_given_a_redis_keeps_its_gcs_state_there(system_redis: redis.Redis) -> None:
    run_dir = short_run_dir("gcs-")
    settings = Settings.model_validate({"ray": {"gcs_redis_address": f"redis://{SYSTEM_REDIS}"}})
    ports = dict(zip(topology.RAY_PORTS, pick_ports(len(topology.RAY_PORTS)), strict=True))
    ctx = Context(
        settings,
        RunPaths(run_dir),
        ports,
        {},
        None,
        pick_port_range(topology.RAY_PORT_BLOCK),
    )
    assert topology.RAY.launch is not None
    launch = topology.RAY.launch(ctx)
    namespace = launch.env["RAY_external_storage_namespace"]
    head = process.spawn(launch, run_dir / "ray.log")
    try:
        # The head's node table and its key-value store (Serve's checkpoints live there).
        wanted = {f"RAY{namespace}@NODE", f"RAY{namespace}@KV"}
        deadline = time.monotonic() + 90
        stored: set[str] = set()
        while not wanted <= stored and time.monotonic() < deadline:
            assert head.poll() is None, process.log_tail(run_dir / "ray.log")
            time.sleep(1)
            stored = {key.decode() for key in _keys(system_redis, namespace)}
        assert wanted <= stored, stored
    finally:
        # ``ray start --block`` stops its GCS, raylet and dashboard on SIGTERM, in order;
        # whatever still names this run's Ray directory goes too.
        process.terminate(process.tree(head.pid), grace_s=20, signal_group=False)
        leftovers = process.processes_mentioning([str(ctx.paths.ray_temp)])
        if leftovers:
            process.terminate(leftovers, grace_s=5)
        for key in _keys(system_redis, namespace):
            system_redis.delete(key)
        shutil.rmtree(run_dir, ignore_errors=True)
