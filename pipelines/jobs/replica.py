"""One ingress replica's pipeline over its life: opened on the replica's loop, its jobs
maintained, ready when wired, healthy while running, closed on shutdown.

Scan and chat ingresses hold one :class:`ReplicaPipeline` each and differ only in what their
``open_pipeline`` wires. Running jobs keep their committed steps when a replica stops; their
leases expire and another replica resumes them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Generic, Protocol, TypeVar

from serve.lifecycle import ClosedOnStop

READY_TIMEOUT_S = 30


class _Jobs(Protocol):
    async def maintain(self) -> None: ...


class _Store(Protocol):
    async def ping(self) -> None: ...


class Pipeline(Protocol):
    """What a replica needs of a wired pipeline."""

    @property
    def jobs(self) -> _Jobs: ...

    @property
    def store(self) -> _Store: ...

    async def close(self) -> None: ...


P = TypeVar("P", bound=Pipeline)


class ReplicaPipeline(Generic[P]):
    """Start with the coroutine that opens the pipeline; call on the replica's running loop."""

    def __init__(self, name: str, opening: Coroutine[Any, Any, P]) -> None:
        self._name = name
        self._pipeline: P | None = None
        self._ready = asyncio.Event()
        self._running = asyncio.get_event_loop().create_task(self._run(opening))

    async def _run(self, opening: Coroutine[Any, Any, P]) -> None:
        self._pipeline = await opening
        self._ready.set()
        await self._pipeline.jobs.maintain()

    async def live(self) -> P:
        """The wired pipeline (waits while it is being opened)."""
        await self._ready.wait()
        assert self._pipeline is not None
        return self._pipeline

    async def ready(self) -> dict[str, str]:
        await asyncio.wait_for(self.live(), timeout=READY_TIMEOUT_S)
        return {"status": "ready"}

    async def check_health(self) -> None:
        """Serve's health check: the maintenance task still runs and the store answers."""
        if self._running.done():
            raise RuntimeError(f"{self._name} pipeline stopped: {self._running.exception()!r}")
        pipeline = await asyncio.wait_for(self.live(), timeout=READY_TIMEOUT_S)
        await pipeline.store.ping()

    async def close(self) -> None:
        """Stop maintenance, then release what the pipeline opened."""
        self._running.cancel()
        with contextlib.suppress(BaseException):
            await self._running
        if self._pipeline is not None:
            await self._pipeline.close()


class ReplicaIngress(ClosedOnStop, Generic[P]):
    """Serve's replica hooks of an ingress deployment that holds its :class:`ReplicaPipeline`
    as ``_replica``: the health check, and closing the pipeline when Serve stops the replica."""

    _replica: ReplicaPipeline[P]

    async def check_health(self) -> None:
        await self._replica.check_health()

    async def aclose(self) -> None:
        await self._replica.close()
