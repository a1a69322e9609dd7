"""Admission: whether an intake takes on one more job, before anything is stored.

Two checks, in this order, both leaving nothing changed and both answered with ``Retry-After``:

1. **this process's in-flight limit** (:class:`LatencyLimit`): how many jobs it runs at once,
   learnt from how long its jobs take (:class:`~eco2.errors.Overloaded`, a 503). Offered more
   than the stack completes, every process would queue the excess on the same cores and every
   job would slow down; instead the limit keeps the jobs' latency near what it is at capacity
   and refuses the rest at once, which a client retries after ``Retry-After``;
2. **the caller's own limit** (:class:`~eco2.ratelimit.Quota`, shared by every replica in
   Valkey; :class:`~eco2.errors.RateLimited`, a 429): fairness and model cost. A refusal by
   the first never counts against the second.

:class:`LatencyLimit` is a gradient limit in the manner of Netflix's ``concurrency-limits``
(Vegas/Gradient2): each window it compares the median time the jobs that ended took (short) with
a baseline (long). Above ``tolerance`` × baseline the limit shrinks in proportion, from what was
really in flight, once per job time (the jobs ending just after a cut began before it); while
the limit is what holds the load back and latency is within tolerance, it grows by ``growth``
per job time — or doubles per job time (TCP's slow start) until its first cut and again once it
has held nothing back for ``SLOW_START_AFTER_S``: a job may take seconds of model time, so after
an overload the limit must reach hundreds again quickly. It starts at ``initial_limit``. The
baseline follows a drop at once and a rise only over ``baseline_horizon_s``, ten times that
while the limit holds load back (a slower model is learnt in minutes, an overload's queueing is
not mistaken for it). ``enabled=False`` keeps the fixed ceiling only.

What a process can carry is a rate, not a count: by Little's law, jobs in flight = jobs per
second × seconds per job. A count that suits 7 s jobs holds 40 s jobs to a sixth of the rate.
So in slow start the limit is at least ``slow_start_rate`` × the baseline: what that many jobs
per second keep in flight at their unloaded time. Until the first cut, a stack whose model calls
are slow then admits a step it can carry instead of refusing most of it for a minute. After a
cut only what was learnt counts.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from eco2.errors import InvalidInput, Overloaded, RateLimited
from eco2.ratelimit import Quota
from eco2.settings import AdmissionSettings
from serve import metrics

SLOW_START_AFTER_S = 30.0
"""After this long without the limit holding load back, it doubles per job time again."""

IDEMPOTENCY_KEY_MAX = 128
"""The longest ``X-Idempotency-Key`` an intake takes."""

J = TypeVar("J")


def check_idempotency_key(key: str | None) -> None:
    """Refuse (400 ``bad_idempotency_key``) a key no job could be stored under."""
    if key is not None and not 0 < len(key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidInput(
            f"X-Idempotency-Key must be 1-{IDEMPOTENCY_KEY_MAX} characters",
            code="bad_idempotency_key",
        )


class LatencyLimit:
    """How many jobs one process may run at once; ``finished`` feeds it, ``limit`` reads it."""

    def __init__(
        self,
        settings: AdmissionSettings,
        *,
        pipeline: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``pipeline``: export the limit and the window's peak in flight as gauges by that
        name (``None``: not exported, for tests)."""
        self._s, self._clock = settings, clock
        self._tags = None if pipeline is None else {"pipeline": pipeline}
        start = settings.initial_limit or settings.max_inflight
        ceiling = settings.max_inflight
        self._limit = float(min(start, ceiling) if settings.enabled else ceiling)
        self._baseline: float | None = None
        self._last_short: float | None = None
        self._samples: list[float] = []
        self._peak = 0
        self._window_started = clock()
        self._settled_at = 0.0
        self._slow_start = True
        self._bound_at = clock()
        self._export()

    @property
    def limit(self) -> int:
        return int(self._limit)

    @property
    def baseline_s(self) -> float | None:
        return self._baseline

    def admits(self, inflight: int) -> bool:
        return inflight < self.limit

    def started(self, inflight: int) -> None:
        """A job began here; ``inflight`` counts it."""
        self._peak = max(self._peak, inflight)

    def finished(self, seconds: float, inflight: int) -> None:
        """A job that began here ended after ``seconds``; ``inflight`` no longer counts it."""
        if not self._s.enabled:
            return
        self._samples.append(seconds)
        self._peak = max(self._peak, inflight + 1)
        now = self._clock()
        if now - self._window_started >= self._s.window_s and len(self._samples) >= (
            self._s.min_samples
        ):
            self._close_window(now, inflight)

    def retry_after_s(self) -> float:
        """When a refused client should come back: about when a job now running ends."""
        typical = self._last_short or self._baseline or 1.0
        return min(self._s.max_retry_after_s, max(1.0, typical))

    def _export(self) -> None:
        if self._tags is not None:
            metrics.admission_limit.set(self._limit, tags=self._tags)
            metrics.admission_peak.set(self._peak, tags=self._tags)

    def _close_window(self, now: float, inflight: int) -> None:
        s = self._s
        short = statistics.median(self._samples)
        baseline = short if self._baseline is None else self._baseline
        ratio = short / baseline if baseline > 0 else 1.0
        binding = self._peak >= 0.8 * self._limit  # the limit is what holds the load back
        if now < self._settled_at:
            pass  # the jobs ending now began before the last cut: they say nothing of it
        elif ratio > s.tolerance:
            held = min(self._limit, float(self._peak))
            self._limit = held * max(0.5, s.tolerance / ratio)
            self._settled_at = now + short
            self._slow_start = False
        elif binding:
            per_job = min(1.0, (now - self._window_started) / short) if short > 0 else 1.0
            rate = 1.0 if self._slow_start else s.growth
            self._limit += max(1.0, rate * self._limit * per_job)
        if binding:
            self._bound_at = now
        elif now - self._bound_at >= SLOW_START_AFTER_S:
            self._slow_start = True
        if short < baseline:
            self._baseline = short
        else:  # a rise while the limit held load back is mostly queueing: learnt far slower
            horizon = s.baseline_horizon_s * (10 if binding else 1)
            rise = min(1.0, (now - self._window_started) / horizon)
            self._baseline = baseline + rise * (short - baseline)
        if self._slow_start and s.slow_start_rate is not None:
            self._limit = max(self._limit, s.slow_start_rate * self._baseline)
        self._limit = min(float(s.max_inflight), max(float(s.min_limit), self._limit))
        self._last_short = short
        self._export()
        self._samples.clear()
        self._peak = inflight
        self._window_started = now


class Admission:
    """One intake's two checks (module docstring); the in-flight count is the caller's."""

    def __init__(self, pipeline: str, limit: LatencyLimit, quota: Quota | None = None) -> None:
        """``limit``: the one the process's :class:`~pipelines.jobs.tasks.JobTasks` feeds;
        ``quota``: the per-user limit (``None``: none, for tests that need none)."""
        self._pipeline, self._limit = pipeline, limit
        self._quota = quota or Quota.off(pipeline)

    @classmethod
    def of(
        cls, pipeline: str, settings: AdmissionSettings, quota: Quota | None = None
    ) -> Admission:
        """An admission with a limit of its own (tests of the logic in front of it)."""
        return cls(pipeline, LatencyLimit(settings), quota)

    async def admit(self, user_id: str | None, inflight: int) -> None:
        """Raise :class:`~eco2.errors.Overloaded` unless one more job may start now for
        ``user_id`` (``None``: an internal caller, bounded by the in-flight limit only)."""
        if not self._limit.admits(inflight):
            metrics.admission_rejected.inc(
                1, tags={"pipeline": self._pipeline, "reason": "inflight"}
            )
            raise Overloaded(
                f"too many {self._pipeline} jobs in progress; retry after the time given",
                retry_after_s=math.ceil(self._limit.retry_after_s()),
            )
        if user_id is None:
            return
        try:
            await self._quota.check(user_id)
        except RateLimited:
            metrics.admission_rejected.inc(
                1, tags={"pipeline": self._pipeline, "reason": "rate_limit"}
            )
            raise

    async def admit_or_replay(
        self,
        user_id: str | None,
        inflight: int,
        idempotency_key: str | None,
        replay: Callable[[str], Awaitable[J | None]],
    ) -> J | None:
        """:meth:`admit` (``None``: go on and store the job), except that a client sending an
        accepted call again (its 202 was lost) gets that job back from ``replay`` when either
        limit refuses new work, since it starts none: only the refusal path pays for the
        look-up. With no such job the refusal stands."""
        try:
            await self.admit(user_id, inflight)
        except Overloaded:
            replayed = None if idempotency_key is None else await replay(idempotency_key)
            if replayed is None:
                raise
            return replayed
        return None
