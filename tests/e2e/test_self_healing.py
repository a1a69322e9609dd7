"""The stack heals itself: Valkey killed under load leaves no stream hanging and loses no scan,
and every supervised part killed in turn is back and healthy within a stated time, after which
a signed-in scan still goes through end to end. Runs last: it kills parts of the session
stack (which comes back whole)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import httpx
import pytest
import redis.asyncio as aioredis

from cluster.state import ComponentState, read_state
from tests.conftest import StackUrls, cluster_cli
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.last_on_stack]

USERS, LOAD_S, KILL_AT_S = 30, 15.0, 4.0
STREAM_DEADLINE_S = 120.0
HEALED_WITHIN_S = {"ray": 240.0}
"""Seconds from the kill until the part is healthy again: a process restarts within 60 s; the
Ray head takes longer (a new cluster, the AI stages deployed again from ray-cluster.yaml)."""
DEFAULT_HEALED_WITHIN_S = 60.0
KILLED_IN_TURN = (
    "gateway",
    "streams",
    "authz",
    "domains",
    "cdc_relay",
    "model_sim",
    "kafka",
    "postgres",
    "ray",
)
PET = "https://cdn.eco2.local/scan/clear-pet-bottle-nolabel-empty.jpg"


@pytest.fixture
def now(stack: StackUrls) -> StackUrls:
    """The session stack as it is now: another test that runs last restarts it, and a restarted
    stack answers on new ports."""
    state = read_state(stack.run_dir)
    assert state is not None
    return StackUrls.from_state(state)


def _component(stack: StackUrls, name: str) -> ComponentState:
    state = read_state(stack.run_dir)
    assert state is not None
    return state.components[name]


def _kill(stack: StackUrls, name: str) -> int:
    pid = _component(stack, name).pid
    assert pid is not None, name
    os.kill(pid, signal.SIGKILL)
    return pid


async def _healed(stack: StackUrls, name: str, old_pid: int) -> float:
    """Seconds until ``name`` is recorded healthy again in a new process."""
    started = time.monotonic()
    limit = HEALED_WITHIN_S.get(name, DEFAULT_HEALED_WITHIN_S)
    while time.monotonic() - started < limit:
        state = _component(stack, name)
        if state.phase == "healthy" and state.pid not in (None, old_pid):
            return time.monotonic() - started
        assert state.phase != "failed", f"{name} given up: {state.last_failure}"
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} not healthy again within {limit:.0f} s: {state}")


async def _healthy_again(stack: StackUrls, name: str) -> float:
    """Seconds until ``name`` (restarted after what it needs) is recorded healthy."""
    started = time.monotonic()
    for _ in range(int(DEFAULT_HEALED_WITHIN_S / 0.5)):
        if _component(stack, name).phase == "healthy":
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} not healthy again: {_component(stack, name)}")


async def _signed_in(session: aiohttp.ClientSession, api: str) -> dict[str, str]:
    key = f"heal-{uuid.uuid4().hex[:10]}"
    body = {"nickname": key[-12:], "user_key": key}
    async with session.post(f"{api}/api/v1/auth/dev-login", json=body) as login:
        assert login.status == 200, await login.text()
        return {"Cookie": f"s_access={(await login.json())['access_token']}"}


async def _follow(
    session: aiohttp.ClientSession, api: str, url: str, cookie: dict[str, str], seen: Counter[str]
) -> str:
    """Follow a job's stream to its terminal event as a browser would: reconnect with
    ``Last-Event-ID`` after a refusal or a dropped connection."""
    last_id: str | None = None
    deadline = time.monotonic() + STREAM_DEADLINE_S
    while time.monotonic() < deadline:
        headers = {**cookie, **({"Last-Event-ID": last_id} if last_id else {})}
        try:
            async with session.get(f"{api}{url}", headers=headers) as stream:
                if stream.status != 200:
                    seen[f"events {stream.status}"] += 1
                    await asyncio.sleep(1)
                    continue
                async for raw in stream.content:
                    line = raw.decode().strip()
                    if line.startswith("id:"):
                        last_id = line.removeprefix("id:").strip()
                    elif line in ("event: done", "event: error"):
                        return line.removeprefix("event: ")
                seen["stream ended early"] += 1
        except (aiohttp.ClientError, TimeoutError):
            seen["stream dropped"] += 1
            await asyncio.sleep(1)
    return "hanging"


async def _scanning(
    session: aiohttp.ClientSession,
    api: str,
    until: float,
    accepted: list[tuple[dict[str, Any], dict[str, str], str]],
    seen: Counter[str],
) -> None:
    """One user: scan and follow the stream, again and again until ``until``."""
    cookie = await _signed_in(session, api)
    while time.monotonic() < until:
        try:
            async with session.post(
                f"{api}/api/v1/scan", json={"image_url": PET}, headers=cookie
            ) as submit:
                seen[f"submit {submit.status}"] += 1
                if submit.status != 202:
                    await asyncio.sleep(1)
                    continue
                job = await submit.json()
        except aiohttp.ClientError:
            seen["submit dropped"] += 1
            await asyncio.sleep(1)
            continue
        end = await _follow(session, api, job["stream_url"], cookie, seen)
        accepted.append((job, cookie, end))


def _session() -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(total=STREAM_DEADLINE_S + 30)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)


async def test_valkey_killed_under_load_leaves_no_stream_hanging_and_loses_no_scan(
    now: StackUrls,
) -> None:
    stack = now
    assert stack.api_url is not None
    api = stack.api_url
    restarts = _component(stack, "valkey").restarts
    accepted: list[tuple[dict[str, Any], dict[str, str], str]] = []
    seen: Counter[str] = Counter()
    async with _session() as session:
        until = time.monotonic() + LOAD_S
        users = [
            asyncio.create_task(_scanning(session, api, until, accepted, seen))
            for _ in range(USERS)
        ]
        await asyncio.sleep(KILL_AT_S)
        await _healed(stack, "valkey", _kill(stack, "valkey"))
        await asyncio.gather(*users)

        ends = Counter(end for _, _, end in accepted)
        assert ends == {"done": len(accepted)}, (ends, seen)
        results: Counter[int] = Counter()
        for job, cookie, _ in accepted:
            async with session.get(f"{api}{job['result_url']}", headers=cookie) as result:
                results[result.status] += 1
    assert results == {200: len(accepted)}, results
    assert len(accepted) >= USERS, seen  # the load really ran across the kill
    assert _component(stack, "valkey").restarts == restarts + 1


async def test_read_models_rebuild_themselves_when_valkey_loses_everything(
    now: StackUrls,
) -> None:
    stack = now
    """A Valkey that comes back empty (here: emptied) loses the read models with their inboxes;
    each projector rebuilds its own from the event stores, and ``eco2 status`` says when."""
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as browser:
        await sign_in(browser, "rebuilt")
        await rewarded_scan(browser)

        async def settled() -> dict[str, Any] | None:
            page = (await browser.get("/api/v1/users/me/page")).json()
            return page if page["updated_at"] and page["scans"] == 1 else None

        before = await eventually(settled, "the saga and the scan in the live my page")
        history = (await browser.get("/api/v1/scan/history")).json()

        client = aioredis.Redis.from_url(stack.cache_url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        rebuilding = _read_models(stack)
        assert "rebuilding" in rebuilding.values(), rebuilding

        async def whole() -> dict[str, str] | None:
            said = _read_models(stack)
            return said if set(said.values()) == {"whole"} else None

        await eventually(whole, "eco2 status: every read model whole again", within_s=60)
        # Signed in again: the emptied Valkey's blacklist was restored from auth's database.
        assert (await browser.get("/api/v1/users/me/page")).json() == before
        assert (await browser.get("/api/v1/scan/history")).json() == history


def _read_models(stack: StackUrls) -> dict[str, str]:
    status = cluster_cli(stack.run_dir, "status", "--json", timeout=60)
    models: dict[str, str] = json.loads(status.stdout)["read_models"]
    return models


async def test_every_part_killed_in_turn_is_healthy_again_and_a_scan_goes_through(
    now: StackUrls,
) -> None:
    stack = now
    assert stack.api_url is not None
    healed = {}
    for name in KILLED_IN_TURN:
        healed[name] = await _healed(stack, name, _kill(stack, name))
    # The applications are deployed again after the Ray head came back.
    for app in ("serve", "scan_app", "chat_app"):
        healed[app] = await _healthy_again(stack, app)
    seen: Counter[str] = Counter()
    async with _session() as session:
        cookie = await _signed_in(session, stack.api_url)
        async with session.post(
            f"{stack.api_url}/api/v1/scan", json={"image_url": PET}, headers=cookie
        ) as submit:
            assert submit.status == 202, (await submit.text(), healed)
            job = await submit.json()
        end = await _follow(session, stack.api_url, job["stream_url"], cookie, seen)
    assert end == "done", (seen, healed)
    print("seconds from the kill until healthy again:", {k: round(v, 1) for k, v in healed.items()})
