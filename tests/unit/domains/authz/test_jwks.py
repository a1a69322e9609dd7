from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest

from domains.authz.jwks import HttpJwksSource, JwksCache, parse_jwks
from eco2.errors import Unavailable
from tests.unit.domains.authz.tokens import KeyPair


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """Auth's JWKS endpoint: ``fail_next`` failures first, each fetch taking ``delay_s``."""

    def __init__(self, *pairs: KeyPair, fail_next: int = 0, delay_s: float = 0.0) -> None:
        self.document: dict[str, Any] = {"keys": [pair.jwk for pair in pairs]}
        self.fetches = 0
        self.fail_next = fail_next
        self.down = False
        self.delay_s = delay_s

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        await asyncio.sleep(self.delay_s)
        if self.down or self.fail_next > 0:
            self.fail_next -= 1
            raise Unavailable("auth is down")
        return {"keys": list(self.document["keys"])}


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def started(source: ScriptedSource, clock: Clock | None = None, **kw: Any) -> JwksCache:
    options: dict[str, Any] = {"ttl_s": 300, "min_refetch_s": 5, "retry_initial_s": 0.01}
    options["retry_max_s"] = 0.02
    if clock is not None:
        options["clock"] = clock
    cache = JwksCache(source, **{**options, **kw})
    await cache.start()
    return cache


@pytest.fixture
async def stopper() -> AsyncIterator[list[JwksCache]]:
    caches: list[JwksCache] = []
    yield caches
    for cache in caches:
        await cache.stop()


async def wait_until(condition: Any, within_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_keys_load_at_start_before_any_request(stopper: list[JwksCache]) -> None:
    key = KeyPair()
    source = ScriptedSource(key)
    cache = await started(source)
    stopper.append(cache)
    await wait_until(lambda: cache.ready)
    assert source.fetches == 1
    assert await cache.key_for(key.kid) is not None
    assert source.fetches == 1  # a known kid never fetches


async def test_a_failed_first_fetch_is_retried_at_once_not_after_a_blackout(
    stopper: list[JwksCache],
) -> None:
    key = KeyPair()
    source = ScriptedSource(key, fail_next=3)
    cache = await started(source)
    stopper.append(cache)
    await wait_until(lambda: cache.ready, within_s=1.0)  # backoff 10-20 ms, not 5 s
    assert source.fetches == 4
    assert await cache.key_for(key.kid) is not None


async def test_requests_before_the_first_load_wait_for_it_instead_of_failing(
    stopper: list[JwksCache],
) -> None:
    key = KeyPair()
    source = ScriptedSource(key, delay_s=0.05)
    cache = await started(source)
    stopper.append(cache)
    keys = await asyncio.gather(*(cache.key_for(key.kid) for _ in range(50)))
    assert all(k is not None for k in keys)
    assert source.fetches == 1


async def test_no_key_ever_loaded_fails_closed_with_a_short_retry_after(
    stopper: list[JwksCache],
) -> None:
    source = ScriptedSource()
    source.down = True
    cache = await started(source)
    stopper.append(cache)
    with pytest.raises(Unavailable) as refused:
        await cache.key_for("any")
    assert refused.value.retry_after_s <= 1
    assert not cache.ready
    source.down = False
    source.document["keys"].append(KeyPair().jwk)
    await wait_until(lambda: cache.ready)  # the background retries recover by themselves


async def test_refresh_happens_in_the_background_before_expiry(
    clock: Clock, stopper: list[JwksCache]
) -> None:
    old, new = KeyPair(), KeyPair()
    source = ScriptedSource(old)
    cache = await started(source, clock, ttl_s=0.1)
    stopper.append(cache)
    await wait_until(lambda: cache.ready)
    source.document["keys"] = [new.jwk]
    await wait_until(lambda: source.fetches >= 2)  # ~0.08 s later, with no request at all
    await wait_until(lambda: cache.knows(new.kid))
    clock.now += 1  # the unknown-kid refetch interval has not passed: no request-time fetch
    fetches = source.fetches
    assert await cache.key_for(new.kid) is not None
    assert source.fetches == fetches


async def test_a_failed_refresh_keeps_the_last_good_keys(stopper: list[JwksCache]) -> None:
    key = KeyPair()
    source = ScriptedSource(key)
    cache = await started(source, ttl_s=0.05)
    stopper.append(cache)
    await wait_until(lambda: cache.ready)
    source.down = True
    await wait_until(lambda: source.fetches >= 4)  # refreshes keep failing
    assert cache.ready
    assert await cache.key_for(key.kid) is not None


async def test_concurrent_unknown_kids_cause_one_fetch_and_known_kids_never_wait(
    clock: Clock, stopper: list[JwksCache]
) -> None:
    old, new = KeyPair(), KeyPair()
    source = ScriptedSource(old)
    cache = await started(source, clock)
    stopper.append(cache)
    await wait_until(lambda: cache.ready)
    clock.now += 5
    source.delay_s = 0.2
    source.document["keys"].append(new.jwk)  # auth rotated its key
    unknown = [asyncio.create_task(cache.key_for(new.kid)) for _ in range(20)]
    unknown += [asyncio.create_task(cache.key_for("made-up")) for _ in range(20)]
    await asyncio.sleep(0.01)  # the refetch is under way
    known = await asyncio.wait_for(cache.key_for(old.kid), timeout=0.05)
    assert known is not None
    found = await asyncio.gather(*unknown)
    assert source.fetches == 2
    assert all(k is not None for k in found[:20])
    assert all(k is None for k in found[20:])


async def test_unknown_kids_refetch_at_most_once_per_interval(
    clock: Clock, stopper: list[JwksCache]
) -> None:
    key = KeyPair()
    source = ScriptedSource(key)
    cache = await started(source, clock)
    stopper.append(cache)
    await wait_until(lambda: cache.ready)
    for _ in range(10):
        assert await cache.key_for("made-up") is None
    assert source.fetches == 1  # the load was just now
    clock.now += 5
    for _ in range(10):
        assert await cache.key_for("made-up") is None
    assert source.fetches == 2


def test_parse_keeps_only_ec_p256_public_signing_keys() -> None:
    good, private = KeyPair(), KeyPair()
    private_jwk = {**private.jwk, "d": "secret"}
    document = {
        "keys": [
            good.jwk,
            private_jwk,
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {**KeyPair().jwk, "alg": "HS256", "kid": "confused"},
            {**KeyPair().jwk, "crv": "P-384", "kid": "p384"},
            {"kty": "EC", "crv": "P-256", "kid": "broken", "x": "AA", "y": "AA"},
            "nonsense",
        ]
    }
    assert list(parse_jwks(document)) == [good.kid]


async def test_http_source_fetches_the_document_and_reports_failures() -> None:
    key = KeyPair()

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/auth/.well-known/jwks.json":
            return httpx.Response(200, json={"keys": [key.jwk]})
        return httpx.Response(500)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        good = HttpJwksSource(client, "http://auth/api/v1/auth/.well-known/jwks.json")
        assert (await good.fetch())["keys"] == [key.jwk]
        with pytest.raises(Unavailable):
            await HttpJwksSource(client, "http://auth/elsewhere").fetch()
