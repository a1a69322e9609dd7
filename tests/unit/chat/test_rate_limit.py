"""The chat intake under the caller's per-user limit (a memory limiter): over the rule a post is
refused with a 429-mapped error and nothing is stored; an invalid post uses none of the budget."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

import pytest

from eco2.errors import InvalidInput, RateLimited
from eco2.http import status_of
from eco2.ratelimit import MemoryRateLimiter, Quota
from eco2.settings import ChatSettings, RateRule
from pipelines.chat.intake import ChatIntake, MessageRequest
from pipelines.jobs.admission import Admission

RULE = RateRule(limit=1, period_s=3600, burst=2)
CHAT = str(uuid.uuid4())


class _Store:
    def __init__(self) -> None:
        self.stored: list[str] = []
        self.keys: dict[tuple[str, str], Any] = {}

    async def submit(
        self, *, user_id: str, chat_id: uuid.UUID, idempotency_key: str | None = None, **_: Any
    ) -> tuple[Any, bool]:
        self.stored.append(user_id)
        job = SimpleNamespace(job_id=uuid.uuid4(), chat_id=chat_id)
        if idempotency_key is not None:
            self.keys[(user_id, idempotency_key)] = job
        return job, False

    async def by_key(self, user_id: str, idempotency_key: str) -> Any:
        return self.keys.get((user_id, idempotency_key))


def _intake(store: _Store) -> ChatIntake:
    jobs = SimpleNamespace(inflight=0)
    quota = Quota(MemoryRateLimiter(), "chat", RULE, timeout_s=1)
    return ChatIntake(
        ChatSettings(),
        ("cdn.eco2.local",),
        cast(Any, store),
        cast(Any, None),
        cast(Any, jobs),
        cast(Any, None),
        Admission.of("chat", ChatSettings().admission, quota),
    )


async def test_a_user_over_the_limit_is_refused_with_a_429_and_nothing_is_stored() -> None:
    store = _Store()
    intake = _intake(store)
    body = MessageRequest(message="페트병은 어떻게 버려?")
    for _ in range(RULE.burst):
        await intake.post("user-1", CHAT, body, None, None)
    with pytest.raises(RateLimited) as refused:
        await intake.post("user-1", CHAT, body, None, None)
    assert status_of(refused.value) == 429
    assert refused.value.retry_after_s > 0
    assert "chat" in refused.value.message
    assert store.stored == ["user-1"] * RULE.burst
    await intake.post("user-2", CHAT, body, None, None)
    assert store.stored[-1] == "user-2"


async def test_an_invalid_post_uses_none_of_the_budget() -> None:
    store = _Store()
    intake = _intake(store)
    for bad in (MessageRequest(message="  "), MessageRequest(message="hi", model="nope")):
        with pytest.raises(InvalidInput):
            await intake.post("user-1", CHAT, bad, None, None)
    for _ in range(RULE.burst):
        await intake.post("user-1", CHAT, MessageRequest(message="안녕"), None, None)
    assert len(store.stored) == RULE.burst


async def test_an_accepted_post_sent_again_over_the_limit_gets_its_job_back() -> None:
    store = _Store()
    intake = _intake(store)
    body = MessageRequest(message="페트병은 어떻게 버려?")
    first = await intake.post("user-1", CHAT, body, "key-1", None)
    await intake.post("user-1", CHAT, body, "key-2", None)  # the burst is used up
    again = await intake.post("user-1", CHAT, body, "key-1", None)
    assert again["job_id"] == first["job_id"]
    with pytest.raises(RateLimited):
        await intake.post("user-1", CHAT, body, "key-3", None)
    assert store.stored == ["user-1"] * RULE.burst
