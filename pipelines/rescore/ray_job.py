"""The Ray Data shell of a rescoring run: the only module of the job that imports Ray.

The dataset is the run's pending scan ids (small rows: the workers read the stored scans
themselves, from the scan database, so no document travels through the object store);
``map_batches`` hands them to a pool of actors, each holding one
:class:`~pipelines.rescore.worker.BatchRescorer` with its own event loop, pool, model client and
share of the budget (``budget / workers``). The driver only reads the per-row reports back.

The driver connects to the stack's Ray cluster (``ray.address``; unset: ``RAY_ADDRESS`` or a
RayJob's cluster), so the run shows on the Ray dashboard as a job with a dataset named after its
run id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import Iterator
from typing import Any

import ray
import ray.data

from eco2.settings import Settings
from pipelines.rescore.budget import Budget
from pipelines.rescore.options import Plan
from pipelines.rescore.worker import RowReport

_TEXT_FIELDS = frozenset(
    {"previous_label", "current_label", "previous_reward", "current_reward"}
    | {"previous_rule", "current_rule", "error"}
)


class _RescoreActor:
    """One Ray Data actor: a :class:`BatchRescorer` on an event loop of its own."""

    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        rpm: float | None,
        tpm: float | None,
        concurrency: int,
        batch_api: bool,
    ) -> None:
        from pipelines.rescore.worker import BatchRescorer

        self._loop = asyncio.new_event_loop()
        self._worker = BatchRescorer(
            settings, plan, Budget(rpm, tpm), concurrency=concurrency, batch_api=batch_api
        )
        self._loop.run_until_complete(self._worker.open())

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        ids = [str(job_id) for job_id in batch["job_id"]]
        reports = self._loop.run_until_complete(self._worker.run(ids))
        return _columns(reports)

    def __del__(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._worker.close())
            self._loop.close()


def _columns(reports: list[RowReport]) -> dict[str, list[Any]]:
    """Reports as columns; missing text is "" so every block has the same Arrow schema."""
    names = [f.name for f in dataclasses.fields(RowReport)]
    rows = [r.as_dict() for r in reports]
    return {
        name: [("" if row[name] is None else row[name]) for row in rows]
        if name in _TEXT_FIELDS
        else [row[name] for row in rows]
        for name in names
    }


def _report(row: dict[str, Any]) -> RowReport:
    values: dict[str, Any] = {
        f.name: (row[f.name] or None) if f.name in _TEXT_FIELDS else row[f.name]
        for f in dataclasses.fields(RowReport)
    }
    values["requests"], values["tokens"] = int(row["requests"]), int(row["tokens"])
    return RowReport(**values)


def _share(total: int | None, workers: int) -> float | None:
    return None if total is None else total / workers


def connect(settings: Settings) -> None:
    """Join the configured Ray cluster (once per driver process)."""
    if not ray.is_initialized():
        ray.init(
            address=settings.ray.address,
            namespace="eco2-rescore",
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI draws its own


def rescore_rows(
    settings: Settings,
    plan: Plan,
    job_ids: list[str],
    *,
    workers: int,
    batch_size: int,
    rpm: int | None,
    tpm: int | None,
    concurrency: int,
    batch_api: bool = False,
) -> Iterator[RowReport]:
    """Run the rescoring of ``job_ids`` on the cluster; yields each row's report as it lands."""
    connect(settings)
    workers = max(1, min(workers, math.ceil(len(job_ids) / batch_size)))
    dataset = ray.data.from_items(
        [{"job_id": job_id} for job_id in job_ids],
        override_num_blocks=max(1, math.ceil(len(job_ids) / batch_size)),
    )
    dataset.set_name(f"rescore-{plan.run_id}")
    reports = dataset.map_batches(
        _RescoreActor,
        fn_constructor_kwargs={
            "settings": settings,
            "plan": plan,
            "rpm": _share(rpm, workers),
            "tpm": _share(tpm, workers),
            "concurrency": concurrency,
            "batch_api": batch_api,
        },
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=0.25,
    )
    for row in reports.iter_rows():
        yield _report(row)
