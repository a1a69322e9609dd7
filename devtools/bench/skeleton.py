"""``eco2 bench skeleton``: the bare Ray Serve skeleton's ceiling on this machine, now.

Starts a Ray head of its own (in a temporary run directory, with the environment the stack's
head gets: ``RAY_SERVE_THROUGHPUT_OPTIMIZED``, HAProxy), deploys
:mod:`devtools.bench.skeleton_app` through the dashboard's Serve REST API as the stack deploys
its applications, drives it with the scan bench's closed-loop users over the synchronous call,
and stops the head. The figures are the ceiling of ``../shared/docs/performance-notes.md``
measured in the same sitting as ``eco2 bench scan``, so the project is compared with it as a
ratio, not across days (these machines differ by 2x from one day to the next).

Run it with the local stack down: an idle stack takes a quarter of a core from the skeleton
(the result says whether one was up).
"""

from __future__ import annotations

import os
import time
from typing import Annotated, Any

import httpx
import psutil
import typer

from cluster import probes, process
from cluster.ports import HOST, pick_ports
from cluster.serve_start import DEPLOY_PATH
from cluster.state import read_state
from cluster.supervisor import run_dir_of, supervisor_alive
from cluster.topology import RAY
from devtools.bench import loadgen
from devtools.bench.machine import machine
from devtools.bench.own_stack import own_stack
from devtools.bench.scan import cpu_ms_per_unit, cpu_of
from eco2.settings import Settings, load_settings

READY_DEADLINE_S = 180.0
APP_NAME = "skeleton"
IMPORT_PATH = "devtools.bench.skeleton_app:build_app"
"""Imported by Serve in the replicas only: this command (and ``eco2``'s CLI) never imports Ray."""


def skeleton_config(port: int, vision_s: float, answer_s: float) -> dict[str, Any]:
    """The Serve config that deploys the skeleton alone, listening on ``port``."""
    return {
        "proxy_location": "HeadOnly",
        "http_options": {"host": HOST, "port": port},
        "applications": [
            {
                "name": APP_NAME,
                "import_path": IMPORT_PATH,
                "route_prefix": "/",
                "args": {"vision_s": vision_s, "answer_s": answer_s},
            }
        ],
    }


def _wait_ready(dashboard: str, url: str) -> None:
    deadline = time.monotonic() + READY_DEADLINE_S
    reason: str | None = "not asked yet"
    while time.monotonic() < deadline:
        reason = probes.serve_app_running(dashboard, APP_NAME)
        if reason is None:
            try:
                response = httpx.post(f"{url}/v1/scan:classify", json={}, timeout=30)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 200:
                    return
                reason = f"classify answered HTTP {response.status_code}"
        time.sleep(1.0)
    raise RuntimeError(f"the skeleton did not come up in {READY_DEADLINE_S:g} s: {reason}")


def _stack_up(settings: Settings) -> bool:
    state = read_state(run_dir_of(settings))
    return state is not None and supervisor_alive(state)


def run_skeleton(
    settings: Settings,
    *,
    users: int,
    duration_s: float,
    ramp_s: float,
    vision_s: float,
    answer_s: float,
) -> dict[str, Any]:
    """Start a head, deploy the skeleton, drive it, stop the head; the figures."""
    if settings.ray.address:
        raise typer.BadParameter(
            "ECO2_RAY__ADDRESS is set: the skeleton runs on a Ray head of its own; unset it"
        )
    with own_stack(settings, (RAY,), "skel-") as state:
        dashboard = state.env["ECO2_RAY__DASHBOARD_URL"]
        port = pick_ports(1)[0]
        response = httpx.put(
            f"{dashboard}{DEPLOY_PATH}",
            json=skeleton_config(port, vision_s, answer_s),
            timeout=60,
        )
        response.raise_for_status()
        url = f"http://{HOST}:{port}"
        _wait_ready(dashboard, url)
        host = machine()
        head = process.tree(os.getpid())[1:]  # this process (the load generator) apart
        before = cpu_of(head)
        result = loadgen.run(
            loadgen.Target(url, url),
            loadgen.make_users(users, "direct"),
            duration_s,
            ramp_s,
            vision_s + answer_s,
            "sync",
        )
        cpu_ms = cpu_ms_per_unit(before, cpu_of(head), result["all_completed"])
    model_s = vision_s + answer_s
    ideal = users / model_s * 60 if model_s else None  # no model time: no closed-loop ideal
    return {
        **result,
        "ideal_completed_per_min": None if ideal is None else round(ideal, 1),
        "of_ideal": None if ideal is None else round(result["completed_per_min"] / ideal, 3),
        "cpu_percent": round(result["machine_cpu_percent"] - result["driver_cpu_percent"], 1),
        "head_cpu_ms_per_scan": cpu_ms,
        "machine": host,
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }


def bench_skeleton(
    users: Annotated[int, typer.Option(min=1, max=5000)] = 900,
    duration: Annotated[float, typer.Option(min=5, max=900, help="Measured seconds.")] = 60,
    ramp: Annotated[float, typer.Option(min=0, max=300, help="Ramp-up seconds.")] = 20,
    vision_ms: Annotated[float, typer.Option(min=0, help="The first stage's sleep.")] = 4500,
    answer_ms: Annotated[float, typer.Option(min=0, help="The second stage's sleep.")] = 6700,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """The bare Serve skeleton (an ingress and two sleeping stages) on a Ray head of its own:
    the ceiling the scan pipeline is compared with, measured in the same sitting."""
    settings = load_settings()
    stack_up = _stack_up(settings)
    if stack_up:
        typer.echo(
            "warning: the local stack is up; its idle processes share these cores with the "
            "skeleton (run `eco2 down` first for a clean ceiling)",
            err=True,
        )
    result = run_skeleton(
        settings,
        users=users,
        duration_s=duration,
        ramp_s=ramp,
        vision_s=vision_ms / 1000,
        answer_s=answer_ms / 1000,
    )
    result = {
        "command": (
            f"eco2 bench skeleton --users {users} --duration {duration:g} --ramp {ramp:g} "
            f"--vision-ms {vision_ms:g} --answer-ms {answer_ms:g} --json"
        ),
        "what": (
            "a FastAPI ingress and two Serve stages that only sleep, on a Ray head of its own "
            "(HAProxy, throughput-optimised), driven over one synchronous call per scan"
        ),
        "users": users,
        "model_latency_ms": {"vision": vision_ms, "answer": answer_ms},
        "local_stack_up": stack_up,
        **result,
    }
    if json_output:
        typer.echo(loadgen.to_json(result))
        return
    keys = (
        *("users", "completed", "failed", "completed_per_min", "of_ideal"),
        *("e2e_p50_s", "e2e_p95_s", "cpu_percent", "driver_cpu_percent"),
    )
    typer.echo("\n".join(f"{k:>20}: {result[k]}" for k in keys))


if __name__ == "__main__":
    typer.run(bench_skeleton)
