"""When the supervisor restarts a part of the running stack, and when it stops trying.

Pure bookkeeping, no processes: :class:`cluster.stack.Stack` asks :class:`Watch` whether a
component has failed and :class:`RestartBudget` how long to wait before restarting it.

* A component **fails** when its process exits, or when its health check fails
  ``unhealthy_after`` times in a row while everything it requires is healthy (a part that only
  waits for its database is not hung, and restarting it would not help). A process that kept
  using the CPU between the failed checks is busy, not hung (a stream service holding 900
  streams on two saturated cores answers its check late): it fails only after
  ``busy_unhealthy_after`` checks in a row, so a loop that spins for good is still caught.
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


BUSY_CPU_S = 0.05
"""CPU seconds used between two checks that make a process that failed its check busy."""


class Watch:
    """Consecutive failed health checks per component, and who is in trouble."""

    def __init__(self, policy: SupervisorSettings, needs: Mapping[str, set[str]]) -> None:
        """``needs``: every component's requirements, direct and indirect (:func:`requirements`)."""
        self._policy = policy
        self._needs = needs
        self._failing: dict[str, int] = {}
        self._idle: dict[str, int] = {}
        self._cpu: dict[str, float] = {}

    def checked(self, name: str, reason: str | None, cpu_s: float | None = None) -> str | None:
        """Record a health check; the reason to restart ``name`` once it counts as hung.
        ``cpu_s``: with a failed check, the CPU time its processes have used so far (``None``:
        unknown); compared with the last failed check's, so the first counts as idle."""
        if reason is None:
            self.forget(name)
            return None
        before = self._cpu.pop(name, None)
        if cpu_s is not None:
            self._cpu[name] = cpu_s
        busy = cpu_s is not None and before is not None and cpu_s - before >= BUSY_CPU_S
        count = self._failing[name] = self._failing.get(name, 0) + 1
        idle = self._idle[name] = self._idle.get(name, 0) + (0 if busy else 1)
        if idle >= self._policy.unhealthy_after:
            return f"unhealthy for {count} checks in a row, idle through {idle}: {reason}"
        if count >= self._policy.busy_unhealthy_after:
            return f"unhealthy for {count} checks in a row while busy: {reason}"
        return None

    def forget(self, name: str) -> None:
        """``name`` was (re)started: its failed checks no longer count."""
        self._failing.pop(name, None)
        self._idle.pop(name, None)
        self._cpu.pop(name, None)

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
