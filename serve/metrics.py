"""What the AI stages and their model calls record, with ``ray.util.metrics``: Ray's metrics
agent on each node exports them beside Ray's own (the dashboard's Metrics view and Prometheus,
through the node's metrics port), whichever replica or actor records them.

Names (Prometheus adds the ``ray_`` prefix): ``eco2_model_calls_total`` (kind, model, outcome:
``ok`` | ``repaired`` | ``failed``), ``eco2_model_call_seconds`` (kind), ``eco2_model_tokens_total``
(kind, direction: ``input`` | ``output``), ``eco2_admission_rejected_total`` (pipeline, reason:
``inflight`` | ``rate_limit``), ``eco2_admission_inflight_limit`` and
``eco2_admission_inflight_peak`` (pipeline; per ingress replica, set once a second).
Outside Ray (unit tests) recording does nothing.

The counters of every model call (calls, tokens) are summed here and handed to Ray once a
second (:class:`Tally`): each increment recorded through Ray costs a stage a visible share of
its CPU per call, and Ray's agent reads the sums only every ten seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Protocol

from ray.util.metrics import Counter, Gauge, Histogram

LATENCY_BOUNDARIES = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 6, 8, 12, 20, 30, 60]
TALLY_EVERY_S = 1.0


class _Counter(Protocol):
    def inc(self, value: float = 1.0, tags: dict[str, str] = ...) -> Any: ...


class Tally:
    """A counter's increments summed per tag set in this process and recorded on ``counter``
    every ``every_s`` by a task on the running loop (at once where no loop runs), and by
    :meth:`flush`. What is pending when the process dies is lost: at most ``every_s`` of
    counts, less than Ray's own ten-second reporting loses."""

    def __init__(self, counter: _Counter, every_s: float = TALLY_EVERY_S) -> None:
        self._counter, self._every_s = counter, every_s
        self._pending: dict[tuple[tuple[str, str], ...], float] = {}
        self._flusher: asyncio.Task[None] | None = None

    def inc(self, value: float, tags: Mapping[str, str]) -> None:
        key = tuple(sorted(tags.items()))
        self._pending[key] = self._pending.get(key, 0.0) + value
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flusher is None or self._flusher.done() or self._flusher.get_loop() is not loop:
            self._flusher = loop.create_task(self._flush_forever(), name="metrics-tally")

    def flush(self) -> None:
        """Record everything pending now."""
        pending, self._pending = self._pending, {}
        for key, value in pending.items():
            self._counter.inc(value, tags=dict(key))

    async def _flush_forever(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._every_s)
                self.flush()
        finally:
            self.flush()

    async def aclose(self) -> None:
        """Stop the flusher after recording what is pending. A flusher of another loop (one
        that has ended, in tests) is only forgotten: it cannot be awaited from this one."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None and flusher.get_loop() is asyncio.get_running_loop():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        self.flush()


model_calls = Tally(
    Counter(
        "eco2_model_calls_total",
        description="Model calls by kind, model and outcome (ok, repaired, failed).",
        tag_keys=("kind", "model", "outcome"),
    )
)
model_seconds = Histogram(
    "eco2_model_call_seconds",
    description="Model call latency, retries and repair included.",
    boundaries=LATENCY_BOUNDARIES,
    tag_keys=("kind",),
)
model_tokens = Tally(
    Counter(
        "eco2_model_tokens_total",
        description="Tokens the model endpoint reported, by kind and direction.",
        tag_keys=("kind", "direction"),
    )
)
admission_rejected = Counter(
    "eco2_admission_rejected_total",
    description="Submits an ingress refused: 503 past its in-flight limit, 429 past the user's.",
    tag_keys=("pipeline", "reason"),
)
admission_limit = Gauge(
    "eco2_admission_inflight_limit",
    description="The in-flight limit an ingress replica has learnt from its jobs' latency.",
    tag_keys=("pipeline",),
)
admission_peak = Gauge(
    "eco2_admission_inflight_peak",
    description="The most jobs an ingress replica ran at once over the limit's last window.",
    tag_keys=("pipeline",),
)


async def close_tallies() -> None:
    """Record what the tallies hold and stop their flushers (a model client closing)."""
    for tally in (model_calls, model_tokens):
        await tally.aclose()
