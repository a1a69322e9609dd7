"""The relay gauges observe the running relay only, and let a stopped one go."""

from __future__ import annotations

import gc
import weakref
from typing import Any, cast

from cdc.relay import metrics


class _StandIn:
    """Enough of a relay for the registry: the gauges read its streams."""

    def __init__(self) -> None:
        self.streams: list[Any] = []


def test_a_stopped_relay_is_no_longer_observed_and_can_be_freed() -> None:
    first, second = _StandIn(), _StandIn()
    metrics.register(cast(Any, first))
    metrics.register(cast(Any, second))  # a restarted relay replaces the one before
    assert metrics._registered == [second]

    metrics.unregister(cast(Any, first))  # not the observed one: nothing changes
    assert metrics._registered == [second]
    gone = weakref.ref(second)
    metrics.unregister(cast(Any, second))
    del second
    gc.collect()

    assert metrics._registered == []
    assert gone() is None
