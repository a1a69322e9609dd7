"""Closed-loop load generator for the scan API (``eco2 bench scan``).

Each virtual user submits a scan, follows its SSE stream to ``done``, fetches the result once,
and starts again, until the duration is over. The client is aiohttp in one process with uvloop:
it must never be the bottleneck, so its own CPU is reported beside the machine's.
Only 127.0.0.1 targets are accepted.

Two paths (:class:`Path`): ``gateway`` is the users' — every virtual user signs in with its own
dev login first and then sends only its ``s_access`` cookie, as the web client's ``EventSource``
does, so each request passes the gateway and the ext-authz check; ``direct`` talks to Ray Serve
with an ``X-User-ID`` header, past the gateway (the pipeline alone).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal
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


Path = Literal["gateway", "direct"]


@dataclass(frozen=True)
class Target:
    """Where commands (submit, classify) and reads (stream, result) go: both to the gateway on
    the users' path; to Ray Serve and to the read service, past the gateway, when ``direct``."""

    commands: str
    reads: str

    @classmethod
    def gateway(cls, api: str) -> Target:
        return cls(api, api)


SIGN_IN_CONCURRENCY = 50
MAX_SHED_WAIT_S = 10.0
"""The longest a virtual user waits on a shed submit's ``Retry-After`` before sending it again."""


@dataclass
class User:
    """One virtual user: the headers that identify it on its path."""

    key: str
    headers: dict[str, str] = field(default_factory=dict)


class SignInFailed(Exception):
    pass


async def sign_in(session: aiohttp.ClientSession, api: str, user: User) -> None:
    """Dev login through the gateway; the user then sends only its access cookie."""
    body = {"nickname": user.key[-40:], "user_key": user.key}
    async with session.post(f"{api}/api/v1/auth/dev-login", json=body) as response:
        if response.status != 200:
            raise SignInFailed(f"dev-login {response.status}: {(await response.text())[:200]}")
        token = (await response.json())["access_token"]
    user.headers = {"Cookie": f"s_access={token}"}


async def sign_in_all(api: str, users: list[User]) -> None:
    """Sign every user in, ``SIGN_IN_CONCURRENCY`` at a time (before the measured load)."""
    gate = asyncio.Semaphore(SIGN_IN_CONCURRENCY)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(user: User) -> None:
            async with gate:
                await sign_in(session, api, user)

        await asyncio.gather(*(one(u) for u in users))


def make_users(count: int, path: Path) -> list[User]:
    run = uuid.uuid4().hex[:6]
    users = [User(f"bench-{run}-{i}") for i in range(count)]
    if path == "direct":
        for user in users:
            user.headers = {"X-User-ID": user.key}
    return users


@dataclass
class Tally:
    e2e_s: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    shed: int = 0
    """Submits the stack refused as overloaded (503 + ``Retry-After``), each sent again after
    the wait it asked for: a scan's e2e time counts from its first try."""
    all_completed: int = 0
    """Completed scans including the ramp (for CPU per scan over the whole run)."""
    accepted_at: list[float] = field(default_factory=list)
    """When each submit was accepted (``time.monotonic()``), the ramp included."""

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


async def _refused(step: str, response: aiohttp.ClientResponse) -> str:
    """``<step>_<status>[_<error code>]``: the code says which part refused (e.g. the
    gateway's ``authz_unavailable`` vs the service's own ``overloaded``)."""
    try:
        code = (await response.json(content_type=None))["error"]["code"]
    except (ValueError, KeyError, TypeError, aiohttp.ClientError):
        code = None
    return f"{step}_{response.status}" + (f"_{code}" if code else "")


def _shed_wait_s(response: aiohttp.ClientResponse) -> float | None:
    """The wait a 503 ``Retry-After`` asks for (the stack shedding load), else None."""
    if response.status != 503:
        return None
    try:
        return min(MAX_SHED_WAIT_S, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


async def _one_scan(
    session: aiohttp.ClientSession,
    target: Target,
    headers: dict[str, str],
    image: str,
    tally: Tally,
) -> str | None:
    """Run one scan; return None on success or a failure reason."""
    body = {"image_url": f"https://cdn.eco2.local/scan/{image}"}
    url = f"{target.commands}/api/v1/scan"
    while True:
        async with session.post(url, json=body, headers=headers) as response:
            wait_s = _shed_wait_s(response)
            if wait_s is None:
                if response.status != 202:
                    return await _refused("submit", response)
                job = await response.json()
                tally.accepted_at.append(time.monotonic())
                break
            await response.read()
        tally.shed += 1
        await asyncio.sleep(wait_s)
    done = False
    async with session.get(f"{target.reads}{job['stream_url']}", headers=headers) as stream:
        if stream.status != 200:
            return await _refused("events", stream)
        async for raw in stream.content:
            line = raw.decode().strip()
            if line == "event: error":
                return "scan_error"
            if line == "event: done":
                done = True
                break
    if not done:
        return "stream_closed_early"
    async with session.get(f"{target.reads}{job['result_url']}", headers=headers) as result:
        if result.status != 200:
            return await _refused("result", result)
        await result.read()
    return None


async def _one_sync_scan(
    session: aiohttp.ClientSession,
    target: Target,
    headers: dict[str, str],
    image: str,
    tally: Tally,
) -> str | None:
    """One scan through the synchronous endpoint (no SSE, no result fetch; direct path only:
    the gateway does not route it)."""
    body = {"image_url": f"https://cdn.eco2.local/scan/{image}"}
    url = f"{target.commands}/v1/scan:classify"
    async with session.post(url, json=body, headers=headers) as response:
        await response.read()
        return None if response.status == 200 else f"classify_{response.status}"


PROTOCOLS = {"sse": _one_scan, "sync": _one_sync_scan}


async def _user_loop(
    session: aiohttp.ClientSession,
    target: Target,
    user: User,
    index: int,
    deadline: float,
    tally: Tally,
    protocol: str,
) -> None:
    n = index
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            image = IMAGES[n % len(IMAGES)]
            reason = await PROTOCOLS[protocol](session, target, user.headers, image, tally)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = type(exc).__name__
        n += 1
        if reason is None:
            tally.all_completed += 1
            tally.e2e_s.append(time.monotonic() - started)
            continue
        tally.fail(reason)
        if "_401" in reason and "Cookie" in user.headers:  # the access token expired
            try:
                await sign_in(session, target.commands, user)
            except (SignInFailed, aiohttp.ClientError, TimeoutError):
                tally.fail("sign_in_again")
        await asyncio.sleep(0.5)


async def drive(
    target: Target,
    users: list[User],
    duration_s: float,
    ramp_s: float,
    protocol: str = "sse",
) -> dict[str, Any]:
    """Run the closed-loop ``users`` for ``duration_s`` (after ramping up over ``ramp_s``)."""
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=180, sock_connect=10)
    me = psutil.Process()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        deadline = time.monotonic() + ramp_s + duration_s
        tasks = []
        for i, user in enumerate(users):
            tasks.append(
                asyncio.create_task(_user_loop(session, target, user, i, deadline, tally, protocol))
            )
            if ramp_s:
                await asyncio.sleep(ramp_s / len(users))
        # Measure the steady part only: from the end of the ramp to the deadline. What failed
        # during the ramp is reported on its own, never dropped.
        ramp_failures = dict(tally.failures)
        tally.e2e_s.clear()
        tally.failures.clear()
        tally.shed = 0
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
        "shed": tally.shed,
        "ramp_failed": sum(ramp_failures.values()),
        "ramp_failures": ramp_failures,
        "completed_per_min": round(len(tally.e2e_s) / elapsed * 60, 1),
        "e2e_s": sorted(tally.e2e_s),
        "accepted_at": tally.accepted_at,
        "driver_cpu_percent": round(driver_cpu, 1),
        "machine_cpu_percent": round(machine_cpu, 1),
    }


def summarise(raw: dict[str, Any], model_time_s: float) -> dict[str, Any]:
    e2e: list[float] = raw.pop("e2e_s")
    raw.pop("accepted_at")
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


def check_target(*urls: str) -> None:
    if any(urlsplit(url).hostname not in ("127.0.0.1", "localhost") for url in urls):
        raise ValueError("the load generator only targets 127.0.0.1")


def prepare(api: str, count: int, path: Path) -> list[User]:
    """The virtual users of a run, signed in when they take the gateway path."""
    check_target(api)
    users = make_users(count, path)
    if path == "gateway":
        eco2.loop.run(sign_in_all(api, users))
    return users


def run(
    target: Target,
    users: list[User],
    duration_s: float,
    ramp_s: float,
    model_time_s: float,
    protocol: str = "sse",
) -> dict[str, Any]:
    check_target(target.commands, target.reads)
    raw = eco2.loop.run(drive(target, users, duration_s, ramp_s, protocol))
    return summarise(raw, model_time_s)


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, ensure_ascii=False, indent=2)
