"""Every process of the stack serves its named metrics, and Prometheus scrapes them all, Ray's
nodes included (the stages' ``ray.util.metrics`` arrive that way)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from cluster.state import read_state
from tests.conftest import StackUrls
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in

pytestmark = pytest.mark.e2e

EXPECTED = {
    "gateway": ('http_server_request_duration_seconds_count{http_request_method="POST"',),
    "authz": ("http_server_request_duration_seconds_count",),
    "streams": ("http_server_request_duration_seconds_count", "eco2_stream_connections"),
    "domains": ("eco2_consumer_events_total", "eco2_consumer_lag"),
    "cdc_relay": ("eco2_cdc_events_total", "eco2_cdc_lag_bytes"),
}


@pytest.fixture
async def browser(browser: httpx.AsyncClient) -> httpx.AsyncClient:
    await sign_in(browser, f"metrics-{uuid.uuid4().hex[:6]}")
    return browser


async def test_each_process_serves_its_metrics_after_a_scan(
    stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    await rewarded_scan(browser)
    async with httpx.AsyncClient(timeout=10) as client:
        for process, names in EXPECTED.items():
            url = stack.env[f"ECO2_METRICS_URL_{process.upper()}"]

            async def exposes(url: str = url, names: tuple[str, ...] = names) -> str | None:
                text = (await client.get(url)).text
                return text if all(name in text for name in names) else None

            await eventually(exposes, f"{process} exposing {names} at {url}", 30.0)


async def test_prometheus_scrapes_every_process_and_the_stages_model_calls(
    stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    state = read_state(stack.run_dir)
    assert state is not None
    if state.prometheus_url is None:
        pytest.skip("Debian's prometheus is not installed here (`make install` adds it)")
    await rewarded_scan(browser)
    async with httpx.AsyncClient(base_url=state.prometheus_url, timeout=10) as prometheus:
        last: list[dict[str, Any]] = []

        async def all_up() -> list[dict[str, Any]] | None:
            targets = (await prometheus.get("/api/v1/targets")).json()["data"]["activeTargets"]
            last[:] = targets
            jobs = {t["labels"]["job"] for t in targets}
            healthy = all(t["health"] == "up" for t in targets)
            return targets if healthy and {*EXPECTED, "ray"} <= jobs else None

        try:
            await eventually(all_up, "every scrape target up", 60.0)
        except AssertionError as failed:
            down = [
                (t["labels"]["job"], t["scrapeUrl"], t["health"], t.get("lastError"))
                for t in last
                if t["health"] != "up"
            ]
            jobs = sorted({t["labels"]["job"] for t in last})
            raise AssertionError(f"{failed}; down: {down}; jobs: {jobs}") from None

        async def model_calls() -> float | None:
            query = 'sum(ray_eco2_model_calls_total{kind="vision",outcome="ok"})'
            result = (await prometheus.get("/api/v1/query", params={"query": query})).json()
            series = result["data"]["result"]
            return float(series[0]["value"][1]) if series else None

        assert await eventually(model_calls, "the stages' model calls in Prometheus", 60.0) >= 1
