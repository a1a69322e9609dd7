"""The progress events a stored scan job implies (what a stream sends while it cannot get them
live), and the snapshot a stream without history starts from."""

from __future__ import annotations

from pipelines.rules.rulebook import load_rulebook
from pipelines.scan import views
from pipelines.scan.machine import JobStatus
from tests.unit.scan.factories import classified_job, job

RULES = load_rulebook()


def _names(events: list[views.ProgressEvent]) -> list[tuple[str, str, str]]:
    return [(e.id, e.event, e.data["status"]) for e in events]


def test_a_completed_job_implies_every_event_up_to_done_with_its_result() -> None:
    done = classified_job(status=JobStatus.COMPLETED, stage="done", rule_id=None)

    events = views.stored_events(done, RULES)

    assert [(e.id, e.event) for e in events] == [
        ("1-2", "queued"),
        ("1-11", "vision"), ("1-12", "vision"),
        ("1-21", "rule"), ("1-22", "rule"),
        ("1-31", "answer"), ("1-32", "answer"),
        ("1-41", "reward"), ("1-42", "reward"),
        ("1-52", "done"),
    ]  # fmt: skip
    assert events[-1].data["result"]["status"] == "completed"
    snapshot = views.snapshot_event(done, RULES)
    assert (snapshot.id, snapshot.event) == (events[-1].id, events[-1].event)


def test_only_the_events_after_the_last_one_sent_and_up_to_the_committed_position() -> None:
    running = classified_job(attempt=2)

    assert _names(views.stored_events(running, RULES, "1-11")) == [("2-12", "vision", "completed")]
    assert views.stored_events(running, RULES, "2-12") == []
    assert _names(views.stored_events(job(), RULES)) == [("1-2", "queued", "completed")]


def test_a_dead_lettered_job_ends_in_its_error_at_the_stage_that_failed() -> None:
    failed = classified_job(status=JobStatus.FAILED, failed_stage="answer", error="429 x3")

    events = views.stored_events(failed, RULES, "1-12")

    assert _names(events) == [
        ("1-21", "rule", "started"),
        ("1-22", "rule", "completed"),
        ("1-31", "answer", "started"),
        ("1-33", "error", "failed"),
    ]
    assert events[-1].terminal
    assert events[-1].data["error"] == "429 x3"
