"""An image VisionStage refuses at fetch time dead-letters the scan at once, with the reason:
the stage's non-retriable verdict crosses the handle (wrapped as Ray wraps it), is not retried
by the shared stage-call policy, and the runner stores ``failed`` with ``ScanFailed``."""

from __future__ import annotations

import json
from typing import Any, cast

from pipelines.jobs.status import JobStatus
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.machine import Policy
from pipelines.scan.runner import ScanRunner
from pipelines.scan.stages import ScanStages
from serve.contracts import ModelCallFailed
from tests.unit.scan.factories import job
from tests.unit.scan.test_runner import MemoryStore, RecordedProgress

REASON = "image not fetched: image_url host 'rebind.example' resolves to a non-public address"


class _RayTaskError(Exception):
    """What a handle call raises for an exception inside the replica: the original as ``cause``."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"RayTaskError: {cause}")
        self.cause = cause


class _RefusingVision:
    def __init__(self) -> None:
        self.calls = 0
        self.classify = self

    async def remote(self, **kwargs: Any) -> Any:
        self.calls += 1
        raise _RayTaskError(ModelCallFailed(REASON, retriable=False, kind="image"))


async def test_a_refused_image_dead_letters_the_scan_after_one_call() -> None:
    vision, store, progress = _RefusingVision(), MemoryStore(), RecordedProgress()
    stages = ScanStages(vision, answer=None)
    runner = ScanRunner(cast(Any, store), stages, cast(Any, progress), Policy(load_rulebook()))

    failed = await runner.run(job(image_url="https://rebind.example/a.jpg"))

    assert vision.calls == 1
    assert (failed.status, failed.failed_stage, failed.error) == (
        JobStatus.FAILED,
        "vision",
        REASON,
    )
    assert store.commits[-1][0] == ["ScanFailed"]
    last = progress.events[-1]
    assert (last.event, json.loads(last.body)["error"]) == ("error", REASON)
