"""The contract every rate limiter passes (see :mod:`eco2.ratelimit`).

Run against :class:`~eco2.ratelimit.MemoryRateLimiter` here (unit tier) and against
:class:`~eco2.ratelimit.ValkeyRateLimiter` on a Valkey of its own in
``tests/integration/test_ratelimit.py``. The rules are fast (a request every 50 ms) so that
waiting what the limiter says takes a fraction of a second, on the clock of the limiter.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from eco2.ratelimit import RateLimiter
from eco2.settings import RateRule

FAST = RateRule(limit=20, period_s=1.0, burst=3)
"""One request every 50 ms sustained, three back to back."""
SLOW = RateRule(limit=1, period_s=3600.0, burst=5)
"""Five, then one an hour: nothing refills while a test runs."""


def _key() -> str:
    return f"test:{uuid.uuid4().hex}"


class RateLimiterContract:
    @pytest.fixture
    def limiter(self) -> RateLimiter:  # overridden by each adapter's test class
        raise NotImplementedError

    async def test_a_burst_is_allowed_then_refused(self, limiter: RateLimiter) -> None:
        key = _key()
        taken = [await limiter.take(key, SLOW) for _ in range(SLOW.burst + 1)]
        assert [d.allowed for d in taken] == [True] * SLOW.burst + [False]
        assert [d.remaining for d in taken] == [4, 3, 2, 1, 0, 0]
        assert [d.retry_after_s for d in taken[:-1]] == [0.0] * SLOW.burst
        assert 3590 < taken[-1].retry_after_s <= 3600

    async def test_waiting_retry_after_is_enough(self, limiter: RateLimiter) -> None:
        key = _key()
        for _ in range(FAST.burst):
            assert (await limiter.take(key, FAST)).allowed
        refused = await limiter.take(key, FAST)
        assert not refused.allowed
        assert 0 < refused.retry_after_s <= 0.05
        await asyncio.sleep(refused.retry_after_s)
        assert (await limiter.take(key, FAST)).allowed

    async def test_a_refused_take_consumes_nothing(self, limiter: RateLimiter) -> None:
        key = _key()
        for _ in range(FAST.burst):
            await limiter.take(key, FAST)
        first = await limiter.take(key, FAST)
        later = [await limiter.take(key, FAST) for _ in range(5)]
        assert not first.allowed
        assert not any(d.allowed for d in later)
        assert all(d.retry_after_s <= first.retry_after_s for d in later)
        await asyncio.sleep(first.retry_after_s)
        assert (await limiter.take(key, FAST)).allowed

    async def test_the_budget_refills_at_the_rate(self, limiter: RateLimiter) -> None:
        key = _key()
        for _ in range(FAST.burst):
            await limiter.take(key, FAST)
        await asyncio.sleep(FAST.burst * FAST.period_s / FAST.limit)  # a whole burst's time
        again = [await limiter.take(key, FAST) for _ in range(FAST.burst + 1)]
        assert [d.allowed for d in again][: FAST.burst] == [True] * FAST.burst
        assert not again[-1].allowed or again[-1].remaining == 0  # at most one more has refilled

    async def test_keys_have_budgets_of_their_own(self, limiter: RateLimiter) -> None:
        spent, fresh = _key(), _key()
        for _ in range(SLOW.burst + 1):
            await limiter.take(spent, SLOW)
        first = await limiter.take(fresh, SLOW)
        assert first.allowed
        assert first.remaining == SLOW.burst - 1
        assert not (await limiter.take(spent, SLOW)).allowed

    async def test_concurrent_takes_never_exceed_the_burst(self, limiter: RateLimiter) -> None:
        key = _key()
        taken = await asyncio.gather(*(limiter.take(key, SLOW) for _ in range(40)))
        assert sum(d.allowed for d in taken) == SLOW.burst
