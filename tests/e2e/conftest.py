from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import StackUrls


@pytest.fixture
async def browser(stack: StackUrls) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway with its own cookie jar (a module signs it in by overriding
    this fixture with one that asks for it)."""
    assert stack.api_url is not None
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        yield client
