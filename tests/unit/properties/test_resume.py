"""SSE resume ids: an id the server produced parses back to its position, resuming from it sends
exactly the events after it (no gap, no duplicate, ids still increasing), and a ``Last-Event-ID``
that is not ours resumes from the start, as :func:`~pipelines.jobs.progress.key_of` documents.

Histories are generated the way the runners publish them (chat: :class:`Emitter` per attempt,
numbering from 1 again; scan: :func:`~pipelines.scan.views.stored_events` of the job row)."""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from hypothesis import example, given
from hypothesis import strategies as st
from redis.exceptions import ResponseError

from pipelines.chat import views as chat_views
from pipelines.chat.machine import ChatJob
from pipelines.jobs import streams
from pipelines.jobs.progress import Live, ProgressEvent, key_of
from pipelines.jobs.status import JobStatus
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan import views as scan_views
from pipelines.scan.machine import Job
from tests.unit.chat.factories import chat_job
from tests.unit.properties.strategies import PROPERTY, short_text
from tests.unit.scan.factories import job as scan_job

RULES = load_rulebook()
OURS = re.compile(r"[0-9]+-[0-9]+")

not_ours = (
    st.text().filter(lambda t: not OURS.fullmatch(t))
    | st.sampled_from(["", "-", "+", "1-", "-1", "1--2", "-1-2", "1-2-3", "abc", "１-２"])
    | st.integers(max_value=-1).map(str)
)
"""``Last-Event-ID`` values no server wrote."""


@PROPERTY
@given(attempt=st.integers(0, 2**64 - 1), number=st.integers(0, 2**64 - 1))
def test_an_id_the_server_writes_parses_back_to_its_position(attempt: int, number: int) -> None:
    assert key_of(f"{attempt}-{number}") == (attempt, number)


@PROPERTY
@given(text=st.none() | st.text() | not_ours)
@example(text="9" * 5000 + "-1")
def test_any_last_event_id_gives_a_position_never_an_error(text: str | None) -> None:
    attempt, number = key_of(text)
    assert attempt >= 0
    assert number >= 0
    if text is None or not OURS.fullmatch(text):
        assert (attempt, number) == (0, 0)


# --- chat: recover() folds the missed tokens into one token_recovery ----------------------------


class _Bus:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    def publish(self, _job_id: str, _user_id: str, event: ProgressEvent) -> None:
        self.events.append(event)


def _chat_job(attempt: int, **fields: Any) -> ChatJob:
    return chat_job(
        job_id=uuid.UUID(int=7),
        chat_id=uuid.UUID(int=8),
        attempt=attempt,
        user_message_id=uuid.UUID(int=9),
        created_at=datetime(2026, 12, 1, tzinfo=UTC),
        **fields,
    )


Attempt = tuple[bool, list[str] | None, bool]
"""What one runner of a chat job got to publish: the intent nodes, the answer's tokens (None:
it died before the answer), whether it finished."""


def chat_history(attempts: list[Attempt]) -> list[ProgressEvent]:
    """The events a chat job's runners publish, each attempt numbering from 1 again."""
    bus = _Bus()
    for attempt, (intent, tokens, finished) in enumerate(attempts, start=1):
        job = _chat_job(attempt)
        if attempt == 1:
            bus.events.append(chat_views.queued(job))
        emit = chat_views.Emitter(bus, job, first=1 if attempt == 1 else 0)  # type: ignore[arg-type]
        if intent:
            emit.node("intent", "started")
            emit.node("intent", "completed")
        if tokens is None:
            continue
        emit.node("answer", "started")
        for piece in tokens:
            emit.token(piece)
        if finished:
            emit.node("answer", "completed")
            emit.done(_chat_job(attempt, status=JobStatus.COMPLETED, answer="끝"))
    return bus.events


@st.composite
def chat_histories(draw: st.DrawFn) -> list[ProgressEvent]:
    """Runners that die part-way (mid-answer included), then one that may finish."""
    died = st.tuples(st.booleans(), st.none() | st.lists(short_text, max_size=4), st.just(False))
    last = st.tuples(st.booleans(), st.lists(short_text, max_size=4), st.booleans())
    return chat_history([*draw(st.lists(died, max_size=2)), draw(last)])


@st.composite
def chat_resumes(draw: st.DrawFn) -> tuple[list[ProgressEvent], str]:
    history = draw(chat_histories())
    return history, draw(st.sampled_from(["0-0", *(e.id for e in history)]))


DIED_MID_ANSWER = chat_history([(True, ["캔은 "], False), (False, ["캔은 ", "180원"], True)])


def _answer_so_far(history: list[ProgressEvent]) -> str:
    """The tokens of the latest attempt that streamed any: a new attempt answers from scratch."""
    tokens = [e for e in history if e.event == chat_views.TOKEN]
    latest = tokens[-1].key[0] if tokens else None
    return "".join(e.data["content"] for e in tokens if e.key[0] == latest)


def _check_recovered(history: list[ProgressEvent], after: tuple[int, int]) -> None:
    resumed = chat_views.recover(history, f"{after[0]}-{after[1]}")
    keys = [e.key for e in resumed]
    assert keys == sorted(set(keys)), "ids must keep increasing"
    assert all(k > after for k in keys)
    missed = [e for e in history if e.key > after]
    plain = [e for e in resumed if e.event not in (chat_views.TOKEN, chat_views.RECOVERY)]
    assert plain == [e for e in missed if e.event != chat_views.TOKEN]  # no gap, no duplicate
    recoveries = [e for e in resumed if e.event == chat_views.RECOVERY]
    assert not any(e.event == chat_views.TOKEN for e in resumed)
    if any(e.event == chat_views.TOKEN for e in missed):
        (recovery,) = recoveries
        assert recovery.data["accumulated"] == _answer_so_far(history)
        assert recovery.id == [e for e in history if e.event == chat_views.TOKEN][-1].id
    else:
        assert recoveries == []


# Found by this property: after a runner died mid-answer, a resumed stream's token_recovery
# held the dead attempt's tokens and the new one's run together, and was sent before the new
# attempt's "answer" event with a larger id (fixed in pipelines.chat.views.recover).
@PROPERTY
@given(case=chat_resumes())
@example(case=(DIED_MID_ANSWER, "1-5"))
def test_resuming_a_chat_stream_at_any_id_sends_what_followed_with_the_answer_so_far(
    case: tuple[list[ProgressEvent], str],
) -> None:
    history, at = case
    _check_recovered(history, key_of(at))
    resumed = chat_views.recover(history, at)
    if resumed:  # a client that got all of it and comes back has nothing left to get
        assert chat_views.recover(history, resumed[-1].id) == []


@PROPERTY
@given(history=chat_histories(), garbage=not_ours)
def test_a_chat_last_event_id_not_ours_resumes_from_the_start(
    history: list[ProgressEvent], garbage: str
) -> None:
    if key_of(garbage) == (0, 0):
        assert chat_views.recover(history, garbage) == chat_views.recover(history, "0-0")


# --- scan: the events a stored job implies ------------------------------------------------------


scan_jobs = st.one_of(
    st.builds(
        lambda stage, attempt: scan_job(status=JobStatus.RUNNING, stage=stage, attempt=attempt),
        st.sampled_from(["queued", "vision", "answer"]),
        st.integers(1, 3),
    ),
    st.builds(
        lambda attempt: scan_job(status=JobStatus.COMPLETED, stage="done", attempt=attempt),
        st.integers(1, 3),
    ),
    st.builds(
        lambda stage, attempt: scan_job(
            status=JobStatus.FAILED, stage="vision", failed_stage=stage, error="x", attempt=attempt
        ),
        st.sampled_from(["vision", "rule", "answer", "reward"]),
        st.integers(1, 3),
    ),
)


def _without_time(events: list[ProgressEvent]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.id, e.event, {k: v for k, v in e.data.items() if k != "ts"}) for e in events]


@PROPERTY
@given(job=scan_jobs, data=st.data())
def test_a_scan_job_resumed_at_any_id_it_implies_sends_exactly_the_rest(
    job: Job, data: st.DataObject
) -> None:
    everything = scan_views.stored_events(job, RULES)
    keys = [e.key for e in everything]
    assert keys == sorted(set(keys))
    assert [e.terminal for e in everything].count(True) == (job.status is not JobStatus.RUNNING)
    at = data.draw(st.sampled_from(everything)).id
    rest = [e for e in everything if e.key > key_of(at)]
    assert _without_time(scan_views.stored_events(job, RULES, at)) == _without_time(rest)


@PROPERTY
@given(job=scan_jobs, garbage=not_ours)
def test_a_scan_last_event_id_not_ours_resumes_from_the_start(job: Job, garbage: str) -> None:
    if key_of(garbage) == (0, 0):
        everything = scan_views.stored_events(job, RULES)
        assert _without_time(scan_views.stored_events(job, RULES, garbage)) == _without_time(
            everything
        )


# --- the stream: each event once, in order, up to the terminal one ------------------------------


@PROPERTY
@given(
    job=scan_jobs,
    cuts=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=6),
)
def test_a_stream_sends_each_event_once_however_history_and_live_overlap(
    job: Job, cuts: list[tuple[int, int]]
) -> None:
    everything = scan_views.stored_events(job, RULES)
    sent, out, reached = streams._Sent(None), b"", 0
    for back, ahead in cuts:  # each delivery may repeat what came before, never skip past it
        start = max(0, reached - back)
        reached = min(len(everything), max(reached, start + ahead))
        out += sent.take(everything[start:reached])
    expected = everything[:reached]
    assert out == "".join(e.encode() for e in expected).encode()
    assert sent.finished == any(e.terminal for e in expected)


class _History:
    """A progress bus holding one job's history: ``history`` filters as XRANGE does and refuses
    what XRANGE refuses (an id that is not ``<ms>-<seq>``); no live event ever arrives."""

    kind = "scan"
    available = True

    def __init__(self, events: list[ProgressEvent], user: str) -> None:
        self._events, self._user = events, user

    async def owner(self, _job_id: str) -> str | None:
        return self._user if self._events else None

    async def history(self, _job_id: str, after: str | None) -> list[ProgressEvent]:
        if after is not None and not OURS.fullmatch(after):
            raise ResponseError("Invalid stream ID specified as stream command argument")
        return [e for e in self._events if after is None or e.key > key_of(after)]

    @contextlib.asynccontextmanager
    async def subscription(self, _job_id: str) -> AsyncIterator[Live]:
        yield Live()


class _Row:
    def __init__(self, job: Job) -> None:
        self._job = job

    async def owner(self, _job_id: uuid.UUID) -> str | None:
        return self._job.user_id

    async def snapshot(self, _job_id: uuid.UUID) -> ProgressEvent | None:
        return scan_views.snapshot_event(self._job, RULES)

    async def catch_up(self, _job_id: uuid.UUID, after: str | None) -> list[ProgressEvent]:
        return scan_views.stored_events(self._job, RULES, after)

    async def result(self, _user: str, _job_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
        raise NotImplementedError


async def _read(stream: AsyncIterator[bytes], keepalives: int = 2) -> tuple[list[str], bool]:
    """The ids a stream sends, and whether it ended (rather than idling on keep-alives)."""
    ids: list[str] = []
    async for chunk in stream:
        if chunk == streams.COMMENT_KEEPALIVE:
            keepalives -= 1
            if keepalives < 0:
                return ids, False
            continue
        ids += re.findall(r"^id: (.*)$", chunk.decode(), flags=re.MULTILINE)
    return ids, True


# Found by this property: a client that reconnected with the id of the terminal event it had
# already received (an EventSource reconnects by itself when the stream closes) got keep-alives
# forever instead of an ended stream; a Last-Event-ID the history refuses (not ``<n>-<n>``)
# sent the stream round the job-row fallback every 2 s, without keep-alives, until the job
# published past it (fixed in pipelines.jobs.streams and progress.key_of).
@st.composite
def scan_resumes(draw: st.DrawFn) -> tuple[Job, str | None]:
    job = draw(scan_jobs)
    ids = [e.id for e in scan_views.stored_events(job, RULES)]
    return job, draw(st.none() | st.sampled_from(ids) | not_ours)


@PROPERTY
@given(case=scan_resumes(), history_kept=st.booleans())
@example(case=(scan_job(status=JobStatus.COMPLETED, stage="done"), "1-52"), history_kept=True)
@example(case=(scan_job(status=JobStatus.COMPLETED, stage="done"), "1-52"), history_kept=False)
@example(case=(scan_job(status=JobStatus.RUNNING, stage="vision"), "１-99"), history_kept=True)
async def test_a_scan_stream_resumed_anywhere_sends_the_rest_and_ends_after_the_end(
    case: tuple[Job, str | None], history_kept: bool
) -> None:
    job, resume = case
    everything = scan_views.stored_events(job, RULES)
    if key_of(resume) == (0, 0) and not history_kept:  # the snapshot from the job row
        expected = [everything[-1].id]
    else:  # (an id that is not ours resumes from the start, as none does)
        expected = [e.id for e in everything if e.key > key_of(resume)]
    bus = _History(everything if history_kept else [], job.user_id)
    job_streams = streams.JobStreams(bus, _Row(job))  # type: ignore[arg-type]
    with (
        mock.patch.object(streams, "KEEPALIVE_S", 0.001),
        mock.patch.object(streams, "FIRST_EVENT_WAIT_S", 0.001),
        mock.patch.object(streams, "FALLBACK_POLL_S", 0.001),
    ):
        stream = await job_streams.open(job.user_id, str(job.job_id), resume)
        ids, ended = await _read(stream)
    assert ids == expected
    assert ended == (job.status is not JobStatus.RUNNING)
