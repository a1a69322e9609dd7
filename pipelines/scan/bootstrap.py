"""The composition root of the scan ingress: every part of one replica's pipeline, wired once.

Data flows one way: ingress → :class:`~pipelines.scan.intake.ScanIntake` → store and
:class:`~pipelines.jobs.tasks.JobTasks` → :class:`~pipelines.scan.runner.ScanRunner` → stage
handles, store, progress. Nothing below hands itself back up.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from eco2 import cache as valkey
from eco2.db import create_pool
from eco2.ratelimit import Quota, ValkeyRateLimiter
from eco2.settings import Settings
from pipelines.jobs.admission import Admission, LatencyLimit
from pipelines.jobs.progress import ProgressBus
from pipelines.jobs.tasks import JobTasks
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.intake import ScanIntake
from pipelines.scan.machine import KIND, Job, Policy
from pipelines.scan.runner import ScanRunner
from pipelines.scan.stages import ScanStages
from pipelines.scan.store import ScanStore

POOL_SIZE = (2, 20)
VALKEY_CONNECTIONS = 16
LIMITER_CONNECTIONS = 4
"""The per-user limit's own few connections: on the progress bus's pool a check would queue
behind the progress flushes under load and, past its timeout, let everything through."""


@dataclass
class ScanPipeline:
    """What one ingress replica runs; :meth:`close` releases what :func:`open_pipeline` opened."""

    intake: ScanIntake
    jobs: JobTasks[Job]
    store: ScanStore
    progress: ProgressBus
    pool: asyncpg.Pool
    limiter_cache: Redis

    async def close(self) -> None:
        await self.progress.close()
        await self.limiter_cache.aclose()
        await self.pool.close()


async def open_pipeline(settings: Settings, vision: Any, answer: Any) -> ScanPipeline:
    """Connect and wire the pipeline around the two stage handles (call on the replica's loop)."""
    cache_url = settings.cache.require("the scan pipeline")
    pool = await create_pool(settings, KIND, min_size=POOL_SIZE[0], max_size=POOL_SIZE[1])
    cache = valkey.connect(cache_url, max_connections=VALKEY_CONNECTIONS)
    progress = ProgressBus(cache, KIND)  # owns the client (closes it)
    limiter_cache = valkey.connect(cache_url, max_connections=LIMITER_CONNECTIONS)
    owner = f"ingress-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    store = ScanStore(pool, owner=owner, lease_s=settings.scan.lease_s)
    policy = Policy(load_rulebook(), reward_enabled=settings.scan.reward_enabled)
    runner = ScanRunner(store, ScanStages(vision, answer), progress, policy)
    limit = LatencyLimit(settings.scan.admission, pipeline=KIND)
    jobs = JobTasks(
        store.leases, runner.run, every_s=settings.scan.reconcile_every_s, name=KIND, limit=limit
    )
    limits = settings.rate_limit
    quota = Quota(ValkeyRateLimiter(limiter_cache), "scan", limits.scan, limits.timeout_s)
    intake = ScanIntake(settings, store, progress, jobs, policy, Admission(KIND, limit, quota))
    return ScanPipeline(intake, jobs, store, progress, pool, limiter_cache)
