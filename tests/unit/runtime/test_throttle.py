"""The gateway's adaptive throttle (client-side throttling), on a fake clock and fixed draws."""

from __future__ import annotations

import random

from runtime.throttle import AdaptiveThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _throttle(k: float = 1.1, horizon_s: float = 2.0) -> tuple[AdaptiveThrottle, Clock]:
    clock = Clock()
    return AdaptiveThrottle(k, horizon_s, clock=clock, draw=random.Random(7).random), clock


def _offer(
    throttle: AdaptiveThrottle, clock: Clock, seconds: float, rate: float, capacity: float
) -> tuple[int, int]:
    """``rate`` requests a second to a service accepting ``capacity`` a second: (passed,
    refused here)."""
    passed = refused = 0
    budget = 0.0
    for _ in range(int(seconds * rate)):
        clock.now += 1 / rate
        budget = min(capacity, budget + capacity / rate)
        if throttle.refuses():
            refused += 1
            continue
        passed += 1
        accepted = budget >= 1
        budget -= 1 if accepted else 0
        throttle.answered(accepted, None if accepted else 2.0)
    return passed, refused


def test_a_service_that_accepts_everything_is_never_throttled() -> None:
    throttle, clock = _throttle()
    passed, refused = _offer(throttle, clock, seconds=60, rate=50, capacity=100)
    assert (passed, refused) == (3000, 0)
    assert throttle.refusal_probability() == 0


def test_offered_twice_what_is_accepted_it_passes_about_k_times_that() -> None:
    throttle, clock = _throttle(k=1.1)
    _offer(throttle, clock, seconds=10, rate=40, capacity=20)  # settle
    passed, refused = _offer(throttle, clock, seconds=60, rate=40, capacity=20)
    assert 20 <= passed / 60 <= 1.1 * 20 * 1.1
    assert refused / 60 >= 0.85 * (40 - 1.1 * 20)
    assert throttle.retry_after_s == 2.0  # what the service said, repeated


def test_once_the_service_accepts_again_the_gate_opens_within_its_horizon() -> None:
    throttle, clock = _throttle(horizon_s=2.0)
    _offer(throttle, clock, seconds=30, rate=40, capacity=5)
    assert throttle.refusal_probability() > 0.5
    _, refused = _offer(throttle, clock, seconds=5, rate=40, capacity=100)
    assert throttle.refusal_probability() == 0
    assert refused < 2.0 * 40  # at most one horizon's worth


def test_refusals_here_count_as_requests_so_retrying_faster_does_not_open_the_gate() -> None:
    throttle, clock = _throttle()
    _offer(throttle, clock, seconds=30, rate=40, capacity=10)
    slow = throttle.refusal_probability()
    _offer(throttle, clock, seconds=30, rate=400, capacity=10)
    assert throttle.refusal_probability() > slow
