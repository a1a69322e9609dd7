"""The memory rate limiter against the contract, the per-user check the entry points call (off,
refusing, failing open) and the rules' settings."""

from __future__ import annotations

import asyncio
import io

import pytest

from eco2.errors import RateLimited
from eco2.http import status_of
from eco2.ratelimit import Decision, LimiterUnavailable, MemoryRateLimiter, Quota, RateLimiter
from eco2.settings import RateLimitSettings, RateRule, SettingsError, load_settings
from tests.unit.kernel.ratelimit_contract import SLOW, RateLimiterContract


class TestMemoryRateLimiter(RateLimiterContract):
    @pytest.fixture
    def limiter(self) -> RateLimiter:
        return MemoryRateLimiter()


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_memory_limiter_follows_its_clock() -> None:
    clock = _Clock()
    limiter = MemoryRateLimiter(clock)
    rule = RateRule(limit=2, period_s=10, burst=1)

    def take() -> Decision:
        return asyncio.run(limiter.take("k", rule))

    assert take().allowed
    refused = take()
    assert (refused.allowed, refused.retry_after_s) == (False, 5.0)
    clock.now += 4.999
    assert not take().allowed
    clock.now += 0.001
    assert take().allowed


async def test_a_caller_over_the_rule_gets_a_429_to_retry_later() -> None:
    quota = Quota(MemoryRateLimiter(), "scan", SLOW, timeout_s=1)
    for _ in range(SLOW.burst):
        await quota.check("user-1")
    with pytest.raises(RateLimited) as refused:
        await quota.check("user-1")
    error = refused.value
    assert (error.code, status_of(error), error.retriable) == ("rate_limited", 429, True)
    assert 3590 < error.retry_after_s <= 3600
    assert "retry in 3600 s" in error.message
    assert "scan" in error.message
    await quota.check("user-2")  # another user's budget is untouched


async def test_a_rule_of_zero_checks_nothing() -> None:
    limiter = MemoryRateLimiter()
    limiter.unavailable = True  # would fail open (and log) if it were asked
    quota = Quota(limiter, "chat", RateRule.model_validate(0), timeout_s=1)
    for _ in range(100):
        await quota.check("user-1")


class _Hanging:
    async def take(self, key: str, rule: RateRule) -> Decision:
        await asyncio.sleep(60)
        raise AssertionError("not reached")


async def test_a_limiter_that_is_down_or_slow_lets_requests_through_with_one_log_line(
    log_output: io.StringIO,
) -> None:
    down = MemoryRateLimiter()
    down.unavailable = True
    for limiter in (down, _Hanging()):
        quota = Quota(limiter, "upload", SLOW, timeout_s=0.05)
        for _ in range(SLOW.burst + 3):
            await quota.check("user-1")
    lines = [line for line in log_output.getvalue().splitlines() if "rate limiter" in line]
    assert len(lines) == 2  # one per quota, then quiet for LOG_EVERY_S
    assert "upload" in lines[0]
    assert "LimiterUnavailable" in lines[0]
    assert "TimeoutError" in lines[1]


def test_unavailable_is_raised_for_a_store_that_is_down() -> None:
    limiter = MemoryRateLimiter()
    limiter.unavailable = True
    with pytest.raises(LimiterUnavailable):
        asyncio.run(limiter.take("k", SLOW))


def test_rules_are_read_from_json_and_0_turns_one_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECO2_RATE_LIMIT__SCAN", "0")
    monkeypatch.setenv("ECO2_RATE_LIMIT__CHAT", '{"limit": 5, "period_s": 10, "burst": 2}')
    limits = load_settings().rate_limit
    assert not limits.scan.enabled
    assert limits.scan.describe() == "off"
    assert limits.chat == RateRule(limit=5, period_s=10, burst=2)
    assert limits.upload == RateLimitSettings().upload
    assert limits.chat.describe() == "5 per 10 s, bursts of 2"


def test_a_bad_rule_is_named_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECO2_RATE_LIMIT__UPLOAD", '{"limit": 5, "burst": 0}')
    with pytest.raises(SettingsError, match="ECO2_RATE_LIMIT__UPLOAD__BURST"):
        load_settings()


def test_the_defaults_leave_a_person_room_and_stop_a_script() -> None:
    limits = RateLimitSettings()
    for rule in (limits.scan, limits.chat, limits.upload):
        assert rule.enabled
        assert rule.burst >= 5
        assert 10 <= rule.limit * 60 / rule.period_s <= 60  # per minute
    assert limits.upload.limit >= limits.scan.limit
