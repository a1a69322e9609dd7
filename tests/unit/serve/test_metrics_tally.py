"""Model-call counters are summed in the process and reach Ray's counter once per interval,
when the client closes, or at once where no event loop runs: none is lost, none doubled."""

from __future__ import annotations

import asyncio
from typing import Any

from serve.metrics import Tally


class Recorded:
    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, str]]] = []

    def inc(self, value: float = 1.0, tags: dict[str, str] = ...) -> Any:  # type: ignore[assignment]
        self.calls.append((value, tags))

    def totals(self) -> dict[tuple[tuple[str, str], ...], float]:
        sums: dict[tuple[tuple[str, str], ...], float] = {}
        for value, tags in self.calls:
            key = tuple(sorted(tags.items()))
            sums[key] = sums.get(key, 0.0) + value
        return sums


async def test_increments_are_summed_per_tag_set_and_recorded_once_per_interval() -> None:
    counter = Recorded()
    tally = Tally(counter, every_s=0.05)
    for _ in range(100):
        tally.inc(1, {"kind": "vision", "outcome": "ok"})
    tally.inc(3, {"outcome": "ok", "kind": "answer"})  # tag order does not matter
    assert counter.calls == []  # nothing recorded on the caller's path
    await asyncio.sleep(0.2)
    assert sorted(counter.calls, key=lambda c: c[1]["kind"]) == [
        (3.0, {"kind": "answer", "outcome": "ok"}),
        (100.0, {"kind": "vision", "outcome": "ok"}),
    ]
    tally.inc(1, {"kind": "vision", "outcome": "ok"})
    await tally.aclose()
    assert counter.totals()[(("kind", "vision"), ("outcome", "ok"))] == 101.0


async def test_closing_records_what_is_pending_and_a_later_increment_starts_again() -> None:
    counter = Recorded()
    tally = Tally(counter, every_s=3600)
    tally.inc(2, {"kind": "intent"})
    await tally.aclose()
    assert counter.calls == [(2.0, {"kind": "intent"})]
    tally.inc(5, {"kind": "intent"})
    await tally.aclose()
    assert counter.totals() == {(("kind", "intent"),): 7.0}


def test_without_a_running_loop_each_increment_is_recorded_at_once() -> None:
    counter = Recorded()
    tally = Tally(counter)
    tally.inc(1, {"kind": "summary"})
    assert counter.calls == [(1.0, {"kind": "summary"})]


def test_a_tally_used_on_a_new_loop_flushes_there_and_closes_without_the_old_one() -> None:
    counter = Recorded()
    tally = Tally(counter, every_s=3600)

    async def one(value: float) -> None:
        tally.inc(value, {"kind": "vision"})

    asyncio.run(one(1))  # the first loop ends with its flusher pending and the count held

    async def second() -> None:
        tally.inc(2, {"kind": "vision"})
        await tally.aclose()

    asyncio.run(second())
    assert counter.totals() == {(("kind", "vision"),): 3.0}
