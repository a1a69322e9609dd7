from typing import Any

import pytest
from pydantic import ValidationError

from eco2.events import Event, EventEnvelope, EventMetadata, EventRegistry


class ThingHappened(Event):
    event_type = "ThingHappened"
    schema_version = 2
    name: str
    count: int


def _registry() -> EventRegistry:
    registry = EventRegistry()
    registry.register(ThingHappened)

    @registry.upcaster("ThingHappened", 1)
    def _v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
        return {"name": payload["title"], "count": 1}

    return registry


def test_envelope_of_an_event_carries_type_version_and_metadata() -> None:
    envelope = EventEnvelope.of(
        ThingHappened(name="a", count=3),
        aggregate_type="thing",
        aggregate_id="t-1",
        aggregate_version=1,
        metadata=EventMetadata(traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"),
    )
    assert envelope.event_type == "ThingHappened"
    assert envelope.schema_version == 2
    assert envelope.payload == {"name": "a", "count": 3}
    assert _registry().decode(envelope) == ThingHappened(name="a", count=3)


def test_an_old_schema_version_is_upcast_before_validation() -> None:
    old = EventEnvelope(
        event_type="ThingHappened",
        schema_version=1,
        aggregate_type="thing",
        aggregate_id="t-1",
        aggregate_version=1,
        payload={"title": "legacy"},
    )
    assert _registry().decode(old) == ThingHappened(name="legacy", count=1)


def test_unknown_types_and_bad_payloads_are_refused() -> None:
    registry = _registry()
    unknown = EventEnvelope(
        event_type="Nope", aggregate_type="x", aggregate_id="1", aggregate_version=1, payload={}
    )
    assert not registry.knows("Nope")
    with pytest.raises(KeyError):
        registry.decode(unknown)
    bad = unknown.model_copy(update={"event_type": "ThingHappened", "schema_version": 2})
    with pytest.raises(ValidationError):
        registry.decode(bad)


def test_events_are_frozen() -> None:
    event = ThingHappened(name="a", count=1)
    with pytest.raises(ValidationError):
        event.name = "b"  # type: ignore[misc]
