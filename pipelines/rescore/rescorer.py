"""One stored scan rescored: the stage calls of Serve's stages and the state machine's transition.

Nothing is decided here that the live pipeline does not decide the same way: the prompts and
parsers are :mod:`serve.vision` and :mod:`serve.answer`, the model path is
:class:`~serve.model_client.ModelClient`, the rule lookup, the answer's tag faults, the no-rule
fallback and the reward are :func:`pipelines.scan.machine.find_rule` and
:func:`~pipelines.scan.machine.answered`. The transition's commit is read, never stored: the
scan's own row keeps its result; the outcome goes to the rescoring table.

Stages not chosen keep their stored result: ``answer`` alone answers the stored classification
again; ``vision`` alone reclassifies, looks the rule up again and decides the reward from the
stored answer (plus the new classification's tag faults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from pipelines.rescore.budget import Budget, Usage, call_within_budget
from pipelines.rescore.options import Plan
from pipelines.scan import machine
from pipelines.scan.machine import Job, Policy
from serve import answer as answer_task
from serve.contracts import AnswerResult, VisionResult
from serve.model_client import ModelClient
from serve.vision import VisionTask, response_format

R = TypeVar("R", bound=BaseModel)
CHARS_PER_TOKEN = 3
"""Token estimate: characters / 3 (the SDK path returns no usage to its callers)."""


@dataclass(frozen=True)
class Outcome:
    """What a scan ended with: its label, its rule and its reward (a character code)."""

    major_category: str
    middle_category: str
    rule_id: str | None
    reward: str | None

    @property
    def label(self) -> str:
        return f"{self.major_category}/{self.middle_category}"

    def as_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)

    def changes_from(self, previous: Outcome) -> list[str]:
        """What differs from ``previous``: a subset of ``label``, ``rule``, ``reward``."""
        pairs = {
            "label": (previous.label, self.label),
            "rule": (previous.rule_id, self.rule_id),
            "reward": (previous.reward, self.reward),
        }
        return [name for name, (old, new) in pairs.items() if old != new]


def outcome_of(vision_result: dict[str, Any] | None, rule_id: str | None, reward: Any) -> Outcome:
    """The outcome of stored columns (a job row, or a transition's new columns)."""
    classification = VisionResult.model_validate(vision_result).classification
    code = reward.get("code") if isinstance(reward, dict) else None
    return Outcome(classification.major_category, classification.middle_category, rule_id, code)


def stored_outcome(job: Job) -> Outcome:
    return outcome_of(job.vision_result, job.rule_id, job.reward)


@dataclass(frozen=True)
class Rescored:
    """A scan's new outcome beside its stored one."""

    job: Job
    previous: Outcome
    current: Outcome

    @property
    def changed(self) -> list[str]:
        return self.current.changes_from(self.previous)


def estimate_tokens(messages: list[dict[str, Any]], reply: Any = None) -> int:
    """Characters of the text in ``messages`` (and ``reply``) / 3, at least 1."""
    return max(1, (_chars(messages) + _chars(reply)) // CHARS_PER_TOKEN)


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(item) for item in value.values())
    if isinstance(value, list):
        return sum(_chars(item) for item in value)
    return 0


class Rescorer:
    """Rescores scans for one :class:`Plan` with one model client and one budget."""

    def __init__(self, client: ModelClient, policy: Policy, plan: Plan, budget: Budget) -> None:
        self._client, self._policy, self._plan, self._budget = client, policy, plan, budget
        self._vision: VisionTask | None = None

    def use_catalog(self, task: VisionTask) -> None:
        """The vision prompt to rerun ``vision`` with (built once per process: it is large)."""
        self._vision = task

    async def rescore(self, job: Job, usage: Usage) -> Rescored:
        """The new outcome of ``job``, its calls counted in ``usage`` (the row's); raises
        :class:`~serve.contracts.ModelCallFailed` when a model call failed past its retries."""
        previous = stored_outcome(job)
        model = self._plan.model or job.model
        if "vision" in self._plan.stages:
            vision = await self._classify(job, model, usage)
            job = dataclasses.replace(job, vision_result=vision.model_dump(mode="json"))
        match = machine.find_rule(job, self._policy)
        answer: AnswerResult | None = None
        if match is not None and "answer" in self._plan.stages:
            answer = await self._answer(job, model, match.rule.rule_id, usage)
        elif match is not None:
            answer = AnswerResult.model_validate(job.answer_result)
        commit = machine.answered(job, self._policy, match, answer, rule_ms=0.0, answer_ms=0.0)
        columns = commit.columns
        current = outcome_of(job.vision_result, columns["rule_id"], columns["reward"])
        return Rescored(job, previous, current)

    async def _classify(self, job: Job, model: str, usage: Usage) -> VisionResult:
        if self._vision is None:
            raise RuntimeError("rescoring the vision stage needs use_catalog() first")
        task = self._vision
        messages = task.messages(job.image_url, job.user_input)

        async def call() -> tuple[VisionResult, float]:
            return await self._client.complete_json(
                kind="vision",
                model=model,
                messages=messages,
                response_format=response_format(),
                parse=lambda text: task.parse(text, job.user_input),
                call_key=f"{self._plan.run_id}:{job.job_id}:vision",
                traceparent=job.traceparent,
            )

        return await self._paid(messages, call, usage)

    async def _answer(self, job: Job, model: str, rule_id: str, usage: Usage) -> AnswerResult:
        vision = machine.stored_vision(job)
        messages = answer_task.build_messages(vision, self._policy.rules.document(rule_id))

        async def call() -> tuple[AnswerResult, float]:
            return await self._client.complete_json(
                kind="answer",
                model=model,
                messages=messages,
                response_format=answer_task.response_format(),
                parse=answer_task.parse,
                call_key=f"{self._plan.run_id}:{job.job_id}:answer",
                traceparent=job.traceparent,
            )

        return await self._paid(messages, call, usage)

    async def _paid(
        self,
        messages: list[dict[str, Any]],
        call: Callable[[], Awaitable[tuple[R, float]]],
        usage: Usage,
    ) -> R:
        """``call`` within the budget, its tokens counted in the budget's and the row's usage."""
        result, _ = await call_within_budget(
            self._budget, estimate_tokens(messages), call, row=usage
        )
        reply = estimate_tokens([], result.model_dump(mode="json"))
        self._budget.usage.received(reply)
        usage.received(reply)
        return result
