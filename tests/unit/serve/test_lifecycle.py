"""A replica's close runs when Serve stops it, and nothing runs when Python collects it."""

from __future__ import annotations

import gc
import inspect
import warnings

from serve.lifecycle import ClosedOnStop


class Replica(ClosedOnStop):
    def __init__(self, name: str) -> None:
        self.name, self.closed = name, 0

    async def aclose(self) -> None:
        self.closed += 1


async def test_serve_finds_a_coroutine_function_to_await_as_the_replica_stops() -> None:
    replica = Replica("r")
    hook = replica.__del__  # what Serve looks up and awaits (replica.call_destructor)
    assert inspect.iscoroutinefunction(hook)
    await hook()
    assert replica.closed == 1
    assert replica.name == "r"  # the constructor's arguments reach __init__


class AsyncDel:
    """What the replicas had: an ``async def __del__``."""

    async def __del__(self) -> None:
        return None


async def unawaited_after_collecting(kind: type) -> list[str]:
    """Collected on a running loop, as a replica object in a test (or a stopped one) is."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replica = kind("r") if kind is Replica else kind()
        del replica
        gc.collect()
    return [str(w.message) for w in caught if "never awaited" in str(w.message)]


async def test_collected_it_leaves_no_coroutine_unawaited() -> None:
    assert await unawaited_after_collecting(AsyncDel)  # the warning this avoids
    assert await unawaited_after_collecting(Replica) == []
