"""The spans of a pipeline job: one per step (under the job's trace, whichever process runs it)
and one per database commit, with the job's attributes; what a step calls (stages, tools, the
model) nests under its span, because it is given the step's ``traceparent``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.trace import Span, SpanKind

from eco2 import telemetry

_tracer = telemetry.tracer("eco2.pipelines")


@contextmanager
def step_span(
    pipeline: str, job_id: str, step: str, attempt: int, traceparent: str | None
) -> Iterator[Span]:
    """``<pipeline>.<step>`` under the job's trace; ``telemetry.inject()`` inside it gives the
    traceparent to hand the step's calls."""
    with _tracer.start_as_current_span(
        f"{pipeline}.{step}",
        context=telemetry.extract(traceparent),
        attributes={"eco2.job_id": job_id, "eco2.stage": step, "eco2.attempt": attempt},
    ) as span:
        yield span


@contextmanager
def commit_span(database: str, table: str, job_id: str) -> Iterator[Span]:
    """One database transaction of a job (its columns and events in one statement)."""
    with _tracer.start_as_current_span(
        f"commit {table}",
        kind=SpanKind.CLIENT,
        attributes={
            "db.system.name": "postgresql",
            "db.namespace": database,
            "db.collection.name": table,
            "eco2.job_id": job_id,
        },
    ) as span:
        yield span


def current_or(traceparent: str | None) -> str | None:
    """The traceparent of the current span (a step's), else the job's own."""
    return telemetry.inject() or traceparent
