"""The SSE stream of one job, for any job kind: what the read side serves, outside Ray Serve.

Contract of :meth:`JobStreams.open` (the wire contract of the scan API, domain.md §11.1):

* the caller must own the job: ownership comes from the job's progress history (written with its
  user id), so a stream costs no database read; only a job whose history expired (or is
  unreachable) is looked up in its row. Another user's job and an unknown one are both
  :class:`~eco2.errors.NotFound` (404), raised before anything is sent;
* on connect the stream sends the history after ``Last-Event-ID`` (everything, without one) or,
  when there is no history, the first live event or a snapshot built from the job row;
* then live events, each at most once and in ``seq`` order (a resumed runner's repeats are
  dropped by id), ``: keep-alive`` comments while nothing happens, and ends after the terminal
  event (``done`` or ``error``). A live event lost on the way is found in the history at the
  next keep-alive.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from eco2 import telemetry
from eco2.errors import NotFound
from pipelines.jobs.progress import ProgressBus, ProgressEvent

_open_streams = telemetry.meter(__name__).create_up_down_counter(
    "eco2.stream.connections", description="Job streams (SSE) open now, by pipeline."
)

KEEPALIVE_S = 15
FIRST_EVENT_WAIT_S = 1.0
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
        async with self._bus.subscription(str(key)) as live:
            if last_event_id is not None and self._resume is not None:
                pending = self._resume(await self._bus.history(str(key), None), last_event_id)
            else:
                pending = await self._bus.history(str(key), last_event_id)
            if not pending and last_event_id is None:
                pending = await self._first_event(key, live)
            last: ProgressEvent | None = None
            while True:
                fresh = [e for e in pending if last is None or e.key > last.key]
                done = next((i for i, e in enumerate(fresh) if e.terminal), None)
                if done is not None:
                    fresh = fresh[: done + 1]
                if fresh:
                    yield "".join(e.encode() for e in fresh).encode()
                    last = fresh[-1]
                if done is not None:
                    return
                try:
                    pending = [await asyncio.wait_for(live.get(), timeout=KEEPALIVE_S)]
                except TimeoutError:
                    yield self._keepalive
                    # A live event lost on the way (a Valkey reconnect) is in the history.
                    after = last.id if last else last_event_id
                    pending = await self._bus.history(str(key), after)
                while not live.empty():
                    pending.append(live.get_nowait())

    async def _first_event(
        self, key: uuid.UUID, live: asyncio.Queue[ProgressEvent]
    ) -> list[ProgressEvent]:
        """The first live event, or a snapshot from the job row when none comes soon.

        Progress is published a moment after each commit, so a fresh job usually has its first
        event in flight; the row is read only when history expired or was lost."""
        try:
            return [await asyncio.wait_for(live.get(), timeout=FIRST_EVENT_WAIT_S)]
        except TimeoutError:
            snapshot = await self._reader.snapshot(key)
            return [snapshot] if snapshot is not None else []
