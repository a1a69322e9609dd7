"""``eco2 bench …`` and ``eco2 chaos``: the benchmark and fault commands, mounted on the
``eco2`` CLI when this package is installed (a development checkout; a production image has no
benchmarks)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated

import typer

from devtools.bench.autoscale import bench_autoscale
from devtools.bench.cdc import bench_cdc
from devtools.bench.chat import bench_chat
from devtools.bench.gateway import bench_gateway
from devtools.bench.otlp_sink import bench_otlp_sink
from devtools.bench.rescore import bench_rescore
from devtools.bench.saga import bench_saga
from devtools.bench.scan import bench_scan
from devtools.bench.skeleton import bench_skeleton
from devtools.bench.spans import bench_spans
from devtools.bench.up import bench_up
from devtools.chaos.run import chaos_command
from eco2.settings import load_settings


def _bench_up_command(
    runs: Annotated[int, typer.Option("--runs", min=1, help="Cold + warm starts (median).")] = 1,
    json_output: Annotated[bool, typer.Option("--json/--no-json", help="Print JSON.")] = True,
) -> None:
    """Cold and warm start time of the local stack and its RSS, in a separate run dir."""
    result = bench_up(load_settings(), runs=runs)
    typer.echo(json.dumps(result, indent=2) if json_output else str(result))


BENCHMARKS: dict[str, tuple[Callable[..., None], str]] = {
    "up": (_bench_up_command, "Cold and warm start time of the local stack, and its RSS."),
    "scan": (bench_scan, "Closed-loop scan load against the local stack (simulated model)."),
    "skeleton": (
        bench_skeleton,
        "The bare Serve skeleton's ceiling on this machine now (stack down), to compare scan with.",
    ),
    "chat": (bench_chat, "Concurrent conversations through the gateway (simulated model)."),
    "autoscale": (bench_autoscale, "A step in scans in flight: how fast the AI stages scale."),
    "cdc": (bench_cdc, "WAL relay vs polling relay, and the inbox consumer."),
    "saga": (bench_saga, "Reward saga latency through the domains, projector throughput."),
    "gateway": (bench_gateway, "Requests per second through the gateway's sign-in check."),
    "rescore": (bench_rescore, "Rescoring rows/s at zero latency, budget adherence."),
    "spans": (bench_spans, "CPU per span: tracing off, recorded, exported over OTLP/HTTP."),
    "otlp-sink": (bench_otlp_sink, "An OTLP trace receiver that counts spans and keeps none."),
}
"""``eco2 bench <name>``: the command and its one-line help."""


__all__ = ["bench_app", "chaos_command"]


def bench_app() -> typer.Typer:
    bench = typer.Typer(help="Benchmarks: print JSON figures and the command that made them.")
    for name, (command, help_text) in BENCHMARKS.items():
        bench.command(name, help=help_text)(command)
    return bench
