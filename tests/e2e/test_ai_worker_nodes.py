"""A stack with two local AI worker nodes (``eco2 up --ai-workers 2``): the AI stages run only on
them, and losing one while scans run loses no scan and grants no reward twice."""

from __future__ import annotations

import asyncio
import shutil
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest

from cluster import probes
from cluster.process import processes_mentioning
from cluster.state import read_state
from eco2.migrations import database_dsn
from tests.conftest import StackUrls, cluster_cli, pipeline_client, short_run_dir, start_stack
from tests.integration.test_scan_durability import result_within, sim_config, submit

pytestmark = [pytest.mark.e2e, pytest.mark.own_stack_first]

AI_WORKERS = 2
SCANS = 24
REWARDING_IMAGE = "clear-pet-bottle-nolabel-empty.jpg"


@pytest.fixture(scope="module")
def multi_node() -> Iterator[StackUrls]:
    run_dir = short_run_dir("e2n-")
    try:
        yield start_stack(run_dir, "--ai-workers", str(AI_WORKERS))
    finally:
        cluster_cli(run_dir, "down")
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
async def pipeline(multi_node: StackUrls) -> AsyncIterator[httpx.AsyncClient]:
    async with pipeline_client(multi_node) as client:
        yield client


def _replica_nodes(dashboard: str) -> dict[str, list[str]]:
    """``app:Deployment`` → the nodes of its running replicas, as Serve reports them."""
    applications = httpx.get(f"{dashboard}/api/serve/applications/", timeout=10).json()
    return {
        f"{app}:{name}": [r["node_id"] for r in details["replicas"] if r["state"] == "RUNNING"]
        for app, status in applications["applications"].items()
        for name, details in status["deployments"].items()
    }


def _nodes(dashboard: str) -> list[dict[str, Any]]:
    nodes = probes.ray_nodes(dashboard)
    assert isinstance(nodes, list), nodes
    return nodes


def test_ai_stages_run_only_on_the_ai_worker_nodes(multi_node: StackUrls) -> None:
    assert multi_node.dashboard_url is not None
    nodes = {n["node_id"]: n for n in _nodes(multi_node.dashboard_url) if n["state"] == "ALIVE"}
    head = [n for n in nodes.values() if n["role"] == "head"]
    ai = [n for n in nodes.values() if n["ai_worker"] > 0]
    assert len(head) == 1
    assert head[0]["ai_worker"] == 0
    assert len(ai) == AI_WORKERS
    assert all(n["cpu"] == 0 for n in ai)

    placed = _replica_nodes(multi_node.dashboard_url)
    stages = {name: ids for name, ids in placed.items() if name.endswith("Stage")}
    assert set(stages) == {
        "scan:VisionStage",
        "scan:AnswerStage",
        "chat:TextStage",
        "chat:VisionStage",
    }
    assert all(stages.values()), stages  # every stage runs
    assert all(nodes[node]["ai_worker"] > 0 for ids in stages.values() for node in ids)
    ingresses = [ids for name, ids in placed.items() if name.endswith("Ingress")]
    assert ingresses
    assert all(nodes[node]["role"] == "head" for ids in ingresses for node in ids)


def _kill_node(multi_node: StackUrls, node_id: str) -> str:
    """SIGKILL every process of the local AI worker node ``node_id`` (a machine lost at once)."""
    assert multi_node.dashboard_url is not None
    port = next(
        n["node_manager_port"] for n in _nodes(multi_node.dashboard_url) if n["node_id"] == node_id
    )
    state = read_state(multi_node.run_dir)
    assert state is not None
    name, recorded = next(
        (name, c) for name, c in state.components.items() if c.ports.get("node_manager") == port
    )
    victims = processes_mentioning(recorded.watch_paths)
    assert victims, f"no process of {name} found"
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    return name


async def test_losing_an_ai_worker_node_mid_scan_loses_no_scan_and_duplicates_no_reward(
    multi_node: StackUrls, pipeline: httpx.AsyncClient
) -> None:
    assert multi_node.dashboard_url is not None
    base = multi_node.model_base_url.removesuffix("/v1")
    users = [f"node-loss-{uuid.uuid4().hex[:8]}" for _ in range(SCANS)]
    async with (
        httpx.AsyncClient(base_url=base, timeout=30) as simulator,
        sim_config(simulator, vision_ms=1500, answer_ms=300),
    ):
        jobs = await asyncio.gather(*(submit(pipeline, u, REWARDING_IMAGE) for u in users))
        await asyncio.sleep(0.8)  # every vision call is in flight now
        vision_nodes = _replica_nodes(multi_node.dashboard_url)["scan:VisionStage"]
        lost = _kill_node(multi_node, vision_nodes[0])
        results = await asyncio.gather(
            *(
                result_within(pipeline, u, job, deadline_s=120)
                for u, job in zip(users, jobs, strict=True)
            )
        )
    assert [r.status_code for r in results] == [200] * SCANS, (lost, [r.text for r in results])
    assert all(r.json()["reward"] is not None for r in results)

    conn = await asyncpg.connect(database_dsn(multi_node.db_url, "eco2_scan"))
    try:
        grants = await conn.fetch(
            "SELECT aggregate_id, count(*) AS n FROM event_store "
            "WHERE event_type = 'RewardGranted' AND aggregate_id = ANY($1::text[]) "
            "GROUP BY aggregate_id",
            jobs,
        )
    finally:
        await conn.close()
    assert sorted(g["aggregate_id"] for g in grants) == sorted(jobs)
    assert {g["n"] for g in grants} == {1}
