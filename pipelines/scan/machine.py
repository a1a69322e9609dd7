"""The scan pipeline as a state machine: the stage order and every transition, in one place.

Plain Python: no Ray, no database, no HTTP. The runner (:mod:`pipelines.scan.runner`) drives it,
the API's progress, the SSE stage names and the views derive from it.

**Committed position.** A job's ``stage`` column says what is committed:

====================  ==========================================================================
``queued``            nothing yet
``vision``            the classification (``ScanClassified``)
``done``              the answer, the reward decided from it and the completion, in one commit
                      (``ScanAnswered``, ``RewardGranted`` when granted, ``ScanCompleted``)
``answer``            only the answer: what a runner of an older version left; :data:`COMPLETE`
                      finishes such a job from the stored answer (no model call)
====================  ==========================================================================

**Steps.** :data:`STEPS` lists the work between positions. Each step names the client stages it
walks through (:class:`Stage`, whose order is the order of the SSE stream) and the one it is
known by (``failed_stage`` when it fails, ``current_stage`` while it runs). A step publishes
``started``/``completed`` for its stages up to ``started`` of its own stage before its work, the
rest after its commit (:meth:`Step.opening`, :meth:`Step.closing`); ``done`` has only
``completed``. A fresh scan therefore streams::

    queued✓ · vision▶ [classify] vision✓ · rule▶ rule✓ answer▶ [answer]
    answer✓ reward▶ reward✓ done✓

**Transitions** (:func:`classified`, :func:`answered`, :func:`completed`, :func:`failed`) are
pure: each returns the :class:`Commit` to store — the job's new column values and the events
they produce — and never performs it. A committed step is never run again: :func:`next_step`
starts from the committed position.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from eco2.events import Event
from pipelines.jobs.status import JobStatus
from pipelines.rules.characters import Character
from pipelines.rules.reward import decide_reward
from pipelines.rules.rulebook import RuleBook, RuleMatch
from pipelines.rules.tags import fault_tags, insufficiency_text
from pipelines.scan.events import (
    RewardGranted,
    ScanAnswered,
    ScanClassified,
    ScanCompleted,
    ScanFailed,
)
from serve.contracts import AnswerResult, ModelCallFailed, VisionResult

KIND = "scan"
"""The job kind: the name of its routes (``/api/v1/scan/...``) and of its progress keys."""
NO_RULE_INSUFFICIENCY = "배출 규정 매칭 실패"


@dataclass(frozen=True)
class Job:
    """The scan aggregate as stored (one ``scan_jobs`` row)."""

    job_id: uuid.UUID
    user_id: str
    image_url: str
    user_input: str | None
    model: str
    status: JobStatus
    stage: str
    version: int
    attempt: int
    vision_result: dict[str, Any] | None
    rule_id: str | None
    answer_result: dict[str, Any] | None
    reward: dict[str, Any] | None
    metadata: dict[str, Any]
    traceparent: str | None
    error: str | None
    failed_stage: str | None
    created_at: datetime

    @property
    def unfinished(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)


# --- the order ---------------------------------------------------------------------------------


class Stage(StrEnum):
    """Client progress stages, in stream order; ``seq`` = order × 10 (+1 completed, +2 failed)."""

    QUEUED = "queued"
    VISION = "vision"
    RULE = "rule"
    ANSWER = "answer"
    REWARD = "reward"
    DONE = "done"

    @property
    def order(self) -> int:
        return list(Stage).index(self)

    @property
    def progress_started(self) -> int:
        return _PROGRESS[self][0]

    @property
    def progress_completed(self) -> int:
        return _PROGRESS[self][1]


_PROGRESS: dict[Stage, tuple[int, int]] = {
    Stage.QUEUED: (0, 0),
    Stage.VISION: (0, 25),
    Stage.RULE: (25, 50),
    Stage.ANSWER: (50, 75),
    Stage.REWARD: (75, 100),
    Stage.DONE: (100, 100),
}

Status = Literal["started", "completed", "failed"]


@dataclass(frozen=True)
class Mark:
    """One progress event: a client stage and what happened to it."""

    stage: Stage
    status: Status

    @property
    def seq(self) -> int:
        return self.stage.order * 10 + {"started": 0, "completed": 1, "failed": 2}[self.status]


SUBMITTED = Mark(Stage.QUEUED, "completed")


@dataclass(frozen=True)
class Step:
    """The work that takes a job from position ``start`` to position ``commits``."""

    name: Literal["classify", "answer", "complete"]
    start: str
    commits: str
    stages: tuple[Stage, ...]
    """The client stages it walks through, in order."""
    known_as: Stage
    """Its name on the client side: the stage it fails as and the one it is in while it runs."""
    marks: tuple[Mark, ...] = field(init=False)

    def __post_init__(self) -> None:
        statuses: dict[bool, tuple[Status, ...]] = {
            True: ("completed",),
            False: ("started", "completed"),
        }
        marks = [
            Mark(stage, status) for stage in self.stages for status in statuses[stage is Stage.DONE]
        ]
        object.__setattr__(self, "marks", tuple(marks))

    @property
    def opening(self) -> tuple[Mark, ...]:
        """Published before the step's work: up to and including its own stage's start."""
        return self.marks[: self.marks.index(Mark(self.known_as, "started")) + 1]

    @property
    def closing(self) -> tuple[Mark, ...]:
        """Published after the step's commit."""
        return self.marks[len(self.opening) :]


CLASSIFY = Step("classify", "queued", "vision", (Stage.VISION,), known_as=Stage.VISION)
ANSWER = Step(
    "answer",
    "vision",
    "done",
    (Stage.RULE, Stage.ANSWER, Stage.REWARD, Stage.DONE),
    known_as=Stage.ANSWER,
)
COMPLETE = Step("complete", "answer", "done", (Stage.REWARD, Stage.DONE), known_as=Stage.REWARD)
STEPS: tuple[Step, ...] = (CLASSIFY, ANSWER, COMPLETE)
_FROM = {step.start: step for step in STEPS}


def next_step(job: Job) -> Step | None:
    """The step to run next, or None when the job is finished (or dead-lettered)."""
    return _FROM.get(job.stage) if job.unfinished else None


def current_stage(job: Job) -> Stage:
    """The client stage an unfinished job is in (``DONE`` for a finished one)."""
    step = _FROM.get(job.stage)
    return step.known_as if step is not None and job.unfinished else Stage.DONE


def last_completed(job: Job) -> Stage:
    """The last client stage an unfinished job completed: the one before its next step's."""
    step = _FROM.get(job.stage)
    return list(Stage)[step.stages[0].order - 1] if step is not None else Stage.DONE


# --- the transitions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    """What one transition stores in one statement: the job's new columns and its events."""

    columns: dict[str, Any]
    events: list[Event]


class Reward(BaseModel):
    """The client-visible reward [compat] plus ``already_owned`` and the character code."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    dialog: str
    match_reason: str
    type: str
    code: str
    already_owned: bool = False


@dataclass(frozen=True)
class Policy:
    """What the transitions decide with: the rules and whether rewards are on."""

    rules: RuleBook
    reward_enabled: bool = True


def classified(job: Job, vision: VisionResult, vision_ms: float) -> Commit:
    """``queued`` → ``vision``: the classification and ``ScanClassified``."""
    event = ScanClassified(
        scan_id=str(job.job_id),
        image_url=job.image_url,
        model=job.model,
        classification=vision.classification.model_dump(),
        situation_tags=vision.situation_tags,
        user_input=vision.meta.user_input,
        vision_ms=round(vision_ms, 1),
    )
    columns = {
        "status": JobStatus.RUNNING.value,
        "stage": CLASSIFY.commits,
        "vision_result": vision.model_dump(mode="json"),
        "metadata": timed(job.metadata, "vision", vision_ms),
    }
    return Commit(columns, [event])


def find_rule(job: Job, policy: Policy) -> RuleMatch | None:
    """The disposal rule for a classified job (no model involved)."""
    vision = stored_vision(job)
    c = vision.classification
    return policy.rules.find(c.major_category, c.middle_category, vision.situation_tags)


def answered(
    job: Job,
    policy: Policy,
    match: RuleMatch | None,
    answer: AnswerResult | None,
    *,
    rule_ms: float,
    answer_ms: float,
) -> Commit:
    """``vision`` → ``done``: the answer (the no-rule fallback when ``match`` is None, with a
    deterministic insufficiency for every fault tag), the reward decided from it and the
    completion, with ``ScanAnswered`` (+ ``RewardGranted``) + ``ScanCompleted``."""
    vision = stored_vision(job)
    if match is None or answer is None:
        answer, answer_ms = fallback_answer(), 0.0
    answer = with_tag_faults(answer, vision)
    rule_id = match.rule.rule_id if match else None
    event = ScanAnswered(
        scan_id=str(job.job_id),
        rule_id=rule_id,
        rule_matched=match is not None,
        disposal_steps=answer.disposal_steps,
        insufficiencies=answer.insufficiencies,
        user_answer=answer.user_answer,
        answer_ms=round(answer_ms, 1),
    )
    metadata = timed(timed(job.metadata, "rule", rule_ms), "answer", answer_ms)
    return _completion(job, policy, rule_id, answer, metadata, [event])


def completed(job: Job, policy: Policy) -> Commit:
    """``answer`` → ``done`` for a job whose answer an older runner committed on its own."""
    answer = AnswerResult.model_validate(job.answer_result)
    return _completion(job, policy, job.rule_id, answer, dict(job.metadata), [])


def failed(job: Job, step: Step, error: ModelCallFailed) -> Commit:
    """Any position → the dead-letter state, with the reason and ``ScanFailed``; reprocessing
    resumes from the same position."""
    event = ScanFailed(
        scan_id=str(job.job_id),
        stage=step.known_as.value,
        reason=str(error),
        retriable=error.retriable,
    )
    columns = {
        "status": JobStatus.FAILED.value,
        "error": str(error)[:2000],
        "failed_stage": step.known_as.value,
    }
    return Commit(columns, [event])


def _completion(
    job: Job,
    policy: Policy,
    rule_id: str | None,
    answer: AnswerResult,
    metadata: dict[str, Any],
    events: list[Event],
) -> Commit:
    """Decide the reward from the committed answer alone and complete the job.

    The reward is judged on the matched rule's normalised labels (what rule retrieval
    normalised to), not the raw ones."""
    started = time.perf_counter()
    c = stored_vision(job).classification
    rule = policy.rules.get(rule_id) if rule_id else None
    decision = decide_reward(
        enabled=policy.reward_enabled,
        major=rule.major_category if rule else c.major_category,
        middle=rule.middle_category if rule else c.middle_category,
        minor=c.minor_category,
        rule_found=rule_id is not None,
        insufficiencies=answer.insufficiencies,
    )
    reward: Reward | None = None
    if decision.granted and decision.character is not None:
        reward = _reward_of(decision.character, decision.match_reason or c.middle_category)
        events = [*events, _granted(job, decision.character, reward)]
    metadata = timed(metadata, "reward", (time.perf_counter() - started) * 1000)
    metadata.update(
        reward_decision=decision.reason, rules_version=policy.rules.version, model=job.model
    )
    completion = ScanCompleted(
        scan_id=str(job.job_id),
        user_id=job.user_id,
        major_category=c.major_category,
        middle_category=c.middle_category,
        rule_id=rule_id,
        rewarded=reward is not None,
        rules_version=policy.rules.version,
        total_ms=round(sum(metadata["latency_ms"].values()), 1),
    )
    columns = {
        "status": JobStatus.COMPLETED.value,
        "stage": ANSWER.commits,
        "rule_id": rule_id,
        "answer_result": answer.model_dump(mode="json"),
        "reward": reward.model_dump(mode="json") if reward else None,
        "metadata": metadata,
        "completed_at": datetime.now(UTC),
    }
    return Commit(columns, [*events, completion])


# --- helpers -----------------------------------------------------------------------------------


def stored_vision(job: Job) -> VisionResult:
    return VisionResult.model_validate(job.vision_result)


def timed(metadata: dict[str, Any], stage: str, elapsed_ms: float) -> dict[str, Any]:
    """A copy of ``metadata`` with ``stage``'s latency added to ``latency_ms``."""
    copy = dict(metadata)
    copy["latency_ms"] = {**metadata.get("latency_ms", {}), stage: round(elapsed_ms, 1)}
    return copy


def with_tag_faults(answer: AnswerResult, vision: VisionResult) -> AnswerResult:
    """Add a deterministic insufficiency for every fault tag the model did not mention.

    The reward gate must not rest on free model text alone (domain.md §4, tag roles)."""
    faults = fault_tags(vision.situation_tags, vision.classification.middle_category)
    extra = [insufficiency_text(t) for t in faults]
    missing = [text for text in extra if text not in answer.insufficiencies]
    if not missing:
        return answer
    return answer.model_copy(update={"insufficiencies": [*answer.insufficiencies, *missing]})


def fallback_answer() -> AnswerResult:
    """The answer when no rule matched: no model call, and never a reward."""
    return AnswerResult(
        disposal_steps={},
        insufficiencies=[NO_RULE_INSUFFICIENCY],
        user_answer=(
            "미안해, 이 물건에 맞는 배출 규정을 찾지 못했어. "
            "물건이 잘 보이게 한 가지만 다시 찍어 주면 다시 살펴볼게!"
        ),
    )


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
