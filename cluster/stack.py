"""Start the stack's components in dependency order, watch them, stop them in reverse order.

Components whose requirements are healthy start concurrently (each in its own thread), so the
slow parts (Ray, initdb) overlap. Every child gets the whole stack's ``ECO2_*`` URLs in its
environment: they are known once ports are picked, before anything starts.

On any failure the stack stops everything it started and raises :class:`StackStartError`
naming the component, the reason and its log (with the log's last lines).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from cluster import process
from cluster.component import Component, Context, RunPaths
from cluster.healing import RestartBudget, Watch, requirements
from cluster.ports import pick_port_range, pick_ports
from cluster.state import ComponentState, StackState, write_state
from cluster.topology import (
    default_components,
    exported_traces_env,
    prometheus_binary,
    wants_trace_backend,
)
from eco2.settings import Settings

log = logging.getLogger(__name__)

_POLL_S = 0.25


class StackStartError(RuntimeError):
    """A component did not become healthy; everything started before it has been stopped."""

    def __init__(self, component: str, reason: str, log_path: Path | None = None) -> None:
        self.component, self.reason, self.log_path = component, reason, log_path
        self.log_tail = process.log_tail(log_path)
        super().__init__(f"{component}: {reason}")

    def describe(self) -> str:
        text = f"component {self.component!r} failed: {self.reason}"
        if self.log_path is not None:
            text += f"\n  log: {self.log_path}"
        if self.log_tail:
            text += "\n  last lines:\n" + "\n".join(
                f"    {line}" for line in self.log_tail.split("\n")
            )
        return text


class _Aborted(Exception):
    pass


def ordered(components: Iterable[Component]) -> list[Component]:
    """``components`` with every requirement before its dependants (stable otherwise).

    Raises ``ValueError`` on an unknown requirement or a cycle.
    """
    pending = list(components)
    names = {c.name for c in pending}
    for c in pending:
        if unknown := set(c.requires) - names:
            raise ValueError(f"component {c.name!r} requires unknown {sorted(unknown)}")
    result: list[Component] = []
    placed: set[str] = set()
    while pending:
        ready = [c for c in pending if set(c.requires) <= placed]
        if not ready:
            raise ValueError(f"dependency cycle among {[c.name for c in pending]}")
        result.append(ready[0])
        placed.add(ready[0].name)
        pending.remove(ready[0])
    return result


@dataclass
class _Member:
    component: Component
    ctx: Context
    state: ComponentState
    budget: RestartBudget
    popen: subprocess.Popen[bytes] | None = None


class Stack:
    """The local stack in one run directory; this process supervises its children."""

    def __init__(
        self,
        settings: Settings,
        components: Iterable[Component] | None = None,
        run_dir: Path | None = None,
    ) -> None:
        self.settings = settings
        self.run_dir = (run_dir or settings.run_dir).expanduser().resolve()
        self.paths = RunPaths(self.run_dir)
        self.components = ordered(
            default_components(
                settings.ray.ai_workers,
                traces=wants_trace_backend(settings),
                prometheus=prometheus_binary() is not None,
            )
            if components is None
            else components
        )
        self._needs = requirements(self.components)
        self.abort = threading.Event()
        self._lock = threading.Lock()
        self._members: dict[str, _Member] = {}
        self._launched: list[str] = []
        self.state = StackState(
            run_dir=str(self.run_dir),
            supervisor_pid=os.getpid(),
            supervisor_create_time=process.create_time_of(os.getpid()),
        )

    # --- start ------------------------------------------------------------------------------

    def start(self) -> StackState:
        """Bring every component up; raise :class:`StackStartError` (all stopped) if one fails."""
        self.paths.logs.mkdir(parents=True, exist_ok=True)
        self.state.started_at = time.time()
        self._plan()
        self._save()
        try:
            self._bring_up_all()
        except StackStartError as exc:
            self.stop()
            self.state.phase, self.state.error = "failed", exc.describe()
            self._save()
            raise
        self.state.phase = "up"
        self._save()
        return self.state

    def _plan(self) -> None:
        """Pick ports, work out every URL and the children's environment."""
        local = [c for c in self.components if c.external_url(self.settings) is None]
        pinned = {p for c in local for p in c.fixed_ports(self.settings).values()}
        free = iter(pick_ports(sum(len(c.ports) for c in local), exclude=frozenset(pinned)))
        self.state.env.update(exported_traces_env(self.settings))
        for c in self.components:
            external = c.external_url(self.settings)
            ports = {} if external else {name: next(free) for name in c.ports}
            ports.update({} if external else c.fixed_ports(self.settings))
            range_start = pick_port_range(c.port_range) if c.port_range and not external else None
            ctx = Context(self.settings, self.paths, ports, self.state.env, external, range_start)
            state = ComponentState(
                name=c.name,
                phase="pending",
                url=c.url(ctx),
                port=ctx.port if ports else None,
                ports=ports,
                port_range_start=range_start,
                log_path=None if external else str(self.paths.log(c.name)),
                external=external is not None,
                watch_paths=c.watch_paths(ctx),
            )
            self._members[c.name] = _Member(c, ctx, state, RestartBudget(self.settings.supervisor))
            self.state.components[c.name] = state
            self.state.env.update(c.exports(ctx))
            for key, value in c.links(ctx).items():
                setattr(self.state, key, value)

    def _bring_up_all(self) -> None:
        done: set[str] = set()
        pending = list(self.components)
        failure: StackStartError | None = None
        with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
            running: dict[Future[None], str] = {}
            while (pending or running) and failure is None:
                for c in [c for c in pending if set(c.requires) <= done]:
                    pending.remove(c)
                    running[pool.submit(self._bring_up, self._members[c.name])] = c.name
                finished, _ = wait(running, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    exc = future.exception()
                    if exc is None:
                        done.add(name)
                    elif failure is None:
                        failure = self._as_start_error(name, exc)
                if failure is None and self.abort.is_set():
                    failure = StackStartError("stack", "start interrupted (signal)")
            self.abort.set()  # stop the threads still waiting
            wait(running)
        self.abort.clear()
        if failure is not None:
            raise failure

    def _as_start_error(self, name: str, exc: BaseException) -> StackStartError:
        if isinstance(exc, StackStartError):
            return exc
        if isinstance(exc, _Aborted):
            return StackStartError("stack", "start interrupted (signal)")
        log_path = self._members[name].state.log_path
        reason = f"{type(exc).__name__}: {exc}"
        return StackStartError(name, reason, Path(log_path) if log_path else None)

    def _bring_up(self, m: _Member) -> None:
        c, ctx, state = m.component, m.ctx, m.state
        started = time.monotonic()
        state.started_at = time.time()
        if state.external:
            state.phase = "external"
        else:
            if c.prepare is not None:
                c.prepare(ctx)
            if c.launch is not None:
                self._launch(m)
        self._wait_healthy(m, started + c.start_deadline_s)
        if c.after_healthy is not None:
            c.after_healthy(ctx)
        state.healthy_after_s = round(time.monotonic() - started, 3)
        if not state.external:
            state.phase = "healthy"
        log.info("%s healthy after %.1f s at %s", c.name, state.healthy_after_s, state.url)
        self._save()

    def _launch(self, m: _Member) -> None:
        assert m.component.launch is not None
        launch = m.component.launch(m.ctx)
        launch = replace(launch, env={**self.state.env, **launch.env})
        with self._lock:
            if self.abort.is_set():
                raise _Aborted
            m.popen = process.spawn(launch, self.paths.log(m.component.name))
            self._launched.append(m.component.name)
        pid = m.popen.pid
        m.state.pid, m.state.pgid = pid, pid  # own session: pgid == pid
        m.state.create_time = process.create_time_of(pid)
        m.state.phase = "starting"
        self._save()

    def _wait_healthy(self, m: _Member, deadline: float) -> None:
        c, reason = m.component, "not checked yet"
        log_path = Path(m.state.log_path) if m.state.log_path else None
        while time.monotonic() < deadline:
            if self.abort.is_set():
                raise _Aborted
            code = m.popen.poll() if m.popen is not None else None
            if c.oneshot and m.popen is not None and code is None:
                time.sleep(_POLL_S)
                continue
            if code is not None and not (c.oneshot and code == 0):
                raise StackStartError(c.name, f"process exited with code {code}", log_path)
            if c.oneshot and m.popen is not None and m.state.pid is not None:
                m.state.pid = m.state.pgid = None  # the setup command is done; nothing to stop
            reason = c.health(m.ctx) or ""
            if not reason:
                return
            time.sleep(_POLL_S)
        limit = c.start_deadline_s
        raise StackStartError(c.name, f"not healthy within {limit:.0f} s: {reason}", log_path)

    # --- run and stop -----------------------------------------------------------------------

    def watch(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: restart components that exit or hang (:mod:`cluster.healing`).

        Each restart runs in its own thread, so a slow one (Ray and its Serve applications)
        does not hold up the watch of the others."""
        policy = self.settings.supervisor
        watch = Watch(policy, self._needs)
        healing: dict[str, Future[None]] = {}
        next_check = time.monotonic() + policy.health_every_s
        with ThreadPoolExecutor(thread_name_prefix="heal") as pool:
            while not stop.wait(1.0):
                for name in [n for n, future in healing.items() if future.done()]:
                    if (error := healing.pop(name).exception()) is not None:
                        log.error("restarting %s went wrong: %r", name, error)
                    watch.forget(name)
                check = time.monotonic() >= next_check
                if check:
                    next_check = time.monotonic() + policy.health_every_s
                for m in self._members.values():
                    if not self._supervised(m) or m.component.name in healing:
                        continue
                    if watch.waits_on_trouble(m.component.name, healing):
                        continue
                    reason = self._failure(m, watch if check else None)
                    if reason is not None:
                        healing[m.component.name] = pool.submit(self._heal, m, reason, stop)
            self.abort.set()  # restarts in progress give up

    @staticmethod
    def _supervised(m: _Member) -> bool:
        return m.popen is not None and not m.component.oneshot and m.state.phase == "healthy"

    def _failure(self, m: _Member, watch: Watch | None) -> str | None:
        """Why ``m`` needs a restart now, or ``None`` (health is asked when ``watch`` is set)."""
        assert m.popen is not None
        code = m.popen.poll()
        if code is not None:
            return f"process exited with code {code}"
        if watch is None:
            return None
        reason = m.component.health(m.ctx)
        cpu_s = None if reason is None else process.cpu_seconds(m.popen.pid)  # only when asked
        return watch.checked(m.component.name, reason, cpu_s)

    def _heal(self, m: _Member, reason: str, stop: threading.Event) -> None:
        """Restart ``m`` with backoff until it is healthy or its budget is spent; when it says
        its direct dependants cannot reconnect by themselves, stop them first and start them
        again after it."""
        name = m.component.name
        m.state.phase, m.state.last_failure = "restarting", reason
        followers = self._followers(name) if m.component.restarts_dependants else []
        for follower in followers:
            follower.state.phase = "restarting"
            follower.state.last_failure = f"{name} restarts"
        self._save()
        # Stopped before ``m`` starts again: clients left running would reconnect to the new
        # process with state it does not know (the broker's consumer groups were seen stuck
        # for good when the old members rejoined before they were replaced).
        with ThreadPoolExecutor(thread_name_prefix="stop") as stopping:  # each may wait its grace
            list(stopping.map(lambda f: stop_member(f.component, f.state), followers))
        while True:
            delay = m.budget.next_delay(time.monotonic())
            if delay is None:
                self._give_up(m, reason)
                for follower in followers:
                    self._give_up(follower, f"it needs {name}, which failed")
                return
            log.error(
                "%s: %s; restarting it in %.0f s (log: %s)", name, reason, delay, m.state.log_path
            )
            if stop.wait(delay):
                return
            try:
                self._restart(m)
                break
            except _Aborted:
                return
            except StackStartError as exc:
                reason = exc.reason
                m.state.last_failure = reason
        for follower in followers:
            self._restart_dependant(follower, name, stop)

    def _followers(self, name: str) -> list[_Member]:
        """What starts again after ``name`` restarted: its direct dependants, and the parts
        without a process of their own that need it (the Serve applications) to be waited for
        until healthy again; in start order."""
        return [
            m
            for m in self._members.values()
            if not m.state.external
            and (
                name in m.component.requires
                or (m.component.launch is None and name in self._needs[m.component.name])
            )
        ]

    def _restart(self, m: _Member) -> None:
        """Stop what is left of ``m``, start it again on the same ports, wait until healthy."""
        stop_member(m.component, m.state)
        m.budget.spend(time.monotonic())
        m.state.restarts += 1
        m.popen = None
        try:
            self._bring_up(m)
        except (_Aborted, StackStartError):
            raise
        except Exception as exc:  # a prepare or after_healthy step (initdb, migrations)
            raise self._as_start_error(m.component.name, exc) from exc
        log.info("%s restarted (restart %d)", m.component.name, m.state.restarts)

    def _restart_dependant(self, m: _Member, requirement: str, stop: threading.Event) -> None:
        """Start ``m`` again after ``requirement`` restarted; when it does not come back, heal
        it like any failed part (backoff, budget)."""
        try:
            self._restart(m)
        except _Aborted:
            return
        except StackStartError as exc:
            self._heal(m, f"did not come back after {requirement} restarted: {exc.reason}", stop)

    def _give_up(self, m: _Member, reason: str) -> None:
        policy = self.settings.supervisor
        m.state.phase = "failed"
        m.state.last_failure = (
            f"{reason}; not restarted again ({m.state.restarts} restarts, at most "
            f"{policy.restart_limit} in {policy.restart_window_s:.0f} s)"
        )
        log.error(
            "%s failed: %s; log: %s", m.component.name, m.state.last_failure, m.state.log_path
        )
        self._save()

    def stop(self) -> list[str]:
        """Stop every started child, last started first; return the names stopped."""
        self.state.phase = "stopping"
        self._save()
        stopped = []
        launched = set(self._launched)
        for name in [c.name for c in reversed(self.components) if c.name in launched]:
            m = self._members[name]
            stop_member(m.component, m.state)
            if m.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    m.popen.wait(timeout=1)
            m.state.phase = "stopped"
            stopped.append(name)
        self._launched.clear()
        self.state.phase = "stopped"
        self._save()
        return stopped

    def _save(self) -> None:
        with self._lock:
            write_state(self.run_dir, self.state)


def stop_member(component: Component | None, state: ComponentState) -> list[int]:
    """Stop one recorded component (also one whose supervisor is gone); return pids signalled.

    A process group outlives its leader, and Linux reuses no pid that is still a group id, so
    the members of the recorded group are ours even when the main process is gone.
    """
    main = process.same_process(state.pid, state.create_time)
    procs = process.tree(main.pid) if main is not None else []
    if state.pgid is not None:
        procs += [p for p in process.group_members(state.pgid) if p not in procs]
    pids = [p.pid for p in procs]
    if procs:
        process.terminate(
            procs,
            pgid=state.pgid,
            sig=component.stop_signal if component else signal.SIGTERM,
            grace_s=component.stop_grace_s if component else 10.0,
            # Without its main process nothing stops the rest in order: signal them all.
            signal_group=component.signal_group if component and main else True,
        )
    leftovers = process.processes_mentioning(state.watch_paths)
    if leftovers:
        log.warning("%s: killing leftover pids %s", state.name, [p.pid for p in leftovers])
        process.terminate(leftovers, sig=signal.SIGKILL, grace_s=5)
        pids += [p.pid for p in leftovers]
    return pids
