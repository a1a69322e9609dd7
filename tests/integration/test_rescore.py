"""Batch rescoring on the embedded stack: ``python -m pipelines.rescore`` (what ``eco2 rescore``
and the RayJob run) against the stack's Ray cluster, simulator, scan database and Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx
import pytest
from confluent_kafka import Consumer, KafkaException
from typer.testing import CliRunner

from eco2.kafka import consumer_config
from eco2.settings import Settings, load_settings
from pipelines.rescore.job import job_app
from tests.conftest import REPO, StackUrls

pytestmark = pytest.mark.integration

CDN = "https://cdn.eco2.local/scan"
IMAGES = ("clear-pet-bottle-nolabel-empty.jpg", "aluminum-can-empty.jpg", "tissue.jpg")


def rescore(stack: StackUrls, *args: str) -> tuple[int, dict[str, Any] | None, str]:
    """``python -m pipelines.rescore --json ARGS`` with the stack's environment."""
    env = {**os.environ, **stack.env, "ECO2_RUN_DIR": str(stack.run_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.rescore", "--json", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    body = json.loads(done.stdout) if done.returncode in (0, 1) and done.stdout else None
    return done.returncode, body, done.stderr


async def _seed(scan_api: httpx.AsyncClient, user: str) -> None:
    for image in IMAGES:
        response = await scan_api.post(
            "/v1/scan:classify", json={"image_url": f"{CDN}/{image}"}, headers={"X-User-ID": user}
        )
        assert response.status_code == 200, response.text


async def _as_an_older_model_stored_it(conn: asyncpg.Connection, user: str) -> str:
    """The PET bottle's scan as an older model classified it: 플라스틱류, without a reward."""
    job_id: str = await conn.fetchval(
        """
        UPDATE scan_jobs
        SET vision_result = jsonb_set(vision_result, '{classification,middle_category}',
                                      '"플라스틱류"'),
            rule_id = '재활용폐기물_플라스틱류', reward = NULL
        WHERE user_id = $1 AND image_url LIKE '%pet-bottle%'
        RETURNING job_id::text
        """,
        user,
    )
    return job_id


def _sim_calls(stack: StackUrls, run_id: str) -> int:
    base = stack.model_base_url.removesuffix("/v1")
    calls = httpx.get(f"{base}/stats", timeout=10).json()["calls_by_key"]
    return sum(n for key, n in calls.items() if key.startswith(f"{run_id}:"))


def _kafka_event_types(bootstrap: str, key: str, wanted: str, deadline_s: float) -> list[str]:
    consumer = Consumer(
        consumer_config(load_settings(kafka={"bootstrap": bootstrap}), f"it-{uuid.uuid4().hex}")
    )
    consumer.subscribe(["outbox.event.scan"])
    seen: list[str] = []
    until = time.monotonic() + deadline_s
    try:
        while time.monotonic() < until and wanted not in seen:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise KafkaException(message.error())
            if message.key() == key.encode():
                pairs = cast(list[tuple[str, bytes]], message.headers() or [])
                headers = {k: v.decode() for k, v in pairs}
                seen.append(headers["eventType"])
    finally:
        consumer.close()
    return seen


async def test_a_run_records_every_row_emits_only_changes_and_a_rerun_calls_no_model(
    stack: StackUrls, settings: Settings, scan_api: httpx.AsyncClient, scan_db_dsn: str
) -> None:
    user = f"rescore-{uuid.uuid4().hex[:8]}"
    run_id = f"it-{uuid.uuid4().hex[:8]}"
    await _seed(scan_api, user)
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        changed_job = await _as_an_older_model_stored_it(conn, user)
        version_before = await conn.fetchval(
            "SELECT version FROM scan_jobs WHERE job_id = $1::uuid", changed_job
        )

        code, first, stderr = await asyncio.to_thread(
            rescore, stack, "--filter", f"user={user}", "--run-id", run_id
        )
        assert code == 0, stderr
        assert first is not None
        assert (first["selected"], first["rescored"], first["changed"]) == (3, 3, 1)
        assert first["label_changes"] == [
            {"from": "재활용폐기물/플라스틱류", "to": "재활용폐기물/무색페트병", "count": 1}
        ]
        assert first["reward_changes"] == [{"from": "none", "to": "char-petty", "count": 1}]
        assert await asyncio.to_thread(_exist, first["report"], first["chart"])
        calls = await asyncio.to_thread(_sim_calls, stack, run_id)
        assert calls == first["requests"] >= 5  # vision for 3, answer for those with a rule

        rows = await conn.fetch(
            "SELECT job_id::text, status, changed FROM scan_rescorings WHERE run_id = $1", run_id
        )
        assert len(rows) == 3
        assert {r["status"] for r in rows} == {"done"}
        assert {r["job_id"] for r in rows if r["changed"]} == {changed_job}
        events = await conn.fetch(
            "SELECT aggregate_id, aggregate_version, payload FROM event_store "
            "WHERE event_type = 'ScanRescored' AND payload->>'run_id' = $1",
            run_id,
        )
        assert [(e["aggregate_id"], e["aggregate_version"]) for e in events] == [
            (changed_job, version_before + 1)
        ]
        assert json.loads(events[0]["payload"])["changed"] == ["label", "rule", "reward"]

        code, again, stderr = await asyncio.to_thread(
            rescore, stack, "--filter", f"user={user}", "--run-id", run_id
        )
        assert code == 0, stderr
        assert again is not None
        assert (again["rescored"], again["already_done"], again["requests"]) == (0, 3, 0)
        assert await asyncio.to_thread(_sim_calls, stack, run_id) == calls
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM event_store WHERE event_type = 'ScanRescored' "
                "AND payload->>'run_id' = $1",
                run_id,
            )
            == 1
        )
    finally:
        await conn.close()

    seen = await asyncio.to_thread(
        _kafka_event_types, stack.kafka_bootstrap, changed_job, "ScanRescored", 60.0
    )
    assert "ScanRescored" in seen


async def test_a_batch_api_run_gives_the_online_outcomes_with_each_call_answered_once(
    stack: StackUrls, settings: Settings, scan_api: httpx.AsyncClient, scan_db_dsn: str
) -> None:
    user = f"rescore-b-{uuid.uuid4().hex[:8]}"
    run_id = f"it-b-{uuid.uuid4().hex[:8]}"
    await _seed(scan_api, user)
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        changed_job = await _as_an_older_model_stored_it(conn, user)
        code, body, stderr = await asyncio.to_thread(
            rescore, stack, "--filter", f"user={user}", "--run-id", run_id, "--batch-api"
        )
        assert code == 0, stderr
        assert body is not None
        assert (body["rescored"], body["changed"], body["failed"]) == (3, 1, 0)
        assert body["reward_changes"] == [{"from": "none", "to": "char-petty", "count": 1}]
        assert await asyncio.to_thread(_sim_calls, stack, run_id) == body["requests"] >= 5
        changed = await conn.fetch(
            "SELECT job_id::text FROM scan_rescorings WHERE run_id = $1 AND changed <> '{}'",
            run_id,
        )
        assert [r["job_id"] for r in changed] == [changed_job]
    finally:
        await conn.close()

    code, _, stderr = await asyncio.to_thread(
        rescore, stack, "--filter", f"user={user}", "--batch-api", "--budget-rpm", "60"
    )
    assert code == 2
    assert "--batch-api" in stderr


async def test_a_run_killed_midway_is_finished_by_a_rerun_without_calling_the_model_again(
    stack: StackUrls, settings: Settings, scan_api: httpx.AsyncClient, scan_db_dsn: str
) -> None:
    user = f"rescore-{uuid.uuid4().hex[:8]}"
    run_id = f"it-kill-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        await _seed(scan_api, user)
    args = ["--filter", f"user={user}", "--run-id", run_id]
    # Two rows a batch at one request a second: the first batches commit, then the kill.
    slow = await asyncio.to_thread(_start, stack, *args, "--budget-rpm", "60", "--batch-size", "2")
    conn = await asyncpg.connect(scan_db_dsn)
    try:
        done = await _wait_done(conn, run_id, at_least=2, deadline_s=90)
        slow.kill()
        await asyncio.to_thread(slow.wait, 30)
        await asyncio.sleep(1)
        finished = {r["job_id"] for r in await _done_rows(conn, run_id)}
        assert 2 <= len(finished) < 6, done
        calls_before = await asyncio.to_thread(_sim_calls_by_job, stack, run_id)

        code, rerun, stderr = await asyncio.to_thread(rescore, stack, *args)
        assert code == 0, stderr
        assert rerun is not None
        assert rerun["already_done"] == len(finished)
        assert rerun["rescored"] == 6 - len(finished)
        assert len(await _done_rows(conn, run_id)) == 6
        calls_after = await asyncio.to_thread(_sim_calls_by_job, stack, run_id)
        assert all(calls_after[job] == calls_before[job] for job in finished)
    finally:
        if slow.poll() is None:
            slow.kill()
        await conn.close()


def _start(stack: StackUrls, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **stack.env, "ECO2_RUN_DIR": str(stack.run_dir)}
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines.rescore", "--json", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )


async def _done_rows(conn: asyncpg.Connection, run_id: str) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT job_id::text FROM scan_rescorings WHERE run_id = $1 AND status = 'done'",
            run_id,
        )
    )


async def _wait_done(
    conn: asyncpg.Connection, run_id: str, *, at_least: int, deadline_s: float
) -> int:
    until = time.monotonic() + deadline_s
    while (done := len(await _done_rows(conn, run_id))) < at_least:
        assert time.monotonic() < until, f"only {done} rows done in {deadline_s} s"
        await asyncio.sleep(0.2)
    return done


def _sim_calls_by_job(stack: StackUrls, run_id: str) -> dict[str, int]:
    """Completed model calls per scan of ``run_id`` (the simulator counts them by call key)."""
    base = stack.model_base_url.removesuffix("/v1")
    calls = httpx.get(f"{base}/stats", timeout=10).json()["calls_by_key"]
    per_job: dict[str, int] = {}
    for key, count in calls.items():
        if key.startswith(f"{run_id}:"):
            job = key.split(":")[1]
            per_job[job] = per_job.get(job, 0) + count
    return per_job


async def test_429s_pause_the_budget_for_their_retry_after_and_the_rows_finish(
    stack: StackUrls, settings: Settings, scan_api: httpx.AsyncClient
) -> None:
    user = f"rescore-{uuid.uuid4().hex[:8]}"
    await _seed(scan_api, user)
    body, code, stderr, refused = await asyncio.to_thread(_rescore_under_429s, stack, user)
    assert code == 0, stderr
    assert body is not None
    assert refused == 2
    assert (body["rescored"], body["failed"]) == (3, 0)
    assert body["requests"] == 3 + 2  # the refused attempts are paid for too
    assert body["elapsed_s"] >= 2.0  # Retry-After honoured


def _rescore_under_429s(stack: StackUrls, user: str) -> tuple[Any, int, str, int]:
    """Rescore ``user``'s scans' vision while the simulator refuses the next 2 vision calls with
    429 and ``Retry-After: 2``; the simulator's configuration is restored after."""
    with httpx.Client(base_url=stack.model_base_url.removesuffix("/v1"), timeout=10) as sim:
        original = sim.get("/sim/config").json()
        faults = {
            **original,
            "retry_after_s": 2,
            "fail_next": [{"kind": "vision", "fault": "429", "count": 2}],
        }
        sim.put("/sim/config", json=faults).raise_for_status()
        try:
            before = sim.get("/stats").json()["kinds"]["vision"]["faults"]["429"]
            code, body, stderr = rescore(
                stack, "--filter", f"user={user}", "--stages", "vision", "--budget-rpm", "6000"
            )
            after = sim.get("/stats").json()["kinds"]["vision"]["faults"]["429"]
        finally:
            sim.put("/sim/config", json=original).raise_for_status()
    return body, code, stderr, after - before


def _exist(*paths: str) -> bool:
    return all(Path(path).exists() for path in paths)


def test_a_filter_that_matches_nothing_reports_so_and_exits_0(
    stack: StackUrls, settings: Settings, tmp_path: Path
) -> None:
    env = {**stack.env, "ECO2_RUN_DIR": str(stack.run_dir)}
    args = ["--json", "--filter", f"user=nobody-{uuid.uuid4().hex}", "--report-dir", str(tmp_path)]
    result = CliRunner().invoke(job_app(), args, env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["selected"] == 0
    assert body["requests"] == 0
    assert "no completed scan matches" in body["message"]
    assert (tmp_path / "report.md").exists()
    assert (tmp_path / "report.png").exists()
