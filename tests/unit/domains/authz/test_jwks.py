from __future__ import annotations

from collections.abc import Mapping
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


class CountingSource:
    def __init__(self, *pairs: KeyPair) -> None:
        self.document: dict[str, Any] = {"keys": [pair.jwk for pair in pairs]}
        self.fetches = 0
        self.fail = False

    async def fetch(self) -> Mapping[str, Any]:
        self.fetches += 1
        if self.fail:
            raise Unavailable("auth is down")
        return self.document


def cache(source: CountingSource, clock: Clock) -> JwksCache:
    return JwksCache(source, ttl_s=300, min_refetch_s=5, clock=clock)


async def test_keys_are_cached_for_the_ttl() -> None:
    key, clock = KeyPair(), Clock()
    source = CountingSource(key)
    keys = cache(source, clock)
    assert await keys.key_for(key.kid) is not None
    clock.now += 299
    assert await keys.key_for(key.kid) is not None
    assert source.fetches == 1
    clock.now += 2
    await keys.key_for(key.kid)
    assert source.fetches == 2


async def test_unknown_kid_refetches_at_most_once_per_interval() -> None:
    old, new, clock = KeyPair(), KeyPair(), Clock()
    source = CountingSource(old)
    keys = cache(source, clock)
    await keys.key_for(old.kid)
    for _ in range(10):
        assert await keys.key_for("made-up") is None
    assert source.fetches == 1  # the first fetch was just now
    source.document["keys"].append(new.jwk)  # auth rotated its key
    clock.now += 5
    assert await keys.key_for(new.kid) is not None
    assert source.fetches == 2


async def test_failed_refetch_keeps_serving_known_keys() -> None:
    key, clock = KeyPair(), Clock()
    source = CountingSource(key)
    keys = cache(source, clock)
    await keys.key_for(key.kid)
    source.fail = True
    clock.now += 1000
    assert await keys.key_for(key.kid) is not None


async def test_no_keys_ever_fetched_fails_closed() -> None:
    source = CountingSource()
    source.fail = True
    with pytest.raises(Unavailable):
        await cache(source, Clock()).key_for("any")


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
