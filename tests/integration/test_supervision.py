"""The supervisor heals a running stack: a part that dies or hangs is restarted on its ports with
its data, what cannot reconnect is restarted after it, and a part that keeps dying is left
failed with its reason. A small stack of real processes (Valkey, the embedded broker and three
stand-ins) watched with a quick policy; the tests run in file order on it."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from cluster import probes, topology
from cluster.component import Component, Context
from cluster.process import Launch
from cluster.stack import Stack
from cluster.state import ComponentState, read_state
from eco2.settings import Settings, SupervisorSettings
from tests.conftest import short_run_dir

pytestmark = pytest.mark.integration

POLICY = SupervisorSettings(
    health_every_s=0.5,
    unhealthy_after=2,
    backoff_s=0.2,
    backoff_max_s=1.0,
    restart_limit=2,
    restart_window_s=120.0,
)
HEALED_WITHIN_S = 30.0
SLEEP = [sys.executable, "-c", "import time; time.sleep(3600)"]


def _sick_flag(ctx: Context) -> Path:
    return ctx.paths.root / "sick"


def _flag_health(ctx: Context) -> str | None:
    return "the sick flag is set" if _sick_flag(ctx).exists() else None


def _sleeper(name: str, *requires: str, **extra: Any) -> Component:
    """A part that runs until stopped and is always healthy."""
    return Component(
        name=name,
        requires=requires,
        launch=lambda ctx: Launch(SLEEP),
        url=lambda ctx: "-",
        health=lambda ctx: None,
        **extra,
    )


FOLLOWER = _sleeper("follower", "kafka")
"""Stands for the relay and the consumers: must start again after the broker did."""

CRASHER = Component(
    name="crasher",
    launch=lambda ctx: Launch([sys.executable, "-c", "import time; time.sleep(1); exit(3)"]),
    url=lambda ctx: "-",
    health=lambda ctx: None,
)
"""Dies a second after every start: the supervisor must give it up."""

HANGS = Component(
    name="hangs",
    # Starting again clears the flag: a restart is what cures it.
    prepare=lambda ctx: _sick_flag(ctx).unlink(missing_ok=True),
    launch=lambda ctx: Launch(SLEEP),
    url=lambda ctx: "-",
    health=_flag_health,
)
"""Keeps running but stops answering its health check when the test sets the flag."""


def _doomed_prepare(ctx: Context) -> None:
    if (ctx.paths.root / "doomed").exists():
        raise RuntimeError("cannot start again")


DOOMED = _sleeper("doomed", prepare=_doomed_prepare, restarts_dependants=True)
"""Starts once; once the test sets its flag it cannot start again."""

ITS_FOLLOWER = _sleeper("its_follower", "doomed")


@dataclass
class Watched:
    stack: Stack
    run_dir: Path

    def recorded(self, name: str) -> ComponentState:
        state = read_state(self.run_dir)
        assert state is not None
        return state.components[name]

    def wait_for(self, name: str, done: Callable[[ComponentState], bool]) -> ComponentState:
        deadline = time.monotonic() + HEALED_WITHIN_S
        while time.monotonic() < deadline:
            state = self.recorded(name)
            if done(state):
                return state
            time.sleep(0.2)
        raise AssertionError(f"{name} not as expected within {HEALED_WITHIN_S} s: {state}")

    def kill(self, name: str) -> int:
        pid = self.recorded(name).pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        return pid


@pytest.fixture(scope="module")
def watched() -> Iterator[Watched]:
    run_dir = short_run_dir("e2h-")
    settings = Settings(run_dir=run_dir, supervisor=POLICY)
    parts = [topology.VALKEY, topology.KAFKA, FOLLOWER, CRASHER, HANGS, DOOMED, ITS_FOLLOWER]
    stack = Stack(settings, parts)
    stop = threading.Event()
    watcher = threading.Thread(target=stack.watch, args=(stop,), daemon=True)
    try:
        stack.start()
        watcher.start()
        yield Watched(stack, run_dir)
    finally:
        stop.set()
        watcher.join(timeout=30)
        stack.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _restarted(old_pid: int, times: int = 1) -> Callable[[ComponentState], bool]:
    return lambda s: s.phase == "healthy" and s.restarts == times and s.pid != old_pid


def test_a_killed_valkey_comes_back_on_its_port_with_its_data(watched: Watched) -> None:
    url = watched.stack.state.env["ECO2_CACHE__URL"]
    client = redis.Redis.from_url(url)
    client.set("kept", "yes")
    time.sleep(1.5)  # the append-only file is flushed every second
    old = watched.kill("valkey")

    state = watched.wait_for("valkey", _restarted(old))

    assert state.last_failure is not None
    assert "exited" in state.last_failure
    assert probes.redis_ok(url) is None
    assert client.get("kept") == b"yes"


def test_a_killed_broker_is_restarted_and_so_is_what_depends_on_it(watched: Watched) -> None:
    follower = watched.recorded("follower").pid
    assert follower is not None
    old = watched.kill("kafka")

    watched.wait_for("kafka", _restarted(old))
    state = watched.wait_for("follower", _restarted(follower))

    assert probes.kafka_ok(watched.stack.state.env["ECO2_KAFKA__BOOTSTRAP"]) is None
    assert state.restarts == 1


def test_a_part_that_stops_answering_is_restarted(watched: Watched) -> None:
    old = watched.recorded("hangs").pid
    assert old is not None
    (watched.run_dir / "sick").touch()

    state = watched.wait_for("hangs", _restarted(old))

    assert state.last_failure is not None
    assert "the sick flag is set" in state.last_failure


def test_a_part_that_keeps_dying_is_left_failed_with_its_reason(watched: Watched) -> None:
    state = watched.wait_for("crasher", lambda s: s.phase == "failed")

    assert state.restarts == POLICY.restart_limit
    assert state.last_failure is not None
    assert "exited with code 3" in state.last_failure
    assert "not restarted again" in state.last_failure
    # The others are untouched by it.
    assert watched.recorded("valkey").phase == "healthy"


def test_what_needs_a_part_that_cannot_come_back_is_failed_with_it(watched: Watched) -> None:
    (watched.run_dir / "doomed").touch()
    watched.kill("doomed")

    doomed = watched.wait_for("doomed", lambda s: s.phase == "failed")
    follower = watched.wait_for("its_follower", lambda s: s.phase == "failed")

    assert doomed.last_failure is not None
    assert "cannot start again" in doomed.last_failure
    assert follower.last_failure is not None
    assert "it needs doomed, which failed" in follower.last_failure
