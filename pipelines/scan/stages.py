"""The scan pipeline's side of its AI stages (``serve.stages``): what it hands them when the
application is built (the vision catalog from the taxonomy, the rule documents) and how it calls
them (through :func:`pipelines.jobs.stage_calls.call_stage`, with its retry policy).
"""

from __future__ import annotations

from typing import Any

from pipelines.jobs.stage_calls import call_stage
from pipelines.jobs.tracing import current_or
from pipelines.rules.rulebook import RuleBook
from pipelines.rules.taxonomy import UNCLASSIFIED, load_taxonomy
from pipelines.scan.machine import Job
from serve.contracts import AnswerResult, VisionResult
from serve.vision import VisionCatalog


def vision_catalog() -> VisionCatalog:
    """The taxonomy as the vision prompt lists it: majors, recyclable middles with their items,
    the other majors' items, and the situation tags (labels byte for byte)."""
    taxonomy = load_taxonomy()
    listing: dict[str, Any] = {}
    for major in taxonomy.major_categories:
        if major in taxonomy.flat_items:
            listing[major] = list(taxonomy.flat_items[major])
        elif major != UNCLASSIFIED:
            listing[major] = {m: list(items) for m, items in taxonomy.recyclable_middles.items()}
    return VisionCatalog(listing, taxonomy.situation_tags, UNCLASSIFIED)


def rule_documents(rules: RuleBook) -> dict[str, dict[str, Any]]:
    """Every disposal rule as the answer prompt receives it, by rule id."""
    return {rule_id: rules.document(rule_id) for rule_id in rules.rules}


class ScanStages:
    """Calls to the VisionStage and AnswerStage deployments for one job (small payloads: ids and
    the stored classification, never documents)."""

    def __init__(self, vision: Any, answer: Any) -> None:
        self._vision, self._answer = vision, answer

    async def classify(self, job: Job) -> tuple[VisionResult, float]:
        """The classification of the job's image and the model time in ms."""
        raw, elapsed = await call_stage(
            self._vision.classify,
            job_id=str(job.job_id),
            image_url=job.image_url,
            user_input=job.user_input,
            model=job.model,
            traceparent=current_or(job.traceparent),
        )
        return VisionResult.model_validate(raw), elapsed

    async def write_answer(self, job: Job, rule_id: str) -> tuple[AnswerResult, float]:
        """The answer for a classified job under rule ``rule_id`` and the model time in ms."""
        raw, elapsed = await call_stage(
            self._answer.write,
            job_id=str(job.job_id),
            vision_result=job.vision_result,
            rule_id=rule_id,
            model=job.model,
            traceparent=current_or(job.traceparent),
        )
        return AnswerResult.model_validate(raw), elapsed
