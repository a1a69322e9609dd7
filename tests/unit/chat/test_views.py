"""A chat stream's wire shapes: event ids per attempt, and resuming with token_recovery."""

from __future__ import annotations

import json

from pipelines.chat import views
from pipelines.jobs.progress import ProgressEvent
from pipelines.jobs.status import JobStatus
from tests.unit.chat.factories import chat_job


class Bus:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def publish(self, job_id: str, user_id: str, event: ProgressEvent) -> None:
        self.events.append(event)


def _stream() -> list[ProgressEvent]:
    bus, job = Bus(), chat_job()
    bus.events.append(views.queued(job))
    emit = views.Emitter(bus, job, first=1)  # type: ignore[arg-type]
    emit.node("answer", "started")
    for piece in ("안녕, ", "캔은 ", "180원이야."):
        emit.token(piece)
    emit.node("answer", "completed")
    emit.done(
        chat_job(job_id=job.job_id, status=JobStatus.COMPLETED, answer="안녕, 캔은 180원이야.")
    )
    return bus.events


def test_events_are_numbered_in_order_after_the_intakes_queued() -> None:
    events = _stream()
    assert [e.id for e in events] == [f"1-{n}" for n in range(1, 8)]
    assert [e.event for e in events] == [
        "queued",
        "answer",
        "token",
        "token",
        "token",
        "answer",
        "done",
    ]
    token = json.loads(events[2].body)
    assert (token["content"], token["node"], token["seq"]) == ("안녕, ", "answer", 3)
    assert events[-1].terminal


def test_resuming_mid_answer_folds_the_tokens_into_one_recovery_with_the_whole_text() -> None:
    events = _stream()
    resumed = views.recover(events, "1-3")  # the client saw the first token
    assert [e.event for e in resumed] == ["token_recovery", "answer", "done"]
    recovery = json.loads(resumed[0].body)
    assert recovery["accumulated"] == "안녕, 캔은 180원이야."
    assert recovery["last_seq"] == 5
    assert recovery["completed"] is True
    assert resumed[0].id == "1-5"


def test_resuming_after_the_answer_sends_only_what_followed() -> None:
    events = _stream()
    assert [e.event for e in views.recover(events, "1-6")] == ["done"]


def test_a_waiting_job_snapshots_as_its_question() -> None:
    job = chat_job(stage="classified", needs_input={"type": "location", "message": "위치?"})
    snapshot = views.snapshot_event(job)
    assert snapshot.event == "needs_input"
    assert json.loads(snapshot.body)["type"] == "location"


def test_a_stream_without_its_channel_gets_the_final_event_numbered_after_its_last() -> None:
    running = chat_job()
    assert views.stored_events(running, "1-7") == []  # tokens and nodes exist only live

    finished = chat_job(status=JobStatus.COMPLETED, answer="캔은 kg당 얼마예요.")
    (done,) = views.stored_events(finished, "1-7")
    assert (done.id, done.event) == ("1-8", "done")
    assert done.data["result"]["answer"] == "캔은 kg당 얼마예요."
    (first,) = views.stored_events(chat_job(status=JobStatus.FAILED, attempt=2), "1-7")
    assert (first.id, first.event) == ("2-1", "error")  # a later attempt numbers from 1
