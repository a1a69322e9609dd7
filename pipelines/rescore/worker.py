"""One process's share of a rescoring run: batches of scan ids, from the stored rows to the commit.

Plain asyncio (no Ray): the Ray Data shell (:mod:`pipelines.rescore.ray_job`) holds one
:class:`BatchRescorer` per actor and feeds it batches; tests drive it directly.

Per batch: the rows the run has not finished are loaded, rescored concurrently (bounded by
``concurrency``) under this process's budget — or, with ``batch_api``, each stage's calls for
the whole batch sent as one Batch API job (:meth:`Rescorer.rescore_batch`) — and recorded in
one transaction with their events (:func:`pipelines.rescore.store.record`). A row whose model
calls failed past their retries is recorded as ``failed`` (the next invocation of the run
retries it); a row the run had finished is reported ``skipped`` and costs no model call.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

import asyncpg

from eco2.db import create_pool
from eco2.safe_fetch import ImageFetcher
from eco2.settings import Settings
from pipelines.rescore import store
from pipelines.rescore.budget import Budget, Usage
from pipelines.rescore.options import Plan
from pipelines.rescore.rescorer import Rescorer, stored_outcome
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.machine import Job, Policy
from pipelines.scan.stages import vision_catalog
from serve.contracts import ModelCallFailed
from serve.model_client import ModelClient
from serve.vision import ImageGate, VisionTask

DEFAULT_CONCURRENCY = 256


@dataclass(frozen=True)
class RowReport:
    """One row as the job reports it (flat, so Ray Data carries it as columns)."""

    job_id: str
    status: str
    """``done``, ``failed`` or ``skipped`` (finished earlier in this run)."""
    previous_label: str | None = None
    current_label: str | None = None
    previous_reward: str | None = None
    current_reward: str | None = None
    previous_rule: str | None = None
    current_rule: str | None = None
    changed: str = ""
    """Comma-separated subset of ``label,rule,reward``."""
    requests: int = 0
    tokens: int = 0
    first_request_at: float = 0.0
    """Wall-clock seconds of the row's first and last model request (0: none)."""
    last_request_at: float = 0.0
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class BatchRescorer:
    """Holds the pool, the model client and the budget share of one process."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        budget: Budget,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        batch_api: bool = False,
    ) -> None:
        if settings.model.base_url is None:
            raise RuntimeError("ECO2_MODEL__BASE_URL is unset: start the stack with `eco2 up`")
        self._settings, self._plan, self._budget = settings, plan, budget
        self._batch_api = batch_api
        self._limit = asyncio.Semaphore(concurrency)
        self._pool: asyncpg.Pool | None = None
        self._client: ModelClient | None = None
        self._rescorer: Rescorer | None = None
        self._fetcher: ImageFetcher | None = None

    async def open(self) -> None:
        rules = load_rulebook()
        if rules.version != self._plan.rules_version:
            raise RuntimeError(
                f"this process has rules {rules.version}, the run asks for "
                f"{self._plan.rules_version}: run the job on one image"
            )
        self._pool = await create_pool(self._settings, "scan", min_size=1, max_size=4)
        # Retries are the budget's (each attempt paid for), not the SDK's.
        model = self._settings.model.model_copy(update={"max_retries": 0})
        assert self._settings.model.base_url is not None
        self._client = ModelClient(model, self._settings.model.base_url)
        policy = Policy(rules=rules, reward_enabled=self._settings.scan.reward_enabled)
        self._rescorer = Rescorer(self._client, policy, self._plan, self._budget)
        if "vision" in self._plan.stages:
            self._fetcher = ImageFetcher(limits=self._settings.scan.image_fetch)
            gate = ImageGate(self._settings.scan.allowed_image_hosts, self._fetcher.data_url)
            self._rescorer.use_catalog(VisionTask(vision_catalog()), gate)

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()
        if self._client is not None:
            await self._client.close()
        if self._pool is not None:
            await self._pool.close()

    async def run(self, job_ids: list[str]) -> list[RowReport]:
        """Rescore and record one batch; one report per id, in no particular order."""
        assert self._pool is not None, "open() first"
        jobs = await store.load_pending(self._pool, self._plan.run_id, job_ids)
        if self._batch_api and jobs:
            results = await self._batched(jobs)
        else:
            results = list(await asyncio.gather(*(self._one(job) for job in jobs)))
        stored = await store.record(self._pool, self._plan, results)
        pending = {str(job.job_id) for job in jobs}
        reports = [_report(r) for r in results if str(r.job.job_id) in stored]
        skipped = [i for i in job_ids if i not in pending or i not in stored]
        return reports + [RowReport(job_id=i, status="skipped") for i in skipped]

    async def _one(self, job: Job) -> store.RowResult:
        assert self._rescorer is not None
        model = self._plan.model or job.model
        usage, current, error = Usage(), None, None
        async with self._limit:
            try:
                current = (await self._rescorer.rescore(job, usage)).current
            except ModelCallFailed as exc:
                error = str(exc)
        return store.RowResult(job, model, stored_outcome(job), current, usage, error)

    async def _batched(self, jobs: list[Job]) -> list[store.RowResult]:
        assert self._rescorer is not None
        usages = {str(job.job_id): Usage() for job in jobs}
        outcomes = await self._rescorer.rescore_batch(jobs, usages)
        return [
            store.RowResult(
                job,
                self._plan.model or job.model,
                stored_outcome(job),
                None if isinstance(outcome, ModelCallFailed) else outcome.current,
                usages[str(job.job_id)],
                str(outcome) if isinstance(outcome, ModelCallFailed) else None,
            )
            for job, outcome in zip(jobs, outcomes, strict=True)
        ]


def _report(result: store.RowResult) -> RowReport:
    current = result.current
    return RowReport(
        job_id=str(result.job.job_id),
        status=result.status,
        previous_label=result.previous.label,
        current_label=current.label if current else None,
        previous_reward=result.previous.reward,
        current_reward=current.reward if current else None,
        previous_rule=result.previous.rule_id,
        current_rule=current.rule_id if current else None,
        changed=",".join(result.changed),
        requests=result.usage.requests,
        tokens=result.usage.tokens,
        first_request_at=result.usage.first_at or 0.0,
        last_request_at=result.usage.last_at or 0.0,
        error=result.error,
    )
