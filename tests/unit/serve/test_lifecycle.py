"""A replica's close runs once when Serve stops it, and never leaves a coroutine unawaited."""

from __future__ import annotations

import gc
import warnings

from serve.lifecycle import ClosedOnStop


class Replica(ClosedOnStop):
    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_serve_awaits_the_close_once_and_the_collector_then_gets_nothing() -> None:
    replica = Replica()
    stopping = replica.__del__()  # Serve's call, on the replica's loop
    assert stopping is not None
    await stopping
    assert replica.closed == 1
    assert replica.__del__() is None  # the collector's, later
    assert replica.closed == 1


class AsyncDel:
    """What the replicas had: an ``async def __del__``."""

    async def __del__(self) -> None:
        return None


def unawaited_after_collecting(kind: type) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replica = kind()
        del replica
        gc.collect()
    return [str(w.message) for w in caught if "never awaited" in str(w.message)]


def test_collected_it_leaves_no_coroutine_unawaited() -> None:
    assert unawaited_after_collecting(AsyncDel)  # the warning this avoids
    assert unawaited_after_collecting(Replica) == []
