"""The runner drives the machine: stage calls, one commit per step, progress around each."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any, cast

from eco2.errors import Conflict
from eco2.events import Event
from pipelines.jobs.progress import ProgressEvent
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.machine import Job, JobStatus, Policy
from pipelines.scan.runner import ScanRunner
from serve.contracts import AnswerResult, ModelCallFailed, VisionResult
from tests.unit.scan.factories import classified_job, clean_answer, job, vision


class MemoryStore:
    """Numbers versions as the real store does (one per event) and refuses a stale one."""

    def __init__(self, conflict_at: int | None = None) -> None:
        self.commits: list[tuple[list[str], dict[str, Any]]] = []
        self.conflict_at = conflict_at
        self.version: int | None = None

    async def advance(self, at: Job, events: Sequence[Event], **columns: Any) -> Job:
        if self.conflict_at == len(self.commits):
            raise Conflict("taken over")
        if self.version is not None and at.version != self.version:
            raise Conflict(f"stale version {at.version}, stored {self.version}")
        self.version = at.version + len(events)
        self.commits.append(([e.event_type for e in events], columns))
        changes = {k: v for k, v in columns.items() if k in Job.__dataclass_fields__}
        if "status" in changes:
            changes["status"] = JobStatus(changes["status"])
        return dataclasses.replace(at, version=at.version + len(events), **changes)


class ScriptedStages:
    def __init__(self, fail_answer: ModelCallFailed | None = None) -> None:
        self.calls: list[str] = []
        self.fail_answer = fail_answer

    async def classify(self, at: Job) -> tuple[VisionResult, float]:
        self.calls.append("classify")
        return vision(), 4.0

    async def write_answer(self, at: Job, rule_id: str) -> tuple[AnswerResult, float]:
        self.calls.append(f"answer:{rule_id}")
        if self.fail_answer is not None:
            raise self.fail_answer
        return clean_answer(), 6.0


class RecordedProgress:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def publish(self, job_id: str, user_id: str, event: ProgressEvent) -> None:
        self.events.append(event)


def _runner(store: MemoryStore, stages: ScriptedStages) -> tuple[ScanRunner, RecordedProgress]:
    progress = RecordedProgress()
    runner = ScanRunner(
        cast(Any, store), cast(Any, stages), cast(Any, progress), Policy(load_rulebook())
    )
    return runner, progress


async def test_a_fresh_job_runs_both_steps_with_one_commit_each_and_streams_in_order() -> None:
    store, stages = MemoryStore(), ScriptedStages()
    runner, progress = _runner(store, stages)
    done = await runner.run(job())
    assert done.status is JobStatus.COMPLETED
    assert stages.calls == ["classify", "answer:재활용폐기물_무색페트병"]
    assert [types for types, _ in store.commits] == [
        ["ScanClassified"],
        ["ScanAnswered", "RewardGranted", "ScanCompleted"],
    ]
    assert [(e.event, e.id) for e in progress.events] == [
        ("vision", "1-11"),
        ("vision", "1-12"),
        ("rule", "1-21"),
        ("rule", "1-22"),
        ("answer", "1-31"),
        ("answer", "1-32"),
        ("reward", "1-41"),
        ("reward", "1-42"),
        ("done", "1-52"),
    ]
    final = json.loads(progress.events[-1].body)
    assert final["result"]["reward"]["name"] == "페티"  # stored before done is announced


async def test_a_committed_step_is_never_run_again() -> None:
    store, stages = MemoryStore(), ScriptedStages()
    runner, _ = _runner(store, stages)
    await runner.run(classified_job())
    assert stages.calls == ["answer:재활용폐기물_무색페트병"]


async def test_a_model_failure_dead_letters_the_job_at_its_step() -> None:
    error = ModelCallFailed("500 after retries", retriable=True, kind="answer")
    store, stages = MemoryStore(), ScriptedStages(fail_answer=error)
    runner, progress = _runner(store, stages)
    failed = await runner.run(job())
    assert failed.status is JobStatus.FAILED
    assert failed.failed_stage == "answer"
    assert store.commits[-1][0] == ["ScanFailed"]
    last = progress.events[-1]
    assert (last.event, json.loads(last.body)["error"]) == ("error", "500 after retries")


async def test_another_runner_taking_the_job_over_stops_this_one_quietly() -> None:
    store, stages = MemoryStore(conflict_at=1), ScriptedStages()
    runner, progress = _runner(store, stages)
    left = await runner.run(job())
    assert left.stage == "vision"  # its classification is committed; the answer is the other's
    assert not any(e.event in ("done", "error") for e in progress.events)
