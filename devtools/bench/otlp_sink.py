"""``eco2 bench otlp-sink``: an OTLP/HTTP trace receiver that counts what it is sent and keeps
nothing — a stand-in for a collector on another host, so that a benchmark measures what
recording and exporting every span costs the stack, apart from what storing them costs a backend
that shares its cores.

Start it, start the stack exporting to it, run the benchmark, stop it::

    eco2 bench otlp-sink --port 14318 &
    ECO2_TELEMETRY__TRACES=otlp ECO2_TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:14318 \\
        eco2 up --detach --fresh
    eco2 bench scan --json ...; curl -s 127.0.0.1:14318/stats

Every export request's spans are counted (the protobuf body decoded, as a collector would), so a
run whose spans never arrived shows it; ``/stats`` and the JSON printed on exit carry the span and
request counts, the spans per service and span name, and the sink's own CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from typing import Annotated, Any

import typer
from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

_EMPTY_REPLY = ExportTraceServiceResponse().SerializeToString()


class Counts:
    """What the sink was sent since it started."""

    def __init__(self) -> None:
        self.requests = self.spans = self.bad = 0
        self.bytes = 0
        self.started = time.monotonic()
        self.by_name: Counter[str] = Counter()
        """Spans per ``service: span name``: where a trace's spans come from."""

    def take(self, body: bytes) -> bool:
        """Count one export request's spans; False for a body that is not one."""
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except DecodeError:  # a body that is not an OTLP export: counted, refused
            self.bad += 1
            return False
        self.requests += 1
        self.bytes += len(body)
        for resource in request.resource_spans:
            names = {a.key: a.value.string_value for a in resource.resource.attributes}
            service = names.get("service.name", "?")
            for scope in resource.scope_spans:
                self.spans += len(scope.spans)
                self.by_name.update(f"{service}: {span.name}" for span in scope.spans)
        return True

    def figures(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "spans": self.spans,
            "refused": self.bad,
            "megabytes": round(self.bytes / 1e6, 2),
            "seconds": round(time.monotonic() - self.started, 1),
            "cpu_s": round(time.process_time(), 2),
            "by_name": dict(self.by_name.most_common()),
        }


def sink_app(counts: Counts) -> web.Application:
    async def traces(request: web.Request) -> web.Response:
        if request.content_type != "application/x-protobuf":
            counts.bad += 1
            return web.json_response({"error": "send OTLP/HTTP protobuf"}, status=415)
        if not counts.take(await request.read()):
            return web.json_response({"error": "not an OTLP trace export"}, status=400)
        return web.Response(body=_EMPTY_REPLY, content_type="application/x-protobuf")

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(counts.figures())

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", stats)
    return app


async def serve_sink(port: int, counts: Counts) -> None:
    """Serve the sink on 127.0.0.1:``port`` until SIGINT or SIGTERM."""
    runner = web.AppRunner(sink_app(counts), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    typer.echo(f"OTLP sink (counts spans, stores none) on http://127.0.0.1:{port}", err=True)
    await stop.wait()
    await runner.cleanup()


def bench_otlp_sink(
    port: Annotated[int, typer.Option("--port", min=1024, max=65535)] = 14318,
) -> None:
    """Receive OTLP/HTTP traces, count them and keep none; prints the counts as JSON on exit."""
    counts = Counts()
    asyncio.run(serve_sink(port, counts))
    typer.echo(json.dumps({"command": f"eco2 bench otlp-sink --port {port}", **counts.figures()}))
