"""The pipeline autoscaling policy on contexts shaped as Serve builds them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from serve.autoscaling import PipelineAutoscaler, Trend

TARGET = 400


def _ctx(name: str, count: float, now: float, replicas: int = 1) -> Any:
    config = SimpleNamespace(get_target_ongoing_requests=lambda: TARGET)
    return SimpleNamespace(
        deployment_name=name,
        total_num_requests=count,
        current_time=now,
        current_num_replicas=replicas,
        target_num_replicas=replicas,
        config=config,
    )


def _decide(policy: PipelineAutoscaler, now: float, **counts: float) -> dict[str, float]:
    contexts = {name: _ctx(name, count, now) for name, count in counts.items()}
    decisions, state = policy(contexts)  # type: ignore[arg-type]
    assert set(state) == set(contexts)
    assert all(s == {} for s in state.values())
    return decisions  # type: ignore[return-value]


def test_a_steady_count_is_sized_as_serve_sizes_it() -> None:
    policy = PipelineAutoscaler(lead_s=5, trend_s=2)
    for tick in range(40):
        decisions = _decide(policy, tick * 0.1, VisionStage=600)
    assert decisions["VisionStage"] == pytest.approx(600 / TARGET)


def test_a_rising_count_is_sized_for_where_it_will_be_when_a_replica_runs() -> None:
    # 100 more requests a second: in 5 s the stage holds 500 more than now.
    policy = PipelineAutoscaler(lead_s=5, trend_s=2)
    for tick in range(31):
        now = tick * 0.1
        decisions = _decide(policy, now, VisionStage=100 * now)
    assert decisions["VisionStage"] == pytest.approx((300 + 500) / TARGET)


def test_a_falling_count_is_not_extrapolated() -> None:
    policy = PipelineAutoscaler(lead_s=5, trend_s=2)
    for tick in range(31):
        now = tick * 0.1
        decisions = _decide(policy, now, VisionStage=1000 - 100 * now)
    assert decisions["VisionStage"] == pytest.approx(700 / TARGET)


def test_a_rise_seen_for_less_than_half_the_window_is_not_yet_a_trend() -> None:
    policy = PipelineAutoscaler(lead_s=5, trend_s=2)
    _decide(policy, 0.0, VisionStage=0)
    assert _decide(policy, 0.5, VisionStage=400)["VisionStage"] == pytest.approx(1.0)
    assert _decide(policy, 1.0, VisionStage=800)["VisionStage"] == pytest.approx(
        (800 + 5 * 800) / TARGET
    )


def test_a_downstream_stage_is_sized_for_at_least_what_its_upstream_holds() -> None:
    policy = PipelineAutoscaler(lead_s=0, feeds={"VisionStage": ["AnswerStage"]})
    decisions = _decide(policy, 0.0, VisionStage=1000, AnswerStage=10)
    assert decisions["AnswerStage"] == pytest.approx(1000 / TARGET)
    # ... and for its own count when that is larger; the upstream is not sized for it.
    decisions = _decide(policy, 0.1, VisionStage=100, AnswerStage=1200)
    assert decisions["AnswerStage"] == pytest.approx(1200 / TARGET)
    assert decisions["VisionStage"] == pytest.approx(100 / TARGET)


def test_an_upstream_that_is_not_autoscaled_is_ignored() -> None:
    policy = PipelineAutoscaler(feeds={"VisionStage": ["AnswerStage"]})
    assert _decide(policy, 0.0, AnswerStage=200)["AnswerStage"] == pytest.approx(0.5)


def test_a_deployment_with_no_replica_is_left_to_serves_cold_start() -> None:
    policy = PipelineAutoscaler()
    contexts = {"VisionStage": _ctx("VisionStage", 500, 0.0, replicas=0)}
    decisions, _ = policy(contexts)  # type: ignore[arg-type]
    assert decisions["VisionStage"] == 0


@pytest.mark.parametrize("kwargs", [{"lead_s": -1}, {"trend_s": 0}])
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PipelineAutoscaler(**kwargs)


def test_the_trend_keeps_one_window_of_points() -> None:
    trend = Trend(window_s=2)
    for tick in range(100):
        trend.projected(tick * 0.1, tick, lead_s=1)
    assert trend.projected(10.0, 100, lead_s=1) == pytest.approx(110)
    assert len(trend._points) <= 22
