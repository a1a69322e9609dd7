"""Which store errors the location domain calls "retry shortly" (503) and which stay bugs (500):
only a database or Valkey that cannot be reached is :class:`~eco2.errors.Unavailable`."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from domains.location.geo import GeoIndex
from domains.location.repository import SiteRepository
from eco2.errors import Unavailable


class _Pool:
    def __init__(self, error: Exception) -> None:
        self.error = error

    @asynccontextmanager
    async def acquire(self) -> Any:
        raise self.error
        yield


class _Valkey:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def execute_command(self, *_: Any) -> Any:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        asyncpg.PostgresConnectionError("gone"),
        asyncpg.InterfaceError("closed"),
    ],
)
async def test_a_database_that_cannot_be_reached_is_unavailable(error: Exception) -> None:
    with pytest.raises(Unavailable):
        await SiteRepository(cast(Any, _Pool(error))).count()


async def test_a_query_the_database_refuses_is_not_called_a_retry() -> None:
    with pytest.raises(asyncpg.UndefinedColumnError):
        await SiteRepository(cast(Any, _Pool(asyncpg.UndefinedColumnError("no")))).count()


async def test_valkey_unreachable_is_unavailable_and_a_refused_command_is_not() -> None:
    with pytest.raises(Unavailable):
        await GeoIndex(cast(Any, _Valkey(RedisConnectionError("refused")))).exists()
    with pytest.raises(ResponseError):
        await GeoIndex(cast(Any, _Valkey(ResponseError("WRONGTYPE")))).exists()
