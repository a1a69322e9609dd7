"""When the supervisor restarts a part of the running stack, and when it stops trying.

Pure bookkeeping, no processes: :class:`cluster.stack.Stack` asks :class:`Watch` whether a
component has failed and :class:`RestartBudget` how long to wait before restarting it.

* A component **fails** when its process exits, or when its health check fails
  ``unhealthy_after`` times in a row while everything it requires is healthy (a part that only
  waits for its database is not hung, and restarting it would not help).
* A failed component is restarted after a backoff (``backoff_s``, doubled for each earlier
  restart in the window, at most ``backoff_max_s``); after ``restart_limit`` restarts within
  ``restart_window_s`` it is left **failed**, and ``eco2 status`` names it with the reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from cluster.component import Component
from eco2.settings import SupervisorSettings


class RestartBudget:
    """The restarts of one component within the window, and the wait before the next."""

    def __init__(self, policy: SupervisorSettings) -> None:
        self._policy = policy
        self._times: deque[float] = deque()

    def next_delay(self, now: float) -> float | None:
        """Seconds to wait before the next restart, or ``None`` when the budget is spent."""
        while self._times and now - self._times[0] > self._policy.restart_window_s:
            self._times.popleft()
        if len(self._times) >= self._policy.restart_limit:
            return None
        delay = self._policy.backoff_s * 2 ** len(self._times)
        return float(min(delay, self._policy.backoff_max_s))

    def spend(self, now: float) -> None:
        self._times.append(now)


class Watch:
    """Consecutive failed health checks per component, and who is in trouble."""

    def __init__(self, policy: SupervisorSettings, needs: Mapping[str, set[str]]) -> None:
        """``needs``: every component's requirements, direct and indirect (:func:`requirements`)."""
        self._policy = policy
        self._needs = needs
        self._failing: dict[str, int] = {}

    def checked(self, name: str, reason: str | None) -> str | None:
        """Record a health check; the reason to restart ``name`` once it counts as hung."""
        if reason is None:
            self._failing.pop(name, None)
            return None
        count = self._failing[name] = self._failing.get(name, 0) + 1
        if count < self._policy.unhealthy_after:
            return None
        return f"unhealthy for {count} checks in a row: {reason}"

    def forget(self, name: str) -> None:
        """``name`` was (re)started: its failed checks no longer count."""
        self._failing.pop(name, None)

    def waits_on_trouble(self, name: str, troubled: Iterable[str]) -> bool:
        """Whether something ``name`` requires (directly or not) is failing or being healed."""
        return not self._needs.get(name, set()).isdisjoint({*troubled, *self._failing})


def requirements(components: Iterable[Component]) -> dict[str, set[str]]:
    """Every component's direct and indirect requirements, by name."""
    direct = {c.name: c.requires for c in components}
    needs: dict[str, set[str]] = {}

    def of(name: str) -> set[str]:
        if name not in needs:
            needs[name] = set()
            for required in direct.get(name, ()):
                needs[name] |= {required, *of(required)}
        return needs[name]

    for name in direct:
        of(name)
    return needs
