"""Closed-loop load generator for the scan API (``eco2 bench scan``).

Each virtual user submits a scan, follows its SSE stream to ``done``, fetches the result once,
and starts again, until the duration is over. The client is aiohttp in one process with uvloop:
it must never be the bottleneck, so its own CPU is reported beside the machine's.
Only 127.0.0.1 targets are accepted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import psutil

import eco2.loop

IMAGES = (
    "clear-pet-bottle-nolabel-empty.jpg",
    "aluminum-can.jpg",
    "milk-carton.jpg",
    "cardboard-box.jpg",
    "glass-bottle.jpg",
    "tissue.jpg",
    "leftover-food.jpg",
)


@dataclass
class Tally:
    e2e_s: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    all_completed: int = 0
    """Completed scans including the ramp (for CPU per scan over the whole run)."""

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _one_scan(session: aiohttp.ClientSession, api: str, user: str, image: str) -> str | None:
    """Run one scan; return None on success or a failure reason."""
    headers = {"X-User-ID": user}
    body = {"image_url": f"https://cdn.eco2.local/scan/{image}"}
    async with session.post(f"{api}/api/v1/scan", json=body, headers=headers) as response:
        if response.status != 202:
            return f"submit_{response.status}"
        job = await response.json()
    done = False
    async with session.get(f"{api}{job['stream_url']}", headers=headers) as stream:
        if stream.status != 200:
            return f"events_{stream.status}"
        async for raw in stream.content:
            line = raw.decode().strip()
            if line == "event: error":
                return "scan_error"
            if line == "event: done":
                done = True
                break
    if not done:
        return "stream_closed_early"
    async with session.get(f"{api}{job['result_url']}", headers=headers) as result:
        if result.status != 200:
            return f"result_{result.status}"
        await result.read()
    return None


async def _one_sync_scan(
    session: aiohttp.ClientSession, api: str, user: str, image: str
) -> str | None:
    """One scan through the synchronous endpoint (no SSE, no result fetch)."""
    body = {"image_url": f"https://cdn.eco2.local/scan/{image}"}
    headers = {"X-User-ID": user}
    async with session.post(f"{api}/v1/scan:classify", json=body, headers=headers) as response:
        await response.read()
        return None if response.status == 200 else f"classify_{response.status}"


PROTOCOLS = {"sse": _one_scan, "sync": _one_sync_scan}


async def _user_loop(
    session: aiohttp.ClientSession,
    api: str,
    index: int,
    deadline: float,
    tally: Tally,
    protocol: str,
) -> None:
    user = f"bench-{uuid.uuid4().hex[:6]}-{index}"
    n = index
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            reason = await PROTOCOLS[protocol](session, api, user, IMAGES[n % len(IMAGES)])
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = type(exc).__name__
        n += 1
        if reason is None:
            tally.all_completed += 1
            tally.e2e_s.append(time.monotonic() - started)
        else:
            tally.fail(reason)
            await asyncio.sleep(0.5)


async def drive(
    api: str, users: int, duration_s: float, ramp_s: float, protocol: str = "sse"
) -> dict[str, Any]:
    """Run ``users`` closed-loop users for ``duration_s`` (after ramping up over ``ramp_s``)."""
    if urlsplit(api).hostname not in ("127.0.0.1", "localhost"):
        raise ValueError("the load generator only targets 127.0.0.1")
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=180, sock_connect=10)
    me = psutil.Process()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + ramp_s + duration_s
        tasks = []
        for i in range(users):
            tasks.append(
                asyncio.create_task(_user_loop(session, api, i, deadline, tally, protocol))
            )
            if ramp_s:
                await asyncio.sleep(ramp_s / users)
        # Measure the steady part only: from the end of the ramp to the deadline.
        tally.e2e_s.clear()
        tally.failures.clear()
        me.cpu_percent()
        psutil.cpu_percent()
        measured_from = time.monotonic()
        await asyncio.gather(*tasks)
        elapsed = time.monotonic() - measured_from
        driver_cpu = me.cpu_percent()
        machine_cpu = psutil.cpu_percent() * (psutil.cpu_count() or 1)
    return {
        "elapsed_s": round(elapsed, 1),
        "completed": len(tally.e2e_s),
        "all_completed": tally.all_completed,
        "failed": sum(tally.failures.values()),
        "failures": tally.failures,
        "completed_per_min": round(len(tally.e2e_s) / elapsed * 60, 1),
        "e2e_s": sorted(tally.e2e_s),
        "driver_cpu_percent": round(driver_cpu, 1),
        "machine_cpu_percent": round(machine_cpu, 1),
    }


def summarise(raw: dict[str, Any], model_time_s: float) -> dict[str, Any]:
    e2e: list[float] = raw.pop("e2e_s")
    overhead_ms = [(t - model_time_s) * 1000 for t in e2e]

    def q(values: list[float], p: float, digits: int) -> float | None:
        value = _quantile(values, p)
        return None if value is None else round(value, digits)

    return {
        **raw,
        "e2e_p50_s": q(e2e, 0.50, 3),
        "e2e_p95_s": q(e2e, 0.95, 3),
        "e2e_p99_s": q(e2e, 0.99, 3),
        "overhead_p50_ms": q(overhead_ms, 0.50, 1),
        "overhead_p95_ms": q(overhead_ms, 0.95, 1),
        "overhead_p99_ms": q(overhead_ms, 0.99, 1),
    }


def run(
    api: str,
    users: int,
    duration_s: float,
    ramp_s: float,
    model_time_s: float,
    protocol: str = "sse",
) -> dict[str, Any]:
    raw = eco2.loop.run(drive(api, users, duration_s, ramp_s, protocol))
    return summarise(raw, model_time_s)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2)
