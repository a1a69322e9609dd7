import io
import json
import logging

from eco2 import telemetry


def test_logs_are_json_and_carry_the_trace_id_of_the_current_span(
    log_output: io.StringIO,
) -> None:
    with telemetry.tracer("t").start_as_current_span("work") as span:
        logging.getLogger("eco2.test").info("inside a span")
        expected = format(span.get_span_context().trace_id, "032x")
        traceparent = telemetry.inject()
    line = log_output.getvalue().strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "inside a span"
    assert record["trace_id"] == expected
    assert record["service"] == "unit-test"
    assert telemetry.trace_id_of(traceparent) == expected


def test_extract_continues_a_remote_trace() -> None:
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    with telemetry.tracer("t").start_as_current_span("child", context=telemetry.extract(parent)):
        assert telemetry.trace_id_of(telemetry.inject()) == "ab" * 16
    assert telemetry.trace_id_of("garbage") is None


def test_sampled_reads_the_trace_flags() -> None:
    assert telemetry.sampled("00-" + "ab" * 16 + "-" + "cd" * 8 + "-01")
    assert telemetry.sampled(b"00-" + b"ab" * 16 + b"-" + b"cd" * 8 + b"-03")
    assert not telemetry.sampled("00-" + "ab" * 16 + "-" + "cd" * 8 + "-00")
    assert not telemetry.sampled("garbage-zz")


def test_records_spans_only_with_a_provider_that_samples() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
    from opentelemetry.trace import ProxyTracerProvider

    assert telemetry.records_spans(TracerProvider(sampler=ALWAYS_ON))
    assert not telemetry.records_spans(TracerProvider(sampler=ALWAYS_OFF))
    assert not telemetry.records_spans(ProxyTracerProvider())
