"""The event envelope shared by every domain, and versioned event classes with upcasters.

Events are frozen, named in the past tense, and carry a ``schema_version``. Old stored versions are
brought up to date by upcasters registered per ``(event_type, from_version)`` before a payload is
validated, so handlers only ever see the current shape.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

JsonDict = dict[str, Any]
Upcaster = Callable[[JsonDict], JsonDict]


class Event(BaseModel):
    """Base of typed event payloads. Subclasses set ``event_type`` and ``schema_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class EventMetadata(BaseModel):
    model_config = ConfigDict(frozen=True)
    traceparent: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None


class EventEnvelope(BaseModel):
    """What is stored in ``event_store`` and published to ``outbox.event.<aggregate_type>``."""

    model_config = ConfigDict(frozen=True)
    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    event_type: str
    schema_version: int = 1
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int = Field(gt=0)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    payload: JsonDict
    metadata: EventMetadata = EventMetadata()

    @classmethod
    def of(
        cls,
        event: Event,
        *,
        aggregate_type: str,
        aggregate_id: str,
        aggregate_version: int,
        metadata: EventMetadata | None = None,
    ) -> EventEnvelope:
        return cls(
            event_type=event.event_type,
            schema_version=event.schema_version,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            payload=event.model_dump(mode="json"),
            metadata=metadata or EventMetadata(),
        )


class EventRegistry:
    """Maps ``event_type`` to its class and holds the upcasters of older schema versions."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Event]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_class: type[Event]) -> type[Event]:
        self._classes[event_class.event_type] = event_class
        return event_class

    def upcaster(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def decorate(fn: Upcaster) -> Upcaster:
            self._upcasters[(event_type, from_version)] = fn
            return fn

        return decorate

    def knows(self, event_type: str) -> bool:
        return event_type in self._classes

    def decode(self, envelope: EventEnvelope) -> Event:
        """The typed, current-version event of ``envelope``.

        Raises ``KeyError`` for an unknown type and ``pydantic.ValidationError`` for a payload that
        does not fit even after upcasting.
        """
        return self.decode_payload(envelope.event_type, envelope.schema_version, envelope.payload)

    def decode_payload(self, event_type: str, schema_version: int, payload: JsonDict) -> Event:
        """:meth:`decode` of a bare payload (no envelope to build first); same errors."""
        event_class = self._classes[event_type]
        payload, version = dict(payload), schema_version
        while version < event_class.schema_version:
            payload = self._upcasters[(event_type, version)](payload)
            version += 1
        return event_class.model_validate(payload)
