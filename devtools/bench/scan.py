"""``eco2 bench scan``: closed-loop virtual users against the running local stack's scan API,
with the simulator's latencies set for the run, and the stack's CPU per scan by process."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import httpx
import psutil
import typer

from cluster import process
from cluster.running import api_url, running_state, serve_url
from cluster.state import StackState
from devtools.bench import loadgen
from devtools.bench.machine import machine
from eco2.settings import Settings, settings_of

LATENCY_PRESETS: dict[str, tuple[float, float]] = {
    "original": (4500.0, 6700.0),  # the original's measured vision / answer means (domain.md §12)
    "zero": (0.0, 0.0),
    "fast": (50.0, 80.0),
}


def parse_latency(value: str) -> tuple[float, float]:
    """``original`` | ``zero`` | ``fast`` | ``<vision_ms>,<answer_ms>``."""
    if value in LATENCY_PRESETS:
        return LATENCY_PRESETS[value]
    try:
        vision_ms, answer_ms = (float(part) for part in value.split(","))
    except ValueError:
        raise typer.BadParameter("use original, zero, fast or <vision_ms>,<answer_ms>") from None
    if vision_ms < 0 or answer_ms < 0:
        raise typer.BadParameter("latencies must be >= 0")
    return vision_ms, answer_ms


def set_sim_latency(sim: str, vision_ms: float, answer_ms: float) -> dict[str, Any]:
    original: dict[str, Any] = httpx.get(f"{sim}/sim/config").raise_for_status().json()
    config = json.loads(json.dumps(original))
    for kind, fixed in (("vision", vision_ms), ("answer", answer_ms)):
        config["kinds"][kind].update(fixed_ms=fixed, jitter_ms=0.0)
    httpx.put(f"{sim}/sim/config", json=config).raise_for_status()
    httpx.post(f"{sim}/sim/reset").raise_for_status()
    return original


def _stack_rss_mb(state: StackState) -> float:
    return round(process.rss_bytes(state.supervisor_pid) / 2**20, 1)


def process_label(argv: list[str]) -> str | None:
    """A readable name for one process of the stack: a Ray worker's actor class, our own Python
    module (with the services it serves, so the domain host's three processes stay apart), or
    None where only the executable's name says what it is."""
    head = " ".join(argv[:1])
    if head.startswith("ray::"):
        return head.split(".")[0]
    if "-m" not in argv[:-1]:
        return None
    module = argv[argv.index("-m") + 1]
    served = [arg.split("=", 1)[0] for arg in argv[argv.index("-m") + 2 :] if "=" in arg]
    served = [name for name in served if not name.startswith("-")]
    return f"{module}[{','.join(served)}]" if served else module


def cpu_by_process(state: StackState) -> dict[str, float]:
    """CPU seconds so far of each process of the stack, keyed by a readable name."""
    return cpu_of(process.tree(state.supervisor_pid))


def cpu_of(processes: Iterable[psutil.Process]) -> dict[str, float]:
    """CPU seconds so far of ``processes``, keyed by a readable name (summed per name)."""
    seconds: dict[str, float] = {}
    for proc in processes:
        try:
            name = process_label(proc.cmdline()) or proc.name()
            times = proc.cpu_times()
        except psutil.Error:
            continue
        seconds[name] = seconds.get(name, 0.0) + times.user + times.system
    return seconds


def cpu_ms_per_unit(
    before: dict[str, float], after: dict[str, float], scans: int
) -> dict[str, float]:
    if scans == 0:
        return {}
    deltas = {k: (v - before.get(k, 0.0)) * 1000 / scans for k, v in after.items()}
    top = {k: round(v, 2) for k, v in sorted(deltas.items(), key=lambda kv: -kv[1]) if v >= 0.1}
    return {**top, "total": round(sum(deltas.values()), 2)}


def bench_scan(
    users: Annotated[int, typer.Option(min=1, max=5000)] = 50,
    model_latency: Annotated[str, typer.Option(help="original | zero | fast | <ms>,<ms>")] = "zero",
    duration: Annotated[float, typer.Option(min=5, max=900, help="Measured seconds.")] = 60,
    ramp: Annotated[float, typer.Option(min=0, max=300, help="Ramp-up seconds.")] = 10,
    protocol: Annotated[
        str, typer.Option(help="sse: submit + SSE + result (the client's way); sync: one call")
    ] = "sse",
    direct: Annotated[
        bool,
        typer.Option(
            "--direct",
            help="Drive Ray Serve itself with X-User-ID (past the gateway and the sign-in check)",
        ),
    ] = False,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Closed-loop users against the real scan API on the local stack (simulated model).

    By default every virtual user signs in (dev login) and goes through the gateway with its
    cookie, as the web client does; ``--direct`` measures the Serve pipeline alone."""
    if protocol not in loadgen.PROTOCOLS:
        raise typer.BadParameter(f"--protocol must be one of {sorted(loadgen.PROTOCOLS)}")
    if protocol == "sync" and not direct:
        raise typer.BadParameter(
            "--protocol sync is internal (not routed by the gateway): --direct"
        )
    path: loadgen.Path = "direct" if direct else "gateway"
    vision_ms, answer_ms = parse_latency(model_latency)
    state = running_state()
    target = (
        loadgen.Target(serve_url(state), state.env["ECO2_SERVICES__STREAMS_URL"])
        if direct
        else loadgen.Target.gateway(api_url(state))
    )
    sim = state.env["ECO2_MODEL__BASE_URL"].removesuffix("/v1")
    original = set_sim_latency(sim, vision_ms, answer_ms)
    virtual_users = loadgen.prepare(api_url(state), users, path)  # sign-ins: not measured
    host = machine()  # before the load: its reference loop times the idle stack's machine
    cpu_before = cpu_by_process(state)
    try:
        model_time_s = (vision_ms + answer_ms) / 1000
        result = loadgen.run(target, virtual_users, duration, ramp, model_time_s, protocol)
        cpu_ms = cpu_ms_per_unit(cpu_before, cpu_by_process(state), result["all_completed"])
    finally:
        httpx.put(f"{sim}/sim/config", json=original)
    stats = httpx.get(f"{sim}/stats").json()
    result = {
        "command": (
            f"eco2 bench scan --users {users} --model-latency {model_latency} "
            f"--duration {duration:g} --ramp {ramp:g} --protocol {protocol}"
            f"{' --direct' if direct else ''} --json"
        ),
        "path": path,
        "path_detail": (
            "past the gateway: Ray Serve for submits, the read service for streams and results, "
            "X-User-ID header (no sign-in check)"
            if direct
            else "gateway, each virtual user signed in (dev login, s_access cookie)"
        ),
        "target": {"commands": target.commands, "reads": target.reads},
        "users": users,
        "protocol": protocol,
        "model_latency_ms": {"vision": vision_ms, "answer": answer_ms},
        **result,
        **rate_limited_counts(result),
        "cpu_percent": round(result["machine_cpu_percent"] - result["driver_cpu_percent"], 1),
        "rss_mb": _stack_rss_mb(state),
        "tracing": stack_tracing(state),
        "rate_limits": stack_rate_limits(state),
        "admission": stack_admission(state),
        "stackcpu_ms_per_unit": cpu_ms,
        "model_calls": {k: v["completed"] for k, v in stats["kinds"].items()},
        "machine": host,
        "load_average": [round(x, 2) for x in psutil.getloadavg()],
    }
    typer.echo(loadgen.to_json(result) if json_output else _table(result))


def stack_tracing(state: StackState) -> dict[str, Any]:
    """Where the stack's spans went and what share of traces it recorded: tracing changes the
    figures (docs/benchmarks.md), so every benchmark says what it ran with."""
    return {
        "exported_to": state.env.get("ECO2_TELEMETRY__OTLP_ENDPOINT"),
        "sample_ratio": float(state.env.get("ECO2_TELEMETRY__SAMPLE_RATIO", "0")),
    }


def stack_settings(state: StackState) -> Settings | str:
    """The settings the stack's services run with, from the environment its supervisor passed
    to every child; or why they cannot be read."""
    try:
        return settings_of(psutil.Process(state.supervisor_pid).environ())
    except psutil.Error as exc:
        return f"the supervisor's environment cannot be read: {exc}"


def stack_rate_limits(state: StackState) -> dict[str, Any]:
    """The per-user limits the stack runs with (``ECO2_RATE_LIMIT__*``, see
    ``RateLimitSettings``): a few virtual users submit far faster than people, so a run against
    the default limits measures the limiter's refusals, not the service (docs/benchmarks.md)."""
    settings = stack_settings(state)
    if isinstance(settings, str):
        return {"unknown": settings}
    limits = settings.rate_limit
    return {
        action: rule.model_dump() if rule.enabled else "off"
        for action, rule in (
            ("scan", limits.scan),
            ("chat", limits.chat),
            ("upload", limits.upload),
        )
    }


def stack_admission(state: StackState) -> dict[str, Any]:
    """How the stack sheds load (``ECO2_SCAN__ADMISSION__*``, ``ECO2_API__SHED_K``): a closed
    loop past capacity is partly refused (503 + ``Retry-After``, counted as ``shed``)."""
    settings = stack_settings(state)
    if isinstance(settings, str):
        return {"unknown": settings}
    return {
        "scan_inflight_limit": settings.scan.admission.model_dump(),
        "gateway_shed_k": settings.api.shed_k or "off",
    }


def rate_limited_counts(result: Mapping[str, Any]) -> dict[str, int]:
    """Failures that were the per-user limit's 429 (``*_429_rate_limited``), apart from the
    rest, so a reader sees at once whether the limit or the service refused."""
    limited = rate_limited(result["failures"])
    return {
        "rate_limited": limited,
        "failed_not_rate_limited": result["failed"] - limited,
        "ramp_rate_limited": rate_limited(result.get("ramp_failures", {})),
    }


def rate_limited(failures: Mapping[str, int]) -> int:
    return sum(n for reason, n in failures.items() if reason.endswith("_rate_limited"))


def _table(result: dict[str, Any]) -> str:
    keys = (
        *("users", "completed", "failed", "rate_limited", "shed", "completed_per_min"),
        *("e2e_p50_s", "e2e_p95_s"),
        *("overhead_p50_ms", "overhead_p95_ms", "cpu_percent", "driver_cpu_percent", "rss_mb"),
    )
    return "\n".join(f"{k:>20}: {result[k]}" for k in keys)
