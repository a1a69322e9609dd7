"""The SSE stream of one job, for any job kind: what the read side serves, outside Ray Serve.

Contract of :meth:`JobStreams.open` (the wire contract of the scan API, domain.md §11.1):

* the caller must own the job: ownership comes from the job's progress history (written with its
  user id), so a stream costs no database read; only a job whose history expired (or is
  unreachable) is looked up in its row. Another user's job and an unknown one are both
  :class:`~eco2.errors.NotFound` (404), raised before anything is sent;
* on connect the stream sends the history after ``Last-Event-ID`` (everything, without one or
  with one that is not ours) or, when there is no history, the first live event or a snapshot
  built from the job row; a client resuming at or after the terminal event gets an ended stream;
* then live events, each at most once and in ``seq`` order (a resumed runner's repeats are
  dropped by id), ``: keep-alive`` comments while nothing happens, and ends after the terminal
  event (``done`` or ``error``). A live event lost on the way is found in the history at the
  next keep-alive, or, when the history has nothing new either, in the job row (events published
  while Valkey was down reached no one);
* while the progress channel (Valkey) is unavailable the stream stays open: it sends
  keep-alives, reads the job's stored state every :data:`FALLBACK_POLL_S` and sends what that
  adds (:meth:`JobReader.catch_up`), ``done`` included; once the channel is back it continues
  from the history after the last event it sent, so no event goes out twice.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import asyncpg
from redis.exceptions import RedisError

from eco2 import telemetry
from eco2.errors import NotFound
from pipelines.jobs.progress import Live, ProgressBus, ProgressEvent, key_of

_log = telemetry.get_logger(__name__)
_open_streams = telemetry.meter(__name__).create_up_down_counter(
    "eco2.stream.connections", description="Job streams (SSE) open now, by pipeline."
)

KEEPALIVE_S = 15
FIRST_EVENT_WAIT_S = 1.0
FALLBACK_POLL_S = 2.0
"""How often a stream whose progress channel is unavailable reads its job's row."""
COMMENT_KEEPALIVE = b": keep-alive\n\n"

Resume = Callable[[list[ProgressEvent], str], list[ProgressEvent]]
"""A job kind's way to resume: given the job's whole history and the ``Last-Event-ID``, the
events to send first (by default: those after it)."""


class JobReader(Protocol):
    """A job kind's read access to its job rows (the pipeline's own database)."""

    async def owner(self, job_id: uuid.UUID) -> str | None:
        """The user id of the job, or None when there is no such job."""
        ...

    async def snapshot(self, job_id: uuid.UUID) -> ProgressEvent | None:
        """The job's current state as one progress event, or None when there is no such job."""
        ...

    async def catch_up(self, job_id: uuid.UUID, after: str | None) -> list[ProgressEvent]:
        """The events the job's stored state implies after event id ``after``, in order (its
        terminal event among them once it finished), for a stream that cannot get them live."""
        ...

    async def result(self, user_id: str, job_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of the result read: 200 done, 202 running, 422 dead-lettered;
        :class:`NotFound` for another user's job or none."""
        ...


def job_key(kind: str, job_id: str) -> uuid.UUID:
    """The job id of a path parameter; :class:`NotFound` for anything that is not one."""
    try:
        return uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no {kind} job {job_id!r}", code="not_found") from None


def not_yours(kind: str, job_id: object) -> NotFound:
    return NotFound(f"no {kind} job {str(job_id)!r} for this user", code="not_found")


class JobStreams:
    """The streams and result reads of one job kind (its progress bus and its reader)."""

    def __init__(
        self,
        bus: ProgressBus,
        reader: JobReader,
        *,
        keepalive: bytes = COMMENT_KEEPALIVE,
        resume: Resume | None = None,
    ) -> None:
        self._bus, self._reader, self.kind = bus, reader, bus.kind
        self._keepalive, self._resume = keepalive, resume

    async def result(self, user_id: str, job_id: str) -> tuple[int, dict[str, Any]]:
        return await self._reader.result(user_id, job_key(self.kind, job_id))

    async def owned(self, user_id: str, job_id: str) -> uuid.UUID:
        """The job's id once ``user_id`` is known to own it (else :class:`NotFound`)."""
        key = job_key(self.kind, job_id)
        try:
            owner = await self._bus.owner(str(key))
        except (RedisError, OSError):  # history unreachable: the row decides
            owner = None
        if owner is None:
            owner = await self._reader.owner(key)
        if owner != user_id:
            raise not_yours(self.kind, job_id)
        return key

    async def open(
        self, user_id: str, job_id: str, last_event_id: str | None
    ) -> AsyncIterator[bytes]:
        """The SSE stream of ``user_id``'s job (see the module docstring)."""
        key = await self.owned(user_id, job_id)
        return self._events(key, last_event_id)

    async def _events(self, key: uuid.UUID, last_event_id: str | None) -> AsyncIterator[bytes]:
        """History (or a snapshot) first, then live events until the terminal one.
        Events that are ready together go out in one write."""
        _open_streams.add(1, {"pipeline": self.kind})
        try:
            async for chunk in self._stream(key, last_event_id):
                yield chunk
        finally:
            _open_streams.add(-1, {"pipeline": self.kind})

    async def _stream(self, key: uuid.UUID, last_event_id: str | None) -> AsyncIterator[bytes]:
        sent = _Sent(last_event_id)
        while True:
            try:
                async with self._bus.subscription(str(key)) as live:
                    async for chunk in self._live(key, live, sent):
                        yield chunk
                    return
            except (RedisError, OSError, _ChannelLost) as exc:
                _log.info("job stream falls back to the job row", job_id=str(key), error=str(exc))
            async for chunk in self._from_row(key, sent):
                yield chunk
            if sent.finished:
                return

    async def _live(self, key: uuid.UUID, live: Live, sent: _Sent) -> AsyncIterator[bytes]:
        """History (or a snapshot) first, then live events until the terminal one; raises
        :class:`_ChannelLost` (or Valkey's errors) when the channel goes away."""
        if sent.last is None and sent.resume_id is not None and self._resume is not None:
            pending = self._resume(await self._bus.history(str(key), None), sent.resume_id)
        else:
            pending = await self._history_or_row(key, sent)
        if not pending and sent.after is None:
            pending = await self._first_event(key, live)
        elif not pending and sent.last is None and await self._resumed_after_end(key, sent):
            return
        while True:
            chunk = sent.take(pending)
            if chunk:
                yield chunk
            if sent.finished:
                return
            try:
                first = await asyncio.wait_for(live.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield self._keepalive
                # A live event lost on the way is in the history, or else in the job row.
                pending = await self._history_or_row(key, sent)
                continue
            arrived = [first, *(live.get_nowait() for _ in range(live.qsize()))]
            pending = [event for event in arrived if event is not None]
            if len(pending) < len(arrived):
                if chunk := sent.take(pending):
                    yield chunk
                raise _ChannelLost("the progress channel was lost")

    async def _resumed_after_end(self, key: uuid.UUID, sent: _Sent) -> bool:
        """Whether a client resuming with nothing new already has the job's terminal event (an
        EventSource reconnects by itself when a stream closes): the history's, or, with the
        history expired, the finished job's row adds nothing after its ``Last-Event-ID``."""
        history = await self._bus.history(str(key), None)
        ended = [event for event in history if event.terminal]
        if ended:
            return ended[-1].key <= key_of(sent.after)
        if history or await self._reader.catch_up(key, sent.after):
            return False
        snapshot = await self._reader.snapshot(key)
        return snapshot is not None and snapshot.terminal

    async def _history_or_row(self, key: uuid.UUID, sent: _Sent) -> list[ProgressEvent]:
        """The history after the last event sent; when it has nothing new for a stream under
        way, what the job row adds: events published while the channel was down reached no
        one, and a Valkey that restarted (or a history that expired) does not have them."""
        pending = await self._bus.history(str(key), sent.after)
        if pending or sent.after is None:
            return pending
        return await self._reader.catch_up(key, sent.after)

    async def _from_row(self, key: uuid.UUID, sent: _Sent) -> AsyncIterator[bytes]:
        """While the channel is unavailable: the job row every :data:`FALLBACK_POLL_S`,
        keep-alives between; returns after the terminal event or once the channel is back."""
        quiet_since = time.monotonic()
        while True:
            try:
                chunk = sent.take(await self._reader.catch_up(key, sent.after))
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                _log.warning("job row unreadable", job_id=str(key), error=str(exc))
                chunk = b""
            if chunk:
                yield chunk
                quiet_since = time.monotonic()
            if sent.finished:
                return
            await asyncio.sleep(FALLBACK_POLL_S)
            if self._bus.available:
                return
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                yield self._keepalive
                quiet_since = time.monotonic()

    async def _first_event(self, key: uuid.UUID, live: Live) -> list[ProgressEvent]:
        """The first live event, or a snapshot from the job row when none comes soon.

        Progress is published a moment after each commit, so a fresh job usually has its first
        event in flight; the row is read only when history expired or was lost."""
        try:
            first = await asyncio.wait_for(live.get(), timeout=FIRST_EVENT_WAIT_S)
        except TimeoutError:
            first = None
        if first is not None:
            return [first]
        snapshot = await self._reader.snapshot(key)
        return [snapshot] if snapshot is not None else []


class _ChannelLost(Exception):
    """The progress channel went away while the stream was live."""


class _Sent:
    """Where one stream is: the client's ``Last-Event-ID``, the last event sent, whether the
    terminal one was among them."""

    def __init__(self, resume_id: str | None) -> None:
        # An id that is not ours resumes from the start (the history would refuse it).
        self.resume_id = resume_id if key_of(resume_id) != (0, 0) else None
        self.last: ProgressEvent | None = None
        self.finished = False

    @property
    def after(self) -> str | None:
        """The id the stream continues after."""
        return self.last.id if self.last is not None else self.resume_id

    def take(self, events: list[ProgressEvent]) -> bytes:
        """The SSE bytes of the events not yet sent, up to and including a terminal one."""
        fresh = [e for e in events if self.last is None or e.key > self.last.key]
        done = next((i for i, e in enumerate(fresh) if e.terminal), None)
        if done is not None:
            fresh = fresh[: done + 1]
            self.finished = True
        if fresh:
            self.last = fresh[-1]
        return "".join(e.encode() for e in fresh).encode()
