"""The token bucket and the 429 back-off, on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pipelines.rescore.budget import Budget, TokenBucket, Usage, call_within_budget
from serve.contracts import ModelCallFailed


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class _Response:
    def __init__(self, status: int, retry_after: str | None) -> None:
        self.status_code = status
        self.headers = {"retry-after": retry_after} if retry_after is not None else {}


def _failure(status: int, retry_after: str | None = None, *, retriable: bool = True) -> Exception:
    cause = RuntimeError("http error")
    cause.response = _Response(status, retry_after)  # type: ignore[attr-defined]
    error = ModelCallFailed("model call failed", retriable=retriable, kind="vision")
    error.__cause__ = cause
    return error


def test_the_bucket_paces_callers_at_its_rate_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 1.0, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> None:
        for _ in range(n):
            await bucket.take()

    asyncio.run(take(5))
    assert clock.now == pytest.approx(2.0)  # 1 from the burst, 4 more at 2/s


def test_the_bucket_opens_without_a_burst_and_saves_up_at_most_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 10.0, clock=clock, sleep=clock.sleep)

    async def take(n: int) -> None:
        for _ in range(n):
            await bucket.take()

    asyncio.run(take(11))
    assert clock.now == pytest.approx(1.0)  # one at once, ten more at 10/s
    clock.now += 60.0  # idle for a minute: only a second's worth is saved
    started = clock.now
    asyncio.run(take(20))
    assert clock.now - started == pytest.approx(1.0)


def test_a_pause_holds_every_caller_and_drops_what_was_saved() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 10.0, initial=10.0, clock=clock, sleep=clock.sleep)
    bucket.pause(3.0)
    asyncio.run(bucket.take())
    assert clock.now >= 3.0


def test_the_budget_counts_requests_and_tokens() -> None:
    clock = FakeClock()
    budget = Budget(60, None, clock=clock, sleep=clock.sleep)
    row = Usage()

    async def spend() -> None:
        for _ in range(3):
            await budget.spend(10, row)

    asyncio.run(spend())
    assert (budget.usage.requests, budget.usage.tokens) == (3, 30)
    assert (row.requests, row.tokens) == (3, 30)
    assert clock.now == pytest.approx(2.0)  # 60 rpm: one request a second after the first


def test_a_429_is_retried_after_its_retry_after_and_every_attempt_is_paid_for() -> None:
    clock = FakeClock()
    budget = Budget(6000, None, clock=clock, sleep=clock.sleep)
    failures = [_failure(429, "2"), _failure(429, "2")]

    async def call() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    result = asyncio.run(call_within_budget(budget, 5, call, sleep=clock.sleep))
    assert result == "ok"
    assert budget.usage.requests == 3
    assert budget.usage.rate_limited == 2
    assert clock.now >= 4.0


def test_a_refusal_is_not_retried_and_attempts_run_out() -> None:
    budget = Budget(None, None)
    calls: list[int] = []

    async def refused() -> Any:
        calls.append(1)
        raise _failure(400, retriable=False)

    with pytest.raises(ModelCallFailed):
        asyncio.run(call_within_budget(budget, 1, refused))
    assert len(calls) == 1

    clock = FakeClock()

    async def always_busy() -> Any:
        calls.append(1)
        raise _failure(503, "0")

    with pytest.raises(ModelCallFailed):
        asyncio.run(call_within_budget(budget, 1, always_busy, sleep=clock.sleep, max_attempts=3))
    assert len(calls) == 4


def test_a_token_budget_paces_by_the_tokens_of_each_request() -> None:
    clock = FakeClock()
    budget = Budget(None, 600, clock=clock, sleep=clock.sleep)  # 10 tokens a second

    async def spend() -> None:
        for _ in range(3):
            await budget.spend(20)

    asyncio.run(spend())
    assert clock.now == pytest.approx(5.9)  # 60 tokens, 1 saved at the start
