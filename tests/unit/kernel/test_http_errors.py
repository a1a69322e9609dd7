"""A store that cannot be reached answers 503 with Retry-After (retry), never a 500; a real bug
still answers 500."""

from __future__ import annotations

import asyncpg
import pytest
import redis.exceptions
from fastapi import FastAPI
from fastapi.testclient import TestClient

from eco2.http import install_error_handlers

UNREACHABLE = {
    "refused": ConnectionRefusedError(111, "Connection refused"),
    "pg-starting": asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    "pg-gone": asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
    "pg-closed": asyncpg.InterfaceError("connection is closed"),
    "pg-crashed-under": asyncpg.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"
    ),
    "valkey": redis.exceptions.ConnectionError("Error 111 connecting"),
}


def _client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        if kind == "bug":
            raise ValueError("a bug")
        raise UNREACHABLE[kind]

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_an_unreachable_store_is_a_503_to_retry(kind: str) -> None:
    answer = _client().get(f"/fail/{kind}")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "unavailable"
    assert "retry" in answer.json()["error"]["message"]


def test_a_bug_is_still_a_500() -> None:
    assert _client().get("/fail/bug").status_code == 500
