"""The in-flight limit learnt from latency, and the intake's two admission checks."""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable

import pytest

from eco2.errors import InvalidInput, Overloaded, RateLimited
from eco2.ratelimit import MemoryRateLimiter, Quota
from eco2.settings import AdmissionSettings, RateRule
from pipelines.jobs.admission import (
    SLOW_START_AFTER_S,
    Admission,
    LatencyLimit,
    check_idempotency_key,
)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _limit(**settings: object) -> tuple[LatencyLimit, Clock]:
    clock = Clock()
    return LatencyLimit(AdmissionSettings.model_validate(settings), clock=clock), clock


def _window(
    limit: LatencyLimit, clock: Clock, latency_s: float, inflight: int, n: int = 10
) -> None:
    """One second in which ``n`` jobs ended after ``latency_s`` with ``inflight`` running."""
    limit.started(inflight)
    for i in range(n):
        clock.now += 1.0 / n + 1e-9
        limit.finished(latency_s, inflight - 1 if i == n - 1 else inflight)


def test_a_fixed_limit_is_the_ceiling_and_never_moves() -> None:
    limit, clock = _limit(enabled=False, max_inflight=30)
    for _ in range(20):
        _window(limit, clock, latency_s=9.0, inflight=30)
    assert limit.limit == 30
    assert limit.admits(29)
    assert not limit.admits(30)


def test_the_limit_grows_while_it_holds_the_load_back_and_latency_stays_flat() -> None:
    limit, clock = _limit(initial_limit=20, growth=0.1, max_inflight=1000)
    for _ in range(5):
        _window(limit, clock, latency_s=1.0, inflight=limit.limit)
    assert limit.limit > 20 * 1.1**4
    assert limit.baseline_s == pytest.approx(1.0)


def test_the_limit_doubles_per_job_time_until_a_cut_then_grows_by_growth() -> None:
    limit, clock = _limit(initial_limit=20, growth=0.1, tolerance=3.0, max_inflight=1000)
    _window(limit, clock, latency_s=1.0, inflight=20)
    assert limit.limit == 40
    _window(limit, clock, latency_s=4.0, inflight=40)
    assert limit.limit == 30  # 40 × 3 / 4
    for _ in range(4):  # the jobs ending within one job time of the cut began before it
        _window(limit, clock, latency_s=1.0, inflight=30)
    assert limit.limit == 33  # 10 % per job time
    for _ in range(int(SLOW_START_AFTER_S) + 1):  # then a quiet spell: nothing held back
        _window(limit, clock, latency_s=1.0, inflight=5)
    before = limit.limit
    _window(limit, clock, latency_s=1.0, inflight=before)
    assert limit.limit == 2 * before  # doubling again


def test_it_starts_where_it_is_told_within_the_ceiling() -> None:
    limit, _ = _limit(initial_limit=None, max_inflight=500)
    assert limit.limit == 500
    limit, _ = _limit(initial_limit=600, max_inflight=500)
    assert limit.limit == 500
    limit, _ = _limit(initial_limit=100, max_inflight=500)
    assert limit.limit == 100
    disabled, _ = _limit(enabled=False, initial_limit=5, max_inflight=500)
    assert disabled.limit == 500


def test_a_process_that_is_not_full_does_not_grow_its_limit() -> None:
    limit, clock = _limit(initial_limit=100)
    for _ in range(10):
        _window(limit, clock, latency_s=1.0, inflight=10)
    assert limit.limit == 100


def test_latency_past_the_tolerance_shrinks_the_limit_from_what_was_in_flight() -> None:
    limit, clock = _limit(initial_limit=200, min_limit=16, tolerance=1.5)
    _window(limit, clock, latency_s=1.0, inflight=100)  # the baseline: 1 s
    _window(limit, clock, latency_s=3.0, inflight=100)
    assert limit.limit == 50  # 100 in flight × 1.5 / 3
    _window(limit, clock, latency_s=3.0, inflight=50)
    assert limit.limit == 50  # jobs that began before the cut do not cut again
    for _ in range(60):
        _window(limit, clock, latency_s=10.0, inflight=limit.limit)
    assert limit.limit == 16  # never below the floor
    assert limit.admits(15)
    assert not limit.admits(16)


def test_the_baseline_follows_a_drop_at_once_and_a_rise_only_over_its_horizon() -> None:
    limit, clock = _limit(baseline_horizon_s=100.0, initial_limit=50)
    _window(limit, clock, latency_s=2.0, inflight=10)
    _window(limit, clock, latency_s=1.0, inflight=10)
    assert limit.baseline_s == pytest.approx(1.0)
    for _ in range(10):
        _window(limit, clock, latency_s=3.0, inflight=10)
    baseline = limit.baseline_s
    assert baseline is not None
    assert 1.0 < baseline < 1.3
    for _ in range(600):  # a slower model for ten minutes becomes the new normal
        _window(limit, clock, latency_s=3.0, inflight=10)
    assert limit.baseline_s == pytest.approx(3.0, rel=0.05)


def test_a_window_needs_enough_jobs_to_count() -> None:
    limit, clock = _limit(initial_limit=100, min_samples=5)
    _window(limit, clock, latency_s=1.0, inflight=80)
    for _ in range(3):  # three slow jobs in ten seconds say nothing yet
        clock.now += 3.0
        limit.finished(30.0, 80)
    assert limit.limit >= 100
    assert limit.baseline_s == pytest.approx(1.0)


def test_retry_after_is_about_the_time_a_job_takes_within_bounds() -> None:
    limit, clock = _limit(max_retry_after_s=10.0)
    assert limit.retry_after_s() == 1.0  # nothing learnt yet
    _window(limit, clock, latency_s=4.2, inflight=10)
    assert limit.retry_after_s() == pytest.approx(4.2)
    _window(limit, clock, latency_s=60.0, inflight=10)
    assert limit.retry_after_s() == 10.0


def _simulate(
    limit: LatencyLimit,
    clock: Clock,
    *,
    model_s: float,
    cpu_per_s: float,
    offered_per_s: Callable[[float], float],
    until_s: float,
) -> tuple[int, list[tuple[float, float]]]:
    """A server whose jobs wait ``model_s`` on a model, then queue for one CPU doing
    ``cpu_per_s`` jobs a second, offered ``offered_per_s(t)`` jobs a second under ``limit``.
    Returns how many it refused and, per job done, (ended at, seconds)."""
    dt = 0.01
    waiting: deque[tuple[float, float]] = deque()  # (leaves the model at, admitted at)
    cpu: deque[float] = deque()  # admitted at, in CPU order
    busy_until, inflight, refused, owed = 0.0, 0, 0, 0.0
    done: list[tuple[float, float]] = []
    while clock.now < until_s:
        clock.now += dt
        owed += offered_per_s(clock.now) * dt
        while owed >= 1.0:
            owed -= 1.0
            if limit.admits(inflight):
                inflight += 1
                limit.started(inflight)
                waiting.append((clock.now + model_s, clock.now))
            else:
                refused += 1
        while waiting and waiting[0][0] <= clock.now:
            cpu.append(waiting.popleft()[1])
        while cpu and busy_until <= clock.now:
            admitted = cpu.popleft()
            busy_until = max(busy_until, clock.now - dt) + 1 / cpu_per_s
            inflight -= 1
            done.append((busy_until, busy_until - admitted))
            limit.finished(busy_until - admitted, inflight)
    return refused, done


def test_under_twice_its_capacity_a_simulated_server_keeps_its_latency_and_throughput() -> None:
    """Jobs waiting 2 s on a model, then one CPU doing 20 jobs/s, offered 40 jobs/s for two
    minutes: the limit refuses the excess and keeps the jobs' median time within the tolerance
    of the unloaded time, at full throughput. Without it the queue (and the time) grows the
    whole run."""
    tolerance = 1.5
    limit, clock = _limit(initial_limit=16, tolerance=tolerance, min_limit=4)
    model_s, cpu_per_s = 2.0, 20.0
    refused, done = _simulate(
        limit,
        clock,
        model_s=model_s,
        cpu_per_s=cpu_per_s,
        offered_per_s=lambda t: 40.0,
        until_s=120.0,
    )
    late = [seconds for ended, seconds in done if ended > 60.0]
    unloaded = model_s + 1 / cpu_per_s
    assert refused > 0.3 * 40 * 120  # about half of what was offered
    assert statistics.median(late) <= tolerance * 1.2 * unloaded
    assert len(late) / 60.0 >= 0.95 * 20  # the CPU stayed busy


async def test_admission_refuses_past_the_limit_with_retry_after_and_takes_no_quota() -> None:
    limiter = MemoryRateLimiter()
    quota = Quota(limiter, "scan", RateRule(limit=60, burst=1), timeout_s=1)
    admission = Admission.of("scan", AdmissionSettings(enabled=False, max_inflight=5), quota)
    with pytest.raises(Overloaded) as refused:
        await admission.admit("user-1", inflight=5)
    assert not isinstance(refused.value, RateLimited)
    assert refused.value.retry_after_s >= 1
    assert "scan" in refused.value.message
    await admission.admit("user-1", inflight=4)  # the refusal above took none of the burst
    with pytest.raises(RateLimited):
        await admission.admit("user-1", inflight=4)


async def test_an_internal_caller_is_bounded_by_the_in_flight_limit_only() -> None:
    quota = Quota(MemoryRateLimiter(), "scan", RateRule(limit=60, burst=1), timeout_s=1)
    admission = Admission.of("scan", AdmissionSettings(enabled=False, max_inflight=5), quota)
    for _ in range(3):
        await admission.admit(None, inflight=0)
    with pytest.raises(Overloaded):
        await admission.admit(None, inflight=5)


async def test_a_refused_call_with_the_key_of_an_accepted_one_gets_that_job_back() -> None:
    admission = Admission.of("scan", AdmissionSettings(enabled=False, max_inflight=5))
    stored = {"key-1": "job-1"}
    looked_up: list[str] = []

    async def replay(key: str) -> str | None:
        looked_up.append(key)
        return stored.get(key)

    # Admitted: no look-up, the caller stores the job.
    assert await admission.admit_or_replay("u", 4, "key-1", replay) is None
    assert looked_up == []
    # Full: the job an earlier accepted call created comes back instead of the refusal ...
    assert await admission.admit_or_replay("u", 5, "key-1", replay) == "job-1"
    # ... and a call whose key stored nothing, or that has no key, is refused.
    with pytest.raises(Overloaded):
        await admission.admit_or_replay("u", 5, "key-2", replay)
    with pytest.raises(Overloaded):
        await admission.admit_or_replay("u", 5, None, replay)
    assert looked_up == ["key-1", "key-2"]


async def test_a_caller_over_its_own_limit_still_gets_its_accepted_job_back() -> None:
    # Sending an accepted call again starts nothing, so the per-user limit has nothing to stop.
    quota = Quota(MemoryRateLimiter(), "scan", RateRule(limit=60, burst=1), timeout_s=1)
    admission = Admission.of("scan", AdmissionSettings(enabled=False, max_inflight=5), quota)

    async def replay(key: str) -> str | None:
        return {"key-1": "job-1"}.get(key)

    assert await admission.admit_or_replay("u", 0, "key-1", replay) is None
    assert await admission.admit_or_replay("u", 0, "key-1", replay) == "job-1"
    with pytest.raises(RateLimited):
        await admission.admit_or_replay("u", 0, "key-2", replay)


@pytest.mark.parametrize("key", ["", "k" * 129])
def test_an_idempotency_key_no_job_could_be_stored_under_is_refused(key: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_idempotency_key(key)
    assert refused.value.code == "bad_idempotency_key"
    check_idempotency_key(None)
    check_idempotency_key("k" * 128)


def test_in_slow_start_the_limit_is_at_least_what_its_rate_keeps_in_flight() -> None:
    limit, clock = _limit(initial_limit=20, slow_start_rate=10.0, tolerance=2.0)
    _window(limit, clock, latency_s=40.0, inflight=20)
    assert limit.limit == 400  # 10 jobs/s × 40 s
    fast, fast_clock = _limit(initial_limit=20, slow_start_rate=10.0)
    _window(fast, fast_clock, latency_s=1.0, inflight=20)
    assert fast.limit == 40  # 10 × 1 s is below what doubling gives: the floor does nothing
    _window(limit, clock, latency_s=100.0, inflight=400)
    assert limit.limit == 320  # a cut (400 × 2 / 2.5): from now on only what was learnt counts
    for _ in range(5):
        _window(limit, clock, latency_s=100.0, inflight=300)
    assert limit.limit < 400


def test_a_step_within_capacity_of_slow_jobs_is_admitted_in_slow_start() -> None:
    """Jobs waiting 40 s on a model, one CPU doing 20 jobs/s: after a quiet start, 480 jobs
    arrive within 2 s and 12 jobs/s after them (480 in flight, 60 % of capacity). A count
    sized for fast jobs refuses hundreds of them (436 here); the rate floor admits them all."""

    def step(t: float) -> float:
        return 0.25 if t < 90.0 else 240.0 if t < 92.0 else 12.0

    refused = {}
    for rate in (25.0, None):
        limit, clock = _limit(initial_limit=256, slow_start_rate=rate)
        refused[rate], _ = _simulate(
            limit, clock, model_s=40.0, cpu_per_s=20.0, offered_per_s=step, until_s=180.0
        )
    assert refused[25.0] == 0
    assert refused[None] > 300
