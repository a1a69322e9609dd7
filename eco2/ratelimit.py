"""Per-user rate limits: a port, its Valkey adapter, an in-memory fake and the check the entry
points call.

The algorithm is GCRA (the generic cell rate algorithm): a key holds one number, the theoretical
arrival time (TAT) of the next request if the caller kept exactly to the rate. A take at ``now``
is allowed when the new TAT, ``max(TAT, now) + T`` (``T = period / limit``), is at most
``burst * T`` ahead of ``now``; then it is stored. So a caller with no history may make ``burst``
requests back to back, then one every ``T``; a refused take stores nothing (it does not consume),
and its ``retry_after_s`` is exactly how long until the same take is allowed.

:class:`ValkeyRateLimiter` runs the step as one Lua script (``EVALSHA``, one round trip, atomic on
the server): replicas on other hosts share the budget of a key, and the server's clock
(``TIME``) decides, so replicas whose clocks disagree still agree on the budget. The key expires
by itself once the caller is back to a full burst. :class:`MemoryRateLimiter` is the same
arithmetic in this process, for unit tests; both pass one contract test suite.

:class:`Quota` is what an entry point calls before it stores anything: it raises
:class:`~eco2.errors.RateLimited` (429 + ``Retry-After``) when the caller is over its rule and
*fails open* when the limiter cannot answer in time (a log line and a metric): a limit guards
fairness and model cost, not correctness or security, and each replica's in-flight admission
limit still bounds the load meanwhile.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Self

import redis.asyncio as aioredis
import redis.exceptions

from eco2 import telemetry
from eco2.errors import RateLimited
from eco2.settings import RateRule

log = telemetry.get_logger(__name__)

KEY_PREFIX = "ratelimit:"
US = 1_000_000


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float
    """0 when allowed; otherwise how long until the same take is allowed."""
    remaining: int
    """Further takes allowed right now (0 when refused)."""


class RateLimiter(Protocol):
    """Takes one request from ``key``'s budget under ``rule``, atomically: concurrent takes
    never allow more than the rule does. A refused take changes nothing. Raises
    :class:`LimiterUnavailable` when the store cannot be reached."""

    async def take(self, key: str, rule: RateRule) -> Decision: ...


class LimiterUnavailable(Exception):
    """The limiter's store did not answer (down, unreachable, refusing the command)."""


# KEYS[1]: the key; ARGV[1]: T, ARGV[2]: burst (times in µs). Returns {allowed, retry_us, left}.
# Numbers are formatted with %.0f: tostring() of a µs timestamp would lose digits (%.14g).
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local window = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > window then
  return {0, ahead - window, 0}
end
redis.call('SET', KEYS[1], string.format('%.0f', now + ahead), 'PX', math.ceil(ahead / 1000))
return {1, 0, math.floor((window - ahead) / interval)}
"""


def _decision(allowed: int, retry_us: float, remaining: int) -> Decision:
    return Decision(bool(allowed), retry_us / US, int(remaining))


class ValkeyRateLimiter:
    """GCRA in Valkey/Redis (≥ 5: the script reads ``TIME`` before it writes). The client is the
    caller's (:func:`eco2.cache.connect`), closed by the caller."""

    def __init__(self, client: aioredis.Redis, *, prefix: str = KEY_PREFIX) -> None:
        self._script = client.register_script(GCRA_SCRIPT)
        self._prefix = prefix

    async def take(self, key: str, rule: RateRule) -> Decision:
        try:
            reply = await self._script(
                keys=[self._prefix + key], args=[rule.interval_us, rule.burst]
            )
        except (redis.exceptions.RedisError, OSError) as exc:
            # Unreachable, but also a store that refuses the script (a read-only replica, Lua
            # switched off): either way the limiter cannot answer, and a limit never makes a
            # submit fail with a 500.
            raise LimiterUnavailable(f"rate limiter store failed: {exc!r}") from exc
        allowed, retry_us, remaining = reply
        return _decision(allowed, retry_us, remaining)


class MemoryRateLimiter:
    """The same GCRA in this process (unit tests, one replica); ``clock`` returns seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat: dict[str, int] = {}
        self.unavailable = False
        """Set to make every take raise :class:`LimiterUnavailable` (a store that is down)."""

    async def take(self, key: str, rule: RateRule) -> Decision:
        if self.unavailable:
            raise LimiterUnavailable("the memory limiter was told to fail")
        now = round(self._clock() * US)
        interval, window = rule.interval_us, rule.interval_us * rule.burst
        ahead = max(self._tat.get(key, now), now) + interval - now
        if ahead > window:
            return _decision(0, ahead - window, 0)
        self._tat[key] = now + ahead
        return _decision(1, 0, (window - ahead) // interval)


_checks = telemetry.meter(__name__).create_counter(
    "eco2.rate_limit.checks",
    description="Per-user rate limit checks by action and outcome (allowed, refused, "
    "unavailable: the limiter did not answer and the request was let through).",
)


class Quota:
    """One action's per-user limit (``scan``, ``chat``, ``upload``), as an entry point uses it.

    :meth:`check` raises :class:`~eco2.errors.RateLimited` when the caller is over ``rule``;
    it lets the request through when the rule is off, and when the limiter fails or takes
    longer than ``timeout_s`` (fail open, logged at most every ``LOG_EVERY_S``)."""

    LOG_EVERY_S = 10.0

    def __init__(self, limiter: RateLimiter, action: str, rule: RateRule, timeout_s: float) -> None:
        self._limiter, self.action, self.rule, self._timeout_s = limiter, action, rule, timeout_s
        self._unlogged, self._logged_at = 0, -math.inf

    @classmethod
    def off(cls, action: str) -> Self:
        """A quota that allows everything (tests and tools that take no limit)."""
        return cls(MemoryRateLimiter(), action, RateRule(limit=0), 1.0)

    async def check(self, user_id: str) -> None:
        if not self.rule.enabled:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                decision = await self._limiter.take(f"{self.action}:{user_id}", self.rule)
        except (LimiterUnavailable, TimeoutError) as exc:
            self._failed_open(exc)
            return
        if not decision.allowed:
            _checks.add(1, {"action": self.action, "outcome": "refused"})
            raise RateLimited.after(decision.retry_after_s, self.action, self.rule.describe())
        _checks.add(1, {"action": self.action, "outcome": "allowed"})

    def _failed_open(self, exc: Exception) -> None:
        _checks.add(1, {"action": self.action, "outcome": "unavailable"})
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= self.LOG_EVERY_S:
            log.warning(
                "rate limiter unavailable: requests pass unlimited",
                action=self.action,
                passed_unchecked=self._unlogged,
                error=repr(exc) if str(exc) else type(exc).__name__,
            )
            self._unlogged, self._logged_at = 0, now
