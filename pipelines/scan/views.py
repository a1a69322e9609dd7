"""Client-facing shapes of the scan API [compat with the original web client, domain.md §11.1]:
the submit answer, the result, the progress (SSE) events. Stage names and progress come from the
state machine (:mod:`pipelines.scan.machine`)."""

from __future__ import annotations

import json
import time
from typing import Any

from eco2 import telemetry
from pipelines.jobs.progress import ProgressEvent, key_of
from pipelines.jobs.status import JobStatus
from pipelines.rules.rulebook import RuleBook
from pipelines.scan.machine import (
    SUBMITTED,
    Job,
    Mark,
    Stage,
    current_stage,
    last_completed,
)

CATEGORIES: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "recyclable",
        "display_name": "재활용폐기물",
        "instructions": ["내용물을 비우고 헹궈요", "재질별로 나눠서 배출해요"],
    },
    {
        "id": 2,
        "name": "general",
        "display_name": "일반폐기물",
        "instructions": ["재활용이 안 되는 것만 종량제봉투에 담아요"],
    },
    {
        "id": 3,
        "name": "food",
        "display_name": "음식물폐기물",
        "instructions": ["물기를 빼고 이물질을 골라내요", "뼈·씨·껍데기는 일반쓰레기로 보내요"],
    },
    {
        "id": 4,
        "name": "bulky",
        "display_name": "대형폐기물",
        "instructions": ["배출 스티커를 사서 붙여요", "쓸 만하면 재활용센터에 먼저 물어봐요"],
    },
]

_REVOKED_MESSAGE = "스캔이 끝났어요. 다만 이번 캐릭터 지급은 취소됐어요."


def submitted(job: Job) -> dict[str, Any]:
    job_id = str(job.job_id)
    return {
        "job_id": job_id,
        "stream_url": f"/api/v1/scan/{job_id}/events",
        "result_url": f"/api/v1/scan/{job_id}/result",
        "status": "queued",
    }


def result(job: Job, rules: RuleBook) -> dict[str, Any]:
    """The 200 body of ``GET /result`` for a completed job.

    A reward the character domain rejected afterwards (saga compensation) shows as ``reward:
    null`` with ``metadata.reward_revoked`` saying why, and the message says so.
    """
    revoked = job.metadata.get("reward_revoked")
    return {
        "task_id": str(job.job_id),
        "status": "completed",
        "message": _REVOKED_MESSAGE if revoked else "스캔이 끝났어요.",
        "pipeline_result": {
            "classification_result": job.vision_result,
            "disposal_rules": rules.document(job.rule_id) if job.rule_id else None,
            "final_answer": job.answer_result,
        },
        "reward": job.reward,
        "error": None,
        "metadata": {**job.metadata, "attempt": job.attempt},
    }


def processing(job: Job) -> dict[str, Any]:
    """The 202 body while the job runs."""
    stage = current_stage(job)
    return {
        "task_id": str(job.job_id),
        "status": "processing",
        "message": "아직 분석 중이에요. 잠시 후 다시 확인해 주세요.",
        "current_stage": stage.value,
        "progress": stage.progress_started,
    }


def failed(job: Job) -> dict[str, Any]:
    return {
        "task_id": str(job.job_id),
        "status": JobStatus.FAILED.value,
        "message": "스캔을 끝내지 못했어요. 다시 시도해 주세요.",
        "pipeline_result": None,
        "reward": None,
        "error": {"stage": job.failed_stage, "reason": job.error},
    }


def final(job: Job, rules: RuleBook) -> dict[str, Any]:
    """The body of the result read (and of the synchronous endpoint) for the job's state."""
    if job.status is JobStatus.COMPLETED:
        return result(job, rules)
    if job.status is JobStatus.FAILED:
        return failed(job)
    return processing(job)


def progress_event(
    job: Job,
    mark: Mark,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> ProgressEvent:
    """One SSE event: ``event: <stage>`` (``error`` when failed), ``id: <attempt>-<seq+1>``."""
    stage = mark.stage
    data: dict[str, Any] = {
        "job_id": str(job.job_id),
        "stage": stage.value,
        "status": mark.status,
        "seq": mark.seq,
        "ts": round(time.time(), 3),
        "progress": stage.progress_started
        if mark.status == "started"
        else stage.progress_completed,
        "trace_id": telemetry.trace_id_of(job.traceparent),
        "traceparent": job.traceparent,
    }
    if result is not None:
        data["result"] = result
    if error is not None:
        data["error"] = error
    name = "error" if mark.status == "failed" else stage.value
    body = json.dumps(data, ensure_ascii=False)
    return ProgressEvent(id=f"{job.attempt}-{mark.seq + 1}", event=name, body=body)


def snapshot_event(job: Job, rules: RuleBook) -> ProgressEvent:
    """The job's state as one event, for a stream that finds no progress history."""
    return stored_events(job, rules)[-1]


def stored_events(job: Job, rules: RuleBook, after: str | None = None) -> list[ProgressEvent]:
    """The progress events the stored job implies, in stream order, those numbered after event
    id ``after`` only: what its runner published up to its committed position (the ``done``
    event with the result, or the ``error`` of a dead-lettered job)."""
    if job.status is JobStatus.FAILED:
        stage = Stage(job.failed_stage or Stage.VISION.value)
        marks = [m for m in _MARKS if m.stage.order < stage.order]
        marks += [Mark(stage, "started"), Mark(stage, "failed")]
    else:
        reached = Stage.DONE if job.status is JobStatus.COMPLETED else last_completed(job)
        marks = [m for m in _MARKS if m.stage.order <= reached.order]
    after_number = key_of(after)[1]
    return [
        progress_event(
            job,
            mark,
            result=result(job, rules) if mark.stage is Stage.DONE else None,
            error=job.error if mark.status == "failed" else None,
        )
        for mark in marks
        if mark.seq + 1 > after_number
    ]


_MARKS = (
    SUBMITTED,
    *(Mark(stage, status) for stage in list(Stage)[1:-1] for status in ("started", "completed")),
    Mark(Stage.DONE, "completed"),
)
"""Every progress event of a job that completes, in order."""
