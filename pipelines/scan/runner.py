"""Runs one scan from its last committed stage to the end: vision → rule → answer → reward.

Plain Python with explicit ports, so the same orchestration runs in the Serve ingress, in the
reprocess command and in unit tests with fakes.

Guarantees:

* a stage whose result is committed is never re-run: :meth:`ScanRunner.run` starts from
  ``job.stage``, so a resumed or reprocessed job calls each model at most once per committed stage;
* the reward is decided from the committed answer alone and commits in the answer's
  transaction (a job an older runner left at ``answer`` is completed by :meth:`ScanRunner._reward`);
* the result is committed before ``done`` is published;
* a model failure that survived its retries moves the job to ``failed`` (the dead-letter state)
  with the stage and reason, and ``ScanFailed``; it can be reprocessed from the same stage;
* a :class:`~eco2.errors.Conflict` means another runner took the job over: this one stops quietly.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from eco2 import telemetry
from eco2.errors import Conflict
from pipelines.rules.characters import Character
from pipelines.rules.reward import decide_reward
from pipelines.rules.rulebook import RuleBook
from pipelines.scan import answer as answer_logic
from pipelines.scan.contracts import (
    AnswerResult,
    JobStatus,
    ModelCallFailed,
    Reward,
    Stage,
    VisionResult,
)
from pipelines.scan.events import (
    RewardGranted,
    ScanAnswered,
    ScanClassified,
    ScanCompleted,
    ScanFailed,
)
from pipelines.scan.store import Job, ScanStore

_log = telemetry.get_logger(__name__)

VisionPort = Callable[[Job], Awaitable[tuple[VisionResult, float]]]
"""Classify the job's image; returns the result and the model time in ms."""

AnswerPort = Callable[[Job, VisionResult, str], Awaitable[tuple[AnswerResult, float]]]
"""Write the answer for a classified job and a rule id; returns the result and model time."""


class ProgressSink(Protocol):
    """Where client progress events go (SSE). Publishing is best effort and never blocks a stage."""

    async def publish(
        self,
        job: Job,
        stage: Stage,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class RunnerConfig:
    reward_enabled: bool = True


class ScanRunner:
    def __init__(
        self,
        store: ScanStore,
        vision: VisionPort,
        answer: AnswerPort,
        progress: ProgressSink,
        rulebook: RuleBook,
        result_view: Callable[[Job], dict[str, Any]],
        config: RunnerConfig = RunnerConfig(),
    ) -> None:
        self._store = store
        self._vision = vision
        self._answer = answer
        self._progress = progress
        self._rules = rulebook
        self._result_view = result_view
        self._config = config

    async def run(self, job: Job) -> Job:
        """Advance ``job`` to ``completed`` or ``failed``; returns the last stored state."""
        stages = {"queued": self._classify, "vision": self._answer_stage, "answer": self._reward}
        try:
            while job.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                job = await stages[job.stage](job)
        except ModelCallFailed as exc:
            job = await self._fail(job, exc)
        except Conflict:
            _log.info("scan taken over by another runner", job_id=str(job.job_id))
        return job

    async def _classify(self, job: Job) -> Job:
        await self._progress.publish(job, Stage.VISION, "started")
        vision, vision_ms = await self._vision(job)
        event = ScanClassified(
            scan_id=str(job.job_id),
            image_url=job.image_url,
            model=job.model,
            classification=vision.classification.model_dump(),
            situation_tags=vision.situation_tags,
            user_input=vision.meta.user_input,
            vision_ms=round(vision_ms, 1),
        )
        job = await self._store.advance(
            job,
            [event],
            status=JobStatus.RUNNING.value,
            stage="vision",
            vision_result=vision.model_dump(mode="json"),
            metadata=_timed(job.metadata, "vision", vision_ms),
        )
        await self._progress.publish(job, Stage.VISION, "completed")
        return job

    async def _answer_stage(self, job: Job) -> Job:
        vision = VisionResult.model_validate(job.vision_result)
        await self._progress.publish(job, Stage.RULE, "started")
        started = time.perf_counter()
        c = vision.classification
        match = self._rules.find(c.major_category, c.middle_category, vision.situation_tags)
        rule_ms = (time.perf_counter() - started) * 1000
        await self._progress.publish(job, Stage.RULE, "completed")
        await self._progress.publish(job, Stage.ANSWER, "started")
        if match is None:
            answer, answer_ms = answer_logic.fallback(), 0.0
        else:
            answer, answer_ms = await self._answer(job, vision, match.rule.rule_id)
        answer = answer_logic.with_tag_faults(answer, vision)
        rule_id = match.rule.rule_id if match else None
        answered = ScanAnswered(
            scan_id=str(job.job_id),
            rule_id=rule_id,
            rule_matched=match is not None,
            disposal_steps=answer.disposal_steps,
            insufficiencies=answer.insufficiencies,
            user_answer=answer.user_answer,
            answer_ms=round(answer_ms, 1),
        )
        metadata = _timed(_timed(job.metadata, "rule", rule_ms), "answer", answer_ms)
        # The reward is a pure function of the committed answer (no model call, no side
        # effect), so it commits in the answer's transaction: one statement, one WAL
        # transaction and one Kafka batch less per scan than a commit of its own.
        job = await self._complete(job, vision, rule_id, answer, metadata, [answered])
        await self._progress.publish(job, Stage.ANSWER, "completed")
        return await self._announce_reward(job)

    async def _reward(self, job: Job) -> Job:
        """Resume a job whose answer an earlier runner committed on its own (stage ``answer``)."""
        vision = VisionResult.model_validate(job.vision_result)
        answer = AnswerResult.model_validate(job.answer_result)
        job = await self._complete(job, vision, job.rule_id, answer, job.metadata, [])
        return await self._announce_reward(job)

    async def _complete(
        self,
        job: Job,
        vision: VisionResult,
        rule_id: str | None,
        answer: AnswerResult,
        metadata: dict[str, Any],
        events: list[Any],
    ) -> Job:
        """Decide the reward and commit it with ``events``, the job completed."""
        started = time.perf_counter()
        c = vision.classification
        # Judge the reward on the normalised labels of the matched rule (a rule's major/middle
        # are exactly what rule retrieval normalised to), not the raw ones.
        rule = self._rules.get(rule_id) if rule_id else None
        decision = decide_reward(
            enabled=self._config.reward_enabled,
            major=rule.major_category if rule else c.major_category,
            middle=rule.middle_category if rule else c.middle_category,
            minor=c.minor_category,
            rule_found=rule_id is not None,
            insufficiencies=answer.insufficiencies,
        )
        reward: Reward | None = None
        if decision.granted and decision.character is not None:
            reward = _reward_of(decision.character, decision.match_reason or c.middle_category)
            events.append(_granted(job, decision.character, reward))
        metadata = _timed(metadata, "reward", (time.perf_counter() - started) * 1000)
        metadata.update(
            reward_decision=decision.reason, rules_version=self._rules.version, model=job.model
        )
        events.append(
            ScanCompleted(
                scan_id=str(job.job_id),
                user_id=job.user_id,
                major_category=c.major_category,
                middle_category=c.middle_category,
                rule_id=rule_id,
                rewarded=reward is not None,
                rules_version=self._rules.version,
                total_ms=round(sum(metadata["latency_ms"].values()), 1),
            )
        )
        return await self._store.advance(
            job,
            events,
            status=JobStatus.COMPLETED.value,
            stage="done",
            rule_id=rule_id,
            answer_result=answer.model_dump(mode="json"),
            reward=reward.model_dump(mode="json") if reward else None,
            metadata=metadata,
            completed_at=datetime.now(UTC),
        )

    async def _announce_reward(self, job: Job) -> Job:
        await self._progress.publish(job, Stage.REWARD, "started")
        await self._progress.publish(job, Stage.REWARD, "completed")
        await self._progress.publish(job, Stage.DONE, "completed", result=self._result_view(job))
        return job

    async def _fail(self, job: Job, exc: ModelCallFailed) -> Job:
        stage = {"queued": "vision", "vision": "answer", "answer": "reward"}.get(job.stage, "")
        _log.warning("scan failed", job_id=str(job.job_id), stage=stage, reason=str(exc))
        event = ScanFailed(
            scan_id=str(job.job_id), stage=stage, reason=str(exc), retriable=exc.retriable
        )
        try:
            job = await self._store.advance(
                job,
                [event],
                status=JobStatus.FAILED.value,
                error=str(exc)[:2000],
                failed_stage=stage,
            )
        except Conflict:
            return job
        await self._progress.publish(job, Stage(stage), "failed", error=str(exc))
        return job


def _timed(metadata: dict[str, Any], stage: str, elapsed_ms: float) -> dict[str, Any]:
    """A copy of ``metadata`` with ``stage``'s latency added to ``latency_ms``."""
    timed = dict(metadata)
    timed["latency_ms"] = {**metadata.get("latency_ms", {}), stage: round(elapsed_ms, 1)}
    return timed


def _reward_of(character: Character, match_reason: str) -> Reward:
    return Reward(
        name=character.name,
        dialog=character.dialog,
        match_reason=match_reason,
        type=character.type,
        code=character.code,
    )


def _granted(job: Job, character: Character, reward: Reward) -> RewardGranted:
    return RewardGranted(
        scan_id=str(job.job_id),
        user_id=job.user_id,
        character_id=character.code,
        character_code=character.code,
        character_name=character.name,
        match_label=character.match_label,
        match_reason=reward.match_reason,
    )
