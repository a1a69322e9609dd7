"""The scan state machine: the order, written once, and the pure transitions."""

from __future__ import annotations

import pytest

from pipelines.rules.rulebook import load_rulebook
from pipelines.scan import machine
from pipelines.scan.machine import (
    ANSWER,
    CLASSIFY,
    COMPLETE,
    NO_RULE_INSUFFICIENCY,
    STEPS,
    SUBMITTED,
    JobStatus,
    Mark,
    Policy,
    Stage,
)
from serve.contracts import ModelCallFailed
from tests.unit.scan.factories import classified_job, clean_answer, job, vision

POLICY = Policy(load_rulebook())


def _types(commit: machine.Commit) -> list[str]:
    return [event.event_type for event in commit.events]


def test_a_fresh_scan_streams_every_stage_in_order_with_growing_seq() -> None:
    marks = [SUBMITTED, *CLASSIFY.opening, *CLASSIFY.closing, *ANSWER.opening, *ANSWER.closing]
    assert [(m.stage.value, m.status) for m in marks] == [
        ("queued", "completed"),
        ("vision", "started"),
        ("vision", "completed"),
        ("rule", "started"),
        ("rule", "completed"),
        ("answer", "started"),
        ("answer", "completed"),
        ("reward", "started"),
        ("reward", "completed"),
        ("done", "completed"),
    ]
    seqs = [m.seq for m in marks]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert Mark(Stage.ANSWER, "failed").seq == 32


def test_steps_chain_the_committed_positions() -> None:
    assert [(s.start, s.commits) for s in STEPS] == [
        ("queued", "vision"),
        ("vision", "done"),
        ("answer", "done"),
    ]
    for step in STEPS:
        assert step.opening[-1] == Mark(step.known_as, "started")
        assert step.closing[-1] == Mark(Stage.DONE, "completed") or step is CLASSIFY


@pytest.mark.parametrize(
    ("position", "status", "step", "current", "last"),
    [
        ("queued", JobStatus.QUEUED, CLASSIFY, Stage.VISION, Stage.QUEUED),
        ("vision", JobStatus.RUNNING, ANSWER, Stage.ANSWER, Stage.VISION),
        ("answer", JobStatus.RUNNING, COMPLETE, Stage.REWARD, Stage.ANSWER),
        ("done", JobStatus.COMPLETED, None, Stage.DONE, Stage.DONE),
    ],
)
def test_each_position_names_its_next_step_and_client_stages(
    position: str, status: JobStatus, step: machine.Step | None, current: Stage, last: Stage
) -> None:
    at = job(stage=position, status=status)
    assert machine.next_step(at) is step
    assert machine.current_stage(at) is current
    assert machine.last_completed(at) is last


def test_a_dead_lettered_job_has_no_next_step() -> None:
    assert machine.next_step(job(stage="vision", status=JobStatus.FAILED)) is None


def test_classified_commits_the_classification_with_its_event() -> None:
    commit = machine.classified(job(), vision(), 12.34)
    assert _types(commit) == ["ScanClassified"]
    assert commit.columns["stage"] == "vision"
    assert commit.columns["status"] == "running"
    assert commit.columns["metadata"]["latency_ms"] == {"vision": 12.3}


def test_a_clean_recyclable_with_a_rule_is_answered_rewarded_and_completed_in_one_commit() -> None:
    at = classified_job()
    match = machine.find_rule(at, POLICY)
    assert match is not None
    commit = machine.answered(at, POLICY, match, clean_answer(), rule_ms=0.1, answer_ms=5.0)
    assert _types(commit) == ["ScanAnswered", "RewardGranted", "ScanCompleted"]
    assert commit.columns["status"] == "completed"
    assert commit.columns["stage"] == "done"
    assert commit.columns["reward"]["name"] == "페티"
    assert set(commit.columns["metadata"]["latency_ms"]) == {"rule", "answer", "reward"}


def test_a_fault_tag_the_model_missed_becomes_an_insufficiency_and_blocks_the_reward() -> None:
    at = classified_job(vision(tags=["비닐_라벨_부착"]))
    match = machine.find_rule(at, POLICY)
    commit = machine.answered(at, POLICY, match, clean_answer(), rule_ms=0.1, answer_ms=5.0)
    assert _types(commit) == ["ScanAnswered", "ScanCompleted"]
    assert commit.columns["answer_result"]["insufficiencies"]
    assert commit.columns["reward"] is None


def test_without_a_rule_the_fallback_answers_and_nothing_is_granted() -> None:
    at = classified_job(vision("미분류", "미분류"))
    assert machine.find_rule(at, POLICY) is None
    commit = machine.answered(at, POLICY, None, None, rule_ms=0.1, answer_ms=0.0)
    assert commit.columns["answer_result"]["insufficiencies"] == [NO_RULE_INSUFFICIENCY]
    assert commit.columns["rule_id"] is None
    assert _types(commit) == ["ScanAnswered", "ScanCompleted"]


def test_rewards_off_by_policy_grant_nothing() -> None:
    at = classified_job()
    off = Policy(POLICY.rules, reward_enabled=False)
    commit = machine.answered(
        at, off, machine.find_rule(at, off), clean_answer(), rule_ms=0, answer_ms=0
    )
    assert commit.columns["reward"] is None
    assert commit.columns["metadata"]["reward_decision"] == "reward_disabled"


def test_a_job_an_older_runner_left_at_answer_is_completed_from_the_stored_answer() -> None:
    at = classified_job(
        stage="answer",
        rule_id="재활용폐기물_무색페트병",
        answer_result=clean_answer().model_dump(mode="json"),
    )
    commit = machine.completed(at, POLICY)
    assert _types(commit) == ["RewardGranted", "ScanCompleted"]
    assert commit.columns["stage"] == "done"


def test_a_failure_names_the_step_it_failed_in() -> None:
    error = ModelCallFailed("429 after retries", retriable=True, kind="answer")
    commit = machine.failed(classified_job(), ANSWER, error)
    assert commit.columns == {
        "status": "failed",
        "error": "429 after retries",
        "failed_stage": "answer",
    }
    assert _types(commit) == ["ScanFailed"]
    assert commit.events[0].model_dump()["retriable"] is True
