"""Serve's autoscaling policy for an application that is a pipeline of model stages.

It is the ``autoscaling_policy`` of each application in ``ray-cluster.yaml`` (Serve's
application-level policy: it sees every autoscaled deployment of the application at once).
Serve's default sizes a deployment for the requests it holds now, ``ongoing / target``. Two
things it cannot know made a surge take a model call plus ~15 s to be served by enough replicas
(docs/benchmarks.md, issue 16):

* **A replica ordered now runs seconds later** (a Ray worker starts and imports the stage), and
  during a surge the count keeps rising meanwhile. Each stage is sized for its count ``lead_s``
  ahead, extrapolated from how fast it rose over the last ``trend_s``. A flat or falling count
  is taken as it is, so scaling down is exactly Serve's.
* **A stage's downstream receives the same work one model call later.** ``feeds`` names, per
  stage, the stages it feeds; each of those is sized for at least what its upstream holds, so
  its replicas run before the work arrives instead of a replica's start after it. This is a
  floor, not an estimate: a downstream whose calls take longer than its upstream's holds more.

What Serve applies to every policy still applies: each deployment's ``autoscaling_config``
bounds, upscale and downscale delays and scaling factors, and the count it measures (its look-back
window and aggregation). The controller imports this module; it needs nothing but the standard
library and Ray.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ray.serve._private.common import DeploymentID
    from ray.serve.config import AutoscalingContext


class Trend:
    """One deployment's count over time, and where it is heading.

    :meth:`projected` extrapolates the rise measured over the last ``window_s`` (at least half
    of it must be seen, or the count is taken as it is)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._points: deque[tuple[float, float]] = deque()

    def projected(self, now: float, count: float, lead_s: float) -> float:
        points = self._points
        points.append((now, count))
        # Keep the newest point that is at least window_s old as the oldest.
        while len(points) > 1 and now - points[1][0] >= self.window_s:
            points.popleft()
        then, before = points[0]
        span = now - then
        if span < self.window_s / 2:
            return count
        rise_per_s = (count - before) / span
        return count + lead_s * max(0.0, rise_per_s)


class PipelineAutoscaler:
    """Serve's application-level policy: a class it instantiates once with ``policy_kwargs``
    and calls on every control-loop tick with each autoscaled deployment's context."""

    def __init__(
        self,
        lead_s: float = 5.0,
        trend_s: float = 2.0,
        feeds: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        if lead_s < 0:
            raise ValueError(f"lead_s must be 0 or more, not {lead_s}")
        if trend_s <= 0:
            raise ValueError(f"trend_s must be above 0, not {trend_s}")
        self.lead_s = lead_s
        self.trend_s = trend_s
        self.feeds = {upstream: tuple(downstream) for upstream, downstream in (feeds or {}).items()}
        self._trends: dict[str, Trend] = {}

    def upstreams(self, name: str) -> list[str]:
        return [upstream for upstream, downs in self.feeds.items() if name in downs]

    def __call__(
        self, contexts: dict[DeploymentID, AutoscalingContext]
    ) -> tuple[dict[DeploymentID, float], dict[DeploymentID, dict[str, Any]]]:
        load: dict[str, float] = {}
        for ctx in contexts.values():
            now = ctx.current_time if ctx.current_time is not None else time.time()
            trend = self._trends.setdefault(ctx.deployment_name, Trend(self.trend_s))
            load[ctx.deployment_name] = trend.projected(now, ctx.total_num_requests, self.lead_s)
        decisions: dict[DeploymentID, float] = {}
        for deployment, ctx in contexts.items():
            name = ctx.deployment_name
            if ctx.current_num_replicas == 0:
                # As Serve's default: its cold-start path decides before any policy runs.
                decisions[deployment] = ctx.target_num_replicas
                continue
            wanted = max([load[name], *(load[up] for up in self.upstreams(name) if up in load)])
            config = ctx.config
            if config is None:  # Serve always passes the deployment's config; its type allows None
                decisions[deployment] = ctx.target_num_replicas
                continue
            decisions[deployment] = wanted / config.get_target_ongoing_requests()
        # Serve keeps its own delay bookkeeping beside whatever a policy returns here.
        return decisions, {deployment: {} for deployment in contexts}
