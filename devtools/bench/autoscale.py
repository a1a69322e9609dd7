"""``eco2 bench autoscale``: how fast the AI stages follow a step in load, and back.

Closed-loop users (``loadgen``) keep ``--base`` scans in flight for ``--lead`` seconds, then
``--peak`` more (joining over ``--step-ramp`` seconds) for ``--hold`` seconds, then ``--base``
again. The lead lets the scan ingress learn what a job takes before the step (its in-flight
limit, ``pipelines/jobs/admission.py``, admits by that), as a service that has been running
has. The simulator's latency (``--model-latency``, 20 s per stage by default) is long enough
that an admitted scan waits at the AI stages, so users ≈ scans in flight there, which is what
Serve's autoscaling counts. Meanwhile Serve's view of every AI stage deployment
(``GET /api/serve/applications/`` on the dashboard) is sampled twice a second: its target
replica count and its running replicas, with their nodes.

Figures: per AI stage, the replica counts before, at the peak and after; seconds from the step up
until every stage whose target rose runs that many replicas (``upscale_s``), and per stage when
Serve raised its target and when the new replicas ran (``per_stage_s``: a downstream stage sees
its load one upstream model time later); from the step down until every stage is back at its
starting count (``downscale_s``, ``None`` if not within ``--settle``); failed scans during the
whole run (the ramp included), by reason; submits shed by the ingress (``shed``, each sent again
after its ``Retry-After``); and when half and all of the joining users had a scan accepted
(``step_admitted``): until then the step is still crossing the front, not yet at the stages.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
import httpx
import psutil
import typer

import eco2.loop
from cluster.running import api_url, running_state, serve_url
from devtools.bench import loadgen
from devtools.bench.machine import machine
from devtools.bench.scan import parse_latency, set_sim_latency

SAMPLE_S = 0.5
AI_STAGES = ("VisionStage", "AnswerStage", "TextStage")


@dataclass
class Sample:
    at_s: float
    target: dict[str, int]
    running: dict[str, int]


@dataclass
class Timeline:
    samples: list[Sample] = field(default_factory=list)
    nodes: dict[str, set[str]] = field(default_factory=dict)
    """Deployment → the nodes its replicas ran on at any point."""


def _stages(applications: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``app/Deployment`` → Serve's details, for the AI stage deployments."""
    return {
        f"{app}/{name}": details
        for app, status in applications.items()
        for name, details in status.get("deployments", {}).items()
        if name in AI_STAGES
    }


async def _sample(
    session: aiohttp.ClientSession, dashboard: str, started: float, timeline: Timeline
) -> None:
    async with session.get(f"{dashboard}/api/serve/applications/") as response:
        applications = (await response.json())["applications"]
    target, running = {}, {}
    for name, details in _stages(applications).items():
        replicas = [r for r in details["replicas"] if r["state"] == "RUNNING"]
        target[name] = int(details["target_num_replicas"])
        running[name] = len(replicas)
        timeline.nodes.setdefault(name, set()).update(r["node_id"] for r in replicas)
    timeline.samples.append(Sample(time.monotonic() - started, target, running))


async def _watch(dashboard: str, started: float, stop: asyncio.Event, timeline: Timeline) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set():
            # A missed sample is skipped; the next one counts.
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, KeyError):
                await _sample(session, dashboard, started, timeline)
            await asyncio.sleep(SAMPLE_S)


def _reached(sample: Sample, wanted: dict[str, int]) -> bool:
    return all(sample.running.get(name, 0) >= count for name, count in wanted.items())


def _settled(sample: Sample, wanted: dict[str, int]) -> bool:
    return all(sample.running.get(name, 0) == count for name, count in wanted.items())


def summarise(
    timeline: Timeline,
    step_up_s: float,
    step_down_s: float,
    load_lag_s: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Replica counts and the two delays, from the samples (pure: unit-tested).

    ``load_lag_s``: per stage, how long after the step its own load steps (a downstream stage's
    is the upstream model time); each stage's ``own_s`` is its ``running_s`` less that lag
    (negative: its replicas ran before its load reached it, as the pipeline policy intends)."""
    lags = load_lag_s or {}
    before = next((s for s in reversed(timeline.samples) if s.at_s <= step_up_s), None)
    during = [s for s in timeline.samples if step_up_s < s.at_s <= step_down_s]
    after = [s for s in timeline.samples if s.at_s > step_down_s]
    if before is None or not during:
        return {"error": "not enough samples around the step"}
    peak = {name: max(s.target.get(name, 0) for s in during) for name in before.target}
    rose = {name: n for name, n in peak.items() if n > before.running.get(name, 0)}
    up = next((s for s in during if rose and _reached(s, rose)), None)

    def first(hit: Callable[[Sample], bool]) -> float | None:
        sample = next((s for s in during if hit(s)), None)
        return round(sample.at_s - step_up_s, 1) if sample else None

    def delays(name: str) -> dict[str, float | None]:
        start = before.running.get(name, 0)
        running = first(lambda s: s.running.get(name, 0) >= rose[name])
        return {
            "decided_s": first(lambda s: s.target.get(name, 0) > start),
            "running_s": running,
            "own_s": None if running is None else round(running - lags.get(name, 0.0), 1),
        }

    # A stage downstream of another sees its load only after the upstream's model time, so
    # each stage's own delays are given as well: when Serve decided, and when it ran.
    stages = {name: delays(name) for name in sorted(rose)}
    own = [d["own_s"] for d in stages.values() if d["own_s"] is not None]
    down = next((s for s in after if _settled(s, before.running)), None)
    return {
        "replicas": {
            name: {
                "before": before.running.get(name, 0),
                "peak_target": peak[name],
                "peak_running": max(s.running.get(name, 0) for s in during),
                "after": after[-1].running.get(name, 0) if after else None,
            }
            for name in sorted(before.target)
        },
        "scaled_up": sorted(rose),
        "per_stage_s": stages,
        "upscale_s": round(up.at_s - step_up_s, 1) if up else None,
        "slowest_stage_own_s": max(own) if own and len(own) == len(stages) else None,
        "downscale_s": round(down.at_s - step_down_s, 1) if down else None,
    }


def step_admitted(
    accepted_at: list[float], step_up_s: float, users: int
) -> dict[str, float | None]:
    """Seconds from the step until half and all of the joining ``users`` had a submit
    accepted: when the step's load had passed the front (gateway, sign-in check, the scan
    ingress and its in-flight limit) and could reach the AI stages. ``accepted_at``: the
    joining users' accepts, seconds from the same origin as ``step_up_s``. Counted as the n-th
    accept, which is each user's first while a scan takes longer than the step's arrival (the
    default 40 s of model time does)."""
    after = sorted(at - step_up_s for at in accepted_at if at >= step_up_s)

    def nth(n: int) -> float | None:
        return round(after[n - 1], 1) if 0 < n <= len(after) else None

    return {"half_s": nth((users + 1) // 2), "all_s": nth(users)}


async def _run(
    target: loadgen.Target,
    dashboard: str,
    base: list[loadgen.User],
    peak: list[loadgen.User],
    lead_s: float,
    ramp_s: float,
    hold_s: float,
    settle_s: float,
) -> tuple[Timeline, dict[str, Any], dict[str, Any], float, float]:
    timeline, stop = Timeline(), asyncio.Event()
    started = time.monotonic()
    watcher = asyncio.create_task(_watch(dashboard, started, stop, timeline))
    baseline = asyncio.create_task(
        loadgen.drive(target, base, lead_s + ramp_s + hold_s + settle_s, ramp_s=0)
    )
    await asyncio.sleep(lead_s)
    step_up = time.monotonic() - started
    surge = await loadgen.drive(target, peak, hold_s, ramp_s=ramp_s)
    surge["accepted_at"] = [at - started for at in surge["accepted_at"]]
    step_down = time.monotonic() - started
    steady = await baseline
    stop.set()
    await watcher
    return timeline, surge, steady, step_up, step_down


def bench_autoscale(
    base: Annotated[int, typer.Option(min=1, max=100, help="Users before and after.")] = 10,
    peak: Annotated[int, typer.Option(min=2, max=3000, help="Users during the step.")] = 1000,
    lead: Annotated[
        float,
        typer.Option(
            min=5,
            max=300,
            help="Seconds at --base before the step: over two job times by default, so the "
            "scan ingress has learnt what a job takes, as a running service has.",
        ),
    ] = 90,
    hold: Annotated[float, typer.Option(min=5, max=600, help="Seconds at the peak.")] = 45,
    settle: Annotated[
        float, typer.Option(min=10, max=900, help="Seconds after the step down.")
    ] = 120,
    step_ramp: Annotated[
        float, typer.Option(min=0, max=60, help="Seconds over which the peak users join.")
    ] = 2,
    model_latency: Annotated[str, typer.Option(help="original | zero | fast | <ms>,<ms>")] = (
        "20000,20000"
    ),
    direct: Annotated[
        bool, typer.Option("--direct", help="Ray Serve with X-User-ID, past the gateway.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A step from --base to --peak scans in flight and back; the AI stages' replicas."""
    if peak <= base:
        raise typer.BadParameter("--peak must be larger than --base")
    state = running_state()
    if state.dashboard_url is None:
        raise typer.BadParameter("the running stack has no Ray dashboard to watch")
    path: loadgen.Path = "direct" if direct else "gateway"
    target = (
        loadgen.Target(serve_url(state), state.env["ECO2_SERVICES__STREAMS_URL"])
        if direct
        else loadgen.Target.gateway(api_url(state))
    )
    loadgen.check_target(target.commands, target.reads, state.dashboard_url)
    vision_ms, answer_ms = parse_latency(model_latency)
    sim = state.env["ECO2_MODEL__BASE_URL"].removesuffix("/v1")
    original = set_sim_latency(sim, vision_ms, answer_ms)
    users = loadgen.prepare(api_url(state), peak + base, path)
    host = machine()
    try:
        timeline, surge, steady, up_at, down_at = eco2.loop.run(
            _run(
                target,
                state.dashboard_url,
                users[:base],
                users[base:],
                lead,
                step_ramp,
                hold,
                settle,
            )
        )
    finally:
        httpx.put(f"{sim}/sim/config", json=original)
    failures: dict[str, int] = {}
    for part in (surge, steady):
        for kind in ("ramp_failures", "failures"):
            for reason, count in part[kind].items():
                failures[reason] = failures.get(reason, 0) + count
    ai_nodes = {name: len(nodes) for name, nodes in timeline.nodes.items()}
    result = {
        "command": (
            f"eco2 bench autoscale --base {base} --peak {peak} --lead {lead:g} "
            f"--step-ramp {step_ramp:g} --hold {hold:g} --settle {settle:g} "
            f"--model-latency {model_latency}"
            f"{' --direct' if direct else ''} --json"
        ),
        "path": path,
        "model_latency_ms": {"vision": vision_ms, "answer": answer_ms},
        "step_up_at_s": round(up_at, 1),
        "step_down_at_s": round(down_at, 1),
        # The answer stage's load steps one vision call after the step.
        **summarise(timeline, up_at, down_at, {"scan/AnswerStage": vision_ms / 1000}),
        "failed": sum(failures.values()),
        "failures": failures,
        # Submits the scan ingress refused as overloaded, each sent again after its
        # Retry-After: the step reaches the stages only as fast as they are admitted.
        "shed": surge["shed"] + steady["shed"],
        "step_admitted": step_admitted(surge["accepted_at"], up_at, peak),
        # The load generator's own CPU during the step (100 = one core): near 100, it and not
        # the stack paced the step's arrival.
        "driver_cpu_percent": surge["driver_cpu_percent"],
        "completed": surge["all_completed"] + steady["all_completed"],
        "nodes_per_stage": ai_nodes,
        "samples": len(timeline.samples),
        "machine": host,
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }
    typer.echo(loadgen.to_json(result) if json_output else _table(result))


def _table(result: dict[str, Any]) -> str:
    lines = [
        f"upscale_s: {result.get('upscale_s')}  slowest stage's own: "
        f"{result.get('slowest_stage_own_s')}  downscale_s: {result.get('downscale_s')}"
    ]
    lines.append(f"failed: {result['failed']} {result['failures']}  shed: {result['shed']}")
    lines.append(f"step admitted: {result['step_admitted']}")
    for name, counts in result.get("replicas", {}).items():
        lines.append(f"  {name}: {counts}")
    return "\n".join(lines)
