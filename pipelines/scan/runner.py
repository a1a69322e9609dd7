"""Runs one scan from its last committed position to the end by driving the state machine.

The machine (:mod:`pipelines.scan.machine`) owns the order and the transitions; the runner does
the I/O around them, the same for every step: announce the step's opening progress, do its work
(stage calls through :class:`~pipelines.scan.stages.ScanStages`), store the machine's
:class:`~pipelines.scan.machine.Commit` (columns + events in one statement), announce its closing
progress. The same runner serves the Serve ingress, the synchronous endpoint, reprocessing and
the reconciler; unit tests drive it with fakes.

Guarantees:

* a committed step is never re-run: :meth:`ScanRunner.run` starts from the job's committed
  position, so a resumed or reprocessed job calls each model at most once per committed step;
* the result is committed before ``done`` is published;
* a model failure that survived its retries moves the job to ``failed`` (the dead-letter state)
  with the step and reason, and ``ScanFailed``; it can be reprocessed from the same position;
* a :class:`~eco2.errors.Conflict` means another runner took the job over: this one stops quietly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from eco2 import telemetry
from eco2.errors import Conflict
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.tracing import step_span
from pipelines.scan import machine, views
from pipelines.scan.machine import ANSWER, CLASSIFY, Commit, Job, Mark, Policy, Stage, Step
from pipelines.scan.stages import ScanStages
from pipelines.scan.store import ScanStore
from serve.contracts import ModelCallFailed

_log = telemetry.get_logger(__name__)


class ScanRunner:
    def __init__(
        self, store: ScanStore, stages: ScanStages, progress: ProgressBus, policy: Policy
    ) -> None:
        self._store, self._stages, self._progress, self._policy = store, stages, progress, policy

    async def run(self, job: Job) -> Job:
        """Advance ``job`` to ``completed`` or ``failed``; returns the last stored state."""
        step: Step | None = None
        try:
            while (step := machine.next_step(job)) is not None:
                job = await self._take(step, job)
        except ModelCallFailed as exc:
            assert step is not None
            job = await self._fail(job, step, exc)
        except Conflict:
            _log.info("scan taken over by another runner", job_id=str(job.job_id))
        return job

    async def _take(self, step: Step, job: Job) -> Job:
        self._announce(job, step.opening)
        stage = step.known_as.value
        with step_span("scan", str(job.job_id), stage, job.attempt, job.traceparent):
            commit = await self._work(step, job)
            job = await self._store.advance(job, commit.events, **commit.columns)
        self._announce(job, step.closing)
        return job

    async def _work(self, step: Step, job: Job) -> Commit:
        """The step's stage calls and its transition (the only step-specific code here)."""
        if step is CLASSIFY:
            vision, vision_ms = await self._stages.classify(job)
            return machine.classified(job, vision, vision_ms)
        if step is ANSWER:
            started = time.perf_counter()
            match = machine.find_rule(job, self._policy)
            rule_ms = (time.perf_counter() - started) * 1000
            answer, answer_ms = (
                await self._stages.write_answer(job, match.rule.rule_id) if match else (None, 0.0)
            )
            return machine.answered(
                job, self._policy, match, answer, rule_ms=rule_ms, answer_ms=answer_ms
            )
        return machine.completed(job, self._policy)

    async def _fail(self, job: Job, step: Step, exc: ModelCallFailed) -> Job:
        _log.warning(
            "scan failed", job_id=str(job.job_id), stage=step.known_as.value, reason=str(exc)
        )
        commit = machine.failed(job, step, exc)
        try:
            job = await self._store.advance(job, commit.events, **commit.columns)
        except Conflict:
            return job
        self._announce(job, [Mark(step.known_as, "failed")], error=str(exc))
        return job

    def _announce(self, job: Job, marks: Iterable[Mark], error: str | None = None) -> None:
        for mark in marks:
            result = views.result(job, self._policy.rules) if mark.stage is Stage.DONE else None
            event = views.progress_event(job, mark, result=result, error=error)
            self._progress.publish(str(job.job_id), job.user_id, event)
