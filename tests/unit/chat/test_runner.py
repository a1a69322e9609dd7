"""The chat runner with fakes: the steps in order, the conversation in the prompt, summaries,
waiting for the user, and what a failure leaves behind."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from domains.chat.model import Chat, Message
from eco2.errors import Conflict
from eco2.settings import ChatSettings
from pipelines.chat import machine
from pipelines.chat.machine import ChatJob, Commit
from pipelines.chat.runner import ChatRunner
from pipelines.chat.tools import ToolRequest
from pipelines.jobs.progress import ProgressEvent
from pipelines.jobs.status import JobStatus
from serve.contracts import ModelCallFailed
from tests.unit.chat.factories import chat_job

NOW = datetime.now(UTC)


def _chat(job: ChatJob, summary: str | None = None, upto: int = 0) -> Chat:
    return Chat(job.chat_id, job.user_id, "t", None, 0, None, NOW, summary, upto)


class MemoryStore:
    def __init__(self, earlier: Sequence[Message] = (), summary: str | None = None) -> None:
        self.commits: list[Commit] = []
        self.earlier, self.summary = list(earlier), summary
        self.asked: dict[str, Any] | None = None

    async def advance(self, job: ChatJob, commit: Commit) -> ChatJob:
        self.commits.append(commit)
        return machine.applied(job, commit)

    async def conversation(self, job: ChatJob) -> tuple[Chat, list[Message]]:
        return _chat(job, self.summary), self.earlier

    async def user_message_time(self, job: ChatJob) -> datetime:
        return NOW

    async def ask(self, job: ChatJob, question: dict[str, Any]) -> None:
        self.asked = question


class ScriptedStages:
    def __init__(
        self,
        intent: str = "recyclable_price",
        tokens: Sequence[str] = ("캔은 ", "180원."),
        break_after: int | None = None,
    ) -> None:
        self.intent, self.tokens, self.break_after = intent, tokens, break_after
        self.histories: list[list[Mapping[str, str]]] = []
        self.summaries: list[tuple[int, str | None]] = []
        self.contexts: list[dict[str, Any]] = []
        self.closed = 0

    async def classify(self, job: ChatJob) -> tuple[dict[str, Any], float, bool]:
        classification = {"intent": self.intent, "confidence": 0.9, "additional_intents": []}
        return classification, 1.0, False

    async def see(self, job: ChatJob) -> tuple[dict[str, Any], float]:
        raise AssertionError("no image in these jobs")

    async def summarise(
        self, job: ChatJob, turns: Sequence[Mapping[str, str]], previous: str | None
    ) -> tuple[str, float]:
        self.summaries.append((len(turns), previous))
        return "요약", 1.0

    async def answer(
        self,
        job: ChatJob,
        context: dict[str, Any],
        history: Sequence[Mapping[str, str]],
        summary: str | None,
    ) -> AsyncIterator[str]:
        self.histories.append(list(history))
        self.contexts.append(context)
        try:
            for i, token in enumerate(self.tokens):
                if self.break_after is not None and i == self.break_after:
                    raise ModelCallFailed("connection reset", retriable=True, kind="text")
                yield token
        finally:
            self.closed += 1


class Bus:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def publish(self, job_id: str, user_id: str, event: ProgressEvent) -> None:
        self.events.append(event)


class NoReply:
    def __init__(self, reply: dict[str, Any] | None = None) -> None:
        self.reply, self.waited = reply, 0

    async def wait(self, job_id: uuid.UUID, timeout_s: float) -> dict[str, Any] | None:
        self.waited += 1
        return self.reply


class Prices:
    name = "price_context"

    async def run(self, request: ToolRequest) -> dict[str, Any]:
        return {"quotes": [{"item": "철캔", "price": 180}], "survey_month": "2025-01"}


def _runner(
    store: MemoryStore,
    stages: ScriptedStages,
    inputs: NoReply | None = None,
    **settings: Any,
) -> tuple[ChatRunner, Bus]:
    bus = Bus()
    runner = ChatRunner(
        cast(Any, store),
        cast(Any, stages),
        cast(Any, bus),
        {"recyclable_price": Prices()},
        cast(Any, inputs or NoReply()),
        ChatSettings(**settings),
    )
    return runner, bus


def _fresh() -> ChatJob:
    return chat_job(stage="queued", status=JobStatus.QUEUED, classification=None, context=None)


def _message(role: str, content: str, position: int) -> Message:
    return Message(uuid.uuid4(), uuid.uuid4(), position, role, content, NOW)  # type: ignore[arg-type]


async def test_a_message_is_classified_gathered_and_answered_with_one_commit_each() -> None:
    store, stages = MemoryStore(), ScriptedStages()
    runner, bus = _runner(store, stages)
    done = await runner.run(_fresh())
    assert done.status is JobStatus.COMPLETED
    assert done.answer == "캔은 180원."
    assert [c.columns["stage"] for c in store.commits] == ["classified", "gathered", "done"]
    assert [type(e).__name__ for c in store.commits for e in c.events] == [
        "ChatClassified",
        "ChatAnswered",
    ]
    assert store.commits[-1].assistant == "캔은 180원."
    assert stages.contexts[0]["facts"]["price_context"]["survey_month"] == "2025-01"
    names = [e.event for e in bus.events]
    assert names[0] == "intent"
    assert names[-4:] == ["token", "token", "answer", "done"]
    assert [e.id for e in bus.events] == [f"1-{n}" for n in range(2, len(bus.events) + 2)]


async def test_the_recent_turns_go_into_the_prompt_and_older_ones_are_summarised_once() -> None:
    earlier = [
        _message("user" if i % 2 == 0 else "assistant", "가" * 600, i + 1) for i in range(10)
    ]
    store, stages = MemoryStore(earlier), ScriptedStages()
    runner, bus = _runner(store, stages, recent_turns=4, summary_threshold_tokens=1000)
    await runner.run(_fresh())
    assert len(stages.histories[0]) == 4
    assert stages.histories[0][-1]["content"] == "가" * 600
    assert stages.summaries == [(6, None)]  # the 6 older turns (~1,200 tokens)
    assert store.commits[-1].summary == ("요약", 6)  # covers up to message position 6
    assert "summarize" in [e.event for e in bus.events]


async def test_below_the_threshold_nothing_is_summarised() -> None:
    earlier = [_message("user", "짧은 말", i + 1) for i in range(10)]
    store, stages = MemoryStore(earlier), ScriptedStages()
    runner, _ = _runner(store, stages, recent_turns=4)
    await runner.run(_fresh())
    assert stages.summaries == []
    assert store.commits[-1].summary is None


async def test_a_location_question_without_a_reply_answers_without_it_and_says_so() -> None:
    store, stages, inputs = MemoryStore(), ScriptedStages(intent="location"), NoReply()
    runner, bus = _runner(store, stages, inputs)
    done = await runner.run(_fresh())
    assert inputs.waited == 1
    assert store.asked is not None
    assert store.asked["type"] == "location"
    assert "needs_input" in [e.event for e in bus.events]
    assert done.status is JobStatus.COMPLETED
    assert any("위치" in m for m in stages.contexts[0]["missing"])


async def test_a_cancel_reply_ends_the_job_without_an_answer() -> None:
    store, stages = MemoryStore(), ScriptedStages(intent="location")
    runner, bus = _runner(store, stages, NoReply({"type": "cancel"}))
    done = await runner.run(_fresh())
    assert done.metadata["cancelled"] is True
    assert store.commits[-1].assistant is None
    assert stages.histories == []
    assert json.loads(bus.events[-1].body)["status"] == "cancelled"


async def test_an_answer_broken_off_is_stored_as_far_as_it_got_and_the_stream_says_error() -> None:
    store, stages = MemoryStore(), ScriptedStages(tokens=("캔은 ", "180", "원."), break_after=2)
    runner, bus = _runner(store, stages)
    failed = await runner.run(_fresh())
    assert failed.status is JobStatus.FAILED
    assert failed.failed_stage == "answer"
    last = store.commits[-1]
    assert last.assistant is not None
    assert last.assistant.startswith("캔은 180")
    assert "끝까지" in last.assistant
    assert bus.events[-1].event == "error"


class GatedStore(MemoryStore):
    """Holds the ``classified`` commit until the tools have run: a runner that waited for the
    commit before starting them would never finish."""

    def __init__(self) -> None:
        super().__init__()
        self.tools_ran = asyncio.Event()

    async def advance(self, job: ChatJob, commit: Commit) -> ChatJob:
        if commit.columns.get("stage") == "classified":
            await self.tools_ran.wait()
        return await super().advance(job, commit)


class LosingStore(MemoryStore):
    """Another runner took the job over while this one gathered."""

    async def advance(self, job: ChatJob, commit: Commit) -> ChatJob:
        if commit.columns.get("stage") == "gathered":
            await asyncio.sleep(0.01)  # still being written when the first token arrives
            raise Conflict(f"chat job {job.job_id} moved past version {job.version}")
        return await super().advance(job, commit)


async def test_the_tools_run_while_the_classification_is_being_stored() -> None:
    store, stages = GatedStore(), ScriptedStages()
    runner, _ = _runner(store, stages)

    class SignallingPrices(Prices):
        async def run(self, request: ToolRequest) -> dict[str, Any]:
            store.tools_ran.set()
            return await super().run(request)

    runner._tools = {"recyclable_price": SignallingPrices()}
    done = await asyncio.wait_for(runner.run(_fresh()), 5)
    assert done.status is JobStatus.COMPLETED
    assert [c.columns["stage"] for c in store.commits] == ["classified", "gathered", "done"]
    assert done.version == _fresh().version + 3


async def test_a_lost_race_while_gathering_is_stored_sends_no_token_and_closes_the_stream() -> None:
    store, stages = LosingStore(), ScriptedStages()
    runner, bus = _runner(store, stages)
    job = await runner.run(_fresh())
    assert job.status is not JobStatus.COMPLETED
    assert [c.columns["stage"] for c in store.commits] == ["classified"]
    assert "token" not in [e.event for e in bus.events]
    assert stages.closed == 1
