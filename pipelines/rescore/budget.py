"""The request/token budget every rescoring model call goes through.

:class:`TokenBucket` hands out capacity at a fixed rate with a burst of ``capacity``; callers
reserve before they wait, so concurrent callers are served in arrival order and the achieved rate
never exceeds the budget by more than the burst. A 429 pauses the whole bucket for its
``Retry-After`` (:meth:`Budget.back_off`): every caller of this process waits, not only the one
that was refused, since the endpoint refuses for all of them.

:func:`call_within_budget` is the retry loop: each attempt (first call or retry) is paid for in
the bucket, so the budget counts every request sent. The model client therefore runs with its
own retries off (``max_retries=0``) in the rescoring job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from serve.contracts import ModelCallFailed

T = TypeVar("T")
MAX_ATTEMPTS = 6
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


class TokenBucket:
    """``rate_per_s`` units per second, at most ``capacity`` saved up; starts with one unit, so
    a run does not open with a burst (``initial`` says otherwise)."""

    def __init__(
        self,
        rate_per_s: float,
        capacity: float,
        *,
        initial: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_per_s <= 0 or capacity <= 0:
            raise ValueError("a token bucket needs a positive rate and capacity")
        self.rate, self.capacity = rate_per_s, capacity
        self._clock, self._sleep = clock, sleep
        self._tokens = min(capacity, initial)
        self._stamp = clock()
        self._paused_until = 0.0

    async def take(self, amount: float = 1.0) -> None:
        """Wait until ``amount`` units are this caller's (an amount above the capacity is
        allowed and simply waits longer)."""
        await self._wait_pause()
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= amount
        if self._tokens < 0:
            await self._sleep(-self._tokens / self.rate)
        await self._wait_pause()

    def pause(self, seconds: float) -> None:
        """Hand out nothing for ``seconds`` and forget what was saved up."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._tokens = min(self._tokens, 0.0)
        self._stamp = max(self._stamp, self._paused_until)

    async def _wait_pause(self) -> None:
        while (left := self._paused_until - self._clock()) > 0:
            await self._sleep(left)


@dataclass
class Usage:
    """What the calls of one process spent: requests sent (retries included), estimated tokens,
    and the wall-clock time of the first and last request (for the achieved rate)."""

    requests: int = 0
    tokens: int = 0
    rate_limited: int = 0
    first_at: float | None = None
    last_at: float | None = None
    _clock: Callable[[], float] = field(default=time.time, repr=False)

    def received(self, tokens: int) -> None:
        """Count the (estimated) tokens of an answer."""
        self.tokens += tokens

    def answered(self) -> None:
        """A Batch API answer came back: the calling span runs to it (a batch's answers come
        long after its requests went out)."""
        self.last_at = self._clock()

    def sent(self, tokens: int) -> None:
        now = self._clock()
        self.requests += 1
        self.tokens += tokens
        self.first_at = now if self.first_at is None else self.first_at
        self.last_at = now


class Budget:
    """Requests per minute and (estimated) tokens per minute; ``None`` means no limit.

    At most one second's worth (at least one request) is saved up while nothing is sent, e.g.
    between two batches; nothing is at the start, so a short run does not overshoot."""

    def __init__(
        self,
        rpm: float | None,
        tpm: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rpm, self.tpm = rpm, tpm
        self._buckets: list[tuple[TokenBucket, bool]] = []
        if rpm is not None:
            rate = rpm / 60
            self._buckets.append(
                (TokenBucket(rate, max(1.0, rate), clock=clock, sleep=sleep), False)
            )
        if tpm is not None:
            rate = tpm / 60
            self._buckets.append(
                (TokenBucket(rate, max(1.0, rate), clock=clock, sleep=sleep), True)
            )
        self.usage = Usage()

    async def spend(self, tokens: int, row: Usage | None = None) -> None:
        """Wait for one request and ``tokens`` tokens, then count the request as sent (in this
        budget's usage and in ``row``'s, the usage of one scan)."""
        for bucket, counts_tokens in self._buckets:
            await bucket.take(float(tokens) if counts_tokens else 1.0)
        self.usage.sent(tokens)
        if row is not None:
            row.sent(tokens)

    def back_off(self, seconds: float) -> None:
        for bucket, _ in self._buckets:
            bucket.pause(seconds)


def retry_after_s(error: BaseException) -> float | None:
    """The ``Retry-After`` seconds of the HTTP answer behind ``error`` (the model client raises
    :class:`ModelCallFailed` from the SDK's error, which carries the response), or None."""
    response = getattr(error.__cause__, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def is_rate_limited(error: BaseException) -> bool:
    response = getattr(error.__cause__, "response", None)
    return getattr(response, "status_code", None) == 429


async def call_within_budget(
    budget: Budget,
    tokens: int,
    call: Callable[[], Awaitable[T]],
    *,
    row: Usage | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    max_attempts: int = MAX_ATTEMPTS,
) -> T:
    """``call()`` paid for in ``budget``; transient failures are retried, each attempt paid for.

    A 429 pauses the whole budget for its ``Retry-After`` (exponential back-off without one);
    other transient failures wait with exponential back-off, honouring ``Retry-After`` when
    given. Raises the last :class:`ModelCallFailed` when it is not retriable or the attempts
    are spent.
    """
    for attempt in range(1, max_attempts + 1):
        await budget.spend(tokens, row)
        try:
            return await call()
        except ModelCallFailed as exc:
            if not exc.retriable or attempt == max_attempts:
                raise
            delay = retry_after_s(exc)
            if delay is None:
                delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
            if is_rate_limited(exc):
                budget.usage.rate_limited += 1
                budget.back_off(delay)
            await sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
