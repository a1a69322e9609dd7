"""``eco2 bench gateway``: requests per second through the gateway's sign-in check.

Closed-loop clients, each signed in with its own dev-login cookie, call a signed-in endpoint
through the gateway (ext-authz check → route → domain service → answer) and a public one (no
check) for comparison. The original system's bar: authz above 500 RPS with p95 under 200 ms.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Annotated, Any

import aiohttp
import typer

from cluster.running import running_state
from devtools.bench.cdc import percentile


async def _client_loop(
    session: aiohttp.ClientSession, url: str, until: float, latencies: list[float]
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    while time.perf_counter() < until:
        started = time.perf_counter()
        async with session.get(url) as answer:
            await answer.read()
            statuses[answer.status] += 1
        latencies.append((time.perf_counter() - started) * 1000)
    return statuses


async def _run(base: str, path: str, clients: int, seconds: float) -> dict[str, Any]:
    # unsafe=True: keep cookies set by an IP-address host (the local gateway is 127.0.0.1)
    sessions = [
        aiohttp.ClientSession(base_url=base, cookie_jar=aiohttp.CookieJar(unsafe=True))
        for _ in range(clients)
    ]
    try:
        for n, session in enumerate(sessions):
            signed = await session.post("/api/v1/auth/dev-login", json={"user_key": f"gw-{n}"})
            signed.raise_for_status()
        latencies: list[float] = []
        until = time.perf_counter() + seconds
        per_client = await asyncio.gather(
            *(_client_loop(s, path, until, latencies) for s in sessions)
        )
    finally:
        for session in sessions:
            await session.close()
    return {
        "path": path,
        "requests": len(latencies),
        "failed": sum(n for c in per_client for status, n in c.items() if status != 200),
        "statuses": dict(sum(per_client, Counter[int]())),
        "rps": round(len(latencies) / seconds),
        "p50_ms": round(percentile(latencies, 0.5), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


def bench_gateway(
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    clients: Annotated[int, typer.Option(help="concurrent signed-in clients")] = 50,
    seconds: Annotated[float, typer.Option(help="duration of each run")] = 15.0,
) -> None:
    """Signed-in (ext-authz checked) vs public requests per second through the gateway."""
    state = running_state()
    assert state.api_url is not None
    runs = [
        asyncio.run(_run(state.api_url, path, clients, seconds))
        for path in ("/api/v1/users/me", "/api/v1/character/catalog")
    ]
    result = {
        "command": f"eco2 bench gateway --clients {clients} --seconds {seconds}",
        "signed_in": runs[0],
        "public": runs[1],
    }
    typer.echo(json.dumps(result, ensure_ascii=False, indent=None if as_json else 2))
