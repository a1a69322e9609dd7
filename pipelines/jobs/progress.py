"""Client progress events of jobs (their SSE streams), carried by Valkey, for any job kind.

Each job has a short stream ``<kind>:progress:<job_id>`` (history, for the state on connect and
``Last-Event-ID`` resumption) and every event is also published on the job's own channel
``<kind>:events:<job_id>``. ONE pub/sub connection per process subscribes to the channels of the
jobs that have a local SSE subscriber, so a process receives only the events it streams (one
shared channel made every process parse every job's events). Event ids are
``<attempt>-<seq+1>``: they grow through a job's life, and a resumed runner's repeats are
refused by id.

Progress events are not domain events: losing one never loses work (the job row is the truth, and
a subscriber that finds no history gets a snapshot built from it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub

from eco2 import telemetry

HISTORY_TTL_S = 3600
FINISHED_HISTORY_TTL_S = 300
"""A finished job's history (its last event may carry the whole result) is kept for reconnects
only; later streams get the snapshot from the job row, so Valkey does not fill up with them."""
SUBSCRIBE_TIMEOUT_S = 2.0
_log = telemetry.get_logger(__name__)


@dataclass(frozen=True)
class ProgressEvent:
    """One SSE event; ``body`` is its ``data`` as one line of JSON, encoded once at the source."""

    id: str
    event: str
    body: str

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data

    def encode(self) -> str:
        """The event in the SSE wire format."""
        return f"id: {self.id}\nevent: {self.event}\ndata: {self.body}\n\n"

    @property
    def key(self) -> tuple[int, int]:
        return key_of(self.id)

    @property
    def terminal(self) -> bool:
        return self.event in ("done", "error")


def key_of(event_id: str | None) -> tuple[int, int]:
    """``(attempt, number)`` of an event id; ``(0, 0)`` for none or one that is not ours (a
    client's ``Last-Event-ID`` is whatever it sends).

    Ours are ``<digits>-<digits>`` within Valkey's stream ids (two u64): ``int`` alone also took
    ``" 1-2"``, ``"1_0-2"`` and other scripts' digits, which the history (XRANGE) refuses."""
    match = _EVENT_ID.fullmatch(event_id or "")
    if match is None:
        return 0, 0
    attempt, number = int(match[1]), int(match[2])
    return (attempt, number) if max(attempt, number) <= _U64_MAX else (0, 0)


_EVENT_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")
_U64_MAX = 2**64 - 1


Live = asyncio.Queue[ProgressEvent | None]
"""A subscriber's queue: the job's live events; ``None`` when the channel was lost (events
published from then until it is back never arrive)."""


class ProgressBus:
    """Publishes progress events of one job ``kind`` and serves per-job subscriptions in this
    process. The bus owns its Valkey client and closes it in :meth:`close`."""

    def __init__(self, client: aioredis.Redis, kind: str, *, history_len: int = 64) -> None:
        self._redis = client
        self.kind = kind
        self._history_len = history_len
        self._channel_prefix = f"{kind}:events:"
        self._idle_channel = f"{kind}:events:-"  # always subscribed: keeps the connection open
        self._subscribers: dict[str, set[Live]] = defaultdict(set)
        self.available = True
        """False from the moment the live channel's connection is lost until it is back."""
        self._listener: asyncio.Task[None] | None = None
        self._listener_pubsub: PubSub | None = None
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._outbox: asyncio.Queue[tuple[str, str, ProgressEvent]] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None

    async def owner(self, job_id: str) -> str | None:
        """The user id the job's progress history was written for (None: no history)."""
        first = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(self._stream(job_id), min="-", max="+", count=1),
        )
        user = first[0][1].get(b"user") if first else None
        return _text(user) if user is not None else None

    def _stream(self, job_id: str) -> str:
        return f"{self.kind}:progress:{job_id}"

    def _channel(self, job_id: str) -> str:
        return f"{self._channel_prefix}{job_id}"

    def publish(self, job_id: str, user_id: str, event: ProgressEvent) -> None:
        """Queue the event; a single flusher sends everything queued in one round trip.

        Events keep their order (one FIFO, one flusher). Publishing never blocks a stage.
        """
        self._outbox.put_nowait((job_id, user_id, event))
        if self._flusher is None or self._flusher.done():
            name = f"{self.kind}-progress-flush"
            self._flusher = asyncio.create_task(self._flush_forever(), name=name)

    async def _flush_forever(self) -> None:
        while True:
            batch = [await self._outbox.get()]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            await self._send(batch)

    async def _send(self, batch: list[tuple[str, str, ProgressEvent]]) -> None:
        try:
            by_job: dict[str, list[ProgressEvent]] = defaultdict(list)
            users: dict[str, str] = {}
            for job_id, user_id, event in batch:
                by_job[job_id].append(event)
                users[job_id] = user_id
            async with self._redis.pipeline(transaction=False) as pipe:
                for job_id, events in by_job.items():
                    for event in events:
                        # The user id rides along so a stream can be authorised from history.
                        fields: dict[Any, Any] = {
                            "event": event.event,
                            "data": event.body,
                            "user": users[job_id],
                        }
                        pipe.xadd(
                            self._stream(job_id), fields, id=event.id, maxlen=self._history_len
                        )
                    finished = any(e.terminal for e in events)
                    ttl = FINISHED_HISTORY_TTL_S if finished else HISTORY_TTL_S
                    pipe.expire(self._stream(job_id), ttl)
                    # One message for the job's events of this batch: id, name and one-line
                    # JSON body of each, newline-separated (JSON text holds no raw newline).
                    lines = (f"{e.id}\n{e.event}\n{e.body}" for e in events)
                    pipe.publish(self._channel(job_id), "\n".join(lines))
                # An id at or below the stream's last one (a resumed runner repeating an event)
                # fails alone; the rest of the batch goes through.
                await pipe.execute(raise_on_error=False)
        except (aioredis.RedisError, OSError) as exc:  # best effort: the job row is the truth
            _log.warning("progress publish failed", events=len(batch), error=str(exc))

    async def history(self, job_id: str, after: str | None) -> list[ProgressEvent]:
        start = f"({after}" if after else "-"
        entries = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            await self._redis.xrange(self._stream(job_id), min=start, max="+"),
        )
        return [
            ProgressEvent(id=_text(entry_id), event=_text(f[b"event"]), body=_text(f[b"data"]))
            for entry_id, f in entries
        ]

    @contextlib.asynccontextmanager
    async def subscription(self, job_id: str) -> AsyncIterator[Live]:
        """A queue receiving this job's live events while the context is open.

        The context is entered once the server confirmed the subscription: every event
        published after that arrives in the queue, every earlier one is in :meth:`history`.
        Raises Valkey's errors when the channel cannot be subscribed to.
        """
        queue: Live = asyncio.Queue(maxsize=256)
        subscribers = self._subscribers[job_id]
        subscribers.add(queue)
        try:
            if len(subscribers) == 1:
                await self._subscribe(self._channel(job_id))
            await self._wait_confirmed(self._channel(job_id))
            yield queue
        finally:
            subscribers.discard(queue)
            if not subscribers:
                del self._subscribers[job_id]
                self._confirmed.pop(self._channel(job_id), None)
                with contextlib.suppress(aioredis.RedisError, OSError):
                    await self._pubsub().unsubscribe(self._channel(job_id))

    def _pubsub(self) -> PubSub:
        if self._listener_pubsub is None:
            self._listener_pubsub = self._redis.pubsub()
        return self._listener_pubsub

    async def _subscribe(self, channel: str) -> None:
        self._confirmed[channel] = asyncio.get_running_loop().create_future()
        pubsub = self._pubsub()
        if not pubsub.subscribed:
            await pubsub.subscribe(self._idle_channel)
        await pubsub.subscribe(channel)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(
                self._listen(), name=f"{self.kind}-progress-listener"
            )

    async def _wait_confirmed(self, channel: str) -> None:
        confirmed = self._confirmed.get(channel)
        if confirmed is None or confirmed.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT_S)
        except TimeoutError:  # best effort: the stream still reads history on keep-alive
            _log.warning("progress subscription not confirmed in time", channel=channel)

    async def _listen(self) -> None:
        """Hand each message to the local subscribers of its job; resubscribes on reconnect
        (redis-py does), and a subscriber that missed events meanwhile finds them in history."""
        pubsub = self._pubsub()
        while True:
            try:
                async for message in pubsub.listen():
                    self._dispatch(message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.available:
                    _log.warning("progress channel lost; reconnecting", error=str(exc))
                    self._lost()
            await asyncio.sleep(0.5)

    def _lost(self) -> None:
        """Tell every local subscriber that live events stop until the channel is back."""
        self.available = False
        for queues in self._subscribers.values():
            for queue in queues:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)

    def _dispatch(self, message: dict[str, Any]) -> None:
        self.available = True  # anything received: the connection is back (and resubscribed)
        channel = _text(message["channel"])
        if message["type"] == "subscribe":
            confirmed = self._confirmed.get(channel)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)
            return
        if message["type"] != "message":
            return
        lines = _text(message["data"]).split("\n")
        events = [ProgressEvent(*lines[i : i + 3]) for i in range(0, len(lines) - 2, 3)]
        job_id = channel.removeprefix(self._channel_prefix)
        for queue in self._subscribers.get(job_id, ()):
            for event in events:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(event)

    async def close(self) -> None:
        """Stop the listener and the flusher and close the client (the bus owns it)."""
        for task in (self._listener, self._flusher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._listener_pubsub is not None:
            await self._listener_pubsub.aclose()
        await self._redis.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
