"""The scan intake under the caller's per-user limit (a memory limiter): over the rule a submit
or classify is refused with a 429-mapped error and nothing is stored; a refused or invalid
request does not use the caller's budget."""

from __future__ import annotations

import uuid
from typing import Any, cast

import pytest

from eco2.errors import InvalidInput, Overloaded, RateLimited
from eco2.http import status_of
from eco2.ratelimit import MemoryRateLimiter, Quota
from eco2.settings import RateRule, load_settings
from pipelines.jobs.admission import Admission
from pipelines.rules.rulebook import load_rulebook
from pipelines.scan.intake import INTERNAL_CALLER, ScanIntake, ScanRequest
from pipelines.scan.machine import Job, Policy
from tests.unit.scan import factories

RULE = RateRule(limit=1, period_s=3600, burst=2)
GOOD = ScanRequest(image_url="https://cdn.eco2.local/scan/a.jpg")


class _Store:
    def __init__(self) -> None:
        self.stored: list[str] = []
        self.keys: dict[tuple[str, str], Job] = {}

    async def submit(
        self, *, user_id: str, idempotency_key: str | None = None, **_: Any
    ) -> tuple[Job, bool]:
        self.stored.append(user_id)
        job = factories.job(user_id=user_id)
        if idempotency_key is not None:
            self.keys[(user_id, idempotency_key)] = job
        return job, False  # "already there": nothing to start

    async def by_key(self, user_id: str, idempotency_key: str) -> Job | None:
        return self.keys.get((user_id, idempotency_key))


class _Jobs:
    inflight = 0

    async def run_inline(self, job: Job) -> Job:
        return job

    async def reprocess(self, job_id: uuid.UUID | None) -> list[Job]:
        return []


def _intake(store: _Store, jobs: _Jobs | None = None) -> ScanIntake:
    settings = load_settings(scan={"admission": {"max_inflight": 10}})
    quota = Quota(MemoryRateLimiter(), "scan", RULE, timeout_s=1)
    return ScanIntake(
        settings,
        cast(Any, store),
        cast(Any, None),
        cast(Any, jobs or _Jobs()),
        Policy(load_rulebook()),
        Admission.of("scan", settings.scan.admission, quota),
    )


async def test_a_user_over_the_limit_is_refused_with_a_429_and_nothing_is_stored() -> None:
    store = _Store()
    intake = _intake(store)
    for _ in range(RULE.burst):
        await intake.submit("user-1", GOOD, None, None)
    with pytest.raises(RateLimited) as refused:
        await intake.submit("user-1", GOOD, None, None)
    assert status_of(refused.value) == 429
    assert refused.value.retry_after_s > 0
    with pytest.raises(RateLimited):  # the synchronous classify takes from the same budget
        await intake.classify_inline("user-1", GOOD, None)
    assert store.stored == ["user-1"] * RULE.burst
    await intake.submit("user-2", GOOD, None, None)  # others are not affected
    assert store.stored[-1] == "user-2"


async def test_invalid_input_and_a_full_replica_use_none_of_the_budget() -> None:
    store, jobs = _Store(), _Jobs()
    intake = _intake(store, jobs)
    for _ in range(5):
        with pytest.raises(InvalidInput):
            await intake.submit("user-1", ScanRequest(image_url="gopher://x/a.jpg"), None, None)
    jobs.inflight = 10
    with pytest.raises(Overloaded) as full:
        await intake.submit("user-1", GOOD, None, None)
    assert not isinstance(full.value, RateLimited)
    jobs.inflight = 0
    for _ in range(RULE.burst):
        await intake.submit("user-1", GOOD, None, None)
    assert store.stored == ["user-1"] * RULE.burst


async def test_internal_classify_without_a_user_is_not_limited_per_user() -> None:
    store = _Store()
    intake = _intake(store)
    for _ in range(RULE.burst + 3):
        await intake.classify_inline(INTERNAL_CALLER, GOOD, None)
    assert len(store.stored) == RULE.burst + 3


async def test_an_accepted_submit_sent_again_over_the_limit_gets_its_job_back() -> None:
    """A careful client whose 202 was lost sends the same key again: it gets its job, not a 429
    (and a key never accepted is still refused)."""
    store = _Store()
    intake = _intake(store)
    first = await intake.submit("user-1", GOOD, "key-1", None)
    await intake.submit("user-1", GOOD, "key-2", None)  # the burst is used up
    again = await intake.submit("user-1", GOOD, "key-1", None)
    assert again["job_id"] == first["job_id"]
    with pytest.raises(RateLimited):
        await intake.submit("user-1", GOOD, "key-3", None)
    assert store.stored == ["user-1"] * RULE.burst
