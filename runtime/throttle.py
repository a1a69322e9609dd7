"""Adaptive throttling in the gateway: refuse here, at once, what the service would refuse.

When a service sheds load (503 ``overloaded``: its in-flight limit,
:mod:`pipelines.jobs.admission`), every refused request still crossed the gateway, HAProxy, Ray
Serve's proxy and the replica's event loop, on the cores that are already saturated, before
being told no. The gateway counts,
per route, the requests it was asked to pass and those the service accepted, over the last
``horizon_s`` (decaying), and refuses a new one itself with probability

    max(0, (requests - k × accepts) / (requests + 1))

— the client-side throttling of Google's SRE book ("Handling Overload"; Envoy's
``admission_control`` filter does the same in the cluster). While the service accepts
everything, nothing is refused here; offered twice what it accepts with ``k = 1.1``, the
gateway refuses about 45 % itself and passes 1.1 × what is accepted, so the service still sees
a little more than it takes and the estimate stays current. Locally refused requests count as
requests: a client retrying faster does not open the gate. Once the service has refused nothing
for ``horizon_s`` the counts start again from zero: the gate opens at once when the overload
ends, not over the several horizons the formula alone would take.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

SHED_HEADER = "X-Shed-By"
"""On the gateway's own 503 ``overloaded`` (Envoy marks its own the same way with
``x-envoy-overloaded``): the service never saw the request."""


class AdaptiveThrottle:
    def __init__(
        self,
        k: float,
        horizon_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._k, self._horizon_s, self._clock, self._draw = k, horizon_s, clock, draw
        self._requests = self._accepts = 0.0
        self._at = self._refused_at = clock()
        self.retry_after_s = 1.0
        """What the service last told a refused client (the gateway's own refusals repeat it)."""

    def refuses(self) -> bool:
        """Count one request; whether the gateway refuses it itself."""
        self._decay()
        refuse = self._draw() < self.refusal_probability()
        self._requests += 1
        return refuse

    def answered(self, accepted: bool, retry_after_s: float | None = None) -> None:
        """The service's answer to a request :meth:`refuses` passed."""
        self._decay()
        if accepted:
            self._accepts += 1
            return
        self._refused_at = self._clock()
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s

    def refusal_probability(self) -> float:
        return max(0.0, (self._requests - self._k * self._accepts) / (self._requests + 1))

    def _decay(self) -> None:
        now = self._clock()
        if now - self._refused_at > self._horizon_s:  # no refusal lately: no overload
            self._requests = self._accepts = 0.0
        kept = math.exp(-(now - self._at) / self._horizon_s)
        self._requests *= kept
        self._accepts *= kept
        self._at = now
