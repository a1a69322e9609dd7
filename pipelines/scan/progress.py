"""Client progress events of scans (the SSE stream), carried by Valkey.

Each job has a short stream ``scan:progress:<job_id>`` (history, for the state on connect and
``Last-Event-ID`` resumption) and every event is also published on one channel, read by ONE
listener per process that hands events to the local SSE subscribers of that job. Event ids are
``<attempt>-<seq+1>``, so they grow through a job's life and a resumed runner's repeats are
dropped by id.

Progress events are not domain events: losing one never loses work (the job row is the truth, and
a subscriber that finds no history gets a snapshot built from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from eco2 import telemetry
from pipelines.scan.contracts import Stage
from pipelines.scan.store import Job

CHANNEL = "scan:progress"
HISTORY_TTL_S = 3600
_log = telemetry.get_logger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    id: str
    event: str
    data: dict[str, Any]

    @property
    def key(self) -> tuple[int, int]:
        attempt, seq = self.id.split("-")
        return int(attempt), int(seq)

    @property
    def terminal(self) -> bool:
        return self.event in ("done", "error")


def make_event(
    job: Job,
    stage: Stage,
    status: str,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
) -> ProgressEvent:
    completed = status != "started"
    seq = stage.order * 10 + (1 if status == "completed" else 2 if status == "failed" else 0)
    data: dict[str, Any] = {
        "job_id": str(job.job_id),
        "stage": stage.value,
        "status": status,
        "seq": seq,
        "ts": round(time.time(), 3),
        "progress": stage.progress_completed if completed else stage.progress_started,
        "trace_id": telemetry.trace_id_of(job.traceparent),
        "traceparent": job.traceparent,
    }
    if result is not None:
        data["result"] = result
    if error is not None:
        data["error"] = error
    event = "error" if status == "failed" else stage.value
    return ProgressEvent(id=f"{job.attempt}-{seq + 1}", event=event, data=data)


def _stream(job_id: str) -> str:
    return f"scan:progress:{job_id}"


class ProgressBus:
    """Publishes progress events and serves per-job subscriptions in this process."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._subscribers: dict[str, set[asyncio.Queue[ProgressEvent]]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None
        self._outbox: asyncio.Queue[ProgressEvent] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None

    async def publish(
        self,
        job: Job,
        stage: Stage,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Queue the event; a single flusher sends everything queued in one round trip.

        Events keep their order (one FIFO, one flusher). Publishing never blocks a stage.
        """
        self._outbox.put_nowait(make_event(job, stage, status, result=result, error=error))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_forever(), name="scan-progress-flush")

    async def _flush_forever(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            await self._send(batch)

    async def _send(self, batch: list[ProgressEvent]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for event in batch:
                    body = json.dumps(event.data, ensure_ascii=False)
                    stream = _stream(event.data["job_id"])
                    pipe.xadd(stream, {"event": event.event, "data": body}, id=event.id, maxlen=64)
                    pipe.expire(stream, HISTORY_TTL_S)
                    pipe.publish(CHANNEL, json.dumps([event.id, event.event, body]))
                # An id at or below the stream's last one (a resumed runner repeating an event)
                # fails alone; the rest of the batch goes through.
                await pipe.execute(raise_on_error=False)
        except (aioredis.RedisError, OSError) as exc:  # best effort: the job row is the truth
            _log.warning("progress publish failed", events=len(batch), error=str(exc))

    async def history(self, job_id: str, after: str | None) -> list[ProgressEvent]:
        start = f"({after}" if after else "-"
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(_stream(job_id), min=start, max="+"),
        )
        return [
            ProgressEvent(id=_text(entry_id), event=_text(f[b"event"]), data=json.loads(f[b"data"]))
            for entry_id, f in entries
        ]

    @contextlib.asynccontextmanager
    async def subscription(self, job_id: str) -> AsyncIterator[asyncio.Queue[ProgressEvent]]:
        """A queue receiving this job's live events while the context is open."""
        self._ensure_listener()
        queue: asyncio.Queue[ProgressEvent] = asyncio.Queue(maxsize=256)
        self._subscribers[job_id].add(queue)
        try:
            yield queue
        finally:
            self._subscribers[job_id].discard(queue)
            if not self._subscribers[job_id]:
                del self._subscribers[job_id]

    def _ensure_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="scan-progress-listener")

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    async for message in pubsub.listen():
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect; subscribers fall back on history
                _log.warning("progress listener reconnecting", error=str(exc))
                await asyncio.sleep(0.5)

    def _dispatch(self, raw: bytes | str) -> None:
        event_id, name, body = json.loads(raw)
        data = json.loads(body)
        for queue in self._subscribers.get(data["job_id"], ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(ProgressEvent(id=event_id, event=name, data=data))

    async def close(self) -> None:
        for task in (self._listener, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
