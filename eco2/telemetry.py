"""OpenTelemetry and structured logging for every process of the stack.

Call :func:`configure` once at process start (entry points only). It installs

* a tracer provider and a meter provider whose exporters come from the settings
  (``none`` | ``console`` | ``otlp``), tagged with ``service.name``;
* JSON logs (structlog over the standard ``logging`` module) where every record carries the
  ``trace_id``/``span_id`` of the current span, so a log line can be joined with its trace, and
  no record carries a secret (:mod:`eco2.redact`).

Later code only adds spans (``tracer(__name__).start_as_current_span(...)``) and metrics.
Trace context crosses process boundaries as a W3C ``traceparent`` string: see :func:`inject`
and :func:`extract`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from fastapi.telemetry import TelemetryConfig
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from eco2.redact import redact_event
from eco2.settings import ExporterKind, TelemetrySettings

_propagator = TraceContextTextMapPropagator()
_CHATTY_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiohttp.access")
_configured_service: str | None = None


def _otlp_base(settings: TelemetrySettings) -> str:
    return (settings.otlp_endpoint or "http://127.0.0.1:4318").rstrip("/")


def _span_exporter(settings: TelemetrySettings) -> SpanExporter | None:
    if settings.traces is ExporterKind.CONSOLE:
        return ConsoleSpanExporter(out=sys.stderr)
    if settings.traces is ExporterKind.OTLP:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(endpoint=f"{_otlp_base(settings)}/v1/traces")
    return None


def _metric_reader(settings: TelemetrySettings) -> MetricReader | None:
    if settings.metrics is ExporterKind.PROMETHEUS:
        import prometheus_client
        from opentelemetry.exporter.prometheus import PrometheusMetricReader

        if settings.metrics_port is not None:
            prometheus_client.start_http_server(settings.metrics_port, addr="127.0.0.1")
        return PrometheusMetricReader()
    if settings.metrics is ExporterKind.CONSOLE:
        return PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stderr))
    if settings.metrics is ExporterKind.OTLP:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        endpoint = f"{_otlp_base(settings)}/v1/metrics"
        return PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint))
    return None


def _add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    span_context = trace.get_current_span().get_span_context()
    if span_context.is_valid:
        event_dict.setdefault("trace_id", format(span_context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(span_context.span_id, "016x"))
    return event_dict


def _configure_logging(service: str, settings: TelemetrySettings) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if settings.log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_trace_ids,
        lambda _l, _m, ev: {**ev, "service": service},
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # Last before rendering, so the message, every field and the exception's text pass
            # it, from our loggers and from every library's alike.
            redact_event,
            renderer,
        ],
    )
    # The process's own stderr, not what a host put in its place: in a Serve replica
    # ``sys.stderr`` feeds Serve's logger, which holds up to 1,000 records in memory before it
    # writes its file (RAY_SERVE_THROUGHPUT_OPTIMIZED), so a warning could wait there for hours
    # or die with the replica. On fd 2 each line reaches the worker's log file (the dashboard's
    # Actors → logs) as it is written.
    handler = logging.StreamHandler(sys.__stderr__ or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # HTTP clients log every request at INFO: on the scan hot path that costs CPU for lines no
    # one reads (docs/benchmarks.md). Their warnings still come through.
    for chatty in _CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def configure(service: str, settings: TelemetrySettings) -> None:
    """Install tracing, metrics and JSON logging for this process (idempotent per process)."""
    global _configured_service
    if _configured_service is not None:
        return
    resource = Resource.create(
        {
            "service.name": service,
            "service.namespace": "eco2",
            # Phoenix files spans by this attribute (one project for the whole stack).
            "openinference.project.name": settings.project,
        }
    )
    trace.set_tracer_provider(tracer_provider(settings, resource))
    reader = _metric_reader(settings)
    metrics.set_meter_provider(
        MeterProvider(resource=resource, metric_readers=[reader] if reader else [])
    )
    _configure_logging(service, settings)
    _configured_service = service


def tracer_provider(settings: TelemetrySettings, resource: Resource) -> TracerProvider:
    """The tracer provider :func:`configure` installs (``eco2 bench spans`` measures this one).

    Without an exporter nobody reads spans: they are not recorded, but trace ids are still
    generated and propagated so logs, events and SSE carry them. With one, a new trace is
    recorded at the configured ratio and a continued one as its parent was, and ended spans are
    batched to the exporter on the SDK's worker thread."""
    exporter = _span_exporter(settings)
    if exporter is None:
        return TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def fastapi_options(settings: TelemetrySettings) -> TelemetryConfig:
    """FastAPI's own telemetry for an app: request spans only when spans are exported (a span
    nobody records still cost ext-authz a quarter of its CPU per check, docs/benchmarks.md),
    request metrics (``http.server.request.duration`` by route, method and status) only when
    metrics are; its logs never (our JSON logs cover them)."""
    tracing = settings.traces is not ExporterKind.NONE
    metrics = settings.metrics is not ExporterKind.NONE
    # The request span only: FastAPI's spans of dependency resolution, endpoint and serialisation
    # were three of each request's four, a quarter of a scan's spans (docs/benchmarks.md).
    return TelemetryConfig(tracing=tracing, metrics=metrics, logs=False, operation_spans=False)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)


def meter(name: str) -> metrics.Meter:
    return metrics.get_meter(name)


def inject() -> str | None:
    """The W3C ``traceparent`` of the current span, or ``None`` outside any span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def extract(traceparent: str | None) -> otel_context.Context:
    """A context whose parent is ``traceparent`` (an empty context when it is missing or bad)."""
    carrier: Mapping[str, str] = {"traceparent": traceparent} if traceparent else {}
    return _propagator.extract(carrier)


def records_spans(provider: trace.TracerProvider | None = None) -> bool:
    """Whether this process (or ``provider``) records any span: an SDK tracer provider whose
    sampler is not always-off. Settled by :func:`configure` at start: a hot path asks once, not
    per message."""
    provider = provider or trace.get_tracer_provider()
    return isinstance(provider, TracerProvider) and provider.sampler is not ALWAYS_OFF


def sampled(traceparent: str | bytes) -> bool:
    """The sampled flag of a W3C ``traceparent``: whether the parent-based sampler continues it."""
    try:
        return bool(int(traceparent[-2:], 16) & 1)
    except ValueError:
        return False


def trace_id_of(traceparent: str | None) -> str | None:
    """The 32-hex trace id inside a ``traceparent`` string."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
