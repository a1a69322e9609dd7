"""Client-facing shapes of the chat API [compat with the original web client, domain.md §11.2]:
the submit answer, the result, and the SSE events (node events, ``token``, ``token_recovery``,
``needs_input``, ``keepalive``, ``done``, ``error``)."""

from __future__ import annotations

import json
import time
from typing import Any

from eco2 import telemetry
from pipelines.chat.machine import ChatJob, current_node, progress
from pipelines.jobs.progress import ProgressBus, ProgressEvent, key_of
from pipelines.jobs.status import JobStatus

KEEPALIVE = b"event: keepalive\ndata: {}\n\n"
HISTORY_LEN = 4096
"""Events kept per job for resuming (node events and every token of a long answer)."""
TOKEN, RECOVERY, NEEDS_INPUT, DONE, ERROR = (
    "token",
    "token_recovery",
    "needs_input",
    "done",
    "error",
)


def submitted(job: ChatJob) -> dict[str, Any]:
    job_id = str(job.job_id)
    return {
        "job_id": job_id,
        "chat_id": str(job.chat_id),
        "stream_url": f"/api/v1/chat/{job_id}/events",
        "result_url": f"/api/v1/chat/{job_id}/result",
        "status": "submitted",
    }


def result(job: ChatJob) -> dict[str, Any]:
    """The job's outcome (``done``'s ``result`` and the result read)."""
    context = job.context or {}
    classification = job.classification or {}
    return {
        "job_id": str(job.job_id),
        "chat_id": str(job.chat_id),
        "status": "cancelled" if job.metadata.get("cancelled") else job.status.value,
        "answer": job.answer,
        "intent": classification.get("intent"),
        "additional_intents": classification.get("additional_intents", []),
        "tools": context.get("tools", {}),
        "missing": context.get("missing", []),
        "model": job.client_model,
        "latency_ms": job.metadata.get("latency_ms", {}),
        "error": job.error,
    }


class Emitter:
    """Numbers and publishes the events of one runner of one job (``id: <attempt>-<n>``)."""

    def __init__(self, bus: ProgressBus, job: ChatJob, first: int = 0) -> None:
        """``first``: the number of events already sent for this attempt (the intake's
        ``queued`` is number 1 of the first attempt)."""
        self._bus, self._job, self.sent = bus, job, first

    def node(self, name: str, status: str, **extra: Any) -> None:
        self._send(ERROR if status == "failed" else name, {
            "stage": name, "status": status, "progress": progress(name, status), **extra
        })  # fmt: skip

    def token(self, content: str) -> None:
        self._send(TOKEN, {"content": content, "node": "answer"})

    def needs_input(self, question: dict[str, Any]) -> None:
        self._send(NEEDS_INPUT, {"stage": "aggregator", "status": "waiting", **question})

    def done(self, job: ChatJob) -> None:
        outcome = result(job)
        self._send(DONE, {"stage": "done", "status": outcome["status"], "progress": 100,
                          "result": outcome})  # fmt: skip

    def _send(self, event: str, data: dict[str, Any]) -> None:
        self.sent += 1
        self._bus.publish(
            str(self._job.job_id), self._job.user_id, make_event(self._job, event, self.sent, data)
        )


def queued(job: ChatJob) -> ProgressEvent:
    """The first event of a fresh job, published by the intake (number 1 of attempt 1)."""
    return make_event(job, "queued", 1, {"stage": "queued", "status": "completed", "progress": 0})


def make_event(job: ChatJob, event: str, n: int, data: dict[str, Any]) -> ProgressEvent:
    body = {
        "job_id": str(job.job_id),
        **data,
        "seq": n,
        "ts": round(time.time(), 3),
        "trace_id": telemetry.trace_id_of(job.traceparent),
    }
    return ProgressEvent(f"{job.attempt}-{n}", event, json.dumps(body, ensure_ascii=False))


def snapshot_event(job: ChatJob) -> ProgressEvent:
    """The job's state as one event, for a stream that finds no history."""
    if (final := _final_event(job, 0)) is not None:
        return final
    if job.needs_input is not None and job.user_input is None:
        return make_event(job, NEEDS_INPUT, 0, {"stage": "aggregator", **job.needs_input})
    node = current_node(job)
    return make_event(job, node, 0, {"stage": node, "status": "started"})


def stored_events(job: ChatJob, after: str | None) -> list[ProgressEvent]:
    """What the stored job adds after event id ``after`` for a stream that cannot get its
    events live: its ``done`` or ``error`` once it finished (numbered right after ``after``; the
    tokens and node events are only in the history, and ``done`` carries the whole answer)."""
    attempt, number = key_of(after)
    final = _final_event(job, number + 1 if attempt == job.attempt else 1)
    return [final] if final is not None else []


def _final_event(job: ChatJob, n: int) -> ProgressEvent | None:
    if job.status is JobStatus.COMPLETED:
        outcome = result(job)
        data = {"stage": "done", "status": outcome["status"], "progress": 100, "result": outcome}
        return make_event(job, DONE, n, data)
    if job.status is JobStatus.FAILED:
        data = {"stage": job.failed_stage, "status": "failed", "error": job.error}
        return make_event(job, ERROR, n, data)
    return None


def recover(history: list[ProgressEvent], last_event_id: str) -> list[ProgressEvent]:
    """Resuming a chat stream: the events after ``Last-Event-ID``, with the tokens among them
    folded into one ``token_recovery {accumulated, last_seq, completed}`` — the whole answer so
    far, so a client that lost its place rebuilds it in one step."""
    after = key_of(last_event_id)
    fresh = [e for e in history if e.key > after]
    tokens = [e for e in history if e.event == TOKEN]
    # A runner that died mid-answer leaves its tokens behind; the next attempt answers from
    # scratch, so the answer so far is the latest attempt's tokens only.
    latest = tokens[-1].key[0] if tokens else None
    tokens = [e for e in tokens if e.key[0] == latest]
    first_missed = next(
        (i for i, e in enumerate(fresh) if e.event == TOKEN and e.key[0] == latest), None
    )
    if first_missed is None:
        return fresh  # (then no earlier token is missed either: their ids are smaller)
    last = tokens[-1]
    accumulated = "".join(str(e.data.get("content", "")) for e in tokens)
    completed = any(e.event == "answer" and e.data.get("status") == "completed" for e in history)
    recovery = ProgressEvent(
        last.id,
        RECOVERY,
        json.dumps(
            {
                "job_id": last.data.get("job_id"),
                "accumulated": accumulated,
                "last_seq": last.data.get("seq"),
                "completed": completed,
                "node": "answer",
            },
            ensure_ascii=False,
        ),
    )
    kept = [e for e in fresh if e.event != TOKEN]
    at = sum(1 for e in fresh[:first_missed] if e.event != TOKEN)
    return [*kept[:at], recovery, *kept[at:]]
