"""``eco2 bench …``: the benchmark commands, mounted on the ``eco2`` CLI when this package is
installed (a development checkout; a production image has no benchmarks)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from devtools.bench.autoscale import bench_autoscale
from devtools.bench.cdc import bench_cdc
from devtools.bench.chat import bench_chat
from devtools.bench.gateway import bench_gateway
from devtools.bench.rescore import bench_rescore
from devtools.bench.saga import bench_saga
from devtools.bench.scan import bench_scan
from devtools.bench.up import bench_up
from eco2.settings import load_settings


def _bench_up_command(
    runs: Annotated[int, typer.Option("--runs", min=1, help="Cold + warm starts (median).")] = 1,
    json_output: Annotated[bool, typer.Option("--json/--no-json", help="Print JSON.")] = True,
) -> None:
    """Cold and warm start time of the local stack and its RSS, in a separate run dir."""
    result = bench_up(load_settings(), runs=runs)
    typer.echo(json.dumps(result, indent=2) if json_output else str(result))


def bench_app() -> typer.Typer:
    bench = typer.Typer(help="Benchmarks: print JSON figures and the command that made them.")
    bench.command("up", help="Cold and warm start time of the local stack, and its RSS.")(
        _bench_up_command
    )
    bench.command("scan", help="Closed-loop scan load against the local stack (simulated model).")(
        bench_scan
    )
    bench.command("chat", help="Concurrent conversations through the gateway (simulated model).")(
        bench_chat
    )
    bench.command(
        "autoscale", help="A step in scans in flight: how fast the AI stages scale, and back."
    )(bench_autoscale)
    bench.command("cdc", help="WAL relay vs polling relay, and the inbox consumer.")(bench_cdc)
    bench.command("saga", help="Reward saga latency through the domains, projector throughput.")(
        bench_saga
    )
    bench.command("gateway", help="Requests per second through the gateway's sign-in check.")(
        bench_gateway
    )
    bench.command("rescore", help="Rescoring rows/s at zero latency, budget adherence.")(
        bench_rescore
    )
    return bench
