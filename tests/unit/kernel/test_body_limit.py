"""A service refuses a body past the gateway's limit itself (413 ``too_large`` in the error
shape, saying the limit), declared or chunked, before its route runs; a path that counts its
own body (the signed upload) is left to its route."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.testclient import TestClient

from eco2.http import service_app
from eco2.settings import load_settings

LIMIT = 4096
JSON = {"Content-Type": "application/json"}
REFUSED = {
    "error": {
        "code": "too_large",
        "message": f"the request body is larger than {LIMIT} bytes; send a smaller one",
    }
}


def _client(calls: list[int]) -> TestClient:
    router = APIRouter()

    @router.post("/commands")
    async def command(body: dict[str, str]) -> dict[str, int]:
        calls.append(len(body))
        return {"keys": len(body)}

    @router.put("/upload/{key}")
    async def upload(key: str, request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        calls.append(size)
        return {"bytes": size}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield

    settings = load_settings(api={"max_body_bytes": LIMIT})
    app = service_app("t", settings, lifespan, routers=[router], own_body_limit=["/upload/"])
    return TestClient(app)


def _json_of(size: int) -> bytes:
    return b'{"a": "' + b"x" * size + b'"}'


def test_a_body_past_the_limit_is_a_413_saying_the_limit_and_the_route_never_runs() -> None:
    calls: list[int] = []
    client = _client(calls)

    def chunks() -> Iterator[bytes]:
        for _ in range(4):
            yield _json_of(LIMIT // 3)

    declared = client.post("/commands", content=_json_of(LIMIT), headers=JSON)
    streamed = client.post("/commands", content=chunks(), headers=JSON)
    assert "content-length" in declared.request.headers
    assert "content-length" not in streamed.request.headers
    for answer in (declared, streamed):
        assert (answer.status_code, answer.json()) == (413, REFUSED)
    assert calls == []
    within = client.post("/commands", content=_json_of(LIMIT - 100), headers=JSON)
    assert within.json() == {"keys": 1}


def test_a_path_that_counts_its_own_body_is_left_to_its_route() -> None:
    calls: list[int] = []
    client = _client(calls)
    assert client.put("/upload/k", content=b"x" * (LIMIT * 3)).json() == {"bytes": LIMIT * 3}
    assert calls == [LIMIT * 3]
