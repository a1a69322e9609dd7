"""The scan pipeline through HTTP and SSE on the embedded stack (Serve, simulator, PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis

from tests.conftest import StackUrls
from tests.sse import named_events

pytestmark = pytest.mark.integration

CDN = "https://cdn.eco2.local/scan"


def _user() -> dict[str, str]:
    return {"X-User-ID": f"user-{uuid.uuid4().hex[:8]}"}


async def _scan(
    client: httpx.AsyncClient, image: str, headers: dict[str, str], **extra: Any
) -> tuple[dict[str, Any], list[Any], httpx.Response]:
    submitted = await client.post(
        "/api/v1/scan", json={"image_url": f"{CDN}/{image}", **extra}, headers=headers
    )
    assert submitted.status_code == 202, submitted.text
    body = submitted.json()
    assert body["stream_url"] == f"/api/v1/scan/{body['job_id']}/events"
    assert body["result_url"] == f"/api/v1/scan/{body['job_id']}/result"
    assert body["status"] == "queued"
    events = await named_events(client, body["stream_url"], headers)
    result = await client.get(body["result_url"], headers=headers)
    return body, events, result


@pytest.mark.parametrize(
    ("image", "major", "middle", "rewarded"),
    [
        ("clear-pet-bottle-nolabel-empty.jpg", "재활용폐기물", "무색페트병", True),
        ("tissue.jpg", "일반종량제폐기물", "일반종량제폐기물", False),
        ("ceramic-plate.jpg", "불연성종량제폐기물", "불연성종량제폐기물", False),
        ("leftover-food.jpg", "음식물류폐기물", "음식물류폐기물", False),
        ("sofa.jpg", "대형폐기물", "대형폐기물", False),
        ("paint.jpg", "생활계유해폐기물", "생활계유해폐기물", False),
        ("blurry-nothing.jpg", "미분류", "미분류", False),
    ],
)
async def test_one_scan_per_major_class_streams_its_stages_and_stores_the_result(
    scan_api: httpx.AsyncClient, image: str, major: str, middle: str, rewarded: bool
) -> None:
    headers = _user()
    job, events, result = await _scan(scan_api, image, headers)
    names = [name for name, _ in events]
    assert names[0] in ("queued", "vision")
    assert names[-1] == "done"
    assert [e["progress"] for _, e in events] == sorted(e["progress"] for _, e in events)
    assert all(e["trace_id"] and e["job_id"] == job["job_id"] for _, e in events)
    assert result.status_code == 200
    body = result.json()
    classification = body["pipeline_result"]["classification_result"]["classification"]
    assert (classification["major_category"], classification["middle_category"]) == (major, middle)
    assert "reward" in body
    assert (body["reward"] is not None) == rewarded
    assert body["metadata"]["rules_version"]
    assert events[-1][1]["result"]["task_id"] == job["job_id"]
    if major == "미분류":
        assert body["pipeline_result"]["disposal_rules"] is None
        assert body["pipeline_result"]["final_answer"]["insufficiencies"] == ["배출 규정 매칭 실패"]


async def test_the_same_idempotency_key_from_the_same_user_returns_the_same_job(
    scan_api: httpx.AsyncClient,
) -> None:
    headers = {**_user(), "X-Idempotency-Key": uuid.uuid4().hex}
    body = {"image_url": f"{CDN}/aluminum-can.jpg"}
    first = await scan_api.post("/api/v1/scan", json=body, headers=headers)
    second = await scan_api.post("/api/v1/scan", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["job_id"] == second.json()["job_id"]
    other_user = {**headers, **_user()}
    third = await scan_api.post("/api/v1/scan", json=body, headers=other_user)
    assert third.json()["job_id"] != first.json()["job_id"]


async def test_injected_429s_are_retried_and_no_committed_stage_is_called_twice(
    scan_api: httpx.AsyncClient, simulator: httpx.AsyncClient
) -> None:
    config = (await simulator.get("/sim/config")).json()
    config["retry_after_s"] = 1
    config["fail_next"] = [{"kind": "vision", "fault": "429", "count": 2}]
    assert (await simulator.put("/sim/config", json=config)).status_code == 200
    try:
        headers = _user()
        job, _, result = await _scan(scan_api, "milk-carton.jpg", headers)
        assert result.status_code == 200, result.text
        stats = (await simulator.get("/stats")).json()
        assert stats["calls_by_key"][f"{job['job_id']}:vision"] == 1
        assert stats["calls_by_key"][f"{job['job_id']}:answer"] == 1
        assert stats["kinds"]["vision"]["faults"]["429"] >= 2
    finally:
        config["fail_next"] = []
        await simulator.put("/sim/config", json=config)


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"image_url": "ftp://cdn.eco2.local/a.jpg"}, None, 400, "invalid_image_url"),
        ({"image_url": "http://127.0.0.1/a.jpg"}, None, 400, "invalid_image_url"),
        ({"image_url": "http://localhost/a.jpg"}, None, 400, "invalid_image_url"),
        ({"image_url": f"{CDN}/a.jpg", "model": "gpt-0"}, None, 400, "unknown_model"),
        ({"image_url": f"{CDN}/a.jpg", "user_input": "x" * 501}, None, 400, "user_input_too_long"),
        ({"user_input": "no url"}, None, 422, "invalid_request"),
        ({"image_url": f"{CDN}/a.jpg"}, {}, 401, "unauthenticated"),
    ],
)
async def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_stored(
    scan_api: httpx.AsyncClient,
    scan_db_dsn: str,
    body: dict[str, Any],
    headers: dict[str, str] | None,
    status: int,
    code: str,
) -> None:
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        before = await conn.fetchval("SELECT count(*) FROM scan_jobs")
        response = await scan_api.post(
            "/api/v1/scan", json=body, headers=_user() if headers is None else headers
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code
        assert error["message"]
        assert await conn.fetchval("SELECT count(*) FROM scan_jobs") == before
    finally:
        await conn.close()


async def test_malformed_json_is_refused(scan_api: httpx.AsyncClient) -> None:
    response = await scan_api.post(
        "/api/v1/scan",
        content=b"{not json",
        headers={**_user(), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_another_users_job_is_not_found(scan_api: httpx.AsyncClient) -> None:
    headers = _user()
    job, _, _ = await _scan(scan_api, "glass-bottle.jpg", headers)
    stranger = await scan_api.get(job["result_url"], headers=_user())
    assert stranger.status_code == 404
    unknown = await scan_api.get(f"/api/v1/scan/{uuid.uuid4()}/result", headers=headers)
    assert unknown.status_code == 404
    # The event stream is authorised from the job's progress history: a stranger gets 404,
    # and so does a job with no history and no row.
    stranger_stream = await scan_api.get(job["stream_url"], headers=_user())
    assert stranger_stream.status_code == 404
    unknown_stream = await scan_api.get(f"/api/v1/scan/{uuid.uuid4()}/events", headers=headers)
    assert unknown_stream.status_code == 404
    not_an_id = await scan_api.get("/api/v1/scan/not-a-job/events", headers=headers)
    assert not_an_id.status_code == 404


async def test_categories_are_static(scan_api: httpx.AsyncClient) -> None:
    response = await scan_api.get("/api/v1/scan/categories")
    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [1, 2, 3, 4]


async def test_the_synchronous_endpoint_returns_the_whole_result_inline(
    scan_api: httpx.AsyncClient,
) -> None:
    response = await scan_api.post(
        "/v1/scan:classify",
        json={"image_url": f"{CDN}/milk-carton.jpg", "user_input": "어떻게 버려?"},
        headers=_user(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed"
    classification = body["pipeline_result"]["classification_result"]
    assert classification["classification"]["middle_category"] == "종이팩"
    assert classification["meta"]["user_input"] == "어떻게 버려?"
    assert body["reward"]["name"] == "팩토리"


async def test_live_events_reach_every_subscriber_of_a_job_and_resume_after_last_event_id(
    scan_api: httpx.AsyncClient, simulator: httpx.AsyncClient
) -> None:
    """Subscribers connected before the stages finish get each event live (per-job channel),
    two at once included; a reconnect with Last-Event-ID gets only what came after it."""
    from tests.integration.test_scan_durability import sim_config

    headers = _user()
    async with sim_config(simulator, vision_ms=700, answer_ms=700):
        submitted = await scan_api.post(
            "/api/v1/scan", json={"image_url": f"{CDN}/aluminum-can.jpg"}, headers=headers
        )
        stream_url = submitted.json()["stream_url"]
        first, second = await asyncio.gather(
            named_events(scan_api, stream_url, headers), named_events(scan_api, stream_url, headers)
        )
    names = [name for name, _ in first]
    assert names[-1] == "done"
    assert {"vision", "rule", "answer", "reward"} <= set(names)
    assert [e["seq"] for _, e in second] == [e["seq"] for _, e in first]
    assert [e["seq"] for _, e in first] == sorted(e["seq"] for _, e in first)
    vision_done = next(e for n, e in first if n == "vision" and e["status"] == "completed")
    resumed_headers = {**headers, "Last-Event-ID": f"1-{vision_done['seq'] + 1}"}
    resumed = await named_events(scan_api, stream_url, resumed_headers)
    assert [e["seq"] for _, e in resumed] == [
        e["seq"] for _, e in first if e["seq"] > vision_done["seq"]
    ]


async def test_a_job_whose_progress_history_expired_streams_a_snapshot_from_its_row(
    scan_api: httpx.AsyncClient, stack: StackUrls
) -> None:
    headers = _user()
    job, _, _ = await _scan(scan_api, "milk-carton.jpg", headers)
    valkey = aioredis.Redis.from_url(stack.cache_url)
    try:
        assert await valkey.delete(f"scan:progress:{job['job_id']}") == 1
    finally:
        await valkey.aclose()
    events = await named_events(scan_api, job["stream_url"], headers)
    assert [name for name, _ in events] == ["done"]
    assert events[0][1]["result"]["task_id"] == job["job_id"]
    stranger = await scan_api.get(job["stream_url"], headers=_user())
    assert stranger.status_code == 404
