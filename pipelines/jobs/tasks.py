"""The jobs one process runs: a task per job, leases renewed, jobs whose runner died resumed.

Contract of :class:`JobTasks`:

* a job runs in at most one task of this process (:meth:`JobTasks.start` of a job it already
  runs does nothing); the store's lease keeps every other process off it;
* :meth:`JobTasks.maintain` renews the leases of the jobs running here every ``every_s`` and
  claims jobs whose lease expired (their process died or hung) to resume them here from their
  last committed stage — the reconciler. ``every_s`` must be well below the store's lease;
* a task that fails leaves its job as the runner stored it; the runner, not this module,
  decides what a failure means (dead-letter state, or another runner took the job over);
* each task's start and end (with the seconds it took) are told to the process's
  :class:`~pipelines.jobs.admission.LatencyLimit`, which admission reads.

Pipeline-neutral: the pipeline hands in its store (:class:`Leases`) and its runner's ``run``.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, Protocol, TypeVar

from eco2 import telemetry
from pipelines.jobs.admission import LatencyLimit

_log = telemetry.get_logger(__name__)


class LeasedJob(Protocol):
    @property
    def job_id(self) -> uuid.UUID: ...

    @property
    def unfinished(self) -> bool:
        """Still has stages to run (not completed, not dead-lettered)."""
        ...


J = TypeVar("J", bound=LeasedJob)


class Leases(Protocol[J]):
    async def renew_leases(self, job_ids: Sequence[uuid.UUID]) -> None: ...

    async def claim_expired(self, limit: int = 50) -> list[J]:
        """Take over unfinished jobs whose lease expired."""
        ...

    async def reclaim_failed(self, job_id: uuid.UUID | None = None) -> list[J]:
        """Move dead-lettered jobs (one, or all) back to running under this process."""
        ...


class JobTasks(Generic[J]):
    def __init__(
        self,
        leases: Leases[J],
        run: Callable[[J], Coroutine[Any, Any, J]],
        *,
        every_s: float,
        name: str,
        limit: LatencyLimit,
    ) -> None:
        self._leases, self._run, self._every_s, self._name = leases, run, every_s, name
        self._limit = limit
        self._tasks: dict[uuid.UUID, asyncio.Task[J]] = {}

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def start(self, job: J) -> None:
        """Run ``job`` in the background unless it is finished or already running here."""
        if job.job_id not in self._tasks and job.unfinished:
            task = asyncio.create_task(self._run(job), name=f"{self._name}-{job.job_id}")
            self._tasks[job.job_id] = task
            self._limit.started(len(self._tasks))
            task.add_done_callback(functools.partial(self._forget, job.job_id, time.monotonic()))

    def _forget(self, job_id: uuid.UUID, started: float, _task: asyncio.Task[J]) -> None:
        self._tasks.pop(job_id, None)
        self._limit.finished(time.monotonic() - started, len(self._tasks))

    async def run_inline(self, job: J) -> J:
        """Run ``job`` to its end in the caller's task (synchronous endpoints)."""
        return await self._run(job)

    async def reprocess(self, job_id: uuid.UUID | None) -> list[J]:
        """Re-run dead-lettered jobs (one, or all) from their last committed stage."""
        jobs = await self._leases.reclaim_failed(job_id)
        for job in jobs:
            self.start(job)
        return jobs

    async def maintain(self) -> None:
        """Renew leases and resume orphaned jobs, forever (cancel to stop)."""
        while True:
            try:
                await self._leases.renew_leases(list(self._tasks))
                for job in await self._leases.claim_expired():
                    _log.info(
                        "resuming job after lease expiry", kind=self._name, job_id=str(job.job_id)
                    )
                    self.start(job)
            except Exception as exc:
                _log.warning("job maintenance failed; retrying", kind=self._name, error=str(exc))
            await asyncio.sleep(self._every_s)
