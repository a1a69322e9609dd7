"""The chat pipeline as a state machine: the order of a message's steps and every transition.

Plain Python: no Ray, no database, no HTTP. The runner (:mod:`pipelines.chat.runner`) drives it.

**Committed position** (the job's ``stage`` column): ``queued`` (the message is stored) →
``classified`` (intent, and what vision saw when an image came with it; ``ChatClassified``) →
``gathered`` (the tools' facts, or what is missing) → ``done`` (the answer stored as the
assistant's message, ``ChatAnswered``). A committed step is never run again.

**Client progress** (domain.md §11.2): understanding 0-20 (``queued``, ``intent``, ``vision``),
gathering 20-55 (one node per intent handler, then ``aggregator``), synthesis 55-100
(``summarize``, ``answer`` with its ``token`` events, ``done``). Unlike scan's, a chat stream's
events are numbered as they are sent (tokens have no fixed place), so every runner of a job
starts a new attempt: its ids never collide with an earlier runner's.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from domains.chat.events import ChatAnswered, ChatClassified
from eco2.events import Event
from pipelines.jobs.status import JobStatus
from serve.contracts import ModelCallFailed

KIND = "chat"


@dataclass(frozen=True)
class ChatJob:
    """One posted message being answered (a ``chat_jobs`` row)."""

    job_id: uuid.UUID
    chat_id: uuid.UUID
    user_id: str
    message: str
    image_url: str | None
    user_location: dict[str, float] | None
    model: str
    client_model: str
    status: JobStatus
    stage: str
    version: int
    attempt: int
    classification: dict[str, Any] | None
    vision_result: dict[str, Any] | None
    context: dict[str, Any] | None
    answer: str | None
    needs_input: dict[str, Any] | None
    user_input: dict[str, Any] | None
    metadata: dict[str, Any]
    traceparent: str | None
    error: str | None
    failed_stage: str | None
    user_message_id: uuid.UUID | None
    created_at: datetime

    @property
    def unfinished(self) -> bool:
        return self.status in (JobStatus.QUEUED, JobStatus.RUNNING)

    @property
    def intent(self) -> str:
        return str((self.classification or {}).get("intent", "general"))


class Phase(StrEnum):
    UNDERSTANDING = "understanding"
    GATHERING = "gathering"
    SYNTHESIS = "synthesis"


PHASES: dict[Phase, tuple[int, int]] = {
    Phase.UNDERSTANDING: (0, 20),
    Phase.GATHERING: (20, 55),
    Phase.SYNTHESIS: (55, 100),
}
NODE_PROGRESS: dict[str, tuple[int, int]] = {
    "queued": (0, 0),
    "intent": (5, 15),
    "vision": (5, 20),
    "aggregator": (50, 55),
    "summarize": (55, 60),
    "answer": (60, 95),
    "done": (100, 100),
}
"""Progress of the fixed nodes; the intent handlers' nodes share 20-50 (see :func:`progress`)."""
TOOL_SPAN = (20, 50)


def progress(node: str, status: str) -> int:
    """The progress percentage a node's event carries (``started`` → its first figure)."""
    start, end = NODE_PROGRESS.get(node, TOOL_SPAN)
    return end if status != "started" else start


Status = Literal["started", "completed", "failed"]


@dataclass(frozen=True)
class Step:
    name: Literal["classify", "gather", "answer"]
    start: str
    commits: str
    phase: Phase
    known_as: str
    """The node it fails as (``failed_stage``) and the one a snapshot shows while it runs."""


CLASSIFY = Step("classify", "queued", "classified", Phase.UNDERSTANDING, "intent")
GATHER = Step("gather", "classified", "gathered", Phase.GATHERING, "aggregator")
ANSWER = Step("answer", "gathered", "done", Phase.SYNTHESIS, "answer")
STEPS: tuple[Step, ...] = (CLASSIFY, GATHER, ANSWER)
_FROM = {step.start: step for step in STEPS}


def next_step(job: ChatJob) -> Step | None:
    return _FROM.get(job.stage) if job.unfinished else None


def current_node(job: ChatJob) -> str:
    step = _FROM.get(job.stage)
    return step.known_as if step is not None and job.unfinished else "done"


@dataclass(frozen=True)
class Commit:
    """What one transition stores in one transaction: the job's columns, the chat's events and,
    for the answer, the assistant's message."""

    columns: dict[str, Any]
    events: list[Event]
    assistant: str | None = None
    summary: tuple[str, int] | None = None
    """A new summary of the conversation and the message position it covers."""


def applied(job: ChatJob, commit: Commit) -> ChatJob:
    """``job`` as it reads once ``commit`` is stored: its columns set and the next version."""
    changes = {k: v for k, v in commit.columns.items() if k in ChatJob.__dataclass_fields__}
    if "status" in changes:
        changes["status"] = JobStatus(changes["status"])
    return dataclasses.replace(job, version=job.version + 1, **changes)


def classified(
    job: ChatJob,
    classification: dict[str, Any],
    vision: dict[str, Any] | None,
    timings: dict[str, float],
) -> Commit:
    event = ChatClassified(
        chat_id=str(job.chat_id),
        job_id=str(job.job_id),
        intent=str(classification["intent"]),
        additional_intents=list(classification.get("additional_intents", [])),
        confidence=float(classification.get("confidence", 0.0)),
        model=job.model,
    )
    columns = {
        "status": JobStatus.RUNNING.value,
        "stage": CLASSIFY.commits,
        "classification": classification,
        "vision_result": vision,
        "metadata": _timed(job.metadata, timings),
    }
    return Commit(columns, [event])


def gathered(job: ChatJob, context: dict[str, Any], timings: dict[str, float]) -> Commit:
    columns = {
        "stage": GATHER.commits,
        "context": context,
        "metadata": _timed(job.metadata, timings),
    }
    return Commit(columns, [])


def answered(
    job: ChatJob,
    answer: str,
    assistant_at: datetime,
    user_at: datetime,
    timings: dict[str, float],
    summary: tuple[str, int] | None = None,
    *,
    cancelled: bool = False,
) -> Commit:
    """``gathered`` → ``done``: the answer becomes the assistant's message with ``ChatAnswered``
    (a cancelled job stores no answer)."""
    metadata = _timed(job.metadata, timings)
    columns = {
        "status": JobStatus.COMPLETED.value,
        "stage": ANSWER.commits,
        "answer": answer,
        "metadata": {**metadata, "cancelled": cancelled},
        "completed_at": datetime.now(UTC),
    }
    if cancelled:
        return Commit(columns, [])
    context = job.context or {}
    event = ChatAnswered(
        chat_id=str(job.chat_id),
        job_id=str(job.job_id),
        user_id=job.user_id,
        message_id=str(job.user_message_id),
        intent=job.intent,
        user_message=job.message,
        user_image_url=job.image_url,
        assistant_message=answer,
        user_created_at=user_at.isoformat(),
        assistant_created_at=assistant_at.isoformat(),
        metadata={"tools": context.get("tools", {}), "missing": context.get("missing", [])},
    )
    return Commit(columns, [event], assistant=answer, summary=summary)


def failed(job: ChatJob, step: Step, error: Exception, partial: str = "") -> Commit:
    """Any position → the dead-letter state with the reason. An answer the model broke off is
    stored as far as it got, saying it was cut short."""
    columns = {
        "status": JobStatus.FAILED.value,
        "error": str(error)[:2000],
        "failed_stage": step.known_as,
    }
    retriable = isinstance(error, ModelCallFailed) and error.retriable
    note = "(답을 끝까지 만들지 못했어요. 잠시 뒤 다시 물어봐 주세요.)"
    assistant = f"{partial}\n\n{note}".strip() if step is ANSWER else None
    return Commit({**columns, "metadata": {**job.metadata, "retriable": retriable}}, [], assistant)


def _timed(metadata: dict[str, Any], timings: dict[str, float]) -> dict[str, Any]:
    copy = dict(metadata)
    copy["latency_ms"] = {
        **metadata.get("latency_ms", {}),
        **{k: round(v, 1) for k, v in timings.items()},
    }
    return copy
