"""``eco2 bench spans`` measures the stack's own tracer set-up, and every span it exports reaches
the sink (a figure over spans the SDK dropped would flatter the exporter)."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource

from devtools.bench import spans
from eco2 import telemetry
from eco2.settings import ExporterKind, TelemetrySettings


def test_every_exported_span_reaches_the_sink_and_each_set_up_is_measured() -> None:
    figures = spans.measure(2_500, [3])  # past two flushes and the SDK's 2,048-span queue

    assert set(figures) == {"3"}
    assert figures["3"]["received"] == 2_500
    for key in ("not_sampled_us", "recorded_us", "exported_us"):
        assert figures["3"][key] > 0


def test_the_measured_provider_is_the_one_the_stack_installs() -> None:
    resource = Resource.create({"service.name": "bench-spans-test"})
    off = telemetry.tracer_provider(TelemetrySettings(), resource)
    on = telemetry.tracer_provider(
        TelemetrySettings(traces=ExporterKind.OTLP, otlp_endpoint="http://127.0.0.1:9"), resource
    )
    try:
        parent = telemetry.extract(spans._PARENT)
        assert not off.get_tracer("t").start_span("s", context=parent).is_recording()
        assert on.get_tracer("t").start_span("s", context=parent).is_recording()
        assert telemetry.records_spans(on)
        assert not telemetry.records_spans(off)
    finally:
        on.shutdown()
