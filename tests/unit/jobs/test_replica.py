import asyncio
from dataclasses import dataclass, field

import pytest

from pipelines.jobs.replica import ReplicaPipeline


@dataclass
class Jobs:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    fail: BaseException | None = None

    async def maintain(self) -> None:
        await self.stop.wait()
        if self.fail is not None:
            raise self.fail


@dataclass
class Store:
    pings: int = 0

    async def ping(self) -> None:
        self.pings += 1


@dataclass
class Wired:
    jobs: Jobs = field(default_factory=Jobs)
    store: Store = field(default_factory=Store)
    closed: bool = False

    async def close(self) -> None:
        self.closed = True


async def test_live_waits_for_the_pipeline_and_health_pings_its_store() -> None:
    wired, opened = Wired(), asyncio.Event()

    async def opening() -> Wired:
        await opened.wait()
        return wired

    replica = ReplicaPipeline("scan", opening())
    waiting = asyncio.ensure_future(replica.live())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    opened.set()
    assert await waiting is wired
    assert await replica.ready() == {"status": "ready"}
    await replica.check_health()
    assert wired.store.pings == 1
    await replica.close()
    assert wired.closed


async def test_a_stopped_maintenance_task_fails_the_health_check_with_its_reason() -> None:
    wired = Wired()
    wired.jobs.fail = RuntimeError("pool gone")

    async def opening() -> Wired:
        return wired

    replica = ReplicaPipeline("chat", opening())
    await replica.live()
    wired.jobs.stop.set()
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match=r"chat pipeline stopped: .*pool gone"):
        await replica.check_health()
    await replica.close()
    assert wired.closed
