"""Runs one chat job from its last committed position to the end by driving the state machine.

For each step: announce its nodes, do its work (stage calls through
:class:`~pipelines.chat.stages.ChatStages`, the tools in parallel), store the machine's
:class:`~pipelines.chat.machine.Commit`, announce what follows. Guarantees:

* a committed step is never run again; every runner of a job is a new attempt, so the ids of its
  stream's events never repeat an earlier runner's;
* the answer is stored whole as the assistant's message whether or not anyone is still
  listening; ``done`` is published after it is stored;
* a location intent without a position asks the user (``needs_input``) and waits at most
  ``chat.input_timeout_s``; no reply → the answer goes on without it and says so; ``cancel`` ends
  the job without an answer;
* a model failure (after its retries), a fail-close tool or an answer broken off mid-stream moves
  the job to ``failed`` with the reason; what was streamed so far is stored, saying it was cut.

A step's commit is written while the next step does what stores nothing (the tools, the
conversation read, opening the answer's stream): see :class:`Stored`. The order of the stored
steps is unchanged; progress events of the nodes go out at once, but the first token waits for
the commits before it, so a lost race (:class:`~eco2.errors.Conflict`) surfaces before the next
step's result is stored or any of the answer is sent.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any

from eco2 import telemetry
from eco2.errors import Conflict
from eco2.settings import ChatSettings
from pipelines.chat import machine
from pipelines.chat.gather import ClosedFailure, Outcome, aggregate, phase_timings, run_tool
from pipelines.chat.inputs import Inputs
from pipelines.chat.intents import INTENTS, IntentSpec, route
from pipelines.chat.machine import CLASSIFY, GATHER, ChatJob, Commit, Step
from pipelines.chat.stages import ChatStages
from pipelines.chat.store import ChatStore, location_of
from pipelines.chat.tools import Position, Tool, ToolRequest
from pipelines.chat.views import Emitter
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.tracing import step_span
from serve.contracts import ModelCallFailed, VisionResult

_log = telemetry.get_logger(__name__)
LOCATION_QUESTION = "가까운 곳을 찾으려면 위치가 필요해요. 지금 위치를 보내 줄래요?"


class BrokenOff(Exception):
    """The answer's stream failed after ``partial`` was sent."""

    def __init__(self, partial: str, cause: ModelCallFailed) -> None:
        super().__init__(str(cause))
        self.partial, self.cause = partial, cause


class Stored:
    """One job as its runner knows it while the last step's commit may still be on its way.

    :meth:`advance` starts storing a commit (after the one before it) and at once shows the job as
    it will read; :meth:`settled` waits until everything started is stored and returns the stored
    row, raising what the write raised (:class:`~eco2.errors.Conflict` for a lost race)."""

    def __init__(self, store: ChatStore, job: ChatJob) -> None:
        self._store, self.job = store, job
        self._writing: asyncio.Future[ChatJob] | None = None

    def advance(self, commit: Commit) -> None:
        before, job = self._writing, self.job

        async def write() -> ChatJob:
            if before is not None:
                await before
            return await self._store.advance(job, commit)

        self._writing = asyncio.ensure_future(write())
        self._writing.add_done_callback(_retrieved)
        self.job = machine.applied(job, commit)

    async def settled(self) -> ChatJob:
        if self._writing is not None:
            writing, self._writing = self._writing, None
            self.job = await writing
        return self.job


class ChatRunner:
    def __init__(
        self,
        store: ChatStore,
        stages: ChatStages,
        progress: ProgressBus,
        tools: dict[str, Tool],
        inputs: Inputs,
        settings: ChatSettings,
        intents: dict[str, IntentSpec] = INTENTS,
    ) -> None:
        self._store, self._stages, self._progress = store, stages, progress
        self._tools, self._inputs, self._settings, self._intents = tools, inputs, settings, intents

    async def run(self, job: ChatJob) -> ChatJob:
        """Advance ``job`` to ``completed`` or ``failed``; returns the last stored state (or, when
        another runner took the job over, the last this one knew)."""
        emit = Emitter(self._progress, job, first=1 if job.attempt == 1 else 0)
        stored = Stored(self._store, job)
        step: Step | None = None
        try:
            while (step := machine.next_step(stored.job)) is not None:
                await self._take(step, stored, emit)
            return await stored.settled()
        except (ModelCallFailed, ClosedFailure, BrokenOff) as exc:
            assert step is not None
            return await self._fail(stored, step, exc, emit)
        except Conflict:
            _log.info("chat job taken over by another runner", job_id=str(job.job_id))
            return stored.job

    async def _take(self, step: Step, stored: Stored, emit: Emitter) -> None:
        job = stored.job
        with step_span("chat", str(job.job_id), step.name, job.attempt, job.traceparent):
            if step is CLASSIFY:
                await self._classify(stored, emit)
            elif step is GATHER:
                await self._gather(stored, emit)
            else:
                await self._answer(stored, emit)

    # --- understanding ------------------------------------------------------------------------

    async def _classify(self, stored: Stored, emit: Emitter) -> None:
        job = stored.job
        emit.node("intent", "started")
        seeing = job.image_url is not None
        if seeing:
            emit.node("vision", "started")
        started = time.perf_counter()
        if seeing:
            (classification, intent_ms, cached), (vision, vision_ms) = await asyncio.gather(
                self._stages.classify(job), self._stages.see(job)
            )
        else:
            (classification, intent_ms, cached), vision, vision_ms = (
                await self._stages.classify(job),
                None,
                0.0,
            )
        timings = {"intent": intent_ms, "understanding": _ms(started)}
        if seeing:
            timings["vision"] = vision_ms
        stored.advance(machine.classified(job, classification, vision, timings))
        emit.node(
            "intent",
            "completed",
            intent=classification["intent"],
            additional_intents=classification.get("additional_intents", []),
            confidence=classification.get("confidence"),
            cached=cached,
        )
        if seeing:
            emit.node("vision", "completed")

    # --- gathering ----------------------------------------------------------------------------

    async def _gather(self, stored: Stored, emit: Emitter) -> None:
        job = stored.job
        classification = job.classification or {}
        position = _position(job.user_location) or _position(_reply_location(job.user_input))
        intents = route(
            job.intent,
            classification.get("additional_intents", []),
            float(classification.get("confidence", 0.0)),
            job.message,
            position is not None,
        )
        if position is None and any(self._intents[i].needs_position for i in intents):
            reply = await self._ask_location(await stored.settled(), emit)
            if reply is not None and reply.get("type") == "cancel":
                return await self._cancel(stored, emit)
            position = _position(_reply_location(reply))
        vision = VisionResult.model_validate(job.vision_result) if job.vision_result else None
        request = ToolRequest(job.message, job.intent, position, vision)
        for intent in intents:
            emit.node(intent, "started")
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(self._run(intent, request, emit) for intent in intents))
        wall_ms = _ms(started)
        emit.node("aggregator", "started")
        context = aggregate(intents, outcomes, self._intents)
        if position is not None:
            context["user_location"] = {
                "latitude": position.latitude,
                "longitude": position.longitude,
            }
        if vision is not None:
            context["vision"] = vision.classification.model_dump()
        timings = phase_timings(wall_ms, outcomes)
        stored.advance(machine.gathered(job, context, timings))
        emit.node("aggregator", "completed", missing=context["missing"])

    async def _run(self, intent: str, request: ToolRequest, emit: Emitter) -> Outcome:
        outcome = await run_tool(intent, self._intents[intent], self._tools.get(intent), request)
        emit.node(intent, "completed", outcome=outcome.status, ms=round(outcome.ms, 1))
        return outcome

    async def _ask_location(self, job: ChatJob, emit: Emitter) -> dict[str, Any] | None:
        question = {
            "type": "location",
            "message": LOCATION_QUESTION,
            "timeout_s": self._settings.input_timeout_s,
            "input_url": f"/api/v1/chat/{job.job_id}/input",
        }
        await self._store.ask(job, question)
        emit.needs_input(question)
        return await self._inputs.wait(job.job_id, self._settings.input_timeout_s)

    async def _cancel(self, stored: Stored, emit: Emitter) -> None:
        now = datetime.now(UTC)
        stored.advance(machine.answered(stored.job, "", now, now, {}, cancelled=True))
        emit.done(await stored.settled())

    # --- synthesis ----------------------------------------------------------------------------

    async def _answer(self, stored: Stored, emit: Emitter) -> None:
        job = stored.job
        chat, earlier = await self._store.conversation(job)
        turns = [{"role": m.role, "content": m.content} for m in earlier]
        recent = self._settings.recent_turns
        older, history = (turns[:-recent], turns[-recent:]) if recent else (turns, [])
        summary, new_summary, timings = chat.summary, None, {}
        if older and _tokens(older) > self._settings.summary_threshold_tokens:
            emit.node("summarize", "started")
            summary, timings["summarize"] = await self._stages.summarise(job, older, chat.summary)
            new_summary = (summary, earlier[len(older) - 1].position)
            emit.node("summarize", "completed")
        emit.node("answer", "started")
        started = time.perf_counter()
        text, first_token = await self._stream(stored, history, summary, emit, started)
        timings |= {"answer": _ms(started), "first_token": first_token}
        user_at = await self._store.user_message_time(job)
        stored.advance(
            machine.answered(job, text, datetime.now(UTC), user_at, timings, new_summary)
        )
        job = await stored.settled()
        emit.node("answer", "completed")
        emit.done(job)

    async def _stream(
        self,
        stored: Stored,
        history: list[dict[str, str]],
        summary: str | None,
        emit: Emitter,
        started: float,
    ) -> tuple[str, float]:
        """The answer as it streams; its first token waits for the gathered step to be stored."""
        job = stored.job
        parts: list[str] = []
        first_token = 0.0
        context = {**(job.context or {}), "intent": job.intent}
        try:
            async with aclosing(self._stages.answer(job, context, history, summary)) as deltas:
                async for delta in deltas:
                    if not parts:
                        first_token = _ms(started)
                        await stored.settled()
                    parts.append(delta)
                    emit.token(delta)
        except ModelCallFailed as exc:
            raise BrokenOff("".join(parts), exc) from exc
        await stored.settled()
        return "".join(parts), first_token

    async def _fail(self, stored: Stored, step: Step, exc: Exception, emit: Emitter) -> ChatJob:
        try:
            job = await stored.settled()
        except Conflict:
            return stored.job
        reason = exc.cause if isinstance(exc, BrokenOff) else exc
        partial = exc.partial if isinstance(exc, BrokenOff) else ""
        _log.warning("chat job failed", job_id=str(job.job_id), step=step.name, reason=str(exc))
        commit: Commit = machine.failed(job, step, reason, partial)
        try:
            job = await self._store.advance(job, commit)
        except Conflict:
            return job
        emit.node(step.known_as, "failed", error=str(reason))
        return job


def _retrieved(writing: asyncio.Future[ChatJob]) -> None:
    """A write whose runner gave up before waiting for it (an unexpected error elsewhere) fails
    quietly here; a runner that waits still gets its exception."""
    if not writing.cancelled():
        writing.exception()


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _tokens(turns: list[dict[str, str]]) -> int:
    """A rough token count of ``turns`` (characters / 3)."""
    return sum(len(t["content"]) for t in turns) // 3


def _reply_location(reply: dict[str, Any] | None) -> dict[str, Any] | None:
    if reply is None or reply.get("type") != "location":
        return None
    data = reply.get("data")
    return data if isinstance(data, dict) else None


def _position(location: dict[str, Any] | None) -> Position | None:
    if not location:
        return None
    checked = location_of(location)
    return Position(checked["latitude"], checked["longitude"])
