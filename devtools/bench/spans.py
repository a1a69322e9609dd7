"""``eco2 bench spans``: what one span costs the process that records it, with the SDK set up
as every process of the stack sets it up (:func:`eco2.telemetry.tracer_provider`).

Each span is made the way the stack makes its most common one, a consumer's span over one event
(``cdc/consumers/runtime.py``): continued from the event's ``traceparent``, a kind, the given
number of attributes (ids and names), ended at once. Three set-ups, one after the other in this
process, the figure being this process's CPU time (every thread: the SDK's export worker
included) per span:

* ``not_sampled_us``: tracing off (no exporter, so nothing is recorded), as the stack runs with
  ``ECO2_TELEMETRY__BACKEND=none``;
* ``recorded_us``: every span recorded, none exported (the SDK's bookkeeping alone);
* ``exported_us``: every span recorded, batched and sent by the OTLP/HTTP exporter to a sink in
  another process (``eco2 bench otlp-sink``: its CPU is not counted), as with
  ``ECO2_TELEMETRY__TRACES=otlp`` and a sample ratio of 1. The SDK's queue holds 2,048 spans and
  drops the rest, so the loop flushes every 1,000 spans; the sink's count proves none was lost.

Spans per scan times ``exported_us`` is the least CPU per scan that tracing every scan can cost,
before anything a loaded machine adds (docs/benchmarks.md, issue 17).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from typing import Annotated, Any

import httpx
import typer
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind

from cluster.ports import pick_ports
from devtools.bench.loadgen import to_json
from devtools.bench.machine import machine
from devtools.bench.otlp_sink import Counts, serve_sink
from eco2 import telemetry
from eco2.settings import ExporterKind, TelemetrySettings

FLUSH_EVERY = 1_000
"""Spans between two flushes: below the batch processor's queue (2,048), so none is dropped."""
_PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
"""A sampled W3C parent, as an event's metadata carries it."""


def _attributes(count: int) -> dict[str, str]:
    """``count`` attributes shaped like a consumer span's: half ids, half short names."""
    return {
        f"eco2.attribute_{i}": str(uuid.uuid4()) if i % 2 else f"name-{i}" for i in range(count)
    }


def cpu_per_span_us(provider: TracerProvider, spans: int, attributes: int) -> float:
    """Process CPU time per span (µs) for ``spans`` consumer-like spans, flushed as it goes."""
    tracer = provider.get_tracer("eco2.bench.spans")
    parent = telemetry.extract(_PARENT)
    shapes = [_attributes(attributes) for _ in range(64)]
    started = time.process_time()
    for i in range(spans):
        span = tracer.start_span(
            "consume bench", context=parent, kind=SpanKind.CONSUMER, attributes=shapes[i % 64]
        )
        span.end()
        if (i + 1) % FLUSH_EVERY == 0:
            provider.force_flush()
    provider.force_flush()
    spent = time.process_time() - started
    provider.shutdown()
    return round(spent / spans * 1e6, 1)


def _run_sink(port: int) -> None:
    asyncio.run(serve_sink(port, Counts()))


def _sink_spans(url: str) -> int:
    return int(httpx.get(f"{url}/stats", timeout=5).json()["spans"])


def _wait_for_sink(url: str, deadline_s: float = 30.0) -> None:
    until = time.monotonic() + deadline_s
    while True:
        try:
            _sink_spans(url)
            return
        except httpx.TransportError as exc:
            if time.monotonic() > until:
                raise RuntimeError(
                    f"the OTLP sink at {url} did not answer within {deadline_s:g} s"
                ) from exc
            time.sleep(0.1)


def measure(spans: int, attribute_counts: list[int]) -> dict[str, Any]:
    """The three figures per attribute count, with a sink in a child process."""
    (port,) = pick_ports(1)
    url = f"http://127.0.0.1:{port}"
    sink = multiprocessing.get_context("spawn").Process(target=_run_sink, args=(port,))
    sink.start()
    try:
        _wait_for_sink(url)
        resource = Resource.create({"service.name": "bench-spans"})
        exporting = TelemetrySettings(traces=ExporterKind.OTLP, otlp_endpoint=url, sample_ratio=1)
        figures: dict[str, Any] = {}
        for count in attribute_counts:
            before = _sink_spans(url)
            figures[str(count)] = {
                "not_sampled_us": cpu_per_span_us(
                    telemetry.tracer_provider(TelemetrySettings(), resource), spans, count
                ),
                "recorded_us": cpu_per_span_us(
                    TracerProvider(resource=resource, sampler=ALWAYS_ON), spans, count
                ),
                "exported_us": cpu_per_span_us(
                    telemetry.tracer_provider(exporting, resource), spans, count
                ),
                "received": _sink_spans(url) - before,
            }
    finally:
        sink.terminate()
        sink.join(10)
    return figures


def bench_spans(
    spans: Annotated[int, typer.Option(min=100, max=1_000_000, help="Spans per set-up.")] = 30_000,
    attributes: Annotated[
        list[int] | None, typer.Option(help="Attributes per span (repeat the option).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """CPU per span: tracing off, recorded only, recorded and exported over OTLP/HTTP."""
    counts = attributes or [4, 8]
    per_attributes = measure(spans, counts)
    lost = {n: spans - f["received"] for n, f in per_attributes.items() if f["received"] != spans}
    options = " ".join(f"--attributes {n}" for n in counts)
    result = {
        "command": f"eco2 bench spans --spans {spans} {options} --json",
        "spans": spans,
        "per_attributes": per_attributes,
        "not_received": lost,
        "machine": machine(),
    }
    typer.echo(to_json(result) if json_output else _table(result))
    if lost:
        raise typer.Exit(1)


def _table(result: dict[str, Any]) -> str:
    lines = ["attributes  off µs  recorded µs  exported µs  received"]
    for count, f in result["per_attributes"].items():
        lines.append(
            f"{count:>10}  {f['not_sampled_us']:>6}  {f['recorded_us']:>11}  "
            f"{f['exported_us']:>11}  {f['received']:>8}"
        )
    return "\n".join(lines)
