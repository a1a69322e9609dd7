"""The supervisor process and the operations on a recorded stack (``up``, ``down``, ``status``).

Exactly one supervisor owns a run directory: the process whose pid ``stack.json`` records. It
starts the stack, watches it and, on SIGTERM or SIGINT, stops every component in reverse
dependency order and removes ``stack.json``. ``down`` signals it and then makes sure nothing it
recorded is left alive, also when the supervisor itself died.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from cluster import process
from cluster.component import Component, Context, RunPaths
from cluster.stack import Stack, StackStartError, stop_member
from cluster.state import ComponentState, StackState, read_state, remove_state
from cluster.topology import ai_workers_in, all_data_paths, default_components
from eco2.settings import Settings

log = logging.getLogger(__name__)

SUPERVISOR_STOP_TIMEOUT_S = 120.0
DETACHED_START_TIMEOUT_S = 300.0


def run_dir_of(settings: Settings) -> Path:
    return settings.run_dir.expanduser().resolve()


def supervisor_alive(state: StackState) -> bool:
    return process.same_process(state.supervisor_pid, state.supervisor_create_time) is not None


def _components_by_name(state: StackState) -> dict[str, Component]:
    """The components of the recorded stack (its AI worker nodes included)."""
    return {c.name: c for c in default_components(ai_workers_in(state.components))}


# --- the supervisor -----------------------------------------------------------------------


def run_supervisor(settings: Settings, on_up: Callable[[StackState], None] | None = None) -> int:
    """Start the stack in this process, keep it up until SIGTERM/SIGINT, then stop it.

    Returns 0 after a clean stop, 1 if the stack failed to start (the reason stays in
    ``stack.json`` with phase ``failed``).
    """
    stack = Stack(settings)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping the stack", signal.Signals(signum).name)
        stop.set()
        stack.abort.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            state = stack.start()
        except StackStartError as exc:
            log.error("%s", exc.describe())
            return 1
        if on_up is not None:
            on_up(state)
        stack.watch(stop)
        stopped = stack.stop()
        log.info("stopped %s", ", ".join(stopped))
        remove_state(stack.run_dir)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start_detached(settings: Settings) -> tuple[int, StackState | None, str]:
    """Start a supervisor in a new session; wait until it reports up or failed.

    Returns ``(exit code, state, message)``.
    """
    run_dir = run_dir_of(settings)
    paths = RunPaths(run_dir)
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.logs / "supervisor.log"
    env = {**os.environ, "ECO2_RUN_DIR": str(run_dir)}
    with log_path.open("ab") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", "cluster", "supervise"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + DETACHED_START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state(run_dir)
        if state is not None and state.supervisor_pid == child.pid:
            if state.phase == "up":
                return 0, state, "up"
            if state.phase in ("failed", "stopped"):
                child.wait(timeout=SUPERVISOR_STOP_TIMEOUT_S)
                return 1, state, state.error or "the stack failed to start"
        code = child.poll()
        if code is not None:
            tail = process.log_tail(log_path)
            return 1, state, f"supervisor exited with code {code}; {log_path}:\n{tail}"
        time.sleep(0.3)
    return 1, read_state(run_dir), f"not up within {DETACHED_START_TIMEOUT_S:.0f} s; see {log_path}"


# --- operations on a recorded stack ---------------------------------------------------------


def stop_recorded(state: StackState) -> list[tuple[str, list[int]]]:
    """Stop whatever the recorded components left alive (reverse order); return what was hit."""
    known = _components_by_name(state)
    hit = []
    for name, recorded in reversed(list(state.components.items())):
        if recorded.external:
            continue
        pids = stop_member(known.get(name), recorded)
        if pids:
            hit.append((name, pids))
    return hit


@dataclass(frozen=True)
class DownResult:
    was_up: bool
    stopped: list[str]
    leftovers: list[tuple[str, list[int]]]


def down(settings: Settings) -> DownResult:
    """Stop the stack in ``settings.run_dir`` (no-op when nothing is up) and remove its state."""
    run_dir = run_dir_of(settings)
    state = read_state(run_dir)
    if state is None:
        return DownResult(False, [], [])
    supervisor = process.same_process(state.supervisor_pid, state.supervisor_create_time)
    if supervisor is not None and supervisor.pid != os.getpid():
        supervisor.terminate()
        _, alive = psutil.wait_procs([supervisor], timeout=SUPERVISOR_STOP_TIMEOUT_S)
        for proc in alive:
            log.warning("supervisor %s did not stop; killing it", proc.pid)
            proc.kill()
    leftovers = stop_recorded(state)
    remove_state(run_dir)
    stopped = [n for n, c in state.components.items() if not c.external and c.pid is not None]
    return DownResult(supervisor is not None, stopped, leftovers)


def clear_stale(run_dir: Path) -> None:
    """A ``stack.json`` whose supervisor is gone: stop what it left behind, forget it."""
    state = read_state(run_dir)
    if state is None or supervisor_alive(state):
        return
    for name, pids in stop_recorded(state):
        log.warning("stale stack: stopped leftover %s pids %s", name, pids)
    remove_state(run_dir)


def wipe_data(settings: Settings) -> list[Path]:
    """Remove every component's data (``eco2 up --fresh``); the logs stay."""
    paths = RunPaths(run_dir_of(settings))
    removed = []
    for path in all_data_paths(paths, default_components(settings.ray.ai_workers)):
        if path.exists():
            shutil.rmtree(path)
            removed.append(path)
    return removed


def probe(settings: Settings, state: StackState) -> dict[str, Any]:
    """Ask every recorded component, live, whether it is healthy."""
    known = _components_by_name(state)
    components: dict[str, dict[str, Any]] = {}
    for name, recorded in state.components.items():
        reason = _probe_one(settings, state, known.get(name), recorded)
        components[name] = {
            "healthy": reason is None,
            "url": recorded.url,
            "reason": reason,
            "pid": recorded.pid,
            "external": recorded.external,
            "log_path": recorded.log_path,
            "phase": recorded.phase,
            "restarts": recorded.restarts,
            "last_failure": recorded.last_failure,
        }
    up = supervisor_alive(state) and state.phase == "up"
    return {
        "up": up,
        "phase": state.phase if up or state.phase == "failed" else "down",
        "run_dir": state.run_dir,
        "supervisor_pid": state.supervisor_pid,
        "components": components,
        "api_url": state.api_url,
        "dashboard_url": state.dashboard_url,
        "traces_url": state.traces_url,
        "prometheus_url": state.prometheus_url,
        "env": state.env,
        "error": state.error,
    }


def _probe_one(
    settings: Settings, state: StackState, component: Component | None, recorded: ComponentState
) -> str | None:
    if component is None:
        return "not a component of this version of the stack"
    if recorded.phase == "failed":
        return f"failed: {recorded.last_failure}"
    if recorded.phase == "restarting":
        return f"restarting ({recorded.last_failure})"
    alive = process.same_process(recorded.pid, recorded.create_time) is not None
    runs_a_process = component.launch is not None and not component.oneshot
    if not recorded.external and runs_a_process and not alive:
        return "process is not running"
    ctx = Context(
        settings,
        RunPaths(Path(state.run_dir)),
        dict(recorded.ports),
        dict(state.env),
        recorded.url if recorded.external else None,
        recorded.port_range_start,
    )
    return component.health(ctx)
