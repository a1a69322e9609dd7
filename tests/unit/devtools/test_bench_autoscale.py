"""The autoscale benchmark's reading of its samples."""

from __future__ import annotations

from devtools.bench.autoscale import Sample, Timeline, step_admitted, summarise

V, A = "scan/VisionStage", "scan/AnswerStage"


def _timeline(*rows: tuple[float, int, int, int, int]) -> Timeline:
    """``(at_s, vision target, vision running, answer target, answer running)`` per sample."""
    return Timeline(
        samples=[Sample(at, {V: vt, A: at_}, {V: vr, A: ar}) for at, vt, vr, at_, ar in rows]
    )


def test_upscale_counts_until_every_stage_that_grew_runs_its_new_count() -> None:
    timeline = _timeline(
        (9.5, 1, 1, 1, 1),
        (10.5, 1, 1, 1, 1),
        (14.0, 2, 1, 3, 1),
        (17.0, 2, 2, 3, 2),
        (19.5, 2, 2, 3, 3),  # both reached: 9.5 s after the step at 10 s
        (40.5, 2, 2, 3, 3),
        (70.0, 1, 1, 1, 2),
        (105.0, 1, 1, 1, 1),  # back to the starting counts: 65 s after the step down at 40 s
    )

    result = summarise(timeline, step_up_s=10.0, step_down_s=40.0, load_lag_s={A: 2.0})

    assert result["scaled_up"] == [A, V]
    assert result["upscale_s"] == 9.5
    assert result["downscale_s"] == 65.0
    assert result["replicas"][A] == {"before": 1, "peak_target": 3, "peak_running": 3, "after": 1}
    assert result["per_stage_s"] == {
        A: {"decided_s": 4.0, "running_s": 9.5, "own_s": 7.5},  # its load came 2 s later
        V: {"decided_s": 4.0, "running_s": 7.0, "own_s": 7.0},
    }
    assert result["slowest_stage_own_s"] == 7.5


def test_a_stage_that_never_reaches_its_target_or_never_settles_reports_none() -> None:
    timeline = _timeline(
        (5.0, 1, 1, 1, 1),
        (12.0, 4, 2, 1, 1),  # the vision replicas pend (no room on the AI nodes)
        (30.0, 4, 2, 1, 1),
        (50.0, 4, 2, 1, 1),
    )

    result = summarise(timeline, step_up_s=10.0, step_down_s=40.0)

    assert result["scaled_up"] == [V]
    assert result["upscale_s"] is None
    assert result["slowest_stage_own_s"] is None
    assert result["downscale_s"] is None


def test_too_few_samples_say_so() -> None:
    assert "error" in summarise(_timeline((20.0, 1, 1, 1, 1)), step_up_s=10.0, step_down_s=40.0)


def test_the_step_is_admitted_when_half_and_all_of_its_users_had_a_submit_accepted() -> None:
    before = [1.0, 5.0]  # the base users' accepts before the step at 10 s are not the step's
    accepts = [*before, 10.5, 11.0, 14.0, 30.0]
    assert step_admitted(accepts, 10.0, 4) == {"half_s": 1.0, "all_s": 20.0}
    assert step_admitted(accepts, 10.0, 5) == {"half_s": 4.0, "all_s": None}
