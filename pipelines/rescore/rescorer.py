"""One stored scan rescored: the stage calls of Serve's stages and the state machine's transition.

Nothing is decided here that the live pipeline does not decide the same way: the prompts and
parsers are :mod:`serve.vision` and :mod:`serve.answer`, the model path is
:class:`~serve.model_client.ModelClient`, the rule lookup, the answer's tag faults, the no-rule
fallback and the reward are :func:`pipelines.scan.machine.find_rule` and
:func:`~pipelines.scan.machine.answered`. The transition's commit is read, never stored: the
scan's own row keeps its result; the outcome goes to the rescoring table.

A stored ``image_url`` passed the submit check only: as in the vision stage, it passes the
image gate again (:class:`~serve.vision.ImageGate`) before a model is handed it, once per row,
and a refused image fails that row with the reason.

Stages not chosen keep their stored result: ``answer`` alone answers the stored classification
again; ``vision`` alone reclassifies, looks the rule up again and decides the reward from the
stored answer (plus the new classification's tag faults).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from pipelines.rescore.budget import Budget, Usage, call_within_budget
from pipelines.rescore.options import Plan
from pipelines.rules.rulebook import RuleMatch
from pipelines.scan import machine
from pipelines.scan.machine import Job, Policy
from serve import answer as answer_task
from serve.contracts import AnswerResult, MalformedModelOutput, ModelCallFailed, VisionResult
from serve.model_client import BatchCall, ModelClient
from serve.vision import ImageGate, VisionTask, response_format

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


Prefetched = dict[str, "str | ModelCallFailed"]
"""Answers a Batch API job brought back, by call key: the text, or why the line failed."""
Images = dict[str, "str | ModelCallFailed"]
"""Each row's image as the model may be handed it, by job id: a URL, or why it was refused."""


class Rescorer:
    """Rescores scans for one :class:`Plan` with one model client and one budget.

    Two ways to call the model, with one flow: :meth:`rescore` calls it per row (under the
    budget), :meth:`rescore_batch` sends each stage's calls for many rows as one Batch API job
    and reads each row's answer from it; a line that failed or does not parse is called online
    for that row (with the client's retries and its one repair)."""

    def __init__(self, client: ModelClient, policy: Policy, plan: Plan, budget: Budget) -> None:
        self._client, self._policy, self._plan, self._budget = client, policy, plan, budget
        self._vision: VisionTask | None = None
        self._images: ImageGate | None = None

    def use_catalog(self, task: VisionTask, images: ImageGate) -> None:
        """The vision prompt to rerun ``vision`` with (built once per process: it is large) and
        the gate each stored image passes again first."""
        self._vision, self._images = task, images

    async def rescore(self, job: Job, usage: Usage) -> Rescored:
        """The new outcome of ``job``, its calls counted in ``usage`` (the row's); raises
        :class:`~serve.contracts.ModelCallFailed` when a model call failed past its retries."""
        classified, match = await self._classified(job, usage, {}, {})
        return await self._finished(job, classified, match, usage, {})

    async def rescore_batch(
        self, jobs: list[Job], usages: dict[str, Usage]
    ) -> list[Rescored | ModelCallFailed]:
        """:meth:`rescore` for each of ``jobs`` (``usages`` by job id), each stage's calls sent
        as one Batch API job; in the order of ``jobs``, a row's failure in its place."""
        answers: Prefetched = {}
        images: Images = {}
        if "vision" in self._plan.stages:
            self._catalog()  # before the gather below, which would hold its error per row
            # A refused image fails its row below, where _classify meets it again.
            gated = (self._image(job, images) for job in jobs)
            await asyncio.gather(*gated, return_exceptions=True)
            calls = [
                (job, self._vision_call(job, image))
                for job in jobs
                if isinstance(image := images[str(job.job_id)], str)
            ]
            answers |= await self._send_batch("vision", calls, usages)
        steps = await asyncio.gather(
            *(self._classified(job, usages[str(job.job_id)], answers, images) for job in jobs),
            return_exceptions=True,
        )
        if "answer" in self._plan.stages:
            calls = [
                (job, self._answer_call(*step))
                for job, step in zip(jobs, steps, strict=True)
                if not isinstance(step, BaseException) and step[1] is not None
            ]
            if calls:
                answers |= await self._send_batch("answer", calls, usages)
        results = await asyncio.gather(
            *(
                self._finished(job, *step, usages[str(job.job_id)], answers)
                for job, step in zip(jobs, steps, strict=True)
                if not isinstance(step, BaseException)
            ),
            return_exceptions=True,
        )
        done = iter(results)
        out: list[Rescored | ModelCallFailed] = []
        for step in steps:
            outcome = step if isinstance(step, BaseException) else next(done)
            if isinstance(outcome, BaseException) and not isinstance(outcome, ModelCallFailed):
                raise outcome
            out.append(outcome)
        return out

    # ---- the flow, shared by both ways ----
    async def _classified(
        self, job: Job, usage: Usage, answers: Prefetched, images: Images
    ) -> tuple[Job, RuleMatch | None]:
        """``job`` with its new classification (when ``vision`` reruns) and its rule."""
        if "vision" in self._plan.stages:
            vision = await self._classify(job, usage, answers, images)
            job = dataclasses.replace(job, vision_result=vision.model_dump(mode="json"))
        return job, machine.find_rule(job, self._policy)

    async def _finished(
        self,
        original: Job,
        job: Job,
        match: RuleMatch | None,
        usage: Usage,
        answers: Prefetched,
    ) -> Rescored:
        answer: AnswerResult | None = None
        if match is not None and "answer" in self._plan.stages:
            answer = await self._answer(job, match, usage, answers)
        elif match is not None:
            answer = AnswerResult.model_validate(job.answer_result)
        commit = machine.answered(job, self._policy, match, answer, rule_ms=0.0, answer_ms=0.0)
        columns = commit.columns
        current = outcome_of(job.vision_result, columns["rule_id"], columns["reward"])
        return Rescored(original, stored_outcome(original), current)

    # ---- the stage calls ----
    def _model(self, job: Job) -> str:
        return self._plan.model or job.model

    def _key(self, job: Job, stage: str) -> str:
        return f"{self._plan.run_id}:{job.job_id}:{stage}"

    async def _image(self, job: Job, images: Images) -> str:
        """The row's image through the gate, once per row and call."""
        key = str(job.job_id)
        if key not in images:
            gate = self._catalog()[1]
            try:
                images[key] = await gate.for_model(job.image_url)
            except ModelCallFailed as refused:
                images[key] = refused
        image = images[key]
        if isinstance(image, ModelCallFailed):
            raise image
        return image

    def _catalog(self) -> tuple[VisionTask, ImageGate]:
        if self._vision is None or self._images is None:
            raise RuntimeError("rescoring the vision stage needs use_catalog() first")
        return self._vision, self._images

    def _vision_call(self, job: Job, image: str) -> BatchCall:
        messages = self._catalog()[0].messages(image, job.user_input)
        return BatchCall(self._key(job, "vision"), self._model(job), messages, response_format())

    def _answer_call(self, job: Job, match: RuleMatch | None) -> BatchCall:
        assert match is not None
        vision = machine.stored_vision(job)
        document = self._policy.rules.document(match.rule.rule_id)
        messages = answer_task.build_messages(vision, document)
        return BatchCall(
            self._key(job, "answer"), self._model(job), messages, answer_task.response_format()
        )

    async def _classify(
        self, job: Job, usage: Usage, answers: Prefetched, images: Images
    ) -> VisionResult:
        call = self._vision_call(job, await self._image(job, images))
        task = self._catalog()[0]
        return await self._result(
            call, "vision", lambda text: task.parse(text, job.user_input), job, usage, answers
        )

    async def _answer(
        self, job: Job, match: RuleMatch, usage: Usage, answers: Prefetched
    ) -> AnswerResult:
        call = self._answer_call(job, match)
        return await self._result(call, "answer", answer_task.parse, job, usage, answers)

    async def _result(
        self,
        call: BatchCall,
        kind: str,
        parse: Callable[[str], R],
        job: Job,
        usage: Usage,
        answers: Prefetched,
    ) -> R:
        """The stage's result: from the batch's answer when it parses, else called online."""
        prefetched = answers.pop(call.custom_id, None)
        if isinstance(prefetched, str):
            try:
                return parse(prefetched)
            except MalformedModelOutput:
                pass  # called online below, where the client asks once more for a repair

        async def online() -> tuple[R, float]:
            return await self._client.complete_json(
                kind=kind,
                model=call.model,
                messages=call.messages,
                response_format=call.response_format or {},
                parse=parse,
                call_key=call.custom_id,
                traceparent=job.traceparent,
            )

        return await self._paid(call.messages, online, usage)

    async def _send_batch(
        self, kind: str, calls: list[tuple[Job, BatchCall]], usages: dict[str, Usage]
    ) -> Prefetched:
        """One Batch API job for ``calls``, each line counted as a request of its row. A batch
        that could not be sent at all leaves every row to its online call."""
        for job, call in calls:
            await self._budget.spend(estimate_tokens(call.messages), usages[str(job.job_id)])
        try:
            answers = await self._client.complete_batch(kind=kind, calls=[c for _, c in calls])
        except ModelCallFailed:
            return {}
        for job, _ in calls:
            usages[str(job.job_id)].answered()
        return answers

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
