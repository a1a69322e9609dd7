"""The benchmark's OTLP sink counts the spans a real OTLP/HTTP exporter sends it and refuses
what is not a trace export."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from cluster.ports import pick_ports
from devtools.bench.otlp_sink import Counts, sink_app


async def test_the_sink_counts_what_an_otlp_exporter_sends_and_refuses_anything_else() -> None:
    counts, (port,) = Counts(), pick_ports(1)
    runner = web.AppRunner(sink_app(counts))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{port}/v1/traces")
        provider = TracerProvider(resource=Resource.create({"service.name": "sink-test"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("sink-test")

        def record() -> None:
            with tracer.start_as_current_span("scan"), tracer.start_as_current_span("stage"):
                pass
            provider.shutdown()

        await asyncio.to_thread(record)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            junk = await client.post(
                "/v1/traces",
                content=b"\xff\xff\xff",
                headers={"content-type": "application/x-protobuf"},
            )
            stats = (await client.get("/stats")).json()
    finally:
        await runner.cleanup()

    assert junk.status_code == 400
    assert stats["spans"] == 2
    assert stats["requests"] == 2  # one export per ended span (SimpleSpanProcessor)
    assert stats["refused"] == 1
    assert stats["by_name"] == {"sink-test: scan": 1, "sink-test: stage": 1}
