"""Nothing accepted is lost: dead replicas, dead-lettered jobs, the trace that follows a scan."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest

from devtools.chaos import faults
from tests.conftest import StackUrls

pytestmark = pytest.mark.integration

CDN = "https://cdn.eco2.local/scan"


def kill_replicas(stack: StackUrls, deployment: str) -> int:
    """Kill every replica of the scan application's ``deployment``."""
    return faults.kill_replicas(stack.ray_address, "scan", deployment)


@asynccontextmanager
async def sim_config(simulator: httpx.AsyncClient, **changes: Any) -> AsyncIterator[None]:
    """Apply ``changes`` (``vision_ms``, ``answer_ms``, ``fail_next``) for the block's duration."""
    original = (await simulator.get("/sim/config")).json()
    config = json.loads(json.dumps(original))
    for kind in ("vision", "answer"):
        if f"{kind}_ms" in changes:
            config["kinds"][kind].update(fixed_ms=changes[f"{kind}_ms"], jitter_ms=0)
    config["fail_next"] = changes.get("fail_next", [])
    (await simulator.put("/sim/config", json=config)).raise_for_status()
    try:
        yield
    finally:
        original["fail_next"] = []
        await simulator.put("/sim/config", json=original)


async def submit(client: httpx.AsyncClient, user: str, image: str, **headers: str) -> str:
    response = await client.post(
        "/api/v1/scan",
        json={"image_url": f"{CDN}/{image}"},
        headers={"X-User-ID": user, **headers},
    )
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def result_within(
    client: httpx.AsyncClient, user: str, job_id: str, deadline_s: float
) -> httpx.Response:
    """Poll the result until it is final (200 done, 422 failed) or the deadline passes."""
    until = time.monotonic() + deadline_s
    while True:
        try:
            response = await client.get(
                f"/api/v1/scan/{job_id}/result", headers={"X-User-ID": user}
            )
            if response.status_code in (200, 422) or time.monotonic() > until:
                return response
        except httpx.TransportError:
            if time.monotonic() > until:
                raise
        await asyncio.sleep(0.5)


async def calls(simulator: httpx.AsyncClient, job_id: str, stage: str) -> int:
    stats = (await simulator.get("/stats")).json()
    count: int = stats["calls_by_key"].get(f"{job_id}:{stage}", 0)
    return count


async def test_a_vision_replica_killed_mid_call_does_not_lose_the_scan(
    stack: StackUrls, scan_api: httpx.AsyncClient, simulator: httpx.AsyncClient
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    async with sim_config(simulator, vision_ms=3000):
        job_id = await submit(scan_api, user, "aluminum-can.jpg")
        await asyncio.sleep(1.0)  # the vision call is in flight now
        assert kill_replicas(stack, "VisionStage") >= 1
        response = await result_within(scan_api, user, job_id, deadline_s=120)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    assert await calls(simulator, job_id, "answer") == 1


async def test_an_ingress_replica_killed_mid_scan_is_resumed_from_its_last_commit(
    stack: StackUrls, scan_api: httpx.AsyncClient, simulator: httpx.AsyncClient
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    async with sim_config(simulator, vision_ms=200, answer_ms=4000):
        job_id = await submit(scan_api, user, "glass-bottle.jpg")
        await asyncio.sleep(1.5)  # vision committed, the answer call is in flight
        assert kill_replicas(stack, "ScanIngress") >= 1
        response = await result_within(scan_api, user, job_id, deadline_s=150)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "completed"
    # Vision was committed before the kill, so the resumed run never asked for it again.
    assert await calls(simulator, job_id, "vision") == 1


async def test_a_failed_scan_is_dead_lettered_and_reprocessed_from_its_last_commit(
    scan_api: httpx.AsyncClient, simulator: httpx.AsyncClient, scan_db_dsn: str
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    malformed_twice = [{"kind": "answer", "fault": "malformed", "count": 2}]
    async with sim_config(simulator, fail_next=malformed_twice):
        job_id = await submit(scan_api, user, "cardboard-box.jpg")
        failed = await result_within(scan_api, user, job_id, deadline_s=30)
    body = failed.json()
    assert failed.status_code == 422
    assert body["status"] == "failed"
    assert body["error"]["stage"] == "answer"
    assert "malformed" in body["error"]["reason"]
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        types = await conn.fetch(
            "SELECT event_type FROM event_store WHERE aggregate_id = $1 ORDER BY aggregate_version",
            job_id,
        )
        assert [r["event_type"] for r in types][-1] == "ScanFailed"
    finally:
        await conn.close()

    reprocess = await scan_api.post("/api/v1/admin/scan/reprocess", params={"job_id": job_id})
    assert reprocess.json() == {"reprocessing": [job_id]}
    done = await result_within(scan_api, user, job_id, deadline_s=30)
    assert done.json()["status"] == "completed", done.text
    assert done.json()["metadata"]["attempt"] == 2
    assert await calls(simulator, job_id, "vision") == 1
    assert await calls(simulator, job_id, "answer") == 1


async def test_the_request_trace_follows_the_scan_into_sse_and_the_event_store(
    scan_api: httpx.AsyncClient, scan_db_dsn: str
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    trace_id = uuid.uuid4().hex
    traceparent = f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"
    job_id = await submit(scan_api, user, "milk-carton.jpg", traceparent=traceparent)
    seen: list[str] = []
    async with scan_api.stream(
        "GET", f"/api/v1/scan/{job_id}/events", headers={"X-User-ID": user}, timeout=60
    ) as stream:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                seen.append(data["trace_id"])
                if data["stage"] == "done":
                    break
    assert seen
    assert set(seen) == {trace_id}
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        stored = await conn.fetch(
            "SELECT metadata->>'traceparent' AS tp FROM event_store WHERE aggregate_id = $1",
            job_id,
        )
    finally:
        await conn.close()
    assert len(stored) >= 4
    assert all(trace_id in row["tp"] for row in stored)


async def test_a_resumed_sse_stream_sends_only_what_follows_last_event_id(
    scan_api: httpx.AsyncClient,
) -> None:
    user = f"user-{uuid.uuid4().hex[:8]}"
    job_id = await submit(scan_api, user, "aluminum-can.jpg")
    assert (await result_within(scan_api, user, job_id, deadline_s=30)).status_code == 200

    async def ids(last_event_id: str | None) -> list[str]:
        headers = {"X-User-ID": user}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        found: list[str] = []
        async with scan_api.stream(
            "GET", f"/api/v1/scan/{job_id}/events", headers=headers, timeout=30
        ) as stream:
            async for line in stream.aiter_lines():
                if line.startswith("id:"):
                    found.append(line[3:].strip())
        return found

    everything = await ids(None)
    assert len(everything) >= 10
    assert await ids(everything[4]) == everything[5:]
