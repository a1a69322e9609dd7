"""The contract every inbox store passes (run against MemoryStore here, PostgresStore in the
integration tests): claims are per consumer, commit with the unit of work, vanish on rollback."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from cdc.consumers.inbox import Store


class InboxContract:
    consumer = "contract"

    @pytest.fixture
    def store(self) -> Store:  # overridden by each adapter's test class
        raise NotImplementedError

    async def test_new_ids_are_claimed_once(self, store: Store) -> None:
        a, b = uuid.uuid4(), uuid.uuid4()
        async with store.unit_of_work() as unit:
            assert await unit.claim(self.consumer, [a, b, a]) == {a, b}
        async with store.unit_of_work() as unit:
            assert await unit.claim(self.consumer, [a, b]) == set()

    async def test_claims_are_per_consumer(self, store: Store) -> None:
        a = uuid.uuid4()
        async with store.unit_of_work() as unit:
            await unit.claim(self.consumer, [a])
        async with store.unit_of_work() as unit:
            assert await unit.claim(self.consumer + "-other", [a]) == {a}

    async def test_rollback_forgets_the_claim(self, store: Store) -> None:
        a = uuid.uuid4()

        async def claim_then_fail() -> None:
            async with store.unit_of_work() as unit:
                assert await unit.claim(self.consumer, [a]) == {a}
                raise RuntimeError("handler failed")

        with pytest.raises(RuntimeError):
            await claim_then_fail()
        async with store.unit_of_work() as unit:
            assert await unit.claim(self.consumer, [a]) == {a}

    async def test_forget_clears_one_consumer(self, store: Store) -> None:
        a = uuid.uuid4()
        async with store.unit_of_work() as unit:
            await unit.claim(self.consumer, [a])
            await unit.claim(self.consumer + "-kept", [a])
        await store.forget(self.consumer)
        async with store.unit_of_work() as unit:
            found: Any = await unit.claim(self.consumer, [a])
            kept: Any = await unit.claim(self.consumer + "-kept", [a])
        assert (found, kept) == ({a}, set())

    async def test_a_consumer_marked_whole_is_whole(self, store: Store) -> None:
        await store.mark_whole(self.consumer)
        assert await store.whole(self.consumer)
