"""Event rows → Debezium-compatible records, dead letters and their headers, and back."""

from __future__ import annotations

import json
import uuid

from cdc.outbox import (
    EVENT_COLUMNS,
    RowLayout,
    dead_letter,
    dlq_headers,
    envelope_from_message,
    header_map,
    record_from_values,
)
from eco2.events import Event, EventRegistry

registry = EventRegistry()


@registry.register
class Weighed(Event):
    event_type = "Weighed"
    schema_version = 2
    grams: int


@registry.upcaster("Weighed", 1)
def _kilos_to_grams(payload: dict[str, object]) -> dict[str, object]:
    return {"grams": int(float(str(payload["kg"])) * 1000)}


def row(
    event_type: str, payload: object, *, version: int = 2, agg_type: str = "bin"
) -> list[bytes]:
    values = {
        "event_id": str(uuid.uuid4()),
        "aggregate_type": agg_type,
        "aggregate_id": "bin-7",
        "aggregate_version": "3",
        "event_type": event_type,
        "schema_version": str(version),
        "payload": json.dumps(payload),
        "metadata": json.dumps({"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}),
        "occurred_at": "2026-11-25 13:40:00.123456+00",
    }
    return [values[c].encode() for c in ["position", *EVENT_COLUMNS] if c != "position"]


LAYOUT = RowLayout(EVENT_COLUMNS)


def test_valid_event_goes_to_its_topic_with_debezium_headers() -> None:
    values = row("Weighed", {"grams": 5})
    record = record_from_values(LAYOUT, values, {"bin": registry})
    h = header_map(record.headers)
    assert record.topic == "outbox.event.bin"
    assert record.key == b"bin-7"
    assert json.loads(record.value) == {"grams": 5}
    assert h["id"] == values[0].decode()
    assert h["eventType"] == "Weighed"
    assert h["traceparent"].startswith("00-aaaa")
    assert h["aggregateVersion"] == "3"


def test_old_schema_version_is_upcast_before_validation() -> None:
    record = record_from_values(LAYOUT, row("Weighed", {"kg": "1.5"}, version=1), {"bin": registry})
    assert record.topic == "outbox.event.bin"


def test_unknown_type_and_bad_payload_are_dead_lettered_with_reason() -> None:
    unknown = record_from_values(LAYOUT, row("Melted", {}), {"bin": registry})
    invalid = record_from_values(LAYOUT, row("Weighed", {"grams": "heavy"}), {"bin": registry})
    assert unknown.topic == invalid.topic == "outbox.event.bin.dlq"
    assert header_map(unknown.headers)["dlqReason"] == "unknown_event_type"
    h = header_map(invalid.headers)
    assert h["dlqReason"] == "invalid_payload"
    assert "grams" in h["dlqError"]
    assert h["dlqSource"] == "relay"
    assert h["dlqOriginalTopic"] == "outbox.event.bin"


def test_unregistered_aggregate_types_pass_unvalidated() -> None:
    record = record_from_values(LAYOUT, row("Anything", [1, 2], agg_type="free"), {"bin": registry})
    assert record.topic == "outbox.event.free"


def test_dlq_headers_replace_earlier_failure_and_cap_the_error() -> None:
    first = dlq_headers([("id", b"1")], "t", "handler_retriable", "x" * 5000, "c1", 5)
    second = header_map(dlq_headers(first, "t", "undecodable", "boom", "c2", 1))
    assert second["dlqReason"] == "undecodable"
    assert second["dlqSource"] == "c2"
    assert len(dict(first)["dlqError"]) == 2000
    assert sum(1 for k, _ in dlq_headers(first, "t", "r", "e", "s", 1) if k == "dlqReason") == 1


def test_envelope_round_trip_from_kafka_message() -> None:
    record = record_from_values(LAYOUT, row("Weighed", {"grams": 5}), {})
    envelope = envelope_from_message(record.key, record.value, record.headers)
    assert envelope.aggregate_id == "bin-7"
    assert envelope.aggregate_version == 3
    assert envelope.payload == {"grams": 5}
    assert envelope.metadata.traceparent is not None
    letter = dead_letter(record, reason="r", error="e", source="s")
    assert envelope_from_message(letter.key, letter.value, letter.headers) == envelope
