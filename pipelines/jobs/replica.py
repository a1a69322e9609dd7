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

from fastapi import FastAPI

from eco2.http import BodyLimit, install_error_handlers
from eco2.settings import load_settings
from eco2.telemetry import fastapi_options
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


def ingress_api(title: str, *, example_body: str) -> FastAPI:
    """The FastAPI app of a Serve ingress, the same way for every pipeline: FastAPI's request
    span only when spans are exported, as in every service (:func:`eco2.telemetry.fastapi_options`),
    and never its request metrics (Serve records the ingress's); the gateway's body limit, for
    a caller past the gateway, as in every service; the error taxonomy. Serve freezes the app
    at import, so both are read from this process's environment, which the stack's Ray node and
    its replicas share."""
    settings = load_settings()
    api = FastAPI(
        title=title,
        version="1",
        telemetry={**fastapi_options(settings.telemetry), "metrics": False},
    )
    api.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    install_error_handlers(api, example_body=example_body)
    return api


class ReplicaIngress(ClosedOnStop, Generic[P]):
    """Serve's replica hooks of an ingress deployment that holds its :class:`ReplicaPipeline`
    as ``_replica``: the health check, and closing the pipeline when Serve stops the replica."""

    _replica: ReplicaPipeline[P]

    async def check_health(self) -> None:
        await self._replica.check_health()

    async def aclose(self) -> None:
        await self._replica.close()
