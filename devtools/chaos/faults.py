"""The ways ``eco2 chaos`` breaks the running local stack, one table of scenarios.

A process of the stack is SIGKILLed (the supervisor restarts it) or frozen (SIGSTOP, then
SIGCONT); a Serve replica is killed through Ray (the Serve controller starts another); an AI
worker node loses every process at once (a machine gone); the model simulator starts failing a
share of its calls. Each fault says when it struck and which part must be healthy again, so the
run can time the recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from cluster import probes
from cluster.process import processes_mentioning
from cluster.state import ComponentState, StackState, read_state
from cluster.topology import AI_WORKER_PREFIX

FREEZE_S = 10.0
"""How long a frozen part stays frozen: shorter than the supervisor's verdict on a hung part
(3 failed checks 5 s apart), so the part thaws rather than being replaced."""
HEALED_WITHIN_S = 300.0
MODEL_FAULTS: dict[str, float] = {
    "rate_429": 0.10,
    "rate_500": 0.05,
    "rate_hang": 0.02,
    "rate_malformed": 0.01,
}
"""The model-fault mix of issue 19: the share of calls answered 429, 500, never, or garbled."""
MODEL_HANG_S = 120.0
"""A hung call outlasts the model client's request timeout: the client gives up, not the
simulator."""


@dataclass
class Struck:
    """What a fault did: when, to what, and the part that must be healthy again."""

    at: float
    what: str
    component: str | None = None
    old_pid: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Stack:
    """The running stack as the faults see it: its recorded state, read afresh each time (a
    restarted part has a new pid, a restarted Ray a new address)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)

    def state(self) -> StackState:
        state = read_state(self.run_dir)
        if state is None:
            raise RuntimeError(f"no stack state in {self.run_dir}")
        return state

    def component(self, name: str) -> ComponentState:
        return self.state().components[name]

    def has(self, name: str) -> bool:
        components = self.state().components
        return name in components and components[name].pid is not None

    def ai_nodes(self) -> list[str]:
        return sorted(n for n in self.state().components if n.startswith(AI_WORKER_PREFIX))

    async def healed(self, struck: Struck) -> float | None:
        """Seconds from the fault until its part is recorded healthy in a new process (or,
        for a freeze, healthy again); None when it has no supervised part."""
        if struck.component is None:
            return None
        while time.monotonic() - struck.at < HEALED_WITHIN_S:
            part = self.component(struck.component)
            if part.phase == "failed":
                raise RuntimeError(f"{struck.component} given up: {part.last_failure}")
            fresh = struck.old_pid is None or part.pid not in (None, struck.old_pid)
            if part.phase == "healthy" and fresh:
                return time.monotonic() - struck.at
            await asyncio.sleep(0.25)
        raise RuntimeError(f"{struck.component} not healthy within {HEALED_WITHIN_S:.0f} s")


def _sigkill(stack: Stack, name: str) -> Struck:
    pid = stack.component(name).pid
    if pid is None:
        raise RuntimeError(f"{name} has no process to kill")
    os.kill(pid, signal.SIGKILL)
    return Struck(time.monotonic(), f"SIGKILL {name} (pid {pid})", name, pid)


def killing(name: str) -> Callable[[Stack], Awaitable[Struck]]:
    async def strike(stack: Stack) -> Struck:
        return _sigkill(stack, name)

    return strike


def freezing(name: str, seconds: float = FREEZE_S) -> Callable[[Stack], Awaitable[Struck]]:
    async def strike(stack: Stack) -> Struck:
        pid = stack.component(name).pid
        if pid is None:
            raise RuntimeError(f"{name} has no process to freeze")
        at = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            with contextlib.suppress(ProcessLookupError):  # replaced by the supervisor
                os.kill(pid, signal.SIGCONT)
        return Struck(at, f"SIGSTOP {name} (pid {pid}) for {seconds:.0f} s", name)

    return strike


_KILL_REPLICAS = """
import sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
killed = 0
for actor in ray.util.list_named_actors(all_namespaces=True):
    if actor["name"].startswith(f"SERVE_REPLICA::{sys.argv[2]}#{sys.argv[3]}#"):
        ray.kill(ray.get_actor(actor["name"], namespace=actor["namespace"]), no_restart=True)
        killed += 1
print(killed)
"""


def kill_replicas(ray_address: str, app: str, deployment: str) -> int:
    """Kill every replica of a Serve deployment, in a subprocess (the caller holds no Ray
    connection); Serve's controller starts new ones. How many were killed."""
    done = subprocess.run(
        [sys.executable, "-c", _KILL_REPLICAS, ray_address, app, deployment],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def killing_replicas(app: str, deployment: str) -> Callable[[Stack], Awaitable[Struck]]:
    async def strike(stack: Stack) -> Struck:
        address = stack.state().env["ECO2_RAY__ADDRESS"]
        at = time.monotonic()
        killed = await asyncio.to_thread(kill_replicas, address, app, deployment)
        if not killed:
            raise RuntimeError(f"no replica of {app}:{deployment} found")
        # No process of the supervisor's died (Serve's controller replaces the replicas), so
        # there is no healthy_after_s: served_again_s says when scans went through again.
        return Struck(at, f"ray.kill {killed} replica(s) of {app}:{deployment}")

    return strike


def _ai_node_running(stack: Stack, app: str, deployment: str) -> str:
    """The local AI worker node (component name) that runs a replica of ``deployment``, as
    Serve reports it; the first AI node when none can be told."""
    nodes = stack.ai_nodes()
    dashboard = stack.state().env.get("ECO2_RAY__DASHBOARD_URL")
    if not dashboard:
        return nodes[0]
    status = httpx.get(f"{dashboard}/api/serve/applications/", timeout=10).json()
    replicas = status["applications"][app]["deployments"][deployment]["replicas"]
    running = [r["node_id"] for r in replicas if r["state"] == "RUNNING"]
    listed = probes.ray_nodes(dashboard)
    ports = (
        {n["node_id"]: n["node_manager_port"] for n in listed} if isinstance(listed, list) else {}
    )
    wanted = {ports.get(node_id) for node_id in running}
    return next(
        (n for n in nodes if stack.component(n).ports.get("node_manager") in wanted), nodes[0]
    )


async def kill_ai_node(stack: Stack) -> Struck:
    """SIGKILL every process of the AI worker node running the VisionStage: a machine lost at
    once, with model calls in flight on it."""
    name = await asyncio.to_thread(_ai_node_running, stack, "scan", "VisionStage")
    part = stack.component(name)
    victims = processes_mentioning(part.watch_paths)
    if not victims:
        raise RuntimeError(f"no process of {name} found")
    at = time.monotonic()
    for proc in victims:
        proc.send_signal(signal.SIGKILL)
    return Struck(at, f"SIGKILL {len(victims)} processes of {name}", name, part.pid)


def sim_url(stack: Stack) -> str:
    return stack.state().env["ECO2_MODEL__BASE_URL"].removesuffix("/v1")


def model_config(stack: Stack) -> dict[str, Any]:
    config: dict[str, Any] = httpx.get(f"{sim_url(stack)}/sim/config", timeout=10).json()
    return config


def put_model_config(stack: Stack, config: dict[str, Any]) -> None:
    httpx.put(f"{sim_url(stack)}/sim/config", json=config, timeout=10).raise_for_status()


def model_stats(stack: Stack) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{sim_url(stack)}/stats", timeout=30).json()
    return stats


async def model_faults(stack: Stack) -> Struck:
    """Every model call kind from now on: 10 % 429, 5 % 500, 2 % hang, 1 % malformed (the
    previous configuration is restored by the run when the load is over)."""
    config = await asyncio.to_thread(model_config, stack)
    faulty = json.loads(json.dumps(config))
    for kind in faulty["kinds"].values():
        kind.update(MODEL_FAULTS)
    faulty["hang_s"] = MODEL_HANG_S
    await asyncio.to_thread(put_model_config, stack, faulty)
    return Struck(time.monotonic(), f"model faults {MODEL_FAULTS}", details={"restore": config})


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    strike: Callable[[Stack], Awaitable[Struck]]
    needs: Callable[[Stack], str | None] = lambda stack: None
    """Why the scenario cannot run on this stack, or None."""
    strict_calls: bool = False
    """No process dies: a stage's model call completing twice means a committed stage ran
    again (with a death, a call completed by a replica that died before committing is
    legitimately made again)."""


def _needs_part(name: str) -> Callable[[Stack], str | None]:
    return lambda stack: None if stack.has(name) else f"the stack runs no {name}"


def _needs_ai_nodes(stack: Stack) -> str | None:
    if stack.ai_nodes():
        return None
    return "needs the multi-node stack: eco2 up --detach --ai-workers 2"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "stage-replica",
            "kill the VisionStage replicas",
            killing_replicas("scan", "VisionStage"),
        ),
        Scenario(
            "scan-ingress",
            "kill the scan ingress replicas",
            killing_replicas("scan", "ScanIngress"),
        ),
        Scenario("streams", "SIGKILL the stream service", killing("streams")),
        Scenario("relay", "SIGKILL the CDC relay", killing("cdc_relay")),
        Scenario(
            "consumers",
            "SIGKILL the domain host (every consumer and projector)",
            killing("domains"),
        ),
        Scenario("gateway", "SIGKILL the gateway", killing("gateway")),
        Scenario("postgres", "SIGKILL PostgreSQL (crash recovery)", killing("postgres")),
        Scenario("valkey", "SIGKILL Valkey (progress, read models, blacklist)", killing("valkey")),
        Scenario(
            "broker-freeze",
            f"freeze the broker for {FREEZE_S:.0f} s",
            freezing("kafka"),
            _needs_part("kafka"),
        ),
        Scenario(
            "ai-node",
            "SIGKILL every process of the AI worker node running the VisionStage",
            kill_ai_node,
            _needs_ai_nodes,
        ),
        Scenario(
            "model-faults",
            "the model answers 10 % 429, 5 % 500, 2 % never, 1 % garbled",
            model_faults,
            strict_calls=True,
        ),
    )
}
