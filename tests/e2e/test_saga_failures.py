"""The reward saga under injected failures, one step at a time.

A failure is injected into a step's own database with a trigger that refuses the step's write
for one user; its countdown is a sequence, which a rollback does not undo, so it fails exactly as
often as asked. Transient failures are retried by the consumer runtime and the step is applied
once; a step that keeps failing is dead-lettered, and after the fix a replay applies it once.
Either way nothing is applied twice anywhere downstream.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from cdc.consumers.dlq import list_dlq, replay_dlq
from eco2.migrations import database_dsn
from eco2.settings import Settings
from tests.conftest import StackUrls
from tests.e2e.saga_support import eventually, rewarded_scan, sign_in

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Step:
    database: str
    table: str
    input_topic: str


STEPS = {
    "character": Step("eco2_character", "character_ownerships", "outbox.event.scan"),
    "my": Step("eco2_my", "user_characters", "outbox.event.character"),
    "notification": Step("eco2_notification", "notifications", "outbox.event.profile"),
}

_FAULT = """
CREATE SEQUENCE {name}_seq;
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    IF NEW.user_id = '{user}' AND nextval('{name}_seq') <= {failures} THEN
        RAISE EXCEPTION 'injected failure in the {table} step';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}();
"""


class Fault:
    """A trigger on one step's table that fails its first ``failures`` writes for one user."""

    def __init__(self, dsn: str, step: Step, user: str, failures: int) -> None:
        self.dsn, self.step, self.user, self.failures = dsn, step, user, failures
        self.name = f"fault_{abs(hash((user, step.table))) % 10**9}"

    async def __aenter__(self) -> Fault:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                _FAULT.format(
                    name=self.name, user=self.user, failures=self.failures, table=self.step.table
                )
            )
        finally:
            await conn.close()
        return self

    async def fired(self) -> int:
        conn = await asyncpg.connect(self.dsn)
        try:
            used = await conn.fetchrow(f"SELECT last_value, is_called FROM {self.name}_seq")
        finally:
            await conn.close()
        return int(used["last_value"]) if used["is_called"] else 0

    async def remove(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(
                f"DROP TRIGGER IF EXISTS {self.name} ON {self.step.table};"
                f"DROP FUNCTION IF EXISTS {self.name}(); DROP SEQUENCE IF EXISTS {self.name}_seq"
            )
        finally:
            await conn.close()

    async def __aexit__(self, *_: object) -> None:
        await self.remove()


async def _count(dsn: str, sql: str, *args: Any) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql, *args))
    finally:
        await conn.close()


async def _saga_effects(stack: StackUrls, user: str) -> dict[str, int]:
    """How often each step's effect exists for ``user`` (each must be exactly 1)."""

    def db(name: str) -> str:
        return database_dsn(stack.db_url, name)

    events = "SELECT count(*) FROM event_store WHERE aggregate_id = $1 AND event_type = $2"
    return {
        "ownership": await _count(
            db("eco2_character"),
            "SELECT count(*) FROM character_ownerships WHERE user_id = $1",
            user,
        ),
        "CharacterAcquired": await _count(db("eco2_character"), events, user, "CharacterAcquired"),
        "user_character": await _count(
            db("eco2_my"), "SELECT count(*) FROM user_characters WHERE user_id = $1", user
        ),
        "ProfileUpdated": await _count(db("eco2_my"), events, user, "ProfileUpdated"),
        "notices": await _count(
            db("eco2_notification"), "SELECT count(*) FROM notifications WHERE user_id = $1", user
        ),
    }


ONCE = {
    "ownership": 1,
    "CharacterAcquired": 1,
    "user_character": 1,
    "ProfileUpdated": 1,
    "notices": 2,
}


async def _settled(browser: httpx.AsyncClient, stack: StackUrls, user: str) -> dict[str, int]:
    async def done() -> dict[str, int] | None:
        feed = (await browser.get("/api/v1/notifications")).json()["notifications"]
        return await _saga_effects(stack, user) if len(feed) >= 2 else None

    await eventually(done, "the saga's last step (two notices)", within_s=45)
    await asyncio.sleep(1.0)  # a duplicate, if any, would land now
    return await _saga_effects(stack, user)


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_transient_failure_at_each_step_is_retried_and_applied_once(
    step: str, stack: StackUrls, browser: httpx.AsyncClient
) -> None:
    user = await sign_in(browser, f"fault-{step}")
    target = STEPS[step]
    async with Fault(database_dsn(stack.db_url, target.database), target, user, 2) as fault:
        result = await rewarded_scan(browser)
        assert result["reward"]["code"] == "char-petty"
        assert await _settled(browser, stack, user) == ONCE
        assert await fault.fired() >= 3  # failed twice, then passed


async def test_a_step_that_keeps_failing_is_dead_lettered_then_replayed_once(
    stack: StackUrls, browser: httpx.AsyncClient, settings: Settings
) -> None:
    user = await sign_in(browser, "fault-dlq")
    target = STEPS["my"]
    fault = Fault(database_dsn(stack.db_url, target.database), target, user, 1_000_000)
    async with fault:
        await rewarded_scan(browser)

        async def dead_lettered() -> bool | None:
            letters = await asyncio.to_thread(list_dlq, settings, target.input_topic, 1000)
            mine = [e for e in letters if e.key == user and e.source == "my.characters"]
            return True if mine else None

        await eventually(dead_lettered, "the my step's dead letter", within_s=45)
        assert (await _saga_effects(stack, user))["user_character"] == 0
    # fixed (the trigger is gone): replaying delivers it once more, and only once takes effect
    assert await asyncio.to_thread(replay_dlq, settings, target.input_topic) >= 1
    assert await _settled(browser, stack, user) == ONCE
