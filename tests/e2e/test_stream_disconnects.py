"""A browser that closes its stream early (``EventSource.close()`` after the first event, or a
page left mid-scan) is normal: no process of the stack logs it as an error."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from cluster.component import RunPaths
from tests.conftest import StackUrls
from tests.e2e.saga_support import sign_in

pytestmark = pytest.mark.e2e


def _logs(stack: StackUrls) -> list[Path]:
    paths = RunPaths(stack.run_dir)
    serve_logs = paths.ray_temp / "session_latest" / "logs" / "serve"
    processes = ("gateway", "streams", "authz", "domains")
    return [*(paths.log(name) for name in processes), *sorted(serve_logs.glob("*.log"))]


def _is_error(line: str) -> bool:
    try:
        record = json.loads(line)
    except ValueError:  # Ray's own text format
        return " ERROR " in line or line.startswith("Traceback")
    return isinstance(record, dict) and record.get("level") in ("error", "critical")


async def _first_event_then_close(client: httpx.AsyncClient, url: str) -> str:
    async with client.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line:
                return line  # leaving the block closes the connection mid-stream
    raise AssertionError(f"{url} ended before its first event")


async def test_closing_streams_early_logs_no_error(stack: StackUrls) -> None:
    assert stack.api_url is not None
    offsets = {path: path.stat().st_size if path.exists() else 0 for path in _logs(stack)}
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as browser:
        await sign_in(browser, "leaves-early")
        for _ in range(5):
            body = {"image_url": "https://cdn.eco2.local/scan/glass-bottle.jpg"}
            job = (await browser.post("/api/v1/scan", json=body)).json()
            assert (await _first_event_then_close(browser, job["stream_url"])).startswith("id:")
            first = await _first_event_then_close(browser, "/api/v1/notifications/stream")
            assert first.startswith(":")
    await asyncio.sleep(3)  # the scans finish and their events meet the closed connections
    errors = []
    for path in _logs(stack):
        if path.exists():
            with path.open(encoding="utf-8", errors="replace") as log:
                log.seek(offsets.get(path, 0))
                errors += [f"{path.name}: {line[:300]}" for line in log if _is_error(line)]
    assert errors == []
