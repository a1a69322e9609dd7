"""Scan jobs and stage results for the unit tests of the state machine and the runner."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pipelines.scan.machine import Job, JobStatus
from serve.contracts import AnswerResult, Classification, VisionMeta, VisionResult

PET = ("재활용폐기물", "무색페트병")


def job(**fields: Any) -> Job:
    values: dict[str, Any] = {
        "job_id": uuid.uuid4(),
        "user_id": "user-1",
        "image_url": "https://cdn.eco2.local/scan/bottle.jpg",
        "user_input": None,
        "model": "gpt-5.2",
        "status": JobStatus.QUEUED,
        "stage": "queued",
        "version": 1,
        "attempt": 1,
        "vision_result": None,
        "rule_id": None,
        "answer_result": None,
        "reward": None,
        "metadata": {},
        "traceparent": None,
        "error": None,
        "failed_stage": None,
        "created_at": datetime.now(UTC),
    }
    return Job(**{**values, **fields})


def vision(
    major: str = PET[0], middle: str = PET[1], tags: list[str] | None = None
) -> VisionResult:
    return VisionResult(
        classification=Classification(
            major_category=major, middle_category=middle, minor_category="생수병"
        ),
        situation_tags=tags if tags is not None else ["내용물_없음"],
        meta=VisionMeta(user_input="버려도 돼?"),
    )


def clean_answer() -> AnswerResult:
    return AnswerResult(
        disposal_steps={"단계1": "내용물을 비워요"}, insufficiencies=[], user_answer="잘했어!"
    )


def classified_job(result: VisionResult | None = None, **fields: Any) -> Job:
    done = (result or vision()).model_dump(mode="json")
    values = {"status": JobStatus.RUNNING, "stage": "vision", "version": 2, **fields}
    return job(vision_result=done, **values)
