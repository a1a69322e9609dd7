"""``eco2 up / down / status / bench up``: typer commands over :mod:`cluster.supervisor`.

The lead mounts these functions on the ``eco2`` app (see ``eco2/cli.py``); ``python -m cluster``
offers the same commands without it.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cluster import probes, supervisor, traces
from cluster.state import StackState, read_state
from eco2 import telemetry
from eco2.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)


def cli_settings() -> Settings:
    settings = load_settings()
    telemetry.configure("eco2-launcher", settings.telemetry)
    return settings


def _relay_lag(settings: Settings, state: StackState) -> list[dict[str, Any]] | str:
    """Per replication slot: bytes and seconds the CDC relay is behind (or why unknown)."""
    from cdc.relay.metrics import relay_status
    from eco2.errors import Unavailable

    if "cdc_relay" not in state.components or "ECO2_DB__URL" not in state.env:
        return "no CDC relay in this stack"
    stack_settings = settings.model_copy(
        update={"db": settings.db.model_copy(update={"url": state.env["ECO2_DB__URL"]})}
    )
    try:
        return relay_status(stack_settings)
    except Unavailable as exc:
        return str(exc)


def read_model_states(state: StackState) -> dict[str, str] | str:
    """Each live read model: ``whole``, or ``rebuilding`` (its projector is rebuilding it from
    the event stores after Valkey lost it)."""
    import redis

    from cdc.cli import load_spec
    from cdc.consumers.valkey_inbox import whole_key
    from cdc.readmodels.projections import PROJECTIONS

    url = state.env.get("ECO2_CACHE__URL")
    if url is None or "domains" not in state.components:
        return "no read models in this stack"
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        marks = client.mget([whole_key(load_spec(name).name) for name in PROJECTIONS])
    except redis.RedisError as exc:
        return f"unknown: {exc}"
    finally:
        client.close()
    said = ["whole" if mark else "rebuilding" for mark in marks]
    return dict(zip(PROJECTIONS, said, strict=True))


def _print_report(report: dict[str, Any]) -> None:
    table = Table(title=f"eco2 stack in {report['run_dir']}")
    for column in ("component", "healthy", "url", "pid", "restarts", "detail"):
        table.add_column(column, overflow="fold")
    for name, c in report["components"].items():
        mark = "[green]yes[/]" if c["healthy"] else "[red]no[/]"
        detail = "external" if c["external"] else (c["reason"] or "")
        if c["healthy"] and c.get("restarts"):
            detail = f"last restart: {c['last_failure']}"
        if not c["healthy"] and c["log_path"]:
            detail += f" (log: {c['log_path']})"
        restarts = str(c.get("restarts") or "")
        table.add_row(name, mark, c["url"] or "", str(c["pid"] or ""), restarts, detail)
    console.print(table)
    nodes = report.get("nodes")
    if isinstance(nodes, list) and nodes:
        console.print(_nodes_table(nodes))
    models = report.get("read_models")
    if isinstance(models, dict) and models:
        rebuilding = sorted(name for name, said in models.items() if said != "whole")
        console.print(
            f"read models:   {len(models) - len(rebuilding)} of {len(models)} whole"
            + (f"; rebuilding {', '.join(rebuilding)}" if rebuilding else "")
        )
    lag = report.get("cdc")
    if isinstance(lag, list) and lag:
        worst = max(lag, key=lambda row: row.get("lag_bytes") or 0)
        console.print(
            f"cdc relay:     {len(lag)} slots, worst lag {worst.get('lag_bytes')} bytes "
            f"({worst.get('database')})"
        )
    console.print(f"api_url:       {report['api_url']}")
    console.print(f"dashboard_url: {report['dashboard_url']}")
    if report.get("traces_url"):
        console.print(f"traces_url:    {report['traces_url']}")
    if report.get("prometheus_url"):
        console.print(f"prometheus_url: {report['prometheus_url']}")
    elif report.get("up"):
        console.print(
            "prometheus_url: none (Debian's prometheus is not installed: `make install` adds it "
            "where apt exists; every process still serves /metrics)"
        )


def _nodes_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table(title="ray nodes")
    for column in ("node", "role", "state", "CPU", "ai_worker"):
        table.add_column(column)
    for node in nodes:
        role = "ai worker" if node["ai_worker"] and node["role"] == "worker" else node["role"]
        table.add_row(
            str(node["node_id"])[:12],
            role,
            str(node["state"]),
            f"{node['cpu']:g}",
            f"{node['ai_worker']:g}",
        )
    return table


def _print_state(settings: Settings, state: StackState) -> None:
    _print_report(supervisor.probe(settings, state))


def up(
    fresh: Annotated[bool, typer.Option("--fresh", help="Wipe the run dir's data first.")] = False,
    detach: Annotated[bool, typer.Option("--detach", help="Supervise in the background.")] = False,
    ai_workers: Annotated[
        int | None,
        typer.Option(
            "--ai-workers",
            min=0,
            max=8,
            help="Local AI worker nodes beside the Ray head (ECO2_RAY__AI_WORKERS); the head "
            "then offers no ai_worker capacity.",
        ),
    ] = None,
) -> None:
    """Start the whole local stack; stay in the foreground unless --detach."""
    if ai_workers is not None:
        # The detached supervisor is a child process: it reads its settings from the environment.
        os.environ["ECO2_RAY__AI_WORKERS"] = str(ai_workers)
    settings = cli_settings()
    run_dir = supervisor.run_dir_of(settings)
    state = read_state(run_dir)
    if state is not None and supervisor.supervisor_alive(state):
        console.print(f"already up (supervisor pid {state.supervisor_pid}, run dir {run_dir})")
        _print_state(settings, state)
        if fresh:
            err_console.print("refusing --fresh while the stack is up; run `eco2 down` first")
            raise typer.Exit(1)
        return
    supervisor.clear_stale(run_dir)
    if fresh:
        for path in supervisor.wipe_data(settings):
            console.print(f"wiped {path}")
    if detach:
        code, state, message = supervisor.start_detached(settings)
        if code != 0 or state is None:
            err_console.print(f"eco2 up failed: {message}", markup=False, highlight=False)
            raise typer.Exit(1)
        _print_state(settings, state)
        return
    code = supervisor.run_supervisor(settings, on_up=lambda s: _print_state(settings, s))
    if code != 0:
        failed = read_state(run_dir)
        reason = failed.error if failed and failed.error else "see the log above"
        err_console.print(f"eco2 up failed: {reason}", markup=False, highlight=False)
    raise typer.Exit(code)


def down() -> None:
    """Stop the local stack; leaves no process behind. Exit 0 also when nothing was up."""
    settings = cli_settings()
    result = supervisor.down(settings)
    run_dir = supervisor.run_dir_of(settings)
    if not result.stopped and not result.leftovers:
        console.print(f"nothing is up in {run_dir}")
        return
    console.print(f"stopped: {', '.join(result.stopped) or 'nothing'} ({run_dir})")
    for name, pids in result.leftovers:
        console.print(f"  killed leftover {name} processes: {pids}")


def status(
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Probe every component live; exit 1 if the stack is not up or any part is unhealthy."""
    settings = cli_settings()
    run_dir = supervisor.run_dir_of(settings)
    state = read_state(run_dir)
    if state is None:
        report: dict[str, Any] = {"up": False, "phase": "down", "run_dir": str(run_dir)}
        report |= {"components": {}, "api_url": None, "dashboard_url": None}
    else:
        report = supervisor.probe(settings, state)
        report["cdc"] = _relay_lag(settings, state)
        report["read_models"] = read_model_states(state)
        report["nodes"] = probes.ray_nodes(state.dashboard_url) if state.dashboard_url else []
    healthy = report["up"] and all(c["healthy"] for c in report["components"].values())
    if json_output:
        typer.echo(json.dumps(report, indent=2))
    elif state is None:
        console.print(f"not up ({run_dir})")
    else:
        _print_report(report)
    raise typer.Exit(0 if healthy else 1)


def trace(
    ref: Annotated[str, typer.Argument(help="A trace id (32 hex digits) or a scan/chat job id.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print one scan's or chat message's whole trace from the trace backend, as a waterfall."""
    settings = cli_settings()
    state = read_state(supervisor.run_dir_of(settings))
    base = settings.telemetry.backend_url or (state.traces_url if state else None)
    db_url = settings.db.url or (state.env.get("ECO2_DB__URL") if state else None)
    try:
        if base is None:
            raise traces.TraceNotFound(
                "no trace backend: start the stack with `eco2 up` (it runs Phoenix) or set "
                "ECO2_TELEMETRY__BACKEND_URL"
            )
        trace_id = traces.resolve_trace_id(ref, db_url)
        tree = traces.waterfall(traces.spans_of(base, settings.telemetry.project, trace_id))
        if not tree:
            raise traces.TraceNotFound(
                f"the trace backend has no span of trace {trace_id} (yet: spans arrive within "
                "a few seconds; or it was not sampled)"
            )
    except traces.TraceNotFound as exc:
        err_console.print(f"eco2 trace: {exc}")
        raise typer.Exit(1) from exc
    if json_output:
        typer.echo(json.dumps(traces.as_json(trace_id, tree), indent=2, ensure_ascii=False))
        return
    console.print(_trace_table(trace_id, tree, base))


def _trace_table(trace_id: str, tree: list[tuple[int, traces.SpanRow]], base: str) -> Table:
    first = min(row.start for _, row in tree)
    table = Table(title=f"trace {trace_id}  ({base})")
    for column in ("span", "start ms", "ms", "status", "detail"):
        table.add_column(column, justify="right" if "ms" in column else "left")
    for depth, row in tree:
        offset = (row.start - first).total_seconds() * 1000
        detail = " ".join(
            f"{k.split('.')[-1]}={row.attributes[k]}"
            for k in traces.SHOWN_ATTRIBUTES
            if k in row.attributes
        )
        status = row.status if not row.message else f"{row.status}: {row.message[:60]}"
        table.add_row(
            "  " * depth + row.name, f"{offset:.1f}", f"{row.duration_ms:.1f}", status, detail
        )
    return table
