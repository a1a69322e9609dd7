"""Live fan-out: one LISTEN connection per process, dispatching to per-user in-process queues.

Contract:

* :meth:`NotificationHub.subscribe` gives a :class:`Subscription` whose queue receives the ids of
  its user's new notices in commit order, as announced on :data:`CHANNEL` (PostgreSQL sends a
  NOTIFY only on commit). A subscriber hears only of its own user's notices.
* Dispatch never waits: a subscriber whose bounded queue is full is marked ``lagging`` instead of
  slowing the others down. When the listening connection was lost and is back, every subscriber
  is marked ``lagging`` too (what was announced meanwhile is gone). A lagging subscriber must
  re-read the database; its queue gets :data:`RESYNC` (None) if there is room, and no more ids.
* The connection is re-opened, with backoff, whenever it closes or stops answering a health
  query; subscribers keep waiting meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Final

import asyncpg
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from domains.notification.repository import CHANNEL
from eco2.telemetry import get_logger

log = get_logger(__name__)

RESYNC: Final = None
"""Queue item telling a reader that it missed announcements and must re-read the database."""

Connect = Callable[[], Awaitable[asyncpg.Connection]]


def _log_reconnect_failure(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("notification listener cannot reconnect yet", error=str(error))


class Subscription:
    """One reader's bounded queue of notice ids (or :data:`RESYNC`)."""

    def __init__(self, user_id: str, size: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[uuid.UUID | None] = asyncio.Queue(maxsize=size)
        self.lagging = False

    def offer(self, notice_id: uuid.UUID) -> None:
        """Queue ``notice_id`` without waiting; a full queue makes the subscriber lag."""
        if self.lagging:
            return
        try:
            self.queue.put_nowait(notice_id)
        except asyncio.QueueFull:
            self.fall_behind()

    def fall_behind(self) -> None:
        """Mark the subscriber lagging and wake a reader waiting on an empty queue."""
        if self.lagging:
            return
        self.lagging = True
        with contextlib.suppress(asyncio.QueueFull):  # a full queue's reader sees ``lagging``
            self.queue.put_nowait(RESYNC)


class NotificationHub:
    """Owns the process's LISTEN connection and its subscribers (see the module contract)."""

    def __init__(
        self,
        connect: Connect,
        *,
        queue_size: int = 64,
        health_every_s: float = 30.0,
        retry_s: float = 0.5,
        max_retry_s: float = 15.0,
    ) -> None:
        self._connect = connect
        self._queue_size = queue_size
        self._health_every_s = health_every_s
        self._retry_s, self._max_retry_s = retry_s, max_retry_s
        self._subscribers: dict[str, set[Subscription]] = {}
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL backend pid of the listening connection (for health and tests)."""
        conn = self._conn
        return conn.get_server_pid() if conn is not None and not conn.is_closed() else None

    async def start(self) -> None:
        """Open the listening connection (raising if it cannot) and start keeping it alive."""
        await self._open()
        self._task = asyncio.create_task(self._supervise(), name="notification-listener")

    async def close(self) -> None:
        """Stop listening; every subscriber is told to resync (its stream ends)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._drop_connection()
        self._resync_all()

    @contextlib.contextmanager
    def subscribe(self, user_id: str) -> Iterator[Subscription]:
        """A subscription to ``user_id``'s new notices for the duration of the block."""
        subscription = Subscription(user_id, self._queue_size)
        self._subscribers.setdefault(user_id, set()).add(subscription)
        try:
            yield subscription
        finally:
            readers = self._subscribers.get(user_id)
            if readers is not None:
                readers.discard(subscription)
                if not readers:
                    del self._subscribers[user_id]

    def dispatch(self, payload: str) -> None:
        """Hand one announcement (``{"user_id", "id"}`` JSON) to its user's subscribers."""
        try:
            message = json.loads(payload)
            user_id, notice_id = str(message["user_id"]), uuid.UUID(str(message["id"]))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("ignoring a malformed notification announcement", error=str(exc))
            return
        for subscription in self._subscribers.get(user_id, ()):
            subscription.offer(notice_id)

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.dispatch(payload)

    def _resync_all(self) -> None:
        for readers in self._subscribers.values():
            for subscription in readers:
                subscription.fall_behind()

    async def _open(self) -> None:
        self._lost = lost = asyncio.Event()
        conn = await self._connect()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(CHANNEL, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn

    async def _supervise(self) -> None:
        while True:
            await self._until_lost()
            log.warning("notification listener connection lost; reconnecting")
            await self._drop_connection()
            await self._reopen()
            self._resync_all()

    async def _until_lost(self) -> None:
        """Return once the connection closed or failed its health query."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._health_every_s)
                return
            try:
                assert self._conn is not None
                await self._conn.fetchval("SELECT 1", timeout=self._health_every_s)
            except Exception as exc:
                log.warning("notification listener failed its health query", error=str(exc))
                return

    async def _reopen(self) -> None:
        """Open the connection again, backing off exponentially between failures, until it
        works."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=self._retry_s, max=self._max_retry_s),
            before_sleep=_log_reconnect_failure,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self._open()
        log.info("notification listener reconnected")

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), timeout=5)
